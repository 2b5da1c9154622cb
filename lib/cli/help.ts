// The help texts: `haraka-backscatter help [COMMAND]` and `COMMAND --help`.
import { PROG } from './io'
import { INI } from './config'

const CONFIG_HELP = `  --config DIR  Haraka config directory holding ${INI} (a Haraka install
                directory with config/${INI} also works). Its settings
                override the package defaults key by key, as in Haraka.
                Default: ./config when it holds ${INI}, else the defaults.`

const EXIT_HELP = `Exit status:
  0  done: every zone usable and every lookup answered
  1  a zone is unusable (fails its RFC 5782 test points) or a lookup failed
  2  bad usage: unknown command or option, a bad argument, unreadable --config`

export const HELP = {
  main: `Usage: ${PROG} <command> [options]

Look addresses up on ips.backscatterer.org (and any other configured zone) with
the configuration and lookup code of the Haraka plugin haraka-plugin-backscatter.

Commands:
  check IP...          listed or not, A answers, TXT, score and verdict per IP
  health               RFC 5782 test points of every zone, with timings
  explain --ip IP --from ADDR --rcpt ADDR...
                       the whole decision for one transaction, step by step
  help [COMMAND]       this text, or the help of a command

Options may come before or after the command.
${CONFIG_HELP}
  -h, --help    show help ('${PROG} COMMAND --help' for a command)

${EXIT_HELP}
`,
  check: `Usage: ${PROG} check [--config DIR] [--json] IP...

For each IP and zone: listed or not, the A answers, the TXT reason and the score
it adds, then the verdict a bounce (MAIL FROM:<>) from that IP would get. The
zones' RFC 5782 test-point check runs first, as in the plugin; a zone that fails
it is shown with its answers but does not count. When a lookup fails, the
verdict says so: the plugin accepts the bounce (it fails open).

Options:
${CONFIG_HELP}
  --json        one JSON object per IP and zone per line: ip, zone, health
                (passed, failed or off), status (listed, not-listed, error or
                skipped), listed, answers, txt, score, counted, detail, verdict
  -h, --help    show this help

${EXIT_HELP}
`,
  health: `Usage: ${PROG} health [--config DIR] [--json]

Query every zone's RFC 5782 test points through the configured resolvers:
127.0.0.2 must be listed and 127.0.0.1 must not (::ffff:7f00:2 and
::ffff:7f00:1 too when the zone has ipv6 on). Shows each answer and its time,
and whether the zone is usable. The plugin suspends a zone that fails. A zone
answered from a file is judged on its data, once the file has loaded.

Options:
${CONFIG_HELP}
  --json        one JSON object per zone per line
  -h, --help    show this help

${EXIT_HELP}
`,
  explain: `Usage: ${PROG} explain --ip IP --from ADDR --rcpt ADDR... [--relaying]

Walk through the plugin's decision for one transaction: the sender test, the
client skips, each zone's lookup, the score against the threshold, the action
for every recipient and the reply text.

Options:
  --ip IP       the connecting client's address
  --from ADDR   the envelope sender (MAIL FROM); '<>' or '' for the null sender
  --rcpt ADDR   an envelope recipient (RCPT TO); repeat for more
  --relaying    the client is authenticated or allowed to relay
${CONFIG_HELP}
  --json        the decision as one JSON object
  -h, --help    show this help

${EXIT_HELP}
`,
} as const
