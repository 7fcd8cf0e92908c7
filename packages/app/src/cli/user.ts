import { accountCommand } from "./accounts.js"
import * as Cli from "./Cli.js"

// `pnpm user add --tenant <t> --username <u> [--password <p>]`, `list`, `disable`, `enable`, `passwd`: reader
// accounts, for dashboards that log in.
Cli.run(accountCommand("user", "reader"), "pnpm user")
