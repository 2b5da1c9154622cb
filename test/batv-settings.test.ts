// [batv], [batv.keys] and [recipient_domains]: read once, problems named by
// key, secrets read as written and never quoted back.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { BatvKey, signAddress } from '../lib/batv'
import { dayText, secretsFromLines } from '../lib/batv-settings'
import { parseSettings, type ReadConfigLines } from '../lib/settings'
import { loadDeploymentIni } from './support/load-ini'

const NOON = Date.parse('2026-12-01T12:00:00Z')

/** A reader that serves `files` by name, as haraka-config's `data` type would. */
function files(texts: Record<string, string>): ReadConfigLines & { asked: string[] } {
  const asked: string[] = []
  const read = (name: string): readonly string[] | { error: string } => {
    asked.push(name)
    const text = texts[name]
    return text === undefined ? [] : text.split('\n')
  }
  return Object.assign(read, { asked })
}

/** Parse `ini` as Haraka would hand it over, with its text for the secrets. */
function parse(ini: string, more: Record<string, string> = {}) {
  const readLines = files({ 'backscatter.ini': ini, ...more })
  return { ...parseSettings(loadDeploymentIni(ini), { readLines, nowMs: NOON }), asked: readLines.asked }
}

/** Does `key` sign as a key made from `secret` does? */
function signsAs(key: BatvKey | undefined, secret: string): boolean {
  assert.ok(key, 'the key exists')
  const reference = BatvKey.create(key.id, secret)
  assert.ok(reference instanceof BatvKey)
  const a = signAddress('bob@example.com', key, 7, NOON)
  const b = signAddress('bob@example.com', reference, 7, NOON)
  return a.ok && b.ok && a.address === b.address
}

const ON = '[batv]\ndomains = example.com\nmissing_from = 2026-12-08\n'

describe('[batv] defaults', () => {
  const { settings, problems, errors, notes } = parseSettings({})

  it('BATV is off, and nothing is read for it', () => {
    const readLines = files({})
    parseSettings({}, { readLines })
    assert.deepEqual(readLines.asked, [], 'no file read while domains is empty')
    assert.equal(settings.batv.domains.size, 0)
    assert.equal(settings.batv.keys.size, 0)
    assert.equal(settings.batv.signKey, undefined)
    assert.deepEqual([...problems, ...errors, ...notes], [])
  })

  it('key 1 signs, 7 days, sign on, scores 5 / 5 / -10, missing not scored', () => {
    const b = settings.batv
    assert.equal(b.signKeyId, 1)
    assert.equal(b.lifetimeDays, 7)
    assert.equal(b.sign, true)
    assert.deepEqual(b.scores, { missing: 5, invalid: 5, valid: -10 })
    assert.equal(b.missingFrom, '')
    assert.equal(b.missingFromMs, undefined)
    assert.equal(b.unsignedRecipients.size, 0)
    assert.equal(b.keysFile, '')
  })

  it('no per-domain actions', () => assert.equal(settings.recipientActions.size, 0))
})

describe('[batv.keys]: the secrets, read from the text as written', () => {
  it('0123 stays the four characters 0123 (haraka-config would make it 123)', () => {
    const ini = `${ON}[batv.keys]\n1 = 0123\n`
    const raw = loadDeploymentIni(ini) as Record<string, Record<string, unknown>>
    assert.equal(raw['batv.keys']?.['1'], 123, "haraka-config's own value is a number")
    const { settings, problems, errors } = parse(ini)
    assert.deepEqual([...problems, ...errors], [])
    assert.ok(signsAs(settings.batv.keys.get(1), '0123'))
    assert.ok(!signsAs(settings.batv.keys.get(1), '123'))
  })

  it('everything after the = is the secret: " ;" and " #" belong to it, spaces around it do not', () => {
    const { settings } = parse(`${ON}[batv.keys]\n1 =   ab ;cd # ef=gh   \n`)
    assert.ok(signsAs(settings.batv.keys.get(1), 'ab ;cd # ef=gh'))
  })

  it('several keys; the sign key is chosen by sign_key', () => {
    const { settings } = parse(`${ON}sign_key = 2\n[batv.keys]\n1 = one\n2 = two\n`)
    assert.deepEqual([...settings.batv.keys.keys()], [1, 2])
    assert.equal(settings.batv.signKey?.id, 2)
    assert.ok(signsAs(settings.batv.signKey, 'two'))
  })

  it('comment lines and other sections are not keys', () => {
    const { settings, problems } = parse(
      `${ON}[batv.keys]\n; 1 = not this\n# 2 = nor this\n1 = yes\n[main]\n3 = x\n`,
    )
    assert.deepEqual([...settings.batv.keys.keys()], [1])
    assert.ok(
      problems.every((p) => !p.startsWith('[batv.keys]')),
      problems.join(' | '),
    )
  })

  it('a bad line, a bad key number, an empty or an overlong secret: named by line or key, never quoted', () => {
    const long = 'L'.repeat(65)
    const ini = `${ON}[batv.keys]\nhunter2-no-equals\n12 = s3cret-twelve\n3 =\n4 = ${long}\n5 = fine\n`
    const { settings, problems, errors } = parse(ini)
    assert.deepEqual([...settings.batv.keys.keys()], [5])
    assert.deepEqual(problems, [
      '[batv.keys] backscatter.ini line 5: not "N = secret" with a key number 0-9; ignored',
      '[batv.keys] backscatter.ini line 6: not "N = secret" with a key number 0-9; ignored',
      '[batv.keys] key 3: the secret is empty; left out',
      '[batv.keys] key 4: the secret is 65 bytes long; Exim refuses secrets over 64 bytes; left out',
    ])
    assert.deepEqual(errors, [
      '[batv] sign_key: no key 1 in [batv.keys] of backscatter.ini; signing is off, tags are checked with key 5',
    ])
    for (const p of [...problems, ...errors]) {
      for (const secret of ['hunter2', 's3cret', long, 'fine']) assert.ok(!p.includes(secret), p)
    }
  })

  it('a key given twice: the last one, with a warning', () => {
    const { settings, problems } = parse(`${ON}[batv.keys]\n1 = first\n1 = second\n`)
    assert.deepEqual(problems, ['[batv.keys] backscatter.ini line 6: key 1 is given again; this one is used'])
    assert.ok(signsAs(settings.batv.keys.get(1), 'second'))
  })

  it('secretsFromLines reads only [batv.keys]', () => {
    const { secrets, problems } = secretsFromLines(
      ['[batv]', '1 = no', '[batv.keys]', '2 = yes', '[x]', '3 = no'],
      'f',
    )
    assert.deepEqual([...secrets], [[2, 'yes']])
    assert.deepEqual(problems, [])
  })
})

