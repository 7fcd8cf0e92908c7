import * as Cli from "@telemetry/domain/Cli"
import { accountCommand } from "./accounts.js"

// `pnpm user add --tenant <t> --username <u> [--password <p>]`, `list`, `disable`, `enable`, `passwd`: reader
// accounts, for dashboards that log in.
Cli.run(accountCommand("user", "reader"), "pnpm user")
