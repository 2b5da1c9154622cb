// `haraka-backscatter health`: every zone's RFC 5782 test points, with timings.
import type { PointProbe, ZoneProbe } from '../checker'
import { noArguments, stringOption, type Values } from './args'
import { loadConfig, resolverText } from './config'
import { EXIT, type Io } from './io'
import { withChecker } from './lookups'
import { lookupText, table } from './table'

/** A zone's probe as the command reports it: usable or not, and why, or what to watch. */
interface ZoneReport {
  readonly zone: string
  readonly usable: boolean
  /** Why the zone is unusable, or what is odd about a usable one ('' when nothing is). */
  readonly reason: string
  readonly points: readonly PointProbe[]
}

function zoneReport(probe: ZoneProbe): ZoneReport {
  const { zone, points, assessment: a } = probe
  if (points.length === 0) return { zone, usable: true, reason: 'ipv4 and ipv6 off: never queried', points }
  if (!a.usable) return { zone, usable: false, reason: a.reason, points }
  const reason = a.warning ? `${a.warning}: its data may be empty or stale` : ''
  return { zone, usable: true, reason, points }
}

function jsonLine(z: ZoneReport): string {
  const points = z.points.map((p) => ({
    point: p.point,
    expected: p.mustBeListed ? 'listed' : 'not-listed',
    status: p.result.status,
    answers: p.result.status === 'listed' ? p.result.codes : [],
    txt: p.result.status === 'listed' ? p.result.reason : '',
    error: p.result.status === 'error' ? p.result.reason : '',
    ms: p.ms,
    ok: p.ok,
  }))
  return `${JSON.stringify({ zone: z.zone, usable: z.usable, reason: z.reason, points })}\n`
}

export async function runHealth(values: Values, positionals: readonly string[], io: Io): Promise<number> {
  noArguments(positionals, 'health')
  const { settings, source } = loadConfig(stringOption(values, 'config'), io)
  // probeZone is the plugin's own health check: a zone file is waited for, however long it loads.
  const probes = await withChecker(settings, (c) => Promise.all(settings.zones.map((z) => c.probeZone(z))))
  const zones = probes.map(zoneReport)
  const status = zones.some((z) => !z.usable) ? EXIT.PROBLEM : EXIT.OK

  if (values.json) {
    for (const z of zones) io.out(jsonLine(z))
    return status
  }

  const rows = [['ZONE', 'TEST POINT', 'EXPECTED', 'TIME', 'OK', 'ANSWER']]
  for (const z of zones) {
    for (const p of z.points) {
      const expected = p.mustBeListed ? 'listed' : 'not listed'
      rows.push([z.zone, p.point, expected, `${p.ms} ms`, p.ok ? 'ok' : 'FAIL', lookupText(p.result)])
    }
  }
  const verdicts = zones.map((z) => [
    z.zone,
    z.usable ? `usable${z.reason ? `, but ${z.reason}` : ''}` : `UNUSABLE: ${z.reason}`,
  ])
  const suspended =
    status === EXIT.PROBLEM
      ? '\nThe plugin suspends an unusable zone and ignores its answers until it passes again.\n'
      : ''
  // A file zone's TIME is its lookup in the loaded data; the load itself is not counted.
  const files = settings.zones.filter((z) => z.file).map((z) => `${z.name} from ${z.file}\n`)
  const filesText = files.length ? `files:     ${files.join('           ')}` : ''
  io.out(
    `config:    ${source}\nresolvers: ${resolverText(settings)}\n${filesText}\n` +
      `${table(rows)}\n${table(verdicts)}${suspended}`,
  )
  return status
}
