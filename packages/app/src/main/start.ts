import * as App from "../App.js"
import { runServer } from "./run.js"

// `pnpm start`: ingest and analytics over HTTP, with a worker unless RUN_WORKER=false; on embedded parts unless the
// environment names real services.
runServer("ingest", App.layer)
