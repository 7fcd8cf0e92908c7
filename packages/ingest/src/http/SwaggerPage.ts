import { HttpApi, HttpApiBuilder, HttpApiSwagger } from "@effect/platform"
import { Effect, Layer } from "effect"

/** A router that serves HttpApiSwagger's page for `api` at `path` (loaded only when the docs are first asked for). */
export const make = (api: typeof HttpApi.Api.Service, path: `/${string}`) =>
  HttpApiBuilder.Router.router.pipe(
    Effect.provide(
      HttpApiSwagger.layer({ path }).pipe(
        Layer.provideMerge(HttpApiBuilder.Router.Live),
        Layer.provide(Layer.succeed(HttpApi.Api, api))
      )
    )
  )
