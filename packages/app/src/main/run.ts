import { Layer } from "effect"
import * as App from "../App.js"
import * as Infrastructure from "../Infrastructure.js"
import { runProgram } from "./program.js"

/**
 * Runs a server program on the services the environment names, else embedded ones, with bearer-token
 * verification (App.authentication).
 */
export const runServer = <E>(program: string, app: Layer.Layer<never, E, Layer.Layer.Context<typeof App.layer>>) =>
  runProgram(program, app.pipe(Layer.provide(Layer.merge(Infrastructure.fromConfig, App.authentication))))
