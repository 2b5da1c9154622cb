// The help texts: `haraka-backscatter help [COMMAND]` and `COMMAND --help`.
import { PROG } from './io'
import { KEYS_FILE } from '../batv/keys-file'
import { INI } from './config'
import { DEFAULT_MAX_AGE_HOURS } from './health'
import { MAX_REPLY_BYTES } from '../ledger/reply/read'

const CONFIG_HELP = `  --config DIR  Haraka config directory holding ${INI} (a Haraka install
                directory with config/${INI} also works). Its settings
                override the package defaults key by key, as in Haraka.
                Default: ./config when it holds ${INI}, else the defaults.`

const EXIT_HELP = `Exit status (as monitoring plugins use it):
  0  OK: every zone usable, every lookup answered
  1  WARNING: a zone in use does not list its test point 127.0.0.2, a lookup
     failed (the plugin fails open), or (health) a zone file's data is older
     than --max-age or its last reload failed, or (health, message) the
     ledger's Redis did not answer within [ledger] timeout_ms
  2  CRITICAL: a zone is unusable and the plugin suspends it: it lists
     127.0.0.1, its test points get errors or no answer, or its zone file
     cannot be loaded; or (health, audit) one of this host's own IPs is
     listed; or (audit) a critical finding
  3  UNKNOWN: bad usage (unknown command or option, a bad argument, an
     unreadable --config) or an error of the command itself`

