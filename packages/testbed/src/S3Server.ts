import { Context, Effect, Layer } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import type { IncomingMessage, Server } from "node:http"
import { createRequire } from "node:module"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

interface S3rverInstance {
  readonly httpServer?: Server
  run(): Promise<AddressInfo>
  close(): Promise<void>
}
type S3rverClass = new(options: {
  readonly address: string
  readonly port: number
  readonly directory: string
  readonly silent: boolean
}) => S3rverInstance
// s3rver ships CommonJS without types.
const S3rver = createRequire(import.meta.url)("s3rver") as S3rverClass

/** The only credentials s3rver accepts. */
const CREDENTIAL = "S3RVER"

export interface RunningS3Server {
  /** e.g. `http://127.0.0.1:41234` */
  readonly endpoint: string
  readonly accessKey: string
  readonly secretKey: string
  readonly region: string
  /** `S3_ENDPOINT`, `S3_ACCESS_KEY`, `S3_SECRET_KEY`, `S3_REGION` for a child process. */
  readonly env: Readonly<Record<string, string>>
  /** Requests served so far, as `METHOD /path?query`: lets a test see which S3 calls a client made. */
  readonly requests: () => ReadonlyArray<string>
  /** Stops the server and deletes its data. */
  readonly stop: () => Promise<void>
}

/** s3rver on a free port of 127.0.0.1, storing objects in a fresh temporary directory. */
export const start = async (): Promise<RunningS3Server> => {
  const directory = await mkdtemp(join(tmpdir(), "s3rver-"))
  const server = new S3rver({ address: "127.0.0.1", port: 0, directory, silent: true })
  const { port } = await server.run().catch(async (error: unknown) => {
    await rm(directory, { recursive: true, force: true })
    throw error
  })
  const requests: Array<string> = []
  server.httpServer!.prependListener("request", (request: IncomingMessage) => {
    requests.push(`${request.method} ${request.url}`)
  })
  const endpoint = `http://127.0.0.1:${port}`
  const region = "us-east-1"
  return {
    endpoint,
    accessKey: CREDENTIAL,
    secretKey: CREDENTIAL,
    region,
    env: { S3_ENDPOINT: endpoint, S3_ACCESS_KEY: CREDENTIAL, S3_SECRET_KEY: CREDENTIAL, S3_REGION: region },
    requests: () => requests.slice(),
    stop: async () => {
      // Clients keep connections alive; close() alone would wait for them to time out.
      server.httpServer!.closeAllConnections()
      await server.close()
      await rm(directory, { recursive: true, force: true })
    }
  }
}

export class S3Server extends Context.Tag("@telemetry/testbed/S3Server")<S3Server, RunningS3Server>() {}

/** A server for the scope of the layer. */
export const layer: Layer.Layer<S3Server> = Layer.scoped(
  S3Server,
  Effect.acquireRelease(Effect.promise(start), (server) => Effect.promise(server.stop))
)
