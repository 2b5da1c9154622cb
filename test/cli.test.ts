// The haraka-backscatter command, run as a user runs it: the built bin script in
// a child process, its configuration in a temporary Haraka config folder, its
// DNS answered by a scripted server on 127.0.0.1.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import { dnsblZone, startDns, type Handler, type ScriptedDns } from './support/dns-server'

const REPO = path.resolve(__dirname, '..')
const BIN = path.join(REPO, 'bin', 'haraka-backscatter')
const ZONE = 'ips.backscatterer.org'

// Public-looking addresses (the plugin skips private ones and the documentation ranges).
const LISTED = '45.33.12.7'
const CLEAN = '45.33.12.8'
const REASON = 'Your IP 45.33.12.7 is listed: backscatter seen'

interface Run {
  code: number
  stdout: string
  stderr: string
  ms: number
}

function run(args: string[], opts: { cwd?: string } = {}): Promise<Run> {
  const started = Date.now()
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: opts.cwd ?? REPO, timeout: 20_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0
        resolve({ code, stdout, stderr, ms: Date.now() - started })
      },
    )
  })
}

const tmpDirs: string[] = []

/** A Haraka config folder whose backscatter.ini is `ini`. */
function configDir(ini: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-cli-'))
  tmpDirs.push(dir)
  fs.writeFileSync(path.join(dir, 'backscatter.ini'), ini)
  return dir
}

function dnsIni(dns: ScriptedDns, extra = ''): string {
  return `[dns]\nservers = ${dns.server}\ntimeout_ms = 300\ntries = 1\n${extra}`
}

/** The cells of a table line, split on runs of two or more spaces. */
function cells(line: string): string[] {
  return line.trim().split(/ {2,}/)
}

function lineWith(text: string, ...needles: string[]): string {
  const line = text.split('\n').find((l) => needles.every((n) => l.includes(n)))
  assert.ok(line, `no line with ${needles.join(', ')} in:\n${text}`)
  return line
}

let dns: ScriptedDns
const good: Handler = dnsblZone(ZONE, { [LISTED]: { txt: REASON } })

before(async () => {
  assert.ok(fs.existsSync(path.join(REPO, 'dist', 'cli.js')), 'build first: npm run build')
  dns = await startDns((q) => {
    if (q.name.endsWith('.parked.example')) return { a: ['127.0.0.2'] } // lists everything
    if (q.name.endsWith('.silent.example')) return { drop: true }
    return good(q)
  })
})

after(async () => {
  await dns.close()
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true })
})

