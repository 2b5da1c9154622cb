// `haraka-backscatter configtest`: the configuration loaded as the plugin loads
// it, every problem with its file, line and key, status 0 only when clean; and
// `--version`. Run in process.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { configDir, dnsIni, run, scriptedDns, tmpDir, type Run } from './cli/harness'
import { makeTestPlugin } from './support/harness'

const dns = scriptedDns()

const SECRET = 'Cfg-s3cret-Wq4'
const BATV = '[batv]\ndomains = example.com\nmissing_from = 2026-12-08\n'
const KEYS = `# the keys\n1 = ${SECRET}\n`

/** A config folder with `ini`, and `keys` as config/backscatter.keys with permission bits `mode`. */
function keysDir(ini: string, keys = KEYS, mode = 0o600): string {
  const dir = configDir(ini, { 'backscatter.keys': keys })
  fs.chmodSync(path.join(dir, 'backscatter.keys'), mode)
  return dir
}

function assertNoSecret(r: Run, ...secrets: string[]): void {
  for (const secret of [SECRET, ...secrets]) {
    assert.ok(!r.stdout.includes(secret), `stdout shows a secret: ${r.stdout}`)
    assert.ok(!r.stderr.includes(secret), `stderr shows a secret: ${r.stderr}`)
  }
}

/** The problem lines on stderr, without the program's name, the summary left out. */
function problemLines(r: Run): string[] {
  return r.stderr
    .split('\n')
    .filter((l) => l.startsWith('haraka-backscatter: '))
    .map((l) => l.slice('haraka-backscatter: '.length))
}

describe('configtest: a clean configuration', () => {
  it('one line on stdout says ok and what was read; status 0', async () => {
    const dir = keysDir(dnsIni(dns.current, `\n${BATV}`))
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.equal(
      r.stdout,
      `haraka-backscatter configtest: ok: ${path.join(dir, 'backscatter.ini')} over the package defaults; BATV keys 1\n`,
    )
    assertNoSecret(r)
  })

  it('a Haraka install directory works too, and so does the package alone', async () => {
    const install = tmpDir()
    fs.mkdirSync(path.join(install, 'config'))
    fs.writeFileSync(path.join(install, 'config', 'backscatter.ini'), dnsIni(dns.current))
    const r = await run(['--config', install, 'configtest'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(
      r.stdout,
      /^haraka-backscatter configtest: ok: \S+\/config\/backscatter\.ini over the package defaults\n$/,
    )
  })

  it('what the plugin logs as information is printed as a note, and does not fail the test', async () => {
    const dir = keysDir(dnsIni(dns.current, '\n[batv]\ndomains = example.com\n'))
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    const [note, ok] = r.stdout.split('\n')
    assert.match(
      note ?? '',
      /^haraka-backscatter: note: \S+\/backscatter\.ini: \[batv\] missing_from is empty: /,
    )
    assert.match(ok ?? '', /^haraka-backscatter configtest: ok: /)
  })
})

describe('configtest: every problem with its file, line and key; status 1', () => {
  it('settings of backscatter.ini: warnings and errors by line and key, then a count', async () => {
    const dir = configDir(
      dnsIni(
        dns.current,
        '\n[main]\nthreshold = lots\naction = rejct\n\n[recipient_domains]\nexample.com = nope\n',
      ),
    )
    const ini = path.join(dir, 'backscatter.ini')
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.deepEqual(problemLines(r), [
      `warning: ${ini}:7: [main] threshold: "lots" is not a number; using 5`,
      `error: ${ini}:8: [main] action: "rejct" is not reject, defer or score; using score`,
      `error: ${ini}:11: [recipient_domains] example.com: "nope" is not reject, defer, score or off; using score`,
    ])
    assert.match(r.stderr, /\nharaka-backscatter configtest: failed: 2 errors, 1 warning\n$/)
  })

  it('config/backscatter.keys: a mistyped line is an error by its line, never shown', async () => {
    const dir = keysDir(BATV, `1 = ok-key\n2 ${SECRET}\n12 = ${SECRET}\n`)
    const keys = path.join(dir, 'backscatter.keys')
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 1)
    assert.deepEqual(problemLines(r), [
      `error: ${keys}:2: no "=": each line is N=secret; line ignored, not shown`,
      `error: ${keys}:3: not N=secret with a key number 0-9; line ignored, not shown`,
    ])
    assertNoSecret(r, 'ok-key')
  })

  it('config/backscatter.keys readable by group or others: a warning naming the file and its mode', async () => {
    const dir = keysDir(BATV, KEYS, 0o644)
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 1)
    assert.deepEqual(problemLines(r), [
      `warning: ${path.join(dir, 'backscatter.keys')}: mode 0644: group or others can read the BATV secrets; make it readable by the Haraka user only (chmod 600)`,
    ])
    assertNoSecret(r)
  })

  it('no usable key: the error at [batv] domains', async () => {
    const dir = configDir(BATV)
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 1)
    assert.deepEqual(problemLines(r), [
      `error: ${path.join(dir, 'backscatter.ini')}:2: [batv] domains: no usable key in config/backscatter.keys; signing and checking are off`,
    ])
  })

  it('keys in [batv.keys] of backscatter.ini: a warning saying where they belong, and that Haraka logs a mistyped line', async () => {
    const dir = configDir(`${BATV}\n[batv.keys]\n1 = ${SECRET}\n`)
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 1)
    assert.deepEqual(problemLines(r), [
      `warning: ${path.join(dir, 'backscatter.ini')}:5: [batv.keys]: key 1 read from here for one more release; ` +
        "haraka-config prints a mistyped line of backscatter.ini in Haraka's log, secret included. " +
        'BATV keys belong in config/backscatter.keys now, one N=secret a line',
    ])
    assertNoSecret(r)
  })

  it('a mistyped line in [batv.keys] of backscatter.ini: named by its line on stderr, never shown anywhere', async () => {
    const dir = configDir(`${BATV}\n[batv.keys]\n1 = ok-key\n2 ${SECRET}\n`)
    const ini = path.join(dir, 'backscatter.ini')
    for (const args of [['configtest'], ['sign', 'bob@example.com'], ['check', '45.33.12.8']]) {
      // haraka-config reads a file once: a fresh copy for each command.
      const copy = configDir(fs.readFileSync(ini, 'utf8'))
      const r = await run([...args, '--config', copy])
      const lines = problemLines(r).filter((l) => l.includes(':7: '))
      assert.ok(
        lines.includes(
          `warning: ${path.join(copy, 'backscatter.ini')}:7: not a "key = value" line: haraka-config ignores it (not shown: it may hold a secret)`,
        ),
        r.stderr,
      )
      assertNoSecret(r)
    }
  })

  it('keys in [batv] keys_file: a warning saying where they belong', async () => {
    const dir = configDir(`${BATV}keys_file = old_keys.ini\n`)
    fs.writeFileSync(path.join(dir, 'old_keys.ini'), `[batv.keys]\n1 = ${SECRET}\n`, { mode: 0o600 })
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 1)
    assert.deepEqual(problemLines(r), [
      `warning: ${path.join(dir, 'old_keys.ini')}:1: [batv.keys]: key 1 read from here for one more release ` +
        '(named by [batv] keys_file). BATV keys belong in config/backscatter.keys now, one N=secret a line',
    ])
  })

  it('a folder without backscatter.ini: a warning', async () => {
    const dir = tmpDir()
    const r = await run(['configtest', '--config', dir])
    assert.equal(r.code, 1)
    assert.deepEqual(problemLines(r), [
      `warning: ${dir}: holds no backscatter.ini; using the package defaults`,
    ])
  })

  it('the same problems the plugin logs, when Haraka loads the same folder', () => {
    const ini = `${BATV}sign_key = 4\n[main]\nthreshold = lots\ncolour = blue\n[batv.keys]\n3 = legacy\n`
    const keys = '1 = one\n2\n3 = new\n'
    const t = makeTestPlugin(ini, { 'backscatter.keys': keys })
    try {
      const logged = t.logs
        .filter((l) => l.level === 'logwarn' || l.level === 'logerror')
        .map((l) => `${l.level === 'logerror' ? 'error' : 'warning'} ${normalPlugin(l.text)}`)
      return run(['configtest', '--config', path.join(t.dir, 'config')]).then((r) => {
        const printed = problemLines(r)
          .filter((l) => !l.includes('not a "key = value" line'))
          .map(normalCommand)
        assert.ok(logged.length >= 5, logged.join('\n'))
        assert.deepEqual(printed.sort(), logged.sort())
      })
    } finally {
      t.close()
    }
  })
})