describe('keys_file: the secrets in a file of their own', () => {
  const KEYS = '; the keys\n[batv.keys]\n1 = from-the-file\n2 = 0042\n'

  it('keys come from the file named, read as text', () => {
    const { settings, problems, errors, asked } = parse(`${ON}keys_file = backscatter_keys.ini\n`, {
      'backscatter_keys.ini': KEYS,
    })
    assert.deepEqual([...problems, ...errors], [])
    assert.deepEqual(asked, ['backscatter.ini', 'backscatter_keys.ini'])
    assert.ok(signsAs(settings.batv.keys.get(1), 'from-the-file'))
    assert.ok(signsAs(settings.batv.keys.get(2), '0042'))
    assert.equal(settings.batv.keysFile, 'backscatter_keys.ini')
  })

  it('a key number in both files: the file wins, with a warning', () => {
    const { settings, problems } = parse(`${ON}keys_file = k.ini\n[batv.keys]\n1 = main\n3 = three\n`, {
      'k.ini': KEYS,
    })
    assert.deepEqual(problems, ["[batv.keys] key 1 is in backscatter.ini and k.ini; k.ini's is used"])
    assert.ok(signsAs(settings.batv.keys.get(1), 'from-the-file'))
    assert.deepEqual([...settings.batv.keys.keys()].sort(), [1, 2, 3])
  })

  it('a file that cannot be read is named, and the keys that exist are used', () => {
    const readLines: ReadConfigLines = (name) =>
      name === 'backscatter.ini'
        ? `${ON}keys_file = ../x.ini\n[batv.keys]\n1 = k\n`.split('\n')
        : { error: 'escapes the config directory' }
    const { settings, problems, errors } = parseSettings(loadDeploymentIni(`${ON}keys_file = ../x.ini\n`), {
      readLines,
    })
    assert.deepEqual(errors, [])
    assert.deepEqual(problems, ['[batv] keys: cannot read ../x.ini: escapes the config directory'])
    assert.equal(settings.batv.keys.size, 1)
  })
})

describe('a signing domain without its keys', () => {
  it('no usable key at all: one error line, BATV off (checking with no key would refuse every real bounce)', () => {
    const { settings, errors } = parse(`${ON}[batv.keys]\n1 =\n`)
    assert.deepEqual(errors, [
      '[batv] domains: no usable key in [batv.keys] of backscatter.ini; signing and checking are off',
    ])
    assert.equal(settings.batv.domains.size, 0)
  })

  it('no sign key: one error line, nothing signed, tags checked with the keys that exist', () => {
    const { settings, errors } = parse(`${ON}sign_key = 3\n[batv.keys]\n1 = one\n2 = two\n`)
    assert.deepEqual(errors, [
      '[batv] sign_key: no key 3 in [batv.keys] of backscatter.ini; signing is off, tags are checked with key 1, 2',
    ])
    assert.equal(settings.batv.signKey, undefined)
    assert.deepEqual([...settings.batv.domains], ['example.com'])
    assert.equal(settings.batv.keys.size, 2)
  })

  it('no sign key but sign = false: no error, only checking was asked for', () => {
    const { errors } = parse(`${ON}sign = false\nsign_key = 3\n[batv.keys]\n1 = one\n`)
    assert.deepEqual(errors, [])
  })

  it('parsed without a way to read the text (e.g. an old caller): BATV off, said once', () => {
    const { settings, problems, errors } = parseSettings(loadDeploymentIni(`${ON}[batv.keys]\n1 = one\n`))
    assert.equal(settings.batv.domains.size, 0)
    assert.deepEqual(problems, ['[batv] keys: cannot read backscatter.ini: the file text was not read'])
    assert.equal(errors.length, 1)
  })
})

