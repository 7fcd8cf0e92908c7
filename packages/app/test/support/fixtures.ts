/**
 * What the tests' payloads need of every pipeline and worker they start: their readings have fixed dates
 * (2026-11-20 …), which the worker leaves out once they are older than RAW_RETENTION when sent.
 */
export const fixtureEnv = { RAW_RETENTION: "3650 days" } as const