/** `config/backscatter.keys line 2: text` or `config/backscatter.ini [main] x: text` → `backscatter.keys text`. */
function normalPlugin(text: string): string {
  const m = /^config\/(\S+?)(?: line \d+)?:? (.*)$/.exec(text)
  return m ? `${m[1]} ${m[2]}` : text
}

/** `warning: /tmp/x/config/backscatter.keys:2: text` → `warning backscatter.keys text`. */
function normalCommand(line: string): string {
  const m = /^(\w+): (\S+?)(?::\d+)?: (.*)$/.exec(line)
  return m ? `${m[1]} ${path.basename(m[2] ?? '')} ${m[3]}` : line
}

describe('configtest: bad usage exits 3 (UNKNOWN), as every command', () => {
  for (const args of [
    ['configtest', 'extra'],
    ['configtest', '--json'],
    ['configtest', '--config', '/nonexistent/haraka'],
  ]) {
    it(args.join(' '), async () => {
      const r = await run(args)
      assert.equal(r.code, 3, r.stderr)
      assert.match(r.stderr, /Try 'haraka-backscatter configtest --help'\.$/m)
    })
  }

  it('--help shows its usage and exit statuses', async () => {
    const r = await run(['configtest', '--help'])
    assert.equal(r.code, 0)
    assert.ok(r.stdout.startsWith('Usage: haraka-backscatter configtest [--config DIR]'), r.stdout)
    assert.match(r.stdout, /Exit status:\n {2}0 .*\n {2}1 .*\n {2}3 .*bad usage/)
  })

  it('the main help lists it', async () => {
    const r = await run(['help'])
    assert.match(r.stdout, /^ {2}configtest +load the configuration as the plugin does/m)
  })
})

describe('--version', () => {
  const version = (
    JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as {
      version: string
    }
  ).version

  for (const args of [['--version'], ['-V'], ['check', '--version'], ['--version', 'configtest']]) {
    it(`${args.join(' ')}: the name and the version from package.json, status 0`, async () => {
      const r = await run(args)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, `haraka-backscatter ${version}\n`)
      assert.equal(r.stderr, '')
    })
  }

  it('the main help lists it', async () => {
    const r = await run(['help'])
    assert.match(r.stdout, /^ {2}-V, --version +print the version and exit$/m)
  })
})
