// contrib/: the Prometheus alert rules and the Grafana dashboard. promtool
// (Debian package prometheus) checks the rules and the dashboard's queries and
// runs the alerts on made-up series; every metric, label and label value they
// name must be in the plugin's real /metrics exposition, served by the plugin
// (haraka-test-fixtures) after a mix of bounces.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import { dnsblZone, startDns, type ScriptedDns } from './support/dns-server'
import { PROMTOOL, readExposition, type Sample } from './support/exposition'
import { mail, makeConnection, makeTestPlugin, rcpt, REPO, type TestPlugin } from './support/harness'

const RULES = path.join(REPO, 'contrib', 'prometheus-alerts.yml')
const DASHBOARD = path.join(REPO, 'contrib', 'grafana-dashboard.json')
const NO_PROMTOOL = PROMTOOL ? false : 'promtool not installed (Debian package prometheus)'
/** Labels Prometheus adds to every scraped series: never in the exposition itself. */
const TARGET_LABELS = new Set(['instance', 'job'])

interface Rule {
  record?: string
  alert?: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

/** The rules file, read with haraka-config's YAML reader (a dependency of the plugin). */
function readRules(): { groups: { name: string; rules: Rule[] }[] } {
  const config = createRequire(__filename)('haraka-config') as { get(name: string, type: string): unknown }
  return config.get(RULES, 'yaml') as { groups: { name: string; rules: Rule[] }[] }
}

interface Panel {
  title?: string
  type: string
  targets?: { expr: string }[]
  panels?: Panel[]
}

function readDashboard(): { panels: Panel[]; templating: { list: { query?: unknown }[] } } {
  return JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'))
}

/** Every query of the dashboard: its panels' targets and its variables' queries. */
function dashboardQueries(): string[] {
  const d = readDashboard()
  const panels = d.panels.flatMap((p) => [p, ...(p.panels ?? [])])
  const targets = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
  const variables = d.templating.list.flatMap((v) => {
    const q = v.query as { query?: string } | string | undefined
    return typeof q === 'object' && q?.query ? [q.query] : []
  })
  return [...targets, ...variables]
}

/** A dashboard query as PromQL: Grafana's variables replaced by values Prometheus takes. */
const asPromQL = (expr: string): string =>
  expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*')

function promtool(args: string[], cwd?: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL as string, args, { encoding: 'utf8', cwd })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

const tmpDirs: string[] = []
after(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true })
})
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-contrib-'))
  tmpDirs.push(d)
  return d
}

