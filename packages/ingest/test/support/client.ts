import { request } from "node:http"

export interface Answer {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  /** The body, when it is JSON. */
  readonly json: any
}

/**
 * An HTTP request with a JSON answer, sent from `localAddress` (any of 127.0.0.0/8 reaches the test servers), so
 * that a test can play several clients whose limits are counted by address.
 */
export const send = (
  url: string,
  options: {
    readonly method?: string
    readonly headers?: Record<string, string>
    /** Sent as JSON. */
    readonly body?: unknown
    /** Sent as it is, as JSON (whether it is or not). */
    readonly text?: string
    readonly localAddress?: string
  } = {}
) =>
  new Promise<Answer>((resolve, reject) => {
    const body = options.text ?? (options.body === undefined ? undefined : JSON.stringify(options.body))
    const req = request(url, {
      method: options.method ?? (body === undefined ? "GET" : "POST"),
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
      ...(options.localAddress ? { localAddress: options.localAddress } : {})
    }, (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk) => (text += chunk))
      response.on("end", () => {
        const json = response.headers["content-type"]?.includes("json") ? JSON.parse(text) : undefined
        resolve({ status: response.statusCode!, headers: response.headers, json })
      })
      response.on("error", reject)
    })
    req.on("error", reject)
    req.end(body)
  })
