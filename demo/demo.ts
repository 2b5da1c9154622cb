// npm run demo: a real Haraka on 127.0.0.1 with the plugin installed from its npm
// tarball, the ips.backscatterer.org zone served on loopback (rbldnsd when
// installed), a handful of sample transactions over SMTP, and a table of what
// each got. Client addresses are presented through XCLIENT: no packet leaves
// 127.0.0.1. Everything started here is stopped at the end.
import path from 'node:path'

import {
  createDeployment,
  HARAKA_VERSION,
  headerOf,
  LOCAL_DOMAIN,
  loggedResults,
  makeWorkDir,
  packPlugin,
  removeWorkDir,
  startHaraka,
  type BackscatterResults,
  type Haraka,
} from '../test/support/haraka'
import { startZone, ZONE, type ZoneServer } from '../test/support/rbldnsd'
import { queuedId, SmtpClient, type Reply } from '../test/support/smtp'

const LISTED = '45.1.2.3'
const LISTED_TOO = '45.1.2.4'
const UNLISTED = '45.9.9.9'
const HEADER = 'X-Haraka-Backscatter'

const PLUGINS = [
  'xclient',
  '# backscatter before the plugin that accepts recipients',
  'backscatter',
  'rcpt_to.in_host_list',
  'queue/test',
  'e2e_results',
]

interface Sample {
  title: string
  ip: string
  from: string
  to: string[]
  action: 'reject' | 'score'
}

const SAMPLES: Sample[] = [
  { title: 'listed bounce', ip: LISTED, from: '', to: [`someone@${LOCAL_DOMAIN}`], action: 'reject' },
  {
    title: 'bounce to postmaster',
    ip: LISTED,
    from: '',
    to: [`postmaster@${LOCAL_DOMAIN}`],
    action: 'reject',
  },
  {
    title: 'ordinary mail, listed host',
    ip: LISTED_TOO,
    from: 'alice@sender.example',
    to: [`someone@${LOCAL_DOMAIN}`],
    action: 'reject',
  },
  { title: 'unlisted bounce', ip: UNLISTED, from: '', to: [`someone@${LOCAL_DOMAIN}`], action: 'reject' },
  {
    title: 'listed bounce, score mode',
    ip: LISTED,
    from: '',
    to: [`someone@${LOCAL_DOMAIN}`],
    action: 'score',
  },
]

interface Row {
  sample: Sample
  mail: Reply
  rcpt: Reply[]
  data?: Reply | undefined
  header: string | undefined
  results: BackscatterResults | undefined
  queries: number
}

const short = (r: Reply | undefined): string => {
  if (!r) return '-'
  const enhanced = /^\d\.\d+\.\d+/.exec(r.text)?.[0]
  return enhanced ? `${r.code} ${enhanced}` : String(r.code)
}

function resultsText(r: BackscatterResults | undefined): string {
  if (!r || Object.keys(r).length === 0) return '(not checked)'
  const parts: string[] = []
  for (const key of ['pass', 'fail', 'skip', 'err'] as const) {
    if (r[key]?.length) parts.push(`${key}=${r[key].join(',')}`)
  }
  if (r.score !== undefined) parts.push(`score=${r.score}`)
  return parts.join(' ')
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  const line = (r: string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd()
  const rule = widths.map((w) => '-'.repeat(w)).join('  ')
  const [head, ...body] = rows
  return [line(head ?? []), rule, ...body.map(line)].join('\n')
}

async function runSample(haraka: Haraka, zone: ZoneServer, s: Sample): Promise<Row> {
  const before = zone.queriedFor(s.ip)
  const c = await SmtpClient.connect(haraka.port)
  try {
    await c.ehlo()
    const x = await c.xclient(s.ip)
    if (x.code !== 220) throw new Error(`XCLIENT refused: ${x.raw}`)
    const r = await c.transaction({ from: s.from, to: s.to })
    const id = queuedId(r.data)
    const header = id ? headerOf(await haraka.message(id), HEADER) : undefined
    const port = c.localPort
    await c.quit()
    await haraka.waitForLog(new RegExp(`\\[e2e_results\\] port=${port} `))
    const results = loggedResults(haraka.log(), port)[0]?.results
    return { sample: s, ...r, header, results, queries: zone.queriedFor(s.ip) - before }
  } finally {
    c.close()
  }
}

async function main(): Promise<void> {
  const work = makeWorkDir('demo')
  let zone: ZoneServer | undefined
  let haraka: Haraka | undefined
  const cleanup = async (): Promise<void> => {
    await haraka?.stop()
    await zone?.close()
    removeWorkDir(work)
  }
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130))
  })
  try {
    zone = await startZone({ listed: [LISTED, LISTED_TOO] })
    console.log(`Zone ${ZONE} (lists ${LISTED} and ${LISTED_TOO}): ${zone.description}`)
    process.stdout.write('npm pack, haraka -i, npm install <tarball> ... ')
    const tarball = await packPlugin(path.join(work, 'pack'))
    const dep = await createDeployment(tarball, work)
    console.log(`done: ${path.basename(tarball)} in ${dep.dir}`)
    const ini = (action: string): string => `[dns]\nservers = ${zone?.server}\n\n[main]\naction = ${action}\n`

    const rows: Row[] = []
    for (const action of ['reject', 'score'] as const) {
      haraka = await startHaraka(dep, { plugins: PLUGINS, backscatterIni: ini(action) })
      console.log(`Haraka ${HARAKA_VERSION} listening on 127.0.0.1:${haraka.port}, action = ${action}`)
      for (const s of SAMPLES.filter((x) => x.action === action)) rows.push(await runSample(haraka, zone, s))
      await haraka.stop()
      haraka = undefined
    }

    console.log('')
    console.log(
      table([
        [
          '#',
          'transaction',
          'client',
          'MAIL FROM',
          'RCPT TO',
          'MAIL',
          'RCPT',
          'DATA',
          'DNS',
          HEADER,
          'results',
        ],
        ...rows.map((r, i) => [
          String(i + 1),
          r.sample.title,
          r.sample.ip,
          `<${r.sample.from}>`,
          r.sample.to.join(','),
          short(r.mail),
          r.rcpt.map(short).join(','),
          r.data ? `${r.data.code} queued` : '-',
          String(r.queries),
          r.header ?? '-',
          resultsText(r.results),
        ]),
      ]),
    )
    console.log(
      '\nDNS: queries the zone received for the client during the transaction (a lookup is cached).',
    )
    console.log('Replies other than 250:')
    rows.forEach((r, i) => {
      for (const x of [r.mail, ...r.rcpt, r.data])
        if (x && x.code !== 250) console.log(`  ${i + 1}. ${x.raw}`)
    })
  } finally {
    await cleanup()
  }
  console.log('\nStopped Haraka and the zone; removed the deployment.')
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err)
  process.exitCode = 1
})