describe('contrib/prometheus-alerts.yml', () => {
  it('passes promtool check rules', { skip: NO_PROMTOOL }, () => {
    const r = promtool(['check', 'rules', RULES])
    assert.equal(r.status, 0, r.output)
    assert.match(r.output, /SUCCESS: 7 rules found/)
  })

  it('alerts on a zone unusable for 10 minutes, a stale mirror, lookup errors, the refusal rate, our own listing and the ledger down', () => {
    const alerts = readRules().groups.flatMap((g) => g.rules.filter((r) => r.alert))
    assert.deepEqual(
      alerts.map((a) => [a.alert, a.for, a.labels?.severity]),
      [
        ['HarakaBackscatterZoneUnusable', '10m', 'critical'],
        ['HarakaBackscatterZoneFileStale', '15m', 'warning'],
        ['HarakaBackscatterLookupErrors', '15m', 'warning'],
        ['HarakaBackscatterRefusalRateHigh', '30m', 'info'],
        ['HarakaBackscatterSelfListed', '5m', 'critical'],
        ['HarakaBackscatterLedgerDown', '5m', 'warning'],
      ],
    )
    for (const a of alerts) assert.ok(a.annotations?.summary && a.annotations.description, a.alert)
  })

  // The rules as shipped, run by promtool on series made for each alert; the
  // annotations are left out of this copy, as promtool would compare their text.
  it('each alert fires when it should, and not before (promtool test rules)', { skip: NO_PROMTOOL }, () => {
    const dir = tmpDir()
    const rules = readRules()
    for (const g of rules.groups) for (const r of g.rules) delete r.annotations
    fs.writeFileSync(path.join(dir, 'rules.yml'), JSON.stringify(rules))
    const at = { instance: 'mx1:9100', job: 'haraka' }
    const series = (name: string, labels: Record<string, string>, values: string) => ({
      series: `${name}{${Object.entries({ ...at, ...labels })
        .map(([k, v]) => `${k}="${v}"`)
        .join(',')}}`,
      values,
    })
    const P = 'haraka_backscatter_'
    const zone = 'ips.backscatterer.org'
    const tests = [
      {
        // In use for a minute, then suspended: pending for 10 minutes, then firing.
        interval: '1m',
        input_series: [series(`${P}zone_usable`, { zone }, '1 0x30')],
        alert_rule_test: [
          { eval_time: '10m', alertname: 'HarakaBackscatterZoneUnusable', exp_alerts: [] },
          {
            eval_time: '12m',
            alertname: 'HarakaBackscatterZoneUnusable',
            exp_alerts: [{ exp_labels: { ...at, zone, severity: 'critical' } }],
          },
        ],
      },
      {
        // Loaded at 0 and never again; a second zone reloaded every 5 minutes.
        interval: '5m',
        input_series: [
          series(`${P}zone_file_loaded_timestamp_seconds`, { zone }, '0x100'),
          series(`${P}zone_file_loaded_timestamp_seconds`, { zone: 'fresh.example' }, '0+300x100'),
        ],
        alert_rule_test: [
          { eval_time: '6h10m', alertname: 'HarakaBackscatterZoneFileStale', exp_alerts: [] },
          {
            eval_time: '6h20m',
            alertname: 'HarakaBackscatterZoneFileStale',
            exp_alerts: [{ exp_labels: { ...at, zone, severity: 'warning' } }],
          },
        ],
      },
      {
        // A sixth of the lookups in one zone fail; one in thirty-one in the other.
        interval: '1m',
        input_series: [
          series(`${P}lookups_total`, { zone, outcome: 'error', source: 'dns' }, '0+6x60'),
          series(`${P}lookups_total`, { zone, outcome: 'not_listed', source: 'dns' }, '0+30x60'),
          series(`${P}lookups_total`, { zone: 'b.example', outcome: 'error', source: 'dns' }, '0+1x60'),
          series(`${P}lookups_total`, { zone: 'b.example', outcome: 'not_listed', source: 'dns' }, '0+30x60'),
        ],
        alert_rule_test: [
          {
            eval_time: '45m',
            alertname: 'HarakaBackscatterLookupErrors',
            exp_alerts: [{ exp_labels: { ...at, zone, severity: 'warning' } }],
          },
        ],
      },
      {
        // Ten refused for two accepted each minute; another Haraka refuses one in twelve.
        interval: '1m',
        input_series: [
          series(`${P}recipients_total`, { decision: 'refused' }, '0+10x120'),
          series(`${P}recipients_total`, { decision: 'accepted' }, '0+2x120'),
          series(`${P}recipients_total`, { instance: 'mx2:9100', decision: 'refused' }, '0+1x120'),
          series(`${P}recipients_total`, { instance: 'mx2:9100', decision: 'accepted' }, '0+11x120'),
        ],
        alert_rule_test: [
          { eval_time: '20m', alertname: 'HarakaBackscatterRefusalRateHigh', exp_alerts: [] },
          {
            eval_time: '90m',
            alertname: 'HarakaBackscatterRefusalRateHigh',
            exp_alerts: [{ exp_labels: { ...at, severity: 'info' } }],
          },
        ],
      },
      {
        // Our own IP listed from minute 3; another clean all along.
        interval: '1m',
        input_series: [
          series(`${P}self_listed`, { zone, ip: '45.1.2.3' }, '0 0 0 1x30'),
          series(`${P}self_listed`, { zone, ip: '45.1.2.4' }, '0x30'),
        ],
        alert_rule_test: [
          { eval_time: '7m', alertname: 'HarakaBackscatterSelfListed', exp_alerts: [] },
          {
            eval_time: '9m',
            alertname: 'HarakaBackscatterSelfListed',
            exp_alerts: [{ exp_labels: { ...at, zone, ip: '45.1.2.3', severity: 'critical' } }],
          },
        ],
      },
      {
        // Redis answers for two minutes, then not; another Haraka's ledger stays up.
        interval: '1m',
        input_series: [
          series(`${P}ledger_up`, { mode: 'check' }, '1 1 0x30'),
          series(`${P}ledger_up`, { instance: 'mx2:9100', mode: 'check' }, '1x30'),
        ],
        alert_rule_test: [
          { eval_time: '6m', alertname: 'HarakaBackscatterLedgerDown', exp_alerts: [] },
          {
            eval_time: '8m',
            alertname: 'HarakaBackscatterLedgerDown',
            exp_alerts: [{ exp_labels: { ...at, mode: 'check', severity: 'warning' } }],
          },
        ],
      },
    ]
    const file = path.join(dir, 'tests.yml')
    fs.writeFileSync(file, JSON.stringify({ rule_files: ['rules.yml'], evaluation_interval: '1m', tests }))
    const r = promtool(['test', 'rules', 'tests.yml'], dir)
    assert.equal(r.status, 0, r.output)
    assert.match(r.output, /SUCCESS/)
  })
})

