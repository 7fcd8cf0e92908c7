/** An `S3ObjectStore` on a fresh s3rver, for the storage tests. */
import * as S3Server from "@telemetry/testbed/S3Server"
import { Effect, Layer, Redacted } from "effect"
import * as Minio from "minio"
import * as S3ObjectStore from "../../src/storage/s3/S3ObjectStore.js"

export type StoreOptions = Partial<Omit<S3ObjectStore.S3Options, "endpoint" | "accessKey" | "secretKey">>

/** Options of a store on `server`. */
export const optionsFor = (server: S3Server.RunningS3Server, options: StoreOptions = {}): S3ObjectStore.S3Options => ({
  endpoint: server.endpoint,
  accessKey: server.accessKey,
  secretKey: Redacted.make(server.secretKey),
  bucket: "telemetry-raw",
  ...options
})

/** A store on the `S3Server` in context. */
export const storeOn = (options: StoreOptions = {}) =>
  Layer.unwrapEffect(Effect.map(S3Server.S3Server, (server) => S3ObjectStore.layer(optionsFor(server, options))))

/** A store on a server of its own, which it also provides. */
export const s3Store = (options: StoreOptions = {}) =>
  storeOn(options).pipe(Layer.provideMerge(S3Server.layer))

/** A plain client of the `S3Server` in context, to see and make what the store would not (staging keys). */
export const rawClient = Effect.map(S3Server.S3Server, (server) =>
  new Minio.Client({
    endPoint: "127.0.0.1",
    port: server.port,
    useSSL: false,
    accessKey: server.accessKey,
    secretKey: server.secretKey
  }))

/** Every key in `bucket` (default `telemetry-raw`), staging keys included, as another client sees it. */
export const rawKeys = (bucket = "telemetry-raw") =>
  Effect.flatMap(rawClient, (client) =>
    Effect.promise(() => client.listObjectsQuery(bucket, "", "", { Delimiter: "", MaxKeys: 1000 }))).pipe(
      Effect.map((page) => page.objects.flatMap((o) => (o.name === undefined ? [] : [o.name])).sort())
    )
