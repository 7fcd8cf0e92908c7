import { HttpApiMiddleware } from "@effect/platform"
import { Context, Effect, Layer } from "effect"

/** The tenant a request acts for; every query and claim is scoped by it. */
export class CurrentTenant extends Context.Tag("@telemetry/CurrentTenant")<CurrentTenant, string>() {}

/** Resolves the tenant of a request, for the endpoint groups that read or write tenant data. */
export class Tenant extends HttpApiMiddleware.Tag<Tenant>()("@telemetry/Tenant", { provides: CurrentTenant }) {}

/** Until authentication exists every request is the `default` tenant; auth replaces this layer. */
export const single = Layer.succeed(Tenant, Effect.succeed("default"))