describe('contrib/grafana-dashboard.json', () => {
  it('shows zone health, zone file age, lookup errors, the refusal rate, our listing and the ledger', () => {
    const queries = dashboardQueries().join('\n')
    for (const needle of [
      'haraka_backscatter_zone_usable',
      'time() - haraka_backscatter_zone_file_loaded_timestamp_seconds',
      'outcome="error"',
      'decision=~"refused|deferred"',
      'haraka_backscatter_self_listed',
      'haraka_backscatter_ledger_up',
      'haraka_backscatter_ledger_checks_total',
    ]) {
      assert.ok(queries.includes(needle), needle)
    }
  })

  it(
    'every query is valid PromQL (promtool check rules on them as recording rules)',
    { skip: NO_PROMTOOL },
    () => {
      const dir = tmpDir()
      const rules = dashboardQueries()
        .filter((q) => !q.startsWith('label_values('))
        .map((expr, i) => ({ record: `dashboard:query_${i}`, expr: asPromQL(expr) }))
      fs.writeFileSync(
        path.join(dir, 'dashboard.yml'),
        JSON.stringify({ groups: [{ name: 'dashboard', rules }] }),
      )
      const r = promtool(['check', 'rules', 'dashboard.yml'], dir)
      assert.equal(r.status, 0, r.output)
    },
  )
})

