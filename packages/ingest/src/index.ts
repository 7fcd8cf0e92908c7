export * as History from "./analytics/History.js"
export * as App from "./App.js"
export * as Server from "./http/Server.js"
export * as Ingest from "./Ingest.js"
