// [batv], [batv.keys] and [recipient_domains]: read once, problems named by
// key, secrets read as written and never quoted back.
import type { TagKey } from '../lib/core/types'
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { BatvKey, signAddress } from '../lib/batv/sign'
import { dayText, secretsFromLines } from '../lib/settings/batv'
import {
  parseSettings,
  type ConfigProblem,
  type ReadConfigLines,
  type ReadKeysFile,
} from '../lib/settings/parse'
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

/** config/backscatter.keys holding `text` with permission bits `mode`, or that cannot be read. */
type KeysFile = { text: string; mode?: number } | { error: string }

function keysFile(file: KeysFile | undefined): ReadKeysFile {
  return () => {
    if (file === undefined || 'error' in file) return file
    return { lines: file.text.split('\n'), mode: file.mode ?? 0o100600 }
  }
}

/** Parse `ini` as Haraka would hand it over, with the files' text for the secrets. */
function parse(ini: string, more: Record<string, string> = {}, keys?: KeysFile) {
  const readLines = files({ 'backscatter.ini': ini, ...more })
  const parsed = parseSettings(loadDeploymentIni(ini), {
    readLines,
    readKeysFile: keysFile(keys),
    nowMs: NOON,
  })
  return { ...parsed, asked: readLines.asked }
}

/** Parse `ini` with `keys` as config/backscatter.keys. */
const withKeys = (ini: string, keys: string, mode?: number) => parse(ini, {}, { text: keys, mode })

