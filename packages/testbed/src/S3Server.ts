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
  readonly port: number
  readonly accessKey: string
  readonly secretKey: string
  readonly region: string
  /** `S3_ENDPOINT`, `S3_ACCESS_KEY`, `S3_SECRET_KEY`, `S3_REGION` for a child process. */
  readonly env: Readonly<Record<string, string>>
  /** Requests served so far, as `METHOD /path?query`: lets a test see which S3 calls a client made. */
  readonly requests: () => ReadonlyArray<string>
  /**
   * Storage goes down: open connections are cut and new ones refused, as when the server crashes. The data stays
   * for `up`. Does nothing if it is down already.
   */
  readonly down: () => Promise<void>
  /** Back on the same port, with the same data. Does nothing if it is up. */
  readonly up: () => Promise<void>
  /** Stops the server and deletes its data. */
  readonly stop: () => Promise<void>
}

/** s3rver on a free port of 127.0.0.1 (or on `port`), storing objects in `directory`. */
const listen = async (directory: string, port: number, requests: Array<string>) => {
  const server = new S3rver({ address: "127.0.0.1", port, directory, silent: true })
  const address = await server.run()
  server.httpServer!.prependListener("request", (request: IncomingMessage) => {
    requests.push(`${request.method} ${request.url}`)
  })
  return { server, port: address.port }
}

const close = async (server: S3rverInstance) => {
  // Clients keep connections alive; close() alone would wait for them to time out.
  server.httpServer!.closeAllConnections()
  await server.close()
}

/** s3rver on a free port of 127.0.0.1, storing objects in a fresh temporary directory. */
export const start = async (): Promise<RunningS3Server> => {
  const directory = await mkdtemp(join(tmpdir(), "s3rver-"))
  const requests: Array<string> = []
  const first = await listen(directory, 0, requests).catch(async (error: unknown) => {
    await rm(directory, { recursive: true, force: true })
    throw error
  })
  const { port } = first
  let running: S3rverInstance | undefined = first.server
  const endpoint = `http://127.0.0.1:${port}`
  const region = "us-east-1"
  return {
    endpoint,
    port,
    accessKey: CREDENTIAL,
    secretKey: CREDENTIAL,
    region,
    env: { S3_ENDPOINT: endpoint, S3_ACCESS_KEY: CREDENTIAL, S3_SECRET_KEY: CREDENTIAL, S3_REGION: region },
    requests: () => requests.slice(),
    down: async () => {
      if (running === undefined) return
      const server = running
      running = undefined
      await close(server)
    },
    up: async () => {
      if (running !== undefined) return
      running = (await listen(directory, port, requests)).server
    },
    stop: async () => {
      if (running !== undefined) await close(running)
      running = undefined
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
