import { accountCommand } from "./accounts.js"
import * as Cli from "./Cli.js"

// `pnpm device add --tenant <t> --username <u> [--password <p>] [--timezone <IANA zone>]`, `list`, `disable`,
// `enable`, `passwd`: device accounts, for clients that log in (the Home Assistant integration).
Cli.run(accountCommand("device", "device"), "pnpm device")
