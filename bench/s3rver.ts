/**
 * The test bed's s3rver in a process of its own, so that serving requests does not compete with the benchmark's
 * client or the code it measures for one event loop. Prints its environment (S3_ENDPOINT, ...) as one JSON line.
 */
import * as S3Server from "@telemetry/testbed/S3Server"

const server = await S3Server.start()
process.stdout.write(`${JSON.stringify(server.env)}\n`)
process.once("SIGTERM", () => void server.stop().finally(() => process.exit(0)))
