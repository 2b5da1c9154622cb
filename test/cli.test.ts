// The built haraka-backscatter bin script, started as a user starts it: a few
// smoke tests. What the commands say is tested in process (test/cli-*.test.ts).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { before, describe, it } from 'node:test'

import { CLEAN, LISTED, ZONE, cells, dnsIni, lineWith, scriptedDns, tmpDir, type Run } from './cli/harness'

const REPO = path.resolve(__dirname, '..')
const BIN = path.join(REPO, 'bin', 'haraka-backscatter')

function runBin(args: string[], cwd = REPO): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd, timeout: 20_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0
        resolve({ code, stdout, stderr })
      },
    )
  })
}

const dns = scriptedDns()

before(() => {
  assert.ok(fs.existsSync(path.join(REPO, 'dist', 'cli', 'main.js')), 'build first: npm run build')
})

describe('the built bin script', () => {
  it('reads ./config/backscatter.ini from a Haraka install, checks IPs and exits 0', async () => {
    const install = tmpDir()
    fs.mkdirSync(path.join(install, 'config'))
    fs.writeFileSync(path.join(install, 'config', 'backscatter.ini'), dnsIni(dns.current))
    const r = await runBin(['check', LISTED, CLEAN], install)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '', 'nothing but the command writes (haraka-tld stays quiet)')
    assert.deepEqual(cells(lineWith(r.stdout, LISTED, ZONE)).slice(0, 6), [
      LISTED,
      ZONE,
      'passed',
      'listed',
      '127.0.0.2',
      '5',
    ])
    assert.match(lineWith(r.stdout, LISTED, 'reject'), /550 5\.7\.1 Backscatter refused: /)
    assert.match(lineWith(r.stdout, CLEAN, 'accept'), /accept: not listed$/)
  })

  it('takes options before the command: --config DIR help check', async () => {
    const r = await runBin(['--config', tmpDir(), 'help', 'check'])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.stdout.startsWith('Usage: haraka-backscatter check '), r.stdout)
  })

  it('exits 3 (UNKNOWN) with a message on stderr for bad usage', async () => {
    const r = await runBin(['check', 'mail.example.org'])
    assert.equal(r.code, 3)
    assert.equal(r.stdout, '')
    assert.equal(
      r.stderr,
      `haraka-backscatter check: "mail.example.org" is not an IP address\nTry 'haraka-backscatter check --help'.\n`,
    )
  })

  it('--version: the name and version of the package', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
      version: string
    }
    const r = await runBin(['--version'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `haraka-backscatter ${version}\n`)
  })

  it('a mistyped line in [batv.keys] of backscatter.ini: its secret on neither stdout nor stderr', async () => {
    const secret = 'Leak-t3st-Mv9'
    const dir = tmpDir()
    const ini = dnsIni(
      dns.current,
      `\n[batv]\ndomains = example.com\n\n[batv.keys]\n1 = ok-key\n2 ${secret}\n`,
    )
    fs.writeFileSync(path.join(dir, 'backscatter.ini'), ini)
    for (const args of [['sign', 'bob@example.com'], ['check', CLEAN], ['configtest']]) {
      const r = await runBin([...args, '--config', dir])
      assert.ok(!r.stdout.includes(secret), `${args[0]} stdout: ${r.stdout}`)
      assert.ok(!r.stderr.includes(secret), `${args[0]} stderr: ${r.stderr}`)
      assert.match(
        r.stderr,
        /backscatter\.ini:11: not a "key = value" line: haraka-config ignores it \(not shown/,
      )
    }
  })
})
