import { Effect } from "effect"
import { connect, createServer, type Socket } from "node:net"

/**
 * A TCP proxy on a free port of 127.0.0.1 in front of a service, which a test can `stall`: the service then seems
 * hung — connections are accepted, requests go unanswered — without stopping it.
 */
export interface RunningTcpProxy {
  readonly port: number
  /**
   * From now on nothing is forwarded either way, on open connections and new ones; a connection the service
   * closes stays open for its client. The proxy still notices clients closing their connections.
   */
  readonly stall: () => void
  /** Forwards again, first what was held back. */
  readonly pass: () => void
  /** Connections of clients that are open. */
  readonly connections: () => number
  readonly close: () => Promise<void>
}

/** Bytes a stalled connection takes in each direction before it stops reading, as a full receive window would. */
const HOLD = 1024 * 1024

interface Link {
  readonly client: Socket
  readonly upstream: Socket
  /** What stalling held back, in order. */
  held: Array<() => void>
  heldBytes: number
}

export const start = async (target: { readonly host: string; readonly port: number }): Promise<RunningTcpProxy> => {
  let stalled = false
  const links = new Set<Link>()
  const later = (link: Link, action: () => void) => (stalled ? link.held.push(action) : action())

  const forward = (link: Link, from: Socket, to: Socket) => {
    from.on("data", (chunk: Buffer) => {
      if (!stalled) {
        if (!to.write(chunk)) from.pause()
        return
      }
      link.held.push(() => to.write(chunk))
      link.heldBytes += chunk.length
      if (link.heldBytes >= HOLD) from.pause()
    })
    to.on("drain", () => stalled || from.resume())
    from.on("end", () => later(link, () => to.end()))
  }

  const server = createServer((client) => {
    const upstream = connect(target.port, target.host)
    const link: Link = { client, upstream, held: [], heldBytes: 0 }
    links.add(link)
    forward(link, client, upstream)
    forward(link, upstream, client)
    // A client that goes away is seen at once; the service going away is held back while stalled.
    client.on("error", () => {}).on("close", () => {
      links.delete(link)
      upstream.destroy()
    })
    upstream.on("error", () => {}).on("close", () => later(link, () => client.destroy()))
  })
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as { port: number }

  return {
    port,
    stall: () => {
      stalled = true
    },
    pass: () => {
      stalled = false
      for (const link of links) {
        const held = link.held
        link.held = []
        link.heldBytes = 0
        held.forEach((action) => action())
        link.client.resume()
        link.upstream.resume()
      }
    },
    connections: () => links.size,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const { client, upstream } of links) {
        client.destroy()
        upstream.destroy()
      }
      await closed
    }
  }
}

/** A proxy for the scope. */
export const make = (target: { readonly host: string; readonly port: number }) =>
  Effect.acquireRelease(Effect.promise(() => start(target)), (proxy) => Effect.promise(proxy.close))
