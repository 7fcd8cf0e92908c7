import { HttpApiBuilder, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Layer } from "effect"
import * as EquipmentsHandlers from "../http/EquipmentsHandlers.js"
import { TelemetryApi } from "../http/Api.js"
import { NotFound } from "../http/errors.js"
import * as StaticFiles from "./StaticFiles.js"

/**
 * Scripts, styles and connections from this server only, and no inline script or style: an injected string can
 * run nothing. Nor may another site frame the console (clickjacking).
 */
const CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const securityHeaders = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // Revalidated on every use (a 304 when unchanged): a new version of the server is never mixed with old files.
  "cache-control": "no-cache",
  "vary": "accept-encoding"
}

const serve = (file: StaticFiles.StaticFile) =>
  Effect.map(HttpServerRequest.HttpServerRequest, ({ headers }) => {
    const common = { ...securityHeaders, etag: file.etag }
    if (headers["if-none-match"]?.split(",").some((tag) => tag.trim() === file.etag)) {
      return HttpServerResponse.empty({ status: 304, headers: common })
    }
    const gzip = /\bgzip\b/.test(headers["accept-encoding"] ?? "")
    return HttpServerResponse.uint8Array(gzip ? file.gzipped : file.body, {
      contentType: file.contentType,
      headers: gzip ? { ...common, "content-encoding": "gzip" } : common
    })
  })

const pages = HttpApiBuilder.group(TelemetryApi, "console", (handlers) =>
  Effect.map(StaticFiles.load, (files) => {
    const named = (name: string) => {
      const file = files.get(name)
      return file === undefined || name === "index.html"
        ? Effect.fail(new NotFound({ message: `no console file "${name}"` }))
        : serve(file)
    }
    return handlers
      .handle("page", () => serve(files.get("index.html")!))
      .handle("file", ({ path }) => named(path.file))
  }))

/** The console's page and files, and the equipments API; needs a `SqlClient`, a FileSystem and a Path. */
export const layer = Layer.merge(pages, EquipmentsHandlers.layer)
