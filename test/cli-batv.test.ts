// Signed bounces in the command: `sign ADDRESS` prints the tag the plugin would
// put on a sender, and `explain` shows the tag check of a bounce's recipient.
// Run in process; Exim's ${prvscheck} judges what `sign` prints when exim4 is installed.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { dayNumber, prepareKeys, verifyAddress } from '../lib/batv/sign'
import { DAY_MS } from '../lib/batv/tag'
import fixtures from 'haraka-test-fixtures'

import {
  CLEAN,
  LISTED,
  cells,
  configDir,
  dnsIni,
  lineWith,
  run,
  scriptedDns,
  tmpDir,
  type Run,
} from './cli/harness'
import { addr, constants, mail, makeConnection, makeTestPlugin } from './support/harness'
import { findProgram } from './support/programs'

const dns = scriptedDns()

// Distinctive secrets, to look for in everything the command prints.
const SECRET_1 = 's3cret'
const SECRET_2 = '0123'
const SECRET_OLD = 'old-secret-Xq7'

/** [batv] for example.com, key 1 signing. */
const BATV = `[batv]\ndomains = example.com\nsign_key = 1\n`
/** config/backscatter.keys: keys 1 and 2. */
const KEYS = `1 = ${SECRET_1}\n2 = ${SECRET_2}\n`

/** A config folder with `ini` and `keys` as config/backscatter.keys. */
const keysDir = (ini: string, keys = KEYS): string => configDir(ini, { 'backscatter.keys': keys })

/** 2026-11-28, day 20785: key 1 with s3cret signs bob@example.com as Exim does (docs/signed-bounces.md). */
const DAY = '2026-11-28'
const DAY_20785_MS = 20785 * DAY_MS

function assertNoSecret(r: Run, ...secrets: string[]): void {
  for (const secret of [SECRET_1, SECRET_2, SECRET_OLD, ...secrets]) {
    assert.ok(!r.stdout.includes(secret), `stdout shows a secret: ${r.stdout}`)
    assert.ok(!r.stderr.includes(secret), `stderr shows a secret: ${r.stderr}`)
  }
}