describe('check', () => {
  it('shows a listed and a clean IP with answers, TXT, score and verdict', async () => {
    const dir = configDir(dnsIni(dns))
    const before = dns.count(ZONE)
    const r = await run(['check', '--config', dir, LISTED, CLEAN])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.ok(dns.count(ZONE) > before, 'queries reached the scripted server')
    assert.match(r.stdout, /^health: ips\.backscatterer\.org +passed its RFC 5782 test-point check/m)

    const listed = cells(lineWith(r.stdout, LISTED, ZONE))
    assert.deepEqual(listed.slice(0, 6), [LISTED, ZONE, 'passed', 'listed', '127.0.0.2', '5'])
    assert.equal(listed[6], `TXT "${REASON}"`)
    const clean = cells(lineWith(r.stdout, CLEAN, ZONE))
    assert.deepEqual(clean, [CLEAN, ZONE, 'passed', 'not listed', '-', '0', '-'])

    const verdictListed = lineWith(r.stdout, LISTED, 'reject')
    assert.match(
      verdictListed,
      new RegExp(`550 5\\.7\\.1 Backscatter refused: ${LISTED.replaceAll('.', '\\.')} is listed`),
    )
    assert.match(verdictListed, /postmaster, abuse still accepted/)
    assert.match(lineWith(r.stdout, CLEAN, 'accept'), /accept: not listed/)
  })

  it('--json prints one object per IP and zone per line', async () => {
    const dir = configDir(dnsIni(dns))
    const r = await run(['check', '--json', '--config', dir, LISTED, CLEAN])
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.trim().split('\n')
    assert.equal(lines.length, 2)
    const [listed, clean] = lines.map((l) => JSON.parse(l))
    assert.equal(listed.ip, LISTED)
    assert.equal(listed.zone, ZONE)
    assert.equal(listed.listed, true)
    assert.deepEqual(listed.answers, ['127.0.0.2'])
    assert.equal(listed.txt, REASON)
    assert.equal(listed.score, 5)
    assert.equal(listed.health, 'passed')
    assert.equal(listed.verdict.action, 'reject')
    assert.match(listed.verdict.reply, /^550 5\.7\.1 Backscatter refused: /)

    assert.equal(clean.ip, CLEAN)
    assert.equal(clean.listed, false)
    assert.deepEqual(clean.answers, [])
    assert.equal(clean.txt, '')
    assert.equal(clean.score, 0)
    assert.equal(clean.status, 'not-listed')
    assert.equal(clean.verdict.action, 'accept')
  })

  it('says when the plugin would never look a client up', async () => {
    const dir = configDir(dnsIni(dns))
    const r = await run(['check', '--config', dir, '10.1.2.3', '::ffff:45.33.12.7', '2a01:4f8::1'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(lineWith(r.stdout, '10.1.2.3', 'accept'), /never looked up: private address 10\.1\.2\.3/)
    // An IPv4-mapped address is the IPv4 address it maps.
    assert.match(r.stdout, /^45\.33\.12\.7 +ips\.backscatterer\.org +passed +listed/m)
    assert.deepEqual(cells(lineWith(r.stdout, '2a01:4f8::1', ZONE)).slice(3), [
      'skipped',
      '-',
      '0',
      'IPv6 not checked',
    ])
  })

  it('shows a zone that failed its health check without counting it, and exits 1', async () => {
    const dir = configDir(dnsIni(dns, `[main]\nzones = ${ZONE}, parked.example\n`))
    const r = await run(['check', '--config', dir, CLEAN])
    assert.equal(r.code, 1)
    assert.match(
      r.stdout,
      /parked\.example +FAILED its RFC 5782 test-point check \(lists test point 127\.0\.0\.1/,
    )
    const parked = cells(lineWith(r.stdout, CLEAN, 'parked.example'))
    assert.deepEqual(parked.slice(2, 6), ['failed', 'listed', '127.0.0.2', '0'])
    assert.match(parked[6] ?? '', /ignored: zone failed its health check/)
    assert.match(lineWith(r.stdout, CLEAN, 'accept'), /accept: not listed/)
  })
})

describe('health', () => {
  it('reports each test point with its answer and time, and exits 0 for a good zone', async () => {
    const dir = configDir(dnsIni(dns))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    assert.match(
      r.stdout,
      new RegExp(`^resolvers: ${dns.server.replaceAll('.', '\\.')} \\(\\[dns\\] servers\\)`, 'm'),
    )
    const listed = cells(lineWith(r.stdout, ZONE, '127.0.0.2  '))
    assert.deepEqual(listed.slice(0, 3), [ZONE, '127.0.0.2', 'listed'])
    assert.match(listed[3] ?? '', /^\d+ ms$/)
    assert.deepEqual(listed.slice(4), ['ok', 'listed 127.0.0.2 TXT "RFC 5782 test point"'])
    const unlisted = cells(lineWith(r.stdout, ZONE, '127.0.0.1'))
    assert.deepEqual(
      [...unlisted.slice(0, 3), ...unlisted.slice(4)],
      [ZONE, '127.0.0.1', 'not listed', 'ok', 'not listed'],
    )
    assert.match(r.stdout, /^ips\.backscatterer\.org +usable$/m)
  })

  it('--json gives one object per zone with every test point', async () => {
    const dir = configDir(dnsIni(dns, `[${ZONE}]\nipv6 = true\n`))
    const r = await run(['health', '--json', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    const zone = JSON.parse(r.stdout.trim())
    assert.equal(zone.zone, ZONE)
    assert.equal(zone.usable, true)
    assert.deepEqual(
      zone.points.map((p: { point: string; expected: string; ok: boolean }) => [p.point, p.expected, p.ok]),
      [
        ['127.0.0.2', 'listed', true],
        ['127.0.0.1', 'not-listed', true],
        ['::ffff:7f00:2', 'listed', true],
        ['::ffff:7f00:1', 'not-listed', true],
      ],
    )
    for (const p of zone.points) assert.equal(typeof p.ms, 'number')
  })

  it('exits 1 for a zone that lists 127.0.0.1', async () => {
    const dir = configDir(dnsIni(dns, `[main]\nzones = ${ZONE}, parked.example\n`))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /^ips\.backscatterer\.org +usable$/m)
    assert.match(
      r.stdout,
      /^parked\.example +UNUSABLE: lists test point 127\.0\.0\.1, so it would list everything$/m,
    )
    assert.match(lineWith(r.stdout, 'parked.example', '127.0.0.1'), / FAIL +listed 127\.0\.0\.2$/)
  })

  it('exits 1 within the DNS timeout for a zone that never answers', async () => {
    const dir = configDir(dnsIni(dns, '[main]\nzones = silent.example\n'))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 1)
    assert.match(r.stdout, /^silent\.example +UNUSABLE: test point 127\.0\.0\.2: timeout$/m)
    assert.match(lineWith(r.stdout, 'silent.example', '127.0.0.2'), /FAIL +error: timeout$/)
    // 300 ms x 1 try, plus the start of a Node process.
    assert.ok(r.ms < 5000, `took ${r.ms} ms`)
  })
})

describe('explain', () => {
  it('walks through a listed bounce to an exempt and an ordinary recipient', async () => {
    const dir = configDir(dnsIni(dns))
    const args = ['explain', '--config', dir, '--ip', LISTED, '--from', '<>']
    const r = await run([...args, '--rcpt', 'postmaster@example.org', '--rcpt', 'user@example.org'])
    assert.equal(r.code, 0, r.stderr)
    const out = r.stdout
    assert.match(out, /^1\. Sender +MAIL FROM:<>: the null sender <>: a bounce/m)
    assert.match(out, /^2\. Client +45\.33\.12\.7: not private, not relaying: looked up$/m)
    assert.deepEqual(cells(lineWith(out, ZONE, 'listed')).slice(0, 5), [
      ZONE,
      'passed',
      'listed',
      '127.0.0.2',
      '5',
    ])
    assert.match(out, /^4\. Score +5 \(threshold 5\): reached: action reject$/m)
    assert.deepEqual(cells(lineWith(out, '<postmaster@example.org>')), [
      '<postmaster@example.org>',
      'accept',
      'exempt recipient ([main] exempt_recipients)',
    ])
    const user = cells(lineWith(out, '<user@example.org>'))
    assert.equal(user[1], 'reject')
    assert.match(
      user[2] ?? '',
      /^550 5\.7\.1 Backscatter refused: 45\.33\.12\.7 is listed on ips\.backscatterer\.org/,
    )
    assert.match(out, new RegExp(`^6\\. Reply +550 5\\.7\\.1 .*\\(${REASON}\\)`, 'm'))
    assert.match(
      out,
      /Header +on accepted mail: X-Haraka-Backscatter: score=5; listed=ips\.backscatterer\.org; ip=45\.33\.12\.7/,
    )
  })

  it('--json gives the decision as one object; defer replies 450 4.7.1', async () => {
    const dir = configDir(dnsIni(dns, '[main]\naction = defer\n'))
    const args = ['explain', '--json', '--config', dir, '--ip', LISTED, '--from', 'Postmaster@bounce.example']
    const r = await run([...args, '--rcpt', 'abuse@example.org', '--rcpt', 'user@example.org'])
    assert.equal(r.code, 0, r.stderr)
    const d = JSON.parse(r.stdout)
    assert.equal(d.sender.bounce, true)
    assert.equal(d.client.checked, true)
    assert.equal(d.score, 5)
    assert.equal(d.actionable, true)
    assert.deepEqual(
      d.recipients.map((x: { rcpt: string; action: string }) => [x.rcpt, x.action]),
      [
        ['<abuse@example.org>', 'accept'],
        ['<user@example.org>', 'defer'],
      ],
    )
    assert.match(d.reply, /^450 4\.7\.1 Backscatter refused: /)
  })

  it('looks nothing up for a sender that is not a bounce, or a relaying client', async () => {
    const dir = configDir(dnsIni(dns))
    const before = dns.queries.length
    const plain = await run([
      'explain',
      '--config',
      dir,
      '--ip',
      LISTED,
      '--from',
      'alice@example.net',
      '--rcpt',
      'u@example.org',
    ])
    assert.equal(plain.code, 0, plain.stderr)
    assert.match(
      plain.stdout,
      /local part "alice" is not a bounce-type sender: never looked up \(safe mode\)/,
    )
    assert.match(plain.stdout, /^6\. Reply +none: no recipient is refused$/m)
    const relay = await run([
      'explain',
      '--config',
      dir,
      '--ip',
      LISTED,
      '--from',
      '',
      '--rcpt',
      'u@example.org',
      '--relaying',
    ])
    assert.equal(relay.code, 0, relay.stderr)
    assert.match(
      relay.stdout,
      /^2\. Client +45\.33\.12\.7, relaying: skipped \(relaying client\); never looked up$/m,
    )
    assert.equal(dns.queries.length, before, 'no DNS query was sent')
  })
})

describe('configuration', () => {
  it('uses ./config/backscatter.ini by default and accepts a Haraka install directory', async () => {
    const install = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-cli-'))
    tmpDirs.push(install)
    fs.mkdirSync(path.join(install, 'config'))
    fs.writeFileSync(path.join(install, 'config', 'backscatter.ini'), dnsIni(dns, '[main]\nthreshold = 7\n'))
    for (const r of [
      await run(['check', LISTED], { cwd: install }),
      await run(['check', '--config', install, LISTED]),
    ]) {
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /VERDICT FOR A BOUNCE \(threshold 7, action reject\)/)
      assert.match(lineWith(r.stdout, LISTED, 'accept'), /accept: score below the threshold/)
    }
  })

  it('warns about settings problems on stderr and goes on with the defaults', async () => {
    const dir = configDir(dnsIni(dns, '[main]\nthreshold = lots\ncolour = blue\n'))
    const r = await run(['check', '--config', dir, CLEAN])
    assert.equal(r.code, 0)
    assert.match(r.stderr, /warning: backscatter\.ini \[main\] threshold: "lots" is not a number; using 5/)
    assert.match(r.stderr, /warning: backscatter\.ini \[main\] colour: unknown setting; ignored/)
    assert.match(r.stdout, /threshold 5, action reject/)
  })
})

describe('bad usage exits 2 with a clear message', () => {
  const cases: { name: string; args: () => string[]; message: RegExp }[] = [
    {
      name: 'an argument that is not an IP',
      args: () => ['check', 'mail.example.org'],
      message: /check: "mail\.example\.org" is not an IP address/,
    },
    {
      name: 'a CIDR instead of an IP',
      args: () => ['check', '45.33.12.0/24'],
      message: /"45\.33\.12\.0\/24" is not an IP address/,
    },
    { name: 'check without an IP', args: () => ['check'], message: /check: give at least one IP address/ },
    {
      name: 'a missing config dir',
      args: () => ['health', '--config', '/nonexistent/haraka/config'],
      message: /--config \/nonexistent\/haraka\/config: cannot read it: no such directory/,
    },
    {
      name: 'a config path that is a file',
      args: () => ['health', '--config', BIN],
      message: /: not a directory/,
    },
    {
      name: 'an unknown option',
      args: () => ['check', '--fast', '45.33.12.7'],
      message: /check: Unknown option '--fast'/,
    },
    { name: 'an unknown command', args: () => ['lookup', '45.33.12.7'], message: /unknown command "lookup"/ },
    { name: 'no command', args: () => [], message: /no command given/ },
    {
      name: 'explain without --ip',
      args: () => ['explain', '--from', '<>', '--rcpt', 'a@b.example'],
      message: /explain: --ip IP is required/,
    },
    {
      name: 'explain with a bad --ip',
      args: () => ['explain', '--ip', '999.1.1.1', '--from', '<>', '--rcpt', 'a@b.example'],
      message: /explain: "999\.1\.1\.1" is not an IP address/,
    },
    {
      name: 'explain without --rcpt',
      args: () => ['explain', '--ip', LISTED, '--from', '<>'],
      message: /at least one --rcpt ADDR is required/,
    },
    {
      name: 'explain with a bad --rcpt',
      args: () => ['explain', '--ip', LISTED, '--from', '<>', '--rcpt', 'not an address'],
      message: /--rcpt "not an address" is not an envelope address/,
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const r = await run(c.args())
      assert.equal(r.code, 2, `exit status; stderr: ${r.stderr}`)
      assert.equal(r.stdout, '')
      assert.match(r.stderr, c.message)
      assert.match(r.stderr, /Try 'haraka-backscatter( \w+)? --help'\./)
    })
  }
})

describe('--help', () => {
  for (const [args, usage] of [
    [['--help'], 'Usage: haraka-backscatter <command>'],
    [['help'], 'Usage: haraka-backscatter <command>'],
    [['check', '--help'], 'Usage: haraka-backscatter check [--config DIR] [--json] IP...'],
    [['help', 'check'], 'Usage: haraka-backscatter check [--config DIR] [--json] IP...'],
    [['health', '-h'], 'Usage: haraka-backscatter health [--config DIR] [--json]'],
    [['explain', '--help'], 'Usage: haraka-backscatter explain --ip IP --from ADDR --rcpt ADDR...'],
  ] as const) {
    it(args.join(' '), async () => {
      const r = await run([...args])
      assert.equal(r.code, 0, r.stderr)
      assert.ok(r.stdout.startsWith(usage), r.stdout)
      assert.match(r.stdout, /--config DIR/)
      assert.match(r.stdout, /Exit status:\n {2}0 .*\n {2}1 .*\n {2}2 .*bad usage/)
    })
  }
})
