import { integerSetting } from "@telemetry/domain"
import { Effect } from "effect"

/** Analytics queries one tenant may have running at once in this process; the rest wait their turn. */
const QueriesPerTenant = integerSetting("ANALYTICS_QUERIES_PER_TENANT", 2, { min: 1 })

/**
 * Runs a tenant's queries at most `ANALYTICS_QUERIES_PER_TENANT` at a time, analytics and equipments listings
 * together: a tenant's heavy queries (a raw history of 100 000 rows, or a page of 200 equipments of 500 sensors each,
 * take seconds on the embedded database, whose one session every request shares) queue behind each other rather
 * than ahead of every other tenant's requests. A request waiting here whose client hangs up is interrupted before
 * its query runs.
 */
export class TenantQueries extends Effect.Service<TenantQueries>()("@telemetry/TenantQueries", {
  effect: Effect.map(QueriesPerTenant, (permits) => {
    const tenants = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
    const inTurn = (tenantId: string) => <A, E, R>(query: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          let tenant = tenants.get(tenantId)
          if (tenant === undefined) tenants.set(tenantId, tenant = { semaphore: Effect.unsafeMakeSemaphore(permits), users: 0 })
          tenant.users++
          return tenant
        }),
        (tenant) => tenant.semaphore.withPermits(1)(query),
        // Forgotten once idle: tenants come and go.
        (tenant) => Effect.sync(() => {
          if (--tenant.users === 0) tenants.delete(tenantId)
        })
      )
    return { inTurn } as const
  })
}) {}