describe('sign ADDRESS prints the signed form', () => {
  it("is Exim's ${prvs} of the address with sign_key, on the given day", async () => {
    const dir = keysDir(BATV)
    const r = await run(['sign', '--config', dir, '--date', DAY, 'bob@example.com'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, 'prvs=1792f288fc=bob@example.com\n')
    assert.equal(r.stderr, '')
    assertNoSecret(r)
  })

  it('lower-cases the address, takes it in angle brackets, and --json tells the key, the days and the domain', async () => {
    const dir = keysDir(BATV)
    const r = await run(['sign', '--json', '--config', dir, '--date', DAY, '<Bob@Example.COM>'])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout), {
      address: 'Bob@example.com',
      signed: 'prvs=1792f288fc=bob@example.com',
      key: 1,
      lifetime_days: 7,
      signed_on: DAY,
      valid_until: '2026-12-05',
      signing_domain: true,
    })
    assertNoSecret(r)
  })

  it('--key signs with another key; its secret 0123 is the text 0123, not the number 123', async () => {
    const dir = keysDir(BATV)
    const r = await run(['sign', 'bob@example.com', '--key', '2', '--date', DAY, '--config', dir])
    assert.equal(r.code, 0, r.stderr)
    const tagged = r.stdout.trim()
    assert.match(tagged, /^prvs=2792[0-9a-f]{6}=bob@example\.com$/)
    const asText = prepareKeys(new Map([[2, '0123']])).keys
    const asNumber = prepareKeys(new Map([[2, '123']])).keys
    assert.equal(verifyAddress(tagged, asText, 7, DAY_20785_MS).status, 'valid')
    assert.equal(verifyAddress(tagged, asNumber, 7, DAY_20785_MS).status, 'invalid')
    assertNoSecret(r)
  })

  it('the expiry day follows lifetime_days and the date, around the 999 → 000 wrap', async () => {
    const dir = keysDir(BATV.replace('sign_key = 1', 'sign_key = 1\nlifetime_days = 3'))
    // Day 20997 (2027-06-28) + 3 = 21000: DDD 000.
    const r = await run(['sign', '--json', '--config', dir, '--date', '2027-06-28', 'x@example.com'])
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { signed: string; valid_until: string }
    assert.equal(dayNumber(Date.UTC(2027, 5, 28)), 20997)
    assert.match(out.signed, /^prvs=1000[0-9a-f]{6}=x@example\.com$/)
    assert.equal(out.valid_until, '2027-07-01')
  })

  it('reads the keys from [batv] keys_file for one more release, with a warning saying where keys belong now', async () => {
    const dir = configDir(`[batv]\ndomains = example.com\nsign_key = 3\nkeys_file = batv-keys.ini\n`)
    fs.writeFileSync(path.join(dir, 'batv-keys.ini'), `[batv.keys]\n3 = ${SECRET_OLD}\n`)
    const r = await run(['--config', dir, 'sign', '--date', DAY, 'bob@example.com'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(
      r.stderr,
      `haraka-backscatter: warning: ${path.join(dir, 'batv-keys.ini')}:1: [batv.keys]: key 3 read from here for one more release ` +
        '(named by [batv] keys_file). BATV keys belong in config/backscatter.keys now, one N=secret a line\n',
    )
    const keys = prepareKeys(new Map([[3, SECRET_OLD]])).keys
    assert.deepEqual(verifyAddress(r.stdout.trim(), keys, 7, DAY_20785_MS), {
      status: 'valid',
      keyId: 3,
      original: 'bob@example.com',
    })
    assertNoSecret(r)
  })

  it('signs an address outside [batv] domains too, with a warning that the plugin does not check it', async () => {
    const r = await run(['sign', '--config', keysDir(BATV), '--date', DAY, 'bob@example.net'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^prvs=1792[0-9a-f]{6}=bob@example\.net\n$/)
    assert.match(r.stderr, /warning: example\.net is not in \[batv\] domains/)
  })

  describe('bad usage: a message, status 2, nothing on stdout, never a secret', () => {
    const cases: { name: string; ini?: string; keys?: string; args: string[]; message: RegExp }[] = [
      { name: 'no address', args: [], message: /sign: give an ADDRESS$/m },
      { name: 'two addresses', args: ['a@example.com', 'b@example.com'], message: /one ADDRESS only/ },
      {
        name: 'not an address',
        args: ['bob example.com'],
        message: /"bob example\.com" is not an envelope address/,
      },
      {
        name: 'no domain',
        args: ['postmaster'],
        message: /"postmaster" is not an address with a local part and a domain/,
      },
      { name: 'the null sender', args: ['<>'], message: /the null sender <> is never signed/ },
      { name: 'an empty address', args: [''], message: /the null sender <> is never signed/ },
      {
        name: 'an address tagged already',
        args: ['prvs=1792f288fc=bob@example.com'],
        message: /"prvs=1792f288fc=bob@example\.com" is tagged already/,
      },
      {
        name: 'an unknown key',
        args: ['--key', '5', 'bob@example.com'],
        message: /--key 5: no such key \(keys: 1, 2\)/,
      },
      {
        name: 'a key that is not a digit',
        args: ['--key', '10', 'bob@example.com'],
        message: /--key "10" is not a key number 0-9/,
      },
      {
        name: 'sign_key not among the keys',
        ini: BATV.replace('sign_key = 1', 'sign_key = 4'),
        args: ['bob@example.com'],
        message: /\[batv\] sign_key 4: no such key \(keys: 1, 2\)/,
      },
      {
        name: 'a date that does not exist',
        args: ['--date', '2026-02-30', 'bob@example.com'],
        message: /--date "2026-02-30" is not a date YYYY-MM-DD/,
      },
      {
        name: 'BATV off: no domains, so no key is read',
        ini: '',
        args: ['bob@example.com'],
        message:
          /no BATV key to sign with: BATV is off \(set \[batv\] domains and a key in config\/backscatter\.keys\)/,
      },
      {
        name: 'domains but no usable key',
        keys: `1 = ${'z'.repeat(65)}\n`,
        args: ['bob@example.com'],
        message:
          /error: \S+\/backscatter\.ini:2: \[batv\] domains: no usable key[^]*no BATV key to sign with: BATV is off/,
      },
      {
        name: "a local part of 49 octets: a tag would make it 65, over RFC 5321's 64",
        args: [`${'a'.repeat(49)}@example.com`],
        message:
          /a{49}@example\.com" is too long to sign: a tag adds 16 octets, and RFC 5321 allows 64 in a local part/,
      },
      {
        name: 'an option of another command',
        args: ['--ip', '45.33.12.7', 'bob@example.com'],
        message: /Unknown option '--ip'/,
      },
    ]
    for (const c of cases) {
      it(c.name, async () => {
        const r = await run(['sign', '--config', keysDir(c.ini ?? BATV, c.keys), ...c.args])
        assert.equal(r.code, 3, `${r.stdout}${r.stderr}`)
        assert.equal(r.stdout, '')
        assert.match(r.stderr, c.message)
        assert.match(r.stderr, /Try 'haraka-backscatter sign --help'\.$/m)
        assertNoSecret(r, 'z'.repeat(65))
      })
    }
  })

  it('options may come before or after the command and the address', async () => {
    const dir = keysDir(BATV)
    for (const args of [
      ['--config', dir, '--key', '2', 'sign', '--date', DAY, 'bob@example.com'],
      ['--key', '2', '--date', DAY, 'sign', 'bob@example.com', '--config', dir],
      ['sign', 'bob@example.com', '--config', dir, '--key=2', `--date=${DAY}`],
    ]) {
      const r = await run(args)
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stdout, /^prvs=2792[0-9a-f]{6}=bob@example\.com\n$/, args.join(' '))
    }
  })

  it('has help, listed in the main help', async () => {
    for (const args of [
      ['help', 'sign'],
      ['sign', '--help'],
      ['--help', 'sign'],
    ]) {
      const r = await run(args)
      assert.equal(r.code, 0, r.stderr)
      assert.match(
        r.stdout,
        /^Usage: haraka-backscatter sign \[--key N\] \[--date YYYY-MM-DD\] \[--json\] ADDRESS/,
      )
      assert.match(r.stdout, /\$\{prvs\}/)
    }
    const main = await run(['help'])
    assert.match(main.stdout, /^ {2}sign ADDRESS +the signed \(BATV, prvs=\) form of an address$/m)
  })
})

const EXIM = findProgram('exim4')

describe(
  "Exim's ${prvscheck} accepts what sign prints",
  { skip: EXIM ? false : 'exim4 is not installed (Debian package exim4-daemon-light)' },
  () => {
    it('a tag printed today passes prvscheck with the same secret, and fails with another', async () => {
      const dir = tmpDir()
      fs.chmodSync(dir, 0o755) // Exim drops to its own user and must reach its spool directory
      fs.mkdirSync(path.join(dir, 'spool'))
      const conf = path.join(dir, 'exim.conf')
      fs.writeFileSync(
        conf,
        `primary_hostname = mx.example.com\nspool_directory = ${dir}/spool\nlog_file_path = ${dir}/%slog\n`,
      )
      const check = (tagged: string, secret: string): string =>
        `\${prvscheck{\\N${tagged}\\N}{\\N${secret}\\N}{\${if eq{$prvscheck_result}{1}{valid <$prvscheck_address> $prvscheck_keynum}{invalid}}}}`
      for (;;) {
        const day = dayNumber(Date.now())
        const r = await run(['sign', '--config', keysDir(BATV), '--key', '2', 'Bob+Lists@Example.com'])
        assert.equal(r.code, 0, r.stderr)
        const tagged = r.stdout.trim()
        const out = execFileSync(EXIM as string, ['-C', conf, '-be'], {
          input: `${check(tagged, SECRET_2)}\n${check(tagged, '123')}\n`,
          encoding: 'utf8',
          env: { ...process.env, TZ: 'UTC' },
          timeout: 30_000,
        })
        // Exim reads the real clock: when the UTC day turned meanwhile, sign again.
        if (dayNumber(Date.now()) !== day) continue
        const answers = out
          .split('\n')
          .filter((l) => l.startsWith('>'))
          .map((l) => l.replace(/^> ?/, ''))
          .slice(0, 2)
        assert.deepEqual(answers, ['valid <bob+lists@example.com> 2', 'invalid'], out)
        return
      }
    })
  },
)

/** [batv] with missing scored from long ago, and the scripted resolver. */
const batvDnsIni = (extra = ''): string =>
  dnsIni(dns.current, `\n${BATV.replace('sign_key = 1', 'sign_key = 1\nmissing_from = 2020-01-01')}${extra}`)

interface ExplainedTag {
  result: string
  recorded: string
  key?: number
  reason?: string
  why?: string
  score: number
  scored: boolean
  original: string
}

interface Explained {
  score: number
  threshold: number
  batv: { on: boolean; domains: string[]; keys: number[]; date: string }
  recipients: {
    rcpt: string
    action: string
    why: string
    reply: string
    score: number | null
    tag?: ExplainedTag
  }[]
  reply: string
  header: string
}

async function explainJson(
  dir: string,
  ip: string,
  date: string,
  rcpts: string[],
  from = '<>',
): Promise<Explained> {
  const args = ['explain', '--json', '--config', dir, '--ip', ip, '--from', from, '--date', date]
  const r = await run([...args, ...rcpts.flatMap((x) => ['--rcpt', x])])
  assert.equal(r.code, 0, r.stderr)
  assertNoSecret(r)
  return JSON.parse(r.stdout) as Explained
}

describe('explain shows the tag check of a bounce’s recipient', () => {
  it('round trip: the tag sign prints is valid; from a listed host the bounce is accepted (5 - 10 < 5)', async () => {
    const dir = keysDir(batvDnsIni())
    const signed = await run(['sign', '--config', dir, '--date', DAY, 'bob@example.com'])
    assert.equal(signed.code, 0, signed.stderr)
    const tagged = signed.stdout.trim()
    const args = ['explain', '--config', dir, '--ip', LISTED, '--from', '<>', '--date', DAY]
    const r = await run([...args, '--rcpt', tagged, '--rcpt', 'alice@example.com'])
    assert.equal(r.code, 0, r.stderr)
    assertNoSecret(r)
    const out = r.stdout
    assert.match(
      out,
      /^4\. Score +5 from the zones \(threshold 5\): reached by the zones alone; each recipient's tag adds to it$/m,
    )
    assert.match(
      out,
      /^5\. Tags +BATV for example\.com, checked as on 2026-11-28: keys 1, 2, tags live 7 days, missing counts from 2020-01-01$/m,
    )
    assert.deepEqual(cells(lineWith(out, `<${tagged}>`, 'valid')), [
      `<${tagged}>`,
      'valid key 1',
      '-10',
      '<bob@example.com>',
    ])
    assert.deepEqual(cells(lineWith(out, '<alice@example.com>', 'missing')), [
      '<alice@example.com>',
      'missing',
      '5',
      '<alice@example.com>',
    ])
    assert.match(
      out,
      /^6\. Recipients +\(SCORE: the zones' 5 plus the recipient's tag, against threshold 5\)$/m,
    )
    assert.deepEqual(cells(lineWith(out, `<${tagged}>`, 'accept')), [
      `<${tagged}>`,
      'accept',
      '-5',
      'score below the threshold',
    ])
    const alice = cells(lineWith(out, '<alice@example.com>', 'reject'))
    assert.deepEqual(alice.slice(0, 2), ['<alice@example.com>', 'reject'])
    assert.equal(alice[2], '10')
    assert.match(alice[3] ?? '', /^550 5\.7\.1 Backscatter refused: 45\.33\.12\.7 is listed/)
    assert.match(
      out,
      /Header +on accepted mail: X-Haraka-Backscatter: score=5; listed=ips\.backscatterer\.org; batv=valid; ip=45\.33\.12\.7$/m,
    )
  })

  it('--json carries the same: the result, key, score, sum against the threshold and the address without the tag', async () => {
    const dir = keysDir(batvDnsIni())
    const d = await explainJson(dir, CLEAN, DAY, ['prvs=1792f288fc=bob@example.com', 'alice@example.com'])
    assert.deepEqual(d.batv, {
      on: true,
      domains: ['example.com'],
      keys: [1, 2],
      lifetime_days: 7,
      missing_from: '2020-01-01',
      date: DAY,
    })
    assert.equal(d.score, 0)
    assert.equal(d.threshold, 5)
    assert.deepEqual(d.recipients[0], {
      rcpt: '<prvs=1792f288fc=bob@example.com>',
      action: 'accept',
      why: 'score below the threshold',
      reply: '',
      score: -10,
      tag: {
        result: 'valid',
        recorded: 'valid key 1',
        key: 1,
        score: -10,
        scored: true,
        original: 'bob@example.com',
      },
    })
    const alice = d.recipients[1]
    assert.equal(alice?.action, 'reject')
    assert.equal(alice?.score, 5)
    assert.equal(
      alice?.reply,
      '550 5.7.1 Bounce refused: <alice@example.com> takes bounces only at its signed return path (BATV); this bounce is not about mail sent from here',
    )
    assert.deepEqual(alice?.tag, {
      result: 'missing',
      recorded: 'missing',
      score: 5,
      scored: true,
      original: 'alice@example.com',
    })
    assert.equal(d.reply, alice?.reply)
  })

  it('invalid, and why: bad signature, unknown key, expired, malformed', async () => {
    const dir = keysDir(batvDnsIni())
    const valid = 'prvs=1792f288fc=bob@example.com'
    // Signed on 2026-11-28 for 7 days: valid through 2026-12-05, expired on the 6th.
    const onLastDay = await explainJson(dir, CLEAN, '2026-12-05', [valid])
    assert.equal(onLastDay.recipients[0]?.tag?.result, 'valid')
    const d = await explainJson(dir, CLEAN, '2026-12-06', [
      valid,
      'prvs=1792f288fd=bob@example.com',
      'prvs=5792f288fc=bob@example.com',
      'prvs=17x=bob@example.com',
    ])
    assert.deepEqual(
      d.recipients.map((x) => [x.tag?.recorded, x.tag?.key, x.tag?.original, x.action, x.score]),
      [
        ['invalid key 1: expired', 1, 'bob@example.com', 'reject', 5],
        ['invalid key 1: bad signature', 1, 'bob@example.com', 'reject', 5],
        ['invalid key 5: unknown key', 5, 'bob@example.com', 'reject', 5],
        ['invalid: malformed', undefined, 'prvs=17x=bob@example.com', 'reject', 5],
      ],
    )
    assert.match(
      d.reply,
      /^550 5\.7\.1 Bounce refused: the signature \(BATV\) of <prvs=1792f288fc=bob@example\.com> is invalid or expired/,
    )
  })

  it('missing before [batv] missing_from is recorded, not scored; outside the signing domains nothing is checked', async () => {
    const dir = keysDir(dnsIni(dns.current, `\n${BATV}`))
    const d = await explainJson(dir, CLEAN, DAY, [
      'alice@example.com',
      'prvs=1792f288fc=bob@example.org',
      'postmaster@example.com',
    ])
    assert.deepEqual(
      d.recipients.map((x) => [x.rcpt, x.action, x.score, x.tag?.recorded, x.tag?.why, x.tag?.original]),
      [
        [
          '<alice@example.com>',
          'accept',
          0,
          'missing (not scored before [batv] missing_from)',
          undefined,
          'alice@example.com',
        ],
        [
          '<prvs=1792f288fc=bob@example.org>',
          'accept',
          0,
          'not checked',
          'example.org is not in [batv] domains',
          'prvs=1792f288fc=bob@example.org',
        ],
        [
          '<postmaster@example.com>',
          'accept',
          null,
          'not checked',
          'exempt recipient',
          'postmaster@example.com',
        ],
      ],
    )
  })

  it('mail that is not a checked bounce: the tag is only removed; with BATV off nothing is touched', async () => {
    const on = keysDir(batvDnsIni())
    const plain = await explainJson(on, CLEAN, DAY, ['prvs=1792f288fc=bob@example.com'], 'alice@example.net')
    assert.deepEqual(plain.recipients[0]?.tag, {
      result: 'not checked',
      recorded: 'not checked',
      why: 'not a checked bounce',
      score: 0,
      scored: false,
      original: 'bob@example.com',
    })
    const off = configDir(dnsIni(dns.current))
    const explainOff = (rcpt: string): Promise<Run> =>
      run(['explain', '--config', off, '--ip', CLEAN, '--from', '<>', '--rcpt', rcpt])
    const r = await explainOff('prvs=1792f288fc=bob@example.com')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^5\. Tags +not checked: BATV is off \(\[batv\] domains is empty\)$/m)
    assert.match(
      r.stdout,
      /^ +<prvs=1792f288fc=bob@example\.com> +not checked \(BATV is off \(\[batv\] domains is empty\)\) +0 +<prvs=1792f288fc=bob@example\.com>$/m,
    )
    assert.match(r.stdout, /^6\. Recipients$/m)
    // An untagged recipient with BATV off: the explanation is as before, without a Tags step.
    const before = await explainOff('bob@example.com')
    assert.doesNotMatch(before.stdout, /Tags/)
    assert.match(before.stdout, /^5\. Recipients$/m)
  })

  it('--date must be a real day', async () => {
    const r = await run([
      'explain',
      '--ip',
      CLEAN,
      '--from',
      '<>',
      '--rcpt',
      'a@example.com',
      '--date',
      '28/11/2026',
    ])
    assert.equal(r.code, 3)
    assert.match(r.stderr, /explain: --date "28\/11\/2026" is not a date YYYY-MM-DD/)
  })
})

