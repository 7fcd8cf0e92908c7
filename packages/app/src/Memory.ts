import { setFlagsFromString } from "node:v8"

/**
 * V8 frees dead ArrayBuffers' memory (the buffers a large payload passes through) on a helper thread, which a busy
 * core holds back; with this flag the collecting thread frees it as it collects. It does not bound that memory:
 * the worker's peak with 1 GB beside a busy loop was 111 MiB in one run with it, 182–189 in three others (62 MB of
 * it dead ArrayBuffers, near the 64 MB V8 lets them reach before it collects), 180–190 without it
 * (docs/performance.md, "Footprint").
 * A flag Node takes on its command line only, not in NODE_OPTIONS; V8 reads it at each sweep.
 */
export const sweepArrayBuffersOnCollectingThread = () => setFlagsFromString("--no-concurrent-array-buffer-sweeping")
