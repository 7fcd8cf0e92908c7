import { HttpApi, HttpApiBuilder, type HttpMethod, HttpRouter } from "@effect/platform"
import { Effect } from "effect"
import { errorResponse, MethodNotAllowed } from "./errors.js"

/** The methods a client might try on a route of ours; HEAD is answered wherever GET is. */
const METHODS: ReadonlyArray<HttpMethod.HttpMethod> = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

/**
 * Answers a known path asked with a method it does not serve `405` with `Allow` (RFC 9110 §15.5.6), not the `404`
 * of a path that does not exist: routes for the other methods of every path of the API and of `gets` (the GET
 * routes beside it), added once those exist.
 */
export const layer = (gets: ReadonlyArray<`/${string}`>) =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function*() {
      const api = yield* HttpApi.Api
      const served = new Map<string, Set<HttpMethod.HttpMethod>>(gets.map((path) => [path, new Set(["GET"])]))
      HttpApi.reflect(api.api, {
        onGroup: () => {},
        onEndpoint: ({ endpoint }) => {
          const methods = served.get(endpoint.path) ?? new Set()
          served.set(endpoint.path, methods.add(endpoint.method))
        }
      })
      for (const [path, methods] of served) {
        const allow = [...methods, ...(methods.has("GET") ? ["HEAD"] : [])].join(", ")
        for (const method of METHODS.filter((m) => !methods.has(m))) {
          yield* router.addRoute(HttpRouter.makeRoute(
            method,
            path as HttpRouter.PathInput,
            Effect.succeed(errorResponse(
              new MethodNotAllowed({ message: `${method} is not served at this path; it serves ${allow}` }),
              { allow }
            ))
          ))
        }
      }
    })
  )