describe('explain answers as the plugin does', () => {
  it('the same accept or refusal, reply text and delivered address for every recipient', async () => {
    const extra = '\n[recipient_domains]\nexample.net = off\n'
    const ini = batvDnsIni(extra)
    const nowMs = DAY_20785_MS + DAY_MS / 2
    const recipients = [
      'prvs=1792f288fc=bob@example.com',
      'PRVS=1792F288FC=Bob@Example.COM',
      'prvs=1792f288fd=bob@example.com',
      'prvs=3792f288fc=bob@example.com',
      'prvs==x@example.com',
      'alice@example.com',
      'postmaster@example.com',
      'alice@example.org',
      'prvs=1792f288fc=bob@example.org',
      'carol@example.net',
    ]
    const tp = makeTestPlugin(ini, { 'backscatter.keys': KEYS })
    tp.plugin.backscatter.now = () => nowMs
    try {
      for (const ip of [LISTED, CLEAN]) {
        const d = await explainJson(keysDir(ini), ip, DAY, recipients)
        for (const [i, to] of recipients.entries()) {
          const conn = makeConnection(ip)
          await mail(tp.plugin, conn, '<>')
          const a = addr(to)
          const r = await fixtures.callHook(tp.plugin, 'hook_rcpt', conn, [a, []])
          const msg = r.msg as { code?: number; reply?: string } | undefined
          const pluginReply = msg?.code ? `${msg.code} ${msg.reply}` : ''
          const line = d.recipients[i]
          const what = `${ip} ${to}`
          assert.equal(
            line?.action,
            r.rc === constants.DENY ? 'reject' : r.rc === undefined ? 'accept' : `rc ${r.rc}`,
            what,
          )
          assert.equal(
            line?.reply.replace(/^(\d{3}) \d\.\d\.\d /, '$1 '),
            pluginReply.replace(/^(\d{3}) \d\.\d\.\d /, '$1 '),
            what,
          )
          if (line?.tag) assert.equal(line.tag.original, (a as unknown as { address: string }).address, what)
        }
      }
    } finally {
      tp.close()
    }
  })
})