/** A port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as net.AddressInfo
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

// A selector's matchers: `label op "value"`.
const MATCHER = /([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g
// A metric name and its selector, if any.
const SELECTOR = /([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?/g
// Label names in `by (...)` and `without (...)`.
const GROUPING = /\b(?:by|without)\s*\(([^)]*)\)/g

describe('every metric, label and value contrib/ names is in the plugin’s real /metrics', () => {
  const ZONE = 'ips.backscatterer.org'
  const FILE_ZONE = 'mirror.example'
  let dns: ScriptedDns
  let tp: TestPlugin
  let samples: Sample[]
  let exposition: string

  before(async () => {
    const listed = dnsblZone(ZONE, { '45.1.2.3': {} })
    // One client whose lookups fail, so that outcome="error" is in the exposition.
    dns = await startDns((q) => (q.name === `9.9.9.45.${ZONE}` ? { rcode: 'SERVFAIL' } : listed(q)))
    const dir = tmpDir()
    const file = path.join(dir, 'mirror.zone')
    fs.writeFileSync(file, '$TIMESTAMP 2026:11:28:12:00\n127.0.0.2\n45.7.0.0/16\n')
    const port = await freePort()
    // Our own IP is the listed one; the ledger's Redis is a port nobody listens on, so ledger_up is 0.
    tp = makeTestPlugin(
      `[main]\nzones = ${ZONE}, ${FILE_ZONE}\n[dns]\nservers = ${dns.server}\ntimeout_ms = 2000\n` +
        `[${FILE_ZONE}]\nfile = ${file}\n[metrics]\nlisten = ${port}\n[self_check]\nips = 45.1.2.3\n` +
        `[ledger]\nmode = check\nredis_url = redis://127.0.0.1:${await freePort()}\ntimeout_ms = 200\n`,
      { 'backscatter.keys': 'ledger = a ledger secret for the tests, 32+\n' },
    )
    await new Promise<void>((resolve) => tp.plugin.hook_init_master(resolve, {}))
    await tp.plugin.backscatter.endpoint.settled()
    await tp.plugin.backscatter.selfWatching?.watch?.look()
    for (const ip of ['45.1.2.3', '45.7.0.1', '45.9.9.9', '45.9.8.7']) {
      const conn = makeConnection(ip)
      await mail(tp.plugin, conn, '<>')
      await rcpt(tp.plugin, conn, 'alice@example.net')
      await rcpt(tp.plugin, conn, 'postmaster@example.net')
    }
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    assert.equal(res.status, 200)
    exposition = await res.text()
    samples = readExposition(exposition)
  })
  after(async () => {
    tp?.close()
    await dns?.close()
  })

  /** Each query's metrics with their matchers, and its grouping labels. */
  function uses(expr: string, recorded: Set<string>): { metric: string; matchers: string[][] }[] {
    const found: { metric: string; matchers: string[][] }[] = []
    for (const m of expr.matchAll(SELECTOR)) {
      const name = m[1] ?? ''
      if (recorded.has(name) || !name.includes('haraka_backscatter')) continue
      const matchers = [...(m[2] ?? '').matchAll(MATCHER)].map((x) => [x[1], x[2], x[3]] as string[])
      found.push({ metric: name, matchers })
    }
    return found
  }

  it('docs/metrics.md has a row for every metric the plugin exposes, and none it does not', () => {
    const doc = fs.readFileSync(path.join(REPO, 'docs', 'metrics.md'), 'utf8')
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` +\| (?:counter|gauge|histogram) /gm)].map(
      (m) => `haraka_backscatter_${m[1]}`,
    )
    // Every metric has its HELP line, with or without samples yet.
    const exposed = [...exposition.matchAll(/^# HELP (\w+) /gm)].map((m) => m[1])
    assert.deepEqual(exposed.sort(), rows.sort())
  })

  it('the rules and the dashboard name only what the plugin exposes', () => {
    const rules = readRules().groups.flatMap((g) => g.rules)
    const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])))
    const queries = [...rules.map((r) => r.expr), ...dashboardQueries()]
    const names = new Set(samples.map((s) => s.name))
    let checked = 0
    for (const expr of queries) {
      for (const { metric, matchers } of uses(expr, recorded)) {
        checked++
        assert.ok(metric.startsWith('haraka_backscatter_'), `${metric} in: ${expr}`)
        assert.ok(names.has(metric), `${metric} is not in /metrics (query: ${expr})`)
        const own = samples.filter((s) => s.name === metric)
        for (const [label = '', op, value = ''] of matchers) {
          if (TARGET_LABELS.has(label)) continue
          assert.ok(
            own.some((s) => label in s.labels),
            `${metric} has no label ${label} (query: ${expr})`,
          )
          if (op === '=' || op === '=~') {
            const re = new RegExp(
              `^(?:${op === '=' ? value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : value})$`,
            )
            assert.ok(
              own.some((s) => re.test(s.labels[label] ?? '')),
              `no ${metric} sample with ${label}${op}"${value}" (query: ${expr})`,
            )
          }
        }
      }
      const labels = new Set(uses(expr, recorded).flatMap((u) => samples.filter((s) => s.name === u.metric)))
      for (const g of expr.matchAll(GROUPING)) {
        for (const label of (g[1] ?? '').split(',').map((l) => l.trim())) {
          if (label === '' || TARGET_LABELS.has(label)) continue
          assert.ok(
            [...labels].some((s) => label in s.labels),
            `no metric of the query has the label ${label} it groups by: ${expr}`,
          )
        }
      }
    }
    assert.ok(checked >= 15, `${checked} uses of metrics checked`)
  })

  it('the check can fail: a misspelt metric or label value is caught', () => {
    const names = new Set(samples.map((s) => s.name))
    assert.ok(!names.has('haraka_backscatter_zone_file_loaded_seconds'))
    const lookups = samples.filter((s) => s.name === 'haraka_backscatter_lookups_total')
    assert.ok(
      lookups.some((s) => s.labels.outcome === 'error'),
      'a failed lookup was counted',
    )
    assert.ok(!lookups.some((s) => s.labels.outcome === 'errors'))
  })
})
