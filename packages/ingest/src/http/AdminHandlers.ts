import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { type AccountNotFound, Accounts } from "../auth/Accounts.js"
import { AccountConflict } from "./AdminApi.js"
import { TelemetryApi } from "./Api.js"
import { NotFound } from "./errors.js"

const notFound = (e: AccountNotFound) => Effect.fail(new NotFound({ message: e.message }))

// A failing database is a defect here: the server logs it and answers 503 database_unavailable (Server.ts).
export const layer = HttpApiBuilder.group(TelemetryApi, "admin", (handlers) =>
  Effect.map(Accounts, (accounts) =>
    handlers
      .handle("listAccounts", ({ urlParams }) =>
        accounts.list(urlParams.kind, Option.fromNullable(urlParams.tenant_id)).pipe(
          Effect.map((list) => ({ accounts: list })),
          Effect.orDie
        ))
      .handle("addAccount", ({ payload }) =>
        accounts.add({ ...payload, timeZone: payload.timeZone ?? null }).pipe(
          Effect.catchTags({
            AccountExists: (e) => Effect.fail(new AccountConflict({ message: e.message })),
            AccountsUnavailable: Effect.die
          })
        ))
      .handle("disableAccount", ({ path }) =>
        accounts.setDisabled(path.kind, path.username, true).pipe(
          Effect.catchTags({ AccountNotFound: notFound, AccountsUnavailable: Effect.die })
        ))
      .handle("enableAccount", ({ path }) =>
        accounts.setDisabled(path.kind, path.username, false).pipe(
          Effect.catchTags({ AccountNotFound: notFound, AccountsUnavailable: Effect.die })
        ))
      .handle("setPassword", ({ path, payload }) =>
        accounts.setPassword(path.kind, path.username, payload.password).pipe(
          Effect.catchTags({ AccountNotFound: notFound, AccountsUnavailable: Effect.die })
        ))
  ))
