import { Effect } from "effect"
import { createServer, request } from "node:http"

/**
 * An HTTP proxy in front of a server whose answers to requests under a path can be lost on the way back: the
 * request reaches the server and takes effect, the server answers, and the client's connection is closed instead
 * (a home router or a mobile link dropping mid-exchange). The client sees a network error for a request that was
 * accepted — what makes a client that resends its whole queue send readings the server already has.
 */
export interface LostAnswers {
  /** Where clients send their requests. */
  readonly base: string
  /** From now on, answers under the path are lost (`true`) or passed on (`false`). */
  readonly lose: (on: boolean) => void
  /** The statuses of the answers lost so far, in order. */
  readonly lost: () => ReadonlyArray<number>
}

export const make = (target: { readonly host: string; readonly port: number }, path: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      let losing = false
      const lost: Array<number> = []
      const server = createServer((incoming, outgoing) => {
        const upstream = request(
          { host: target.host, port: target.port, method: incoming.method, path: incoming.url, headers: incoming.headers },
          (answer) => {
            if (!losing || !incoming.url?.startsWith(path)) {
              outgoing.writeHead(answer.statusCode ?? 502, answer.headers)
              answer.pipe(outgoing)
              return
            }
            // The whole answer is read first: the server has done everything it does for the request.
            answer.resume()
            answer.on("end", () => {
              lost.push(answer.statusCode ?? 0)
              incoming.socket.destroy()
            })
          }
        )
        upstream.on("error", () => incoming.socket.destroy())
        incoming.pipe(upstream)
      })
      await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve))
      const { port } = server.address() as { port: number }
      const proxy: LostAnswers = {
        base: `http://127.0.0.1:${port}`,
        lose: (on) => {
          losing = on
        },
        lost: () => lost.slice()
      }
      return { proxy, server }
    }),
    ({ server }) =>
      Effect.promise(() => {
        server.closeAllConnections()
        return new Promise<void>((resolve) => server.close(() => resolve()))
      })
  ).pipe(Effect.map(({ proxy }) => proxy))
