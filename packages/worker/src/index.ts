export * as ClaimProcessor from "./ClaimProcessor.js"
export * as Worker from "./Worker.js"
