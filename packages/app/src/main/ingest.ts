import * as App from "../App.js"
import { runServer } from "./run.js"

// `pnpm ingest`: ingest and analytics over HTTP, no worker (the workers are processes of their own, on Kafka).
runServer("ingest", App.ingestOnly)