describe('[batv] missing_from: the rollout', () => {
  it('empty with signing domains: one note saying what to set, from the clock', () => {
    const { notes, settings } = parse('[batv]\ndomains = example.com\n[batv.keys]\n1 = k\n')
    assert.equal(settings.batv.missingFromMs, undefined)
    assert.deepEqual(notes, [
      '[batv] missing_from is empty: untagged bounces to example.com are recorded as missing but not scored. ' +
        'Once the bounces of mail sent unsigned have come back, set missing_from to the day signing started plus lifetime_days ' +
        '(for signing from today: missing_from = 2026-12-08)',
    ])
  })

  it('a date: 00:00 UTC of that day, no note', () => {
    const { settings, notes } = parse(`${ON}[batv.keys]\n1 = k\n`)
    assert.equal(settings.batv.missingFromMs, Date.parse('2026-12-08T00:00:00Z'))
    assert.deepEqual(notes, [])
  })

  for (const bad of ['2026-02-30', '08.12.2026', '2026-12-8', 'soon']) {
    it(`"${bad}" is refused: never scored, one line`, () => {
      const { settings, problems } = parseSettings({ batv: { missing_from: bad } })
      assert.deepEqual(problems, [
        `[batv] missing_from: "${bad}" is not a date YYYY-MM-DD; a missing tag is recorded, never scored`,
      ])
      assert.equal(settings.batv.missingFromMs, undefined)
    })
  }

  it('dayText', () => assert.equal(dayText(NOON, 31), '2027-01-01'))
})

describe('recipient lists', () => {
  it('exempt_recipients: local parts, addresses and @domains, lower case', () => {
    const { settings, problems } = parseSettings({
      main: { exempt_recipients: 'postmaster, NoReply@Example.COM, @Lists.Example.com, bad@@x, @nodot' },
    })
    assert.deepEqual(
      [...settings.exemptRecipients],
      ['postmaster', 'noreply@example.com', '@lists.example.com'],
    )
    assert.deepEqual(problems, [
      '[main] exempt_recipients: "bad@@x" is not a local part, an address or @domain; ignored',
      '[main] exempt_recipients: "@nodot" is not a local part, an address or @domain; ignored',
    ])
  })

  it('unsigned_recipients: addresses and @domains only', () => {
    const { settings, problems } = parseSettings({
      batv: { unsigned_recipients: 'list@lists.example.org, @groups.example.net, bob' },
    })
    assert.deepEqual([...settings.batv.unsignedRecipients], ['list@lists.example.org', '@groups.example.net'])
    assert.deepEqual(problems, ['[batv] unsigned_recipients: "bob" is not an address or @domain; ignored'])
  })

  it('domains: lower case, a bad name dropped', () => {
    const { settings, problems } = parse('[batv]\ndomains = Example.COM, not_a_domain\n[batv.keys]\n1 = k\n')
    assert.deepEqual([...settings.batv.domains], ['example.com'])
    assert.deepEqual(problems, ['[batv] domains: "not_a_domain" is not a domain name; ignored'])
  })
})

describe('[recipient_domains]: the action per recipient domain', () => {
  it('reject, defer, score and off, domains in lower case', () => {
    const { settings, problems, errors } = parse(
      '[recipient_domains]\nExample.com = defer\nexample.org = off\nexample.net = score   ; trial\n',
    )
    assert.deepEqual([...problems, ...errors], [])
    assert.deepEqual(
      [...settings.recipientActions],
      [
        ['example.com', 'defer'],
        ['example.org', 'off'],
        ['example.net', 'score'],
      ],
    )
  })

  it('an unknown action is an error and score is used: a typo never refuses', () => {
    const { settings, errors } = parseSettings({ recipient_domains: { 'example.com': 'rejekt' } })
    assert.deepEqual(errors, [
      '[recipient_domains] example.com: "rejekt" is not reject, defer, score or off; using score',
    ])
    assert.equal(settings.recipientActions.get('example.com'), 'score')
  })

  it('a key that is not a domain is an unknown setting', () => {
    const { problems } = parseSettings({ recipient_domains: { nodot: 'reject' } })
    assert.deepEqual(problems, ['[recipient_domains] nodot: unknown setting; ignored'])
  })

  it('[batv.keys] and [recipient_domains] are not zone sections', () => {
    const { problems } = parse(`${ON}[batv.keys]\n1 = k\n[recipient_domains]\nexample.com = reject\n`)
    assert.deepEqual(problems, [])
  })
})
