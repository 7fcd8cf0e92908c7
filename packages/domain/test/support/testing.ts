/** Test support of the contract, shared by the packages' tests (`@telemetry/domain/testing`). */
export { claim, equipment, item, reading, sensor, series, uid } from "./builders.js"
export { chunksOf, concat, piecesOf, utf8 } from "./bytes.js"
export { bulkPayload, haEquipmentRow, haPayload } from "./payloads.js"
export { mean, percentileCont, sampleStddev } from "./statistics.js"
