// How the command reads its arguments and configuration: options anywhere,
// help, bad usage, backscatter.ini problems. Run in process.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { CLEAN, LISTED, configDir, dnsIni, lineWith, run, scriptedDns, tmpDir } from './cli/harness'

const dns = scriptedDns()

describe('options and the command may come in any order', () => {
  const orders: { name: string; args: (dir: string) => string[][]; expect: RegExp }[] = [
    {
      name: 'help',
      args: (dir) => [
        ['--config', dir, 'help', 'check'],
        ['help', '--config', dir, 'check'],
        ['help', 'check', '--config', dir],
        [`--config=${dir}`, 'help', 'check'],
      ],
      expect: /^Usage: haraka-backscatter check /,
    },
    {
      name: 'check',
      args: (dir) => [
        ['--config', dir, 'check', CLEAN],
        ['--json', '--config', dir, 'check', CLEAN],
        ['check', CLEAN, '--config', dir, '--json'],
        ['check', '--config', dir, CLEAN],
      ],
      expect: new RegExp(`"ip":"${CLEAN}".*"verdict"|^${CLEAN.replaceAll('.', '\\.')} +ips`, 'm'),
    },
    {
      name: 'health',
      args: (dir) => [
        ['--config', dir, 'health'],
        ['--json', '--config', dir, 'health'],
        ['health', '--config', dir, '--json'],
      ],
      expect:
        /"zone":"ips\.backscatterer\.org","status":"ok","usable":true|^ips\.backscatterer\.org +usable$/m,
    },
    {
      name: 'explain',
      args: (dir) => [
        ['--config', dir, '--ip', LISTED, 'explain', '--from', '<>', '--rcpt', 'u@example.org'],
        ['--ip', LISTED, '--from', '<>', '--rcpt', 'u@example.org', '--config', dir, 'explain'],
        ['explain', '--ip', LISTED, '--from', '<>', '--rcpt', 'u@example.org', '--config', dir],
        ['--from', '', 'explain', '--config', dir, '--ip', LISTED, '--rcpt', 'u@example.org', '--json'],
      ],
      expect: /^6\. Reply +550 5\.7\.1 |"reply":"550 5\.7\.1 /m,
    },
  ]
  for (const o of orders) {
    it(`${o.name}: options before and after the command`, async () => {
      const dir = configDir(dnsIni(dns.current))
      for (const args of o.args(dir)) {
        const r = await run(args)
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
        assert.equal(r.stderr, '', args.join(' '))
        assert.match(r.stdout, o.expect, args.join(' '))
      }
    })
  }

  it('--help anywhere shows the help of the command it is given with', async () => {
    for (const args of [
      ['--help', 'health'],
      ['health', '--help'],
      ['-h', 'explain'],
    ]) {
      const r = await run(args)
      assert.equal(r.code, 0, r.stderr)
      assert.ok(r.stdout.startsWith(`Usage: haraka-backscatter ${args.find((a) => !a.startsWith('-'))}`))
    }
  })
})

describe('configuration', () => {
  it('accepts a Haraka install directory whose config/ holds backscatter.ini', async () => {
    const install = tmpDir()
    fs.mkdirSync(path.join(install, 'config'))
    fs.writeFileSync(
      path.join(install, 'config', 'backscatter.ini'),
      dnsIni(dns.current, '[main]\nthreshold = 7\n'),
    )
    const r = await run(['check', '--config', install, LISTED])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /VERDICT FOR A BOUNCE \(threshold 7, action reject\)/)
    assert.match(lineWith(r.stdout, LISTED, 'accept'), /accept: score below the threshold$/)
  })

  it('warns about settings problems on stderr and goes on with the defaults', async () => {
    const dir = configDir(dnsIni(dns.current, '[main]\nthreshold = lots\ncolour = blue\n'))
    const r = await run(['check', '--config', dir, CLEAN])
    assert.equal(r.code, 0)
    // Each named by its file and line.
    const ini = path.join(dir, 'backscatter.ini')
    assert.ok(
      r.stderr.includes(`warning: ${ini}:6: [main] threshold: "lots" is not a number; using 5\n`),
      r.stderr,
    )
    assert.ok(r.stderr.includes(`warning: ${ini}:7: [main] colour: unknown setting; ignored\n`), r.stderr)
    assert.match(r.stdout, /threshold 5, action reject/)
  })
})

