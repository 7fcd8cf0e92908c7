import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Timestamp } from "../analytics/Rows.js"

// --- Health (contract §5) ---

const Healthy = Schema.Struct({
  status: Schema.Literal("healthy"),
  service: Schema.String,
  timestamp: Timestamp
}).annotations({ identifier: "Healthy" })

const DependencyCheck = Schema.Struct({
  status: Schema.Literal("up", "down"),
  latency_ms: Schema.Number.annotations({ description: "how long the check took" }),
  error: Schema.optional(Schema.String)
}).annotations({ identifier: "DependencyCheck" })

const DatabaseCheck = Schema.Struct({
  ...DependencyCheck.fields,
  status: Schema.Literal("up", "degraded", "down"),
  reason: Schema.optional(Schema.String.annotations({
    description: "why it is degraded: the embedded database, busy with a long transaction, answered no check in time"
  }))
}).annotations({ identifier: "DatabaseCheck" })

const Backlog = Schema.Struct({
  pending: Schema.Number.annotations({
    description: "claims published and not yet loaded or dead-lettered (Kafka: the consumer group's lag)"
  }),
  waiting: Schema.optional(Schema.Number.annotations({ description: "in-process queue: claims waiting for a worker" })),
  capacity: Schema.optional(Schema.Number.annotations({ description: "in-process queue: the most that may wait" })),
  stalled_seconds: Schema.Number.annotations({
    description:
      "in process: age of the oldest claim not yet done; Kafka: the longest a partition has had lag while the group's committed offset there did not move"
  }),
  stalled_partition: Schema.optional(Schema.Number.annotations({ description: "Kafka: that partition" }))
}).annotations({ identifier: "Backlog" })

const QueueCheck = Schema.Struct({
  status: Schema.Literal("up", "degraded", "down"),
  latency_ms: Schema.Number.annotations({ description: "how long the check took" }),
  error: Schema.optional(Schema.String),
  reason: Schema.optional(Schema.String.annotations({ description: "why it is degraded" })),
  backlog: Schema.optional(Backlog)
}).annotations({ identifier: "QueueCheck" })

const WorkerCheck = Schema.Struct({
  status: Schema.Literal("up", "degraded"),
  reason: Schema.optional(Schema.String.annotations({ description: "why it is degraded" })),
  restarts: Schema.Number.annotations({ description: "times its consumer stopped and was started again, last 5 minutes" }),
  failed_deliveries: Schema.Number.annotations({
    description: "times the handling of a claim failed (storage or the database down), leaving it queued, last 5 minutes"
  }),
  last_handled_at: Schema.NullOr(Timestamp).annotations({ description: "when it last loaded (or set aside) a claim" }),
  busy_since: Schema.NullOr(Timestamp).annotations({ description: "since when the claim in progress the longest is" })
}).annotations({ identifier: "WorkerCheck", description: "the worker of this process, when it runs one" })

const Checks = Schema.Struct({
  storage: DependencyCheck,
  queue: QueueCheck,
  database: DatabaseCheck,
  worker: Schema.optional(WorkerCheck)
})

export class DetailedHealth extends Schema.Class<DetailedHealth>("DetailedHealth")({
  status: Schema.Literal("healthy", "degraded").annotations({
    description:
      "degraded: everything answers, but claims do not flow as they should, or the embedded database is busy (see the queue, worker and database checks)"
  }),
  service: Schema.String,
  timestamp: Timestamp,
  checks: Checks
}) {}

export class Unhealthy extends Schema.Class<Unhealthy>("Unhealthy")(
  { status: Schema.Literal("unhealthy"), service: Schema.String, timestamp: Timestamp, checks: Checks },
  HttpApiSchema.annotations({ status: 503, description: "A dependency is down" })
) {}

export class Ready extends Schema.Class<Ready>("Ready")({
  status: Schema.Literal("ready"),
  service: Schema.String,
  timestamp: Timestamp
}) {}

export class NotReady extends Schema.Class<NotReady>("NotReady")(
  {
    status: Schema.Literal("not_ready"),
    service: Schema.String,
    timestamp: Timestamp,
    reasons: Schema.Array(Schema.String)
  },
  HttpApiSchema.annotations({ status: 503, description: "This process cannot accept uploads now" })
) {}

export class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/api/v1/health").addSuccess(Healthy))
  .add(
    HttpApiEndpoint.get("detailed", "/api/v1/health/detailed")
      .addSuccess(DetailedHealth)
      .addError(Unhealthy)
      .annotate(OpenApi.Summary, "Storage, queue and database checked, with latencies; the queue's backlog and the worker")
  )
  .add(
    HttpApiEndpoint.get("ready", "/api/v1/health/ready")
      .addSuccess(Ready)
      .addError(NotReady)
      .annotate(OpenApi.Summary, "Readiness for load balancers: 503 while this process cannot accept uploads")
      .annotate(
        OpenApi.Description,
        "Not ready while storage or the queue is down (storage also for 30 s after an upload it refused as full), " +
          "the in-process queue is full, every upload slot is taken, or the process is shutting down."
      )
  )
{}
