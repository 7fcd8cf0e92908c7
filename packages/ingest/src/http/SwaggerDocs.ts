import { HttpApi, HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"

/**
 * Swagger UI at `path` over the API's OpenAPI document: HttpApiSwagger's page, built on its first request. Its
 * module holds Swagger UI's 1.9 MB script, and the page a copy of it: loaded at start, they cost the ingest process
 * ~20 MiB of idle memory that a server whose docs nobody opens never uses.
 */
export const layer = (path: `/${string}`) =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function*() {
      const api = yield* HttpApi.Api
      const page = yield* Effect.cached(
        Effect.flatMap(Effect.promise(() => import("./SwaggerPage.js")), (module) => module.make(api, path))
      )
      yield* router.get(path, Effect.flatten(page))
    })
  )