export const HELP = {
  main: `Usage: ${PROG} <command> [options]

Look addresses up on ips.backscatterer.org (and any other configured zone) with
the configuration and lookup code of the Haraka plugin haraka-plugin-backscatter.

Commands:
  check IP...          listed or not, A answers, TXT, score and verdict per IP
  health               RFC 5782 test points of every zone, with timings, and
                       each zone file's entries and age: a monitoring check
  explain --ip IP --from ADDR --rcpt ADDR...
                       the whole decision for one transaction, step by step
  sign ADDRESS         the signed (BATV, prvs=) form of an address
  audit                what in a Haraka config folder invites a listing on
                       the backscatter list (accept-then-bounce, the outbound
                       guard off, our own IPs listed), why, and the fix
  configtest           load the configuration as the plugin does and list
                       every problem; exit 0 when there is none
  message FILE...      each saved message's kind as a machine's reply, the
                       Message-IDs it refers to and, with --config, the
                       sent-mail ledger's answer for each
  help [COMMAND]       this text, or the help of a command

Options may come before or after the command.
${CONFIG_HELP}
  -h, --help    show help ('${PROG} COMMAND --help' for a command)
  -V, --version print the version and exit

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
                skipped), listed, answers, txt, score, counted (whether the
                plugin would use this answer), detail, verdict
  -h, --help    show this help

${EXIT_HELP}
`,
  health: `Usage: ${PROG} health [--config DIR] [--max-age HOURS] [--json]

Query every zone's RFC 5782 test points through the configured resolvers:
127.0.0.2 should be listed and 127.0.0.1 must not be (::ffff:7f00:2 and
::ffff:7f00:1 too when the zone has ipv6 on). Shows each answer and its time,
and whether the zone is usable. A zone that lists 127.0.0.1, answers with an
error or does not answer is unusable, and the plugin suspends it. A zone that
does not list 127.0.0.2 looks empty: it stays usable, with a warning (unusable
with require_test_point = true). A zone answered from a file is judged on its
data, once the file has loaded; its entries and the age of its data (since its
$TIMESTAMP, else since the file was modified) are shown. The first line sums
it up for monitoring: BACKSCATTER OK, WARNING or CRITICAL, and why.
This host's own IPs ([self_check] ips, else smtp.ini public_ip and listen,
smtp_forward.ini bind, the interfaces and me of the --config folder) are
looked up too: a listed one is CRITICAL. With [ledger] on, a ledger: line
gives its mode, its Redis (no password), the entries and days it holds and
since when it holds every message, with a note while it is younger than its
window (it calls nothing not ours yet); Redis unreachable or silent for
timeout_ms is a WARNING.

Options:
${CONFIG_HELP}
  --max-age HOURS
                a zone file's data older than this is stale: a warning.
                Default ${DEFAULT_MAX_AGE_HOURS}; 0: never stale
  --json        one JSON object per zone per line: zone, status (ok, warning
                or critical), usable, reason, points, and file for a zone
                answered from a file; then one per own IP and zone: own_ip,
                zone, status, listed, result, reason; then, with [ledger]
                on, one for the ledger: ledger (its mode), status, redis,
                reason, entries, days, since, age_days, window_days, young
  -h, --help    show this help

${EXIT_HELP}
`,
  explain: `Usage: ${PROG} explain --ip IP --from ADDR --rcpt ADDR... [--relaying]
                          [--date YYYY-MM-DD]

Walk through the plugin's decision for one transaction: the sender test, the
client skips, each zone's lookup, the score against the threshold, the action
for every recipient and the reply text. For a recipient in a [batv] domain (or
one with a prvs= tag), the tag check too: valid, invalid and why, or missing,
the key, the score it adds, the recipient's total and the address without it.

Options:
  --ip IP       the connecting client's address
  --from ADDR   the envelope sender (MAIL FROM); '<>' or '' for the null sender
  --rcpt ADDR   an envelope recipient (RCPT TO); repeat for more
  --relaying    the client is authenticated or allowed to relay
  --date DAY    check tags as on DAY (YYYY-MM-DD, UTC) instead of today
${CONFIG_HELP}
  --json        the decision as one JSON object
  -h, --help    show this help

${EXIT_HELP}
`,
  configtest: `Usage: ${PROG} configtest [--config DIR]

Load the configuration exactly as the plugin does: ${INI} over the package
defaults, and the BATV keys from ${KEYS_FILE} (or, for one more release, from
[batv.keys] of ${INI} or [batv] keys_file). Every problem is printed on
stderr with its file, its line where known and its key, as
  ${PROG}: warning: /etc/haraka/config/${INI}:12: [main] threshold: ...
A line that may hold a secret is named by its number, never shown. With no
problem, one line on stdout says ok and what was read; what the plugin would
log as information is printed first, as a note.

Options:
${CONFIG_HELP}
  -h, --help    show this help

Exit status:
  0  no problem: the plugin would load this configuration without a warning
  1  a warning or an error (keys still in a place they were kept before count)
  3  bad usage: an unknown option, an argument, an unreadable --config
`,
  audit: `Usage: ${PROG} audit [--config DIR] [--json]

Read a Haraka config folder (plugins, smtp.ini, smtp_forward.ini,
recipient-routes.ini, relay.ini, relay_dest_domains.ini, ${INI}) and report
what makes this Haraka send mail to senders it never verified, the way hosts
get listed on ips.backscatterer.org:
  critical  inbound mail queued onward (queue/smtp_forward, queue/lmtp,
            queue/qmail-queue, queue/smtp_bridge, queue/deliver, relay with
            dest_domains or force_routing) with no recipient check at RCPT,
            only one that accepts every local part (rcpt_to.in_host_list
            checks only the domain), or one listed after such a plugin, which
            ends the rcpt hook first: accept-then-bounce
  critical  one of this host's own IPs listed now (the lookups of health)
  warning   the outbound guard off: [outbound_guard] mode = off or log, or
            backscatter not in config/plugins
  warning   the guard in mode suppress with no spf plugin: every inbound DSN
            would count as SPF absent
  warning   a plugin whose name says it auto-replies or calls senders back
Each finding comes with why and the fix.

Options:
${CONFIG_HELP}
  --json        one JSON object per finding per line: id, level, what, why, fix
  -h, --help    show this help

Exit status: 0 nothing found, 1 warnings only, 2 a critical finding, 3 bad
usage or an unreadable folder.
`,
  sign: `Usage: ${PROG} sign [--key N] [--date YYYY-MM-DD] [--json] ADDRESS

Print the signed (BATV) form of ADDRESS, prvs=KDDDSSSSSS=local@domain, as the
plugin signs the MAIL FROM of a relaying client: with the key [batv] sign_key
of config/${KEYS_FILE} and [batv] lifetime_days. It is Exim's \${prvs}
format, so tests and other MTAs can use it. The secret is never shown.

Options:
  --key N       sign with key N (0-9) of ${KEYS_FILE} instead of sign_key
  --date DAY    sign as on DAY (YYYY-MM-DD, UTC) instead of today
${CONFIG_HELP}
  --json        one JSON object: address, signed, key, lifetime_days,
                signed_on, valid_until (the last valid day), signing_domain
  -h, --help    show this help

Exit status:
  0  OK: printed (a warning on stderr when the domain is not in [batv] domains)
  3  UNKNOWN: bad usage: not an address, <>, an address tagged already, no
     such key or no key configured, a bad option, an unreadable --config
`,
  message: `Usage: ${PROG} message [--config DIR] [--json] FILE...

Read each FILE (one message, as saved: headers, a blank line, the body) as the
plugin reads a bounce, read receipt, auto-reply or challenge: its kind and the
Message-IDs of the original it refers to. Only the first ${MAX_REPLY_BYTES / 1024} KiB of a
file are read, as in the plugin. The envelope sender is taken from a
Return-Path field, where the file has one. Prints one line per file:
  FILE: KIND <id@host> [ANSWER] ...
where KIND is dsn (a delivery report or a bounce), mdn (a read receipt),
auto-reply, challenge or none (not a machine's reply: never judged).
With --config DIR and [ledger] mode record or check, each reference is
looked up in the sent-mail ledger, within [ledger] timeout_ms, and its
ANSWER follows it: ours (sent from here within the window), not-ours (not
sent, and the ledger holds the whole window) or unknown (not found while the
ledger is younger than its window).

Options:
  --config DIR  Haraka config directory holding ${INI} and ${KEYS_FILE}:
                its [ledger] is asked. Without it, no ledger is asked.
  --json        one JSON object per file per line: file, kind, references,
                and ledger (each reference's answer) when the ledger answered
  -h, --help    show this help

Exit status:
  0  OK: every file was read (and the ledger answered, when asked)
  1  WARNING: the ledger's Redis did not answer within timeout_ms or was
     unreachable (said on stderr); kinds and references are still printed
  3  UNKNOWN: bad usage (no FILE, a bad option, an unreadable --config) or a
     FILE that cannot be read (named on stderr; the other files are still read)
`,
} as const
