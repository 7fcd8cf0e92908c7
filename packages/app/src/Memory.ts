import { setFlagsFromString } from "node:v8"

/**
 * V8 frees dead ArrayBuffers' memory on a helper thread, which falls behind the buffers a large payload passes
 * through when the cores are busy: the worker's peak with 1 GB and one core taken by a busy loop was 180–190 MiB,
 * 111 with the sweep on the thread that collects (README, "Footprint"). A flag Node takes on its command line only,
 * not in NODE_OPTIONS; V8 reads it at each sweep, so setting it as the program starts is enough.
 */
export const sweepArrayBuffersOnCollectingThread = () => setFlagsFromString("--no-concurrent-array-buffer-sweeping")