describe('bad usage exits 3 (UNKNOWN, as monitoring plugins say) with a clear message', () => {
  const cases: { name: string; args: string[]; message: RegExp }[] = [
    {
      name: 'an argument that is not an IP',
      args: ['check', 'mail.example.org'],
      message: /check: "mail\.example\.org" is not an IP address/,
    },
    {
      name: 'a CIDR instead of an IP',
      args: ['check', '45.33.12.0/24'],
      message: /"45\.33\.12\.0\/24" is not an IP address/,
    },
    { name: 'check without an IP', args: ['check'], message: /check: give at least one IP address/ },
    {
      name: 'a missing config dir',
      args: ['health', '--config', '/nonexistent/haraka/config'],
      message: /--config \/nonexistent\/haraka\/config: cannot read it: no such directory/,
    },
    {
      name: 'a config path that is a file',
      args: ['health', '--config', __filename],
      message: /: not a directory/,
    },
    {
      name: 'an option without its value',
      args: ['health', '--config'],
      message: /health: Option '--config <value>' argument missing/,
    },
    {
      name: 'an unknown option',
      args: ['check', '--fast', '45.33.12.7'],
      message: /check: Unknown option '--fast'/,
    },
    {
      name: 'an option another command takes',
      args: ['--ip', '45.33.12.7', 'health'],
      message: /health: Unknown option '--ip'/,
    },
    { name: 'an unknown command', args: ['lookup', '45.33.12.7'], message: /unknown command "lookup"/ },
    {
      name: 'an unknown command after options',
      args: ['--json', 'lookup', '45.33.12.7'],
      message: /unknown command "lookup"/,
    },
    { name: 'no command', args: [], message: /no command given/ },
    { name: 'only options', args: ['--json'], message: /no command given/ },
    { name: 'help for an unknown command', args: ['help', 'lookup'], message: /unknown command "lookup"/ },
    {
      name: 'health with an argument',
      args: ['health', '45.33.12.7'],
      message: /health: unexpected argument "45\.33\.12\.7"/,
    },
    {
      name: 'explain without --ip',
      args: ['explain', '--from', '<>', '--rcpt', 'a@b.example'],
      message: /explain: --ip IP is required/,
    },
    {
      name: 'explain with a bad --ip',
      args: ['explain', '--ip', '999.1.1.1', '--from', '<>', '--rcpt', 'a@b.example'],
      message: /explain: "999\.1\.1\.1" is not an IP address/,
    },
    {
      name: 'explain without --from',
      args: ['explain', '--ip', LISTED, '--rcpt', 'a@b.example'],
      message: /explain: --from ADDR is required/,
    },
    {
      name: 'explain without --rcpt',
      args: ['explain', '--ip', LISTED, '--from', '<>'],
      message: /at least one --rcpt ADDR is required/,
    },
    {
      name: 'explain with a bad --rcpt',
      args: ['explain', '--ip', LISTED, '--from', '<>', '--rcpt', 'not an address'],
      message: /--rcpt "not an address" is not an envelope address/,
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const r = await run(c.args)
      assert.equal(r.code, 3, `exit status 3 (UNKNOWN); stderr: ${r.stderr}`)
      assert.equal(r.stdout, '')
      assert.match(r.stderr, c.message)
      assert.match(r.stderr, /Try 'haraka-backscatter( \w+)? --help'\.\n$/)
    })
  }
})

describe('an unknown option is reported as such, wherever it stands', () => {
  it('before or after the command: the same message, never "unknown command" for its value', async () => {
    const before = await run(['--timeout', '5', 'check', '45.33.12.7'])
    const after = await run(['check', '--timeout', '5', '45.33.12.7'])
    for (const r of [before, after]) {
      assert.equal(r.code, 3, r.stderr)
      assert.equal(r.stdout, '')
      assert.match(r.stderr, /^haraka-backscatter check: Unknown option '--timeout'\n/)
      assert.doesNotMatch(r.stderr, /unknown command/)
    }
    assert.equal(before.stderr, after.stderr)
  })

  it('with its value attached, as a short option, or with no command at all', async () => {
    const cases: [string[], RegExp][] = [
      [['--timeout=5', 'health'], /^haraka-backscatter health: Unknown option '--timeout'\n/],
      [['-x', '5', 'health'], /^haraka-backscatter health: Unknown option '-x'\n/],
      [['--timeout', '5'], /^haraka-backscatter: Unknown option '--timeout'\n/],
    ]
    for (const [args, message] of cases) {
      const r = await run(args)
      assert.equal(r.code, 3, args.join(' '))
      assert.match(r.stderr, message, args.join(' '))
    }
  })
})

describe('--help and help show the usage, the --config option and the exit statuses', () => {
  for (const [args, usage] of [
    [['--help'], 'Usage: haraka-backscatter <command>'],
    [['-h'], 'Usage: haraka-backscatter <command>'],
    [['help'], 'Usage: haraka-backscatter <command>'],
    [['check', '--help'], 'Usage: haraka-backscatter check [--config DIR] [--json] IP...'],
    [['help', 'check'], 'Usage: haraka-backscatter check [--config DIR] [--json] IP...'],
    [['health', '-h'], 'Usage: haraka-backscatter health [--config DIR] [--max-age HOURS] [--json]'],
    [['help', 'health'], 'Usage: haraka-backscatter health [--config DIR] [--max-age HOURS] [--json]'],
    [['explain', '--help'], 'Usage: haraka-backscatter explain --ip IP --from ADDR --rcpt ADDR...'],
    [['help', 'explain'], 'Usage: haraka-backscatter explain --ip IP --from ADDR --rcpt ADDR...'],
  ] as const) {
    it(args.join(' '), async () => {
      const r = await run([...args])
      assert.equal(r.code, 0, r.stderr)
      assert.ok(r.stdout.startsWith(usage), r.stdout)
      assert.match(r.stdout, /--config DIR/)
      assert.match(r.stdout, /^Exit status \(as monitoring plugins use it\):\n {2}0 +OK: /m)
      assert.match(r.stdout, /^ {2}1 +WARNING: /m)
      assert.match(r.stdout, /^ {2}2 +CRITICAL: /m)
      assert.match(r.stdout, /^ {2}3 +UNKNOWN: bad usage/m)
    })
  }

  it('the main help says options may come before or after the command', async () => {
    const r = await run(['help'])
    assert.match(r.stdout, /options may come before or after the command/i)
  })
})