/** Does `key` sign as a key made from `secret` does? */
function signsAs(key: TagKey | undefined, secret: string): boolean {
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

describe('config/backscatter.keys: the secrets, read from the text as written', () => {
  it('0123 stays the four characters 0123 (haraka-config would make it 123); no problem', () => {
    const { settings, problems, errors, keyProblems } = withKeys(ON, '1 = 0123\n')
    assert.deepEqual([...problems, ...errors, ...keyProblems], [])
    assert.ok(signsAs(settings.batv.keys.get(1), '0123'))
    assert.ok(!signsAs(settings.batv.keys.get(1), '123'))
  })

  it('everything after the = is the secret: ;, #, = and a trailing backslash belong to it, spaces around it do not', () => {
    const { settings, keyProblems } = withKeys(ON, '1 =   ab ;cd # ef=gh   \n2=x\\\n3\t=\ty\t\n')
    assert.deepEqual(keyProblems, [])
    assert.ok(signsAs(settings.batv.keys.get(1), 'ab ;cd # ef=gh'))
    assert.ok(signsAs(settings.batv.keys.get(2), 'x\\'), 'the backslash is kept, the next line is not joined')
    assert.ok(signsAs(settings.batv.keys.get(3), 'y'))
  })

  it('several keys; the sign key is chosen by sign_key', () => {
    const { settings } = withKeys(`${ON}sign_key = 2\n`, '1=one\n2=two\n')
    assert.deepEqual([...settings.batv.keys.keys()], [1, 2])
    assert.equal(settings.batv.signKey?.id, 2)
    assert.ok(signsAs(settings.batv.signKey, 'two'))
  })

  it('# comment lines and blank lines are not keys', () => {
    const { settings, keyProblems } = withKeys(ON, '# the keys\n  # 2 = not this\n\n \t\n1 = yes\n')
    assert.deepEqual(keyProblems, [])
    assert.deepEqual([...settings.batv.keys.keys()], [1])
  })

  it('a line that is not N=secret is an error naming its line, never its text; the other keys are used', () => {
    const lines = [
      'hunter2-no-equals',
      '12 = s3cret-twelve',
      '[batv.keys]',
      '; 3 = semi',
      'a = b',
      '5 = fine',
    ]
    const { settings, keyProblems, errors } = withKeys(ON, lines.join('\n'))
    assert.deepEqual([...settings.batv.keys.keys()], [5])
    assert.deepEqual(keyProblems, [
      {
        severity: 'error',
        file: 'backscatter.keys',
        line: 1,
        text: 'no "=": each line is N=secret; line ignored, not shown',
      },
      {
        severity: 'error',
        file: 'backscatter.keys',
        line: 2,
        text: 'not N=secret with a key number 0-9; line ignored, not shown',
      },
      {
        severity: 'error',
        file: 'backscatter.keys',
        line: 3,
        text: 'a section heading: this file holds N=secret lines only; line ignored, not shown',
      },
      {
        severity: 'error',
        file: 'backscatter.keys',
        line: 4,
        text: 'comments start with #, not ;; line ignored, not shown',
      },
      {
        severity: 'error',
        file: 'backscatter.keys',
        line: 5,
        text: 'not N=secret with a key number 0-9; line ignored, not shown',
      },
    ])
    assert.deepEqual(errors, [
      '[batv] sign_key: no key 1 among the BATV keys; signing is off, tags are checked with key 5',
    ])
    assertQuotesNone(keyProblems, errors, ['hunter2', 's3cret', 'semi', 'fine'])
  })

  it('an empty or an overlong secret: an error at its line, the key left out', () => {
    const long = 'L'.repeat(65)
    const { settings, keyProblems } = withKeys(ON, `1 = ok\n3 =\n4 = ${long}\n`)
    assert.deepEqual([...settings.batv.keys.keys()], [1])
    assert.deepEqual(keyProblems, [
      { severity: 'error', file: 'backscatter.keys', line: 2, text: 'key 3: the secret is empty; left out' },
      {
        severity: 'error',
        file: 'backscatter.keys',
        line: 3,
        text: 'key 4: the secret is 65 bytes long; Exim refuses secrets over 64 bytes; left out',
      },
    ])
    assertQuotesNone(keyProblems, [], [long])
  })

  it('a key given twice: the last one, with a warning naming both lines', () => {
    const { settings, keyProblems } = withKeys(ON, '1 = first\n1 = second\n')
    assert.deepEqual(keyProblems, [
      {
        severity: 'warning',
        file: 'backscatter.keys',
        line: 2,
        text: "key 1 is given again (first on line 1); this line's is used",
      },
    ])
    assert.ok(signsAs(settings.batv.keys.get(1), 'second'))
  })

  for (const mode of [0o100644, 0o100640, 0o100604, 0o100660]) {
    it(`mode ${(mode & 0o777).toString(8)}: readable by group or others, a warning naming the mode, as ssh gives`, () => {
      const { settings, keyProblems } = withKeys(ON, '1 = k\n', mode)
      const octal = (mode & 0o7777).toString(8).padStart(4, '0')
      assert.deepEqual(keyProblems, [
        {
          severity: 'warning',
          file: 'backscatter.keys',
          text: `mode ${octal}: group or others can read the BATV secrets; make it readable by the Haraka user only (chmod 600)`,
        },
      ])
      assert.equal(settings.batv.keys.size, 1, 'the keys are used all the same')
    })
  }

  it('mode 600 or 400: no warning', () => {
    for (const mode of [0o100600, 0o100400]) assert.deepEqual(withKeys(ON, '1 = k\n', mode).keyProblems, [])
  })

  it('a file that cannot be read: an error naming why; BATV off without another key', () => {
    const { settings, keyProblems, errors } = parse(ON, {}, { error: 'permission denied (EACCES)' })
    assert.deepEqual(keyProblems, [
      { severity: 'error', file: 'backscatter.keys', text: 'cannot read it: permission denied (EACCES)' },
    ])
    assert.deepEqual(errors, [
      '[batv] domains: no usable key in config/backscatter.keys; signing and checking are off',
    ])
    assert.equal(settings.batv.domains.size, 0)
  })

  it('BATV off (no domains): the file is not read', () => {
    let read = 0
    parseSettings({}, { readKeysFile: () => (read++, { lines: ['1 = k'] }) })
    assert.equal(read, 0)
  })
})

describe('keys where they were kept before: [batv.keys] and keys_file, read for one more release', () => {
  const LEGACY_WARNING =
    "[batv.keys]: key 1 read from here for one more release; haraka-config prints a mistyped line of backscatter.ini in Haraka's log, secret included. " +
    'BATV keys belong in config/backscatter.keys now, one N=secret a line'

  it('[batv.keys] of backscatter.ini: used, read as text, with a warning saying where keys belong now', () => {
    const ini = `${ON}[batv.keys]\n1 = 0123\n`
    const raw = loadDeploymentIni(ini) as Record<string, Record<string, unknown>>
    assert.equal(raw['batv.keys']?.['1'], 123, "haraka-config's own value is a number")
    const { settings, problems, errors, keyProblems } = parse(ini)
    assert.deepEqual([...problems, ...errors], [])
    assert.deepEqual(keyProblems, [
      { severity: 'warning', file: 'backscatter.ini', line: 4, text: LEGACY_WARNING },
    ])
    assert.ok(signsAs(settings.batv.keys.get(1), '0123'))
  })

  it('comment lines and other sections are not keys', () => {
    const { settings, keyProblems } = parse(
      `${ON}[batv.keys]\n; 1 = not this\n# 2 = nor this\n1 = yes\n[main]\n3 = x\n`,
    )
    assert.deepEqual([...settings.batv.keys.keys()], [1])
    assert.deepEqual(
      keyProblems.map((p) => p.text),
      [LEGACY_WARNING],
    )
  })

  it('a mistyped line: named by its line, never quoted, in the problems', () => {
    const ini = `${ON}[batv.keys]\n1 sup3rs3cret\n12 = s3cret-twelve\n5 = fine\n`
    const { settings, keyProblems, errors } = parse(ini)
    assert.deepEqual([...settings.batv.keys.keys()], [5])
    const bad =
      '[batv.keys]: not "N = secret" with a key number 0-9; ignored (haraka-config may print the line in Haraka\'s log)'
    assert.deepEqual(keyProblems.slice(0, 2), [
      { severity: 'warning', file: 'backscatter.ini', line: 5, text: bad },
      { severity: 'warning', file: 'backscatter.ini', line: 6, text: bad },
    ])
    assertQuotesNone(keyProblems, errors, ['sup3rs3cret', 's3cret', 'fine'])
  })

  it('a secret ending in a backslash: kept, with a warning that haraka-config joins it with the next line', () => {
    const { settings, keyProblems } = parse(`${ON}[batv.keys]\n1 = abc\\\n`)
    assert.ok(signsAs(settings.batv.keys.get(1), 'abc\\'))
    assert.match(
      keyProblems[0]?.text ?? '',
      /^\[batv\.keys\] key 1: the secret ends with a backslash, which haraka-config joins/,
    )
    assert.equal(keyProblems[0]?.line, 5)
  })

  it('keys_file: keys from the file named, read as text, with a warning saying where keys belong now', () => {
    const { settings, problems, errors, keyProblems, asked } = parse(
      `${ON}keys_file = backscatter_keys.ini\n`,
      {
        'backscatter_keys.ini': '; the keys\n[batv.keys]\n1 = from-the-file\n2 = 0042\n',
      },
    )
    assert.deepEqual([...problems, ...errors], [])
    assert.deepEqual(asked, ['backscatter.ini', 'backscatter_keys.ini'])
    assert.deepEqual(keyProblems, [
      {
        severity: 'warning',
        file: 'backscatter_keys.ini',
        line: 2,
        text:
          '[batv.keys]: key 1, 2 read from here for one more release (named by [batv] keys_file). ' +
          'BATV keys belong in config/backscatter.keys now, one N=secret a line',
      },
    ])
    assert.ok(signsAs(settings.batv.keys.get(1), 'from-the-file'))
    assert.ok(signsAs(settings.batv.keys.get(2), '0042'))
    assert.equal(settings.batv.keysFile, 'backscatter_keys.ini')
  })

  it('a key number in backscatter.ini and keys_file: keys_file wins, with a warning', () => {
    const { settings, keyProblems } = parse(`${ON}keys_file = k.ini\n[batv.keys]\n1 = main\n3 = three\n`, {
      'k.ini': '[batv.keys]\n1 = from-the-file\n2 = 0042\n',
    })
    assert.ok(
      keyProblems.some(
        (p) =>
          p.file === 'k.ini' &&
          p.line === 2 &&
          p.text === '[batv.keys] key 1 is also in [batv.keys] of backscatter.ini (line 6); this one is used',
      ),
      JSON.stringify(keyProblems),
    )
    assert.ok(signsAs(settings.batv.keys.get(1), 'from-the-file'))
    assert.deepEqual([...settings.batv.keys.keys()].sort(), [1, 2, 3])
  })

  it('config/backscatter.keys wins over both for the same key number, with a warning; the others are still used', () => {
    const ini = `${ON}keys_file = k.ini\n[batv.keys]\n1 = old-main\n3 = three\n`
    const { settings, keyProblems } = parse(
      ini,
      { 'k.ini': '[batv.keys]\n2 = old-file\n' },
      { text: '1 = new\n2 = two\n' },
    )
    assert.ok(signsAs(settings.batv.keys.get(1), 'new'))
    assert.ok(signsAs(settings.batv.keys.get(2), 'two'))
    assert.ok(signsAs(settings.batv.keys.get(3), 'three'))
    const newFile = keyProblems.filter((p) => p.file === 'backscatter.keys')
    assert.deepEqual(newFile, [
      {
        severity: 'warning',
        file: 'backscatter.keys',
        line: 1,
        text: "key 1 is also in [batv.keys] of backscatter.ini (line 6); this file's is used",
      },
      {
        severity: 'warning',
        file: 'backscatter.keys',
        line: 2,
        text: "key 2 is also in [batv.keys] of k.ini (line 2); this file's is used",
      },
    ])
    assert.equal(keyProblems.filter((p) => p.text.includes('read from here for one more release')).length, 2)
  })

  it('a keys_file that cannot be read is named, and the keys that exist are used', () => {
    const readLines: ReadConfigLines = (name) =>
      name === 'backscatter.ini'
        ? `${ON}keys_file = ../x.ini\n[batv.keys]\n1 = k\n`.split('\n')
        : { error: 'escapes the config directory' }
    const { settings, problems, errors } = parseSettings(loadDeploymentIni(`${ON}keys_file = ../x.ini\n`), {
      readLines,
    })
    assert.deepEqual(errors, [])
    assert.deepEqual(problems, ['[batv] keys_file: cannot read ../x.ini: escapes the config directory'])
    assert.equal(settings.batv.keys.size, 1)
  })

  it('secretsFromLines reads only [batv.keys]', () => {
    const { secrets, problems, heading } = secretsFromLines(
      ['[batv]', '1 = no', '[batv.keys]', '2 = yes', '[x]', '3 = no'],
      'f',
    )
    assert.deepEqual([...secrets], [[2, { secret: 'yes', file: 'f', line: 4 }]])
    assert.deepEqual(problems, [])
    assert.equal(heading, 3)
  })
})

/** No problem quotes any of `secrets`. */
function assertQuotesNone(
  keyProblems: readonly ConfigProblem[],
  lines: readonly string[],
  secrets: string[],
): void {
  for (const text of [...keyProblems.map((p) => p.text), ...lines]) {
    for (const secret of secrets) assert.ok(!text.includes(secret), text)
  }
}

describe('a signing domain without its keys', () => {
  it('no usable key at all: one error line, BATV off (checking with no key would refuse every real bounce)', () => {
    const { settings, errors } = withKeys(ON, '1 =\n')
    assert.deepEqual(errors, [
      '[batv] domains: no usable key in config/backscatter.keys; signing and checking are off',
    ])
    assert.equal(settings.batv.domains.size, 0)
  })

  it('no file at all: the same one error line', () => {
    const { settings, errors, keyProblems } = parse(ON)
    assert.deepEqual(errors, [
      '[batv] domains: no usable key in config/backscatter.keys; signing and checking are off',
    ])
    assert.deepEqual(keyProblems, [])
    assert.equal(settings.batv.domains.size, 0)
  })

  it('no sign key: one error line, nothing signed, tags checked with the keys that exist', () => {
    const { settings, errors } = withKeys(`${ON}sign_key = 3\n`, '1 = one\n2 = two\n')
    assert.deepEqual(errors, [
      '[batv] sign_key: no key 3 among the BATV keys; signing is off, tags are checked with key 1, 2',
    ])
    assert.equal(settings.batv.signKey, undefined)
    assert.deepEqual([...settings.batv.domains], ['example.com'])
    assert.equal(settings.batv.keys.size, 2)
  })

  it('no sign key but sign = false: no error, only checking was asked for', () => {
    const { errors } = withKeys(`${ON}sign = false\nsign_key = 3\n`, '1 = one\n')
    assert.deepEqual(errors, [])
  })

  it('parsed without a way to read the files (e.g. an old caller): BATV off, said once', () => {
    const { settings, problems, errors } = parseSettings(loadDeploymentIni(`${ON}[batv.keys]\n1 = one\n`))
    assert.equal(settings.batv.domains.size, 0)
    assert.deepEqual(problems, [])
    assert.equal(errors.length, 1)
  })
})

describe('[batv] missing_from: the rollout', () => {
  it('empty with signing domains: one note saying what to set, from the clock', () => {
    const { notes, settings } = withKeys('[batv]\ndomains = example.com\n', '1 = k\n')
    assert.equal(settings.batv.missingFromMs, undefined)
    assert.deepEqual(notes, [
      '[batv] missing_from is empty: untagged bounces to example.com are recorded as missing but not scored. ' +
        'Once the bounces of mail sent unsigned have come back, set missing_from to the day signing started plus lifetime_days ' +
        '(for signing from today: missing_from = 2026-12-08)',
    ])
  })

  it('a date: 00:00 UTC of that day, no note', () => {
    const { settings, notes } = withKeys(ON, '1 = k\n')
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
