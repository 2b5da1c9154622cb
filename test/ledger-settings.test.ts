// [ledger] and its key in config/backscatter.keys: the mode in effect, the
// secret read as written and never shown, one error naming the fix without one.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { inspect } from 'node:util'
import { describe, it } from 'node:test'

import { parseKeysFile } from '../lib/batv/keys-file'
import { parseSettings, type ReadKeysFile } from '../lib/settings/parse'
import { redisUrlProblem, shownUrl } from '../lib/settings/redis-url'
import { loadDeploymentIni } from './support/load-ini'

const SECRET = '0123456789abcdef0123456789abcdef'
const NO_KEY =
  '[ledger] mode: no ledger key in config/backscatter.keys; the ledger is off, mail flows ' +
  '(add a line "ledger = <secret>" to config/backscatter.keys, e.g. the output of openssl rand -hex 32)'

/** Parse `ini` with `keys` as config/backscatter.keys (undefined: no such file); counts the reads. */
function parse(ini: string, keys?: string) {
  let reads = 0
  const readKeysFile: ReadKeysFile = () => {
    reads++
    return keys === undefined ? undefined : { lines: keys.split('\n'), mode: 0o100600 }
  }
  const parsed = parseSettings(loadDeploymentIni(ini), { readKeysFile, readLines: () => [] })
  return { ...parsed, reads: () => reads }
}

/** Everything the parse says, as one text: no secret may appear in it. */
const said = (p: ReturnType<typeof parse>): string =>
  JSON.stringify([p.problems, p.errors, p.keyProblems, p.notes, inspect(p.settings, { depth: 9 })])

describe('[ledger] defaults', () => {
  it('off, on the local Redis, a 30-day window, 300 ms, scores -10 and 5; the keys file is not read', () => {
    const p = parse('', `ledger = ${SECRET}`)
    assert.deepEqual(p.settings.ledger, {
      mode: 'off',
      redisUrl: 'redis://127.0.0.1:6379',
      windowDays: 30,
      timeoutMs: 300,
      scores: { ours: -10, notOurs: 5 },
      key: undefined,
    })
    assert.equal(p.reads(), 0)
    assert.deepEqual([...p.problems, ...p.errors], [])
  })

  it('not_ours_score reaches the default threshold: check mode with action reject refuses by default', () => {
    const { settings } = parse('')
    assert.ok(settings.ledger.scores.notOurs >= settings.threshold)
    assert.ok(settings.ledger.scores.ours < 0)
  })
})

describe('[ledger] with a key', () => {
  it('record and check take the key from the `ledger =` line, kept as written', () => {
    for (const mode of ['record', 'check'] as const) {
      const p = parse(`[ledger]\nmode = ${mode}\nwindow_days = 7\ntimeout_ms = 150`, `ledger = ${SECRET}`)
      assert.deepEqual([...p.problems, ...p.errors, ...p.keyProblems], [])
      assert.equal(p.settings.ledger.mode, mode)
      assert.equal(p.settings.ledger.windowDays, 7)
      assert.equal(p.settings.ledger.timeoutMs, 150)
      const key = p.settings.ledger.key
      assert.ok(key)
      const expected = crypto.createHmac('sha256', SECRET).update('x').digest('hex')
      assert.equal(crypto.createHmac('sha256', key).update('x').digest('hex'), expected)
    }
  })

  it('a secret that looks like a number stays text', () => {
    const p = parse('[ledger]\nmode = record', 'ledger = 00000000000000001234')
    const key = p.settings.ledger.key
    assert.ok(key)
    assert.equal(key.export().toString(), '00000000000000001234')
  })

  it('the secret appears in no line, and not when the settings are printed', () => {
    const p = parse('[ledger]\nmode = check', `ledger = ${SECRET}\n1 = ${SECRET}x\nbad line`)
    assert.ok(!said(p).includes(SECRET))
    assert.equal(p.keyProblems.length, 1)
  })

  it('BATV and the ledger share the file: read once, a bad line reported once, the ledger line no problem', () => {
    const p = parse(
      '[batv]\ndomains = example.com\n[ledger]\nmode = check',
      `1 = batv-secret\nledger = ${SECRET}\noops`,
    )
    assert.equal(p.reads(), 1)
    assert.deepEqual(p.keyProblems, [
      {
        severity: 'error',
        file: 'backscatter.keys',
        line: 3,
        text: 'no "=": each line is N=secret; line ignored, not shown',
      },
    ])
    assert.deepEqual([...p.settings.batv.keys.keys()], [1])
    assert.equal(p.settings.ledger.mode, 'check')
  })
})

describe('[ledger] without a usable key: one error naming the fix, the ledger off', () => {
  it('no keys file', () => {
    const p = parse('[ledger]\nmode = check')
    assert.deepEqual(p.errors, [NO_KEY])
    assert.equal(p.settings.ledger.mode, 'off')
    assert.equal(p.settings.ledger.key, undefined)
  })

  it('a keys file with BATV keys only', () => {
    const p = parse('[ledger]\nmode = record', `1 = ${SECRET}`)
    assert.deepEqual(p.errors, [NO_KEY])
    assert.equal(p.settings.ledger.mode, 'off')
  })

  it('a secret shorter than 16 bytes: left out, by its line', () => {
    const p = parse('[ledger]\nmode = check', '# keys\nledger = short')
    assert.deepEqual(p.keyProblems, [
      {
        severity: 'error',
        file: 'backscatter.keys',
        line: 2,
        text: 'the ledger secret is 5 bytes long, fewer than 16; left out',
      },
    ])
    assert.equal(p.errors.length, 1)
    assert.match(p.errors[0]!, /^\[ledger\] mode: no usable ledger key .*openssl rand -hex 32\)$/)
    assert.equal(p.settings.ledger.mode, 'off')
  })
})

describe('[ledger] bad values', () => {
  it('a mode that is no mode: off, with a line', () => {
    const p = parse('[ledger]\nmode = chek', `ledger = ${SECRET}`)
    assert.deepEqual(p.problems, ['[ledger] mode: "chek" is not off, record or check; using off'])
    assert.equal(p.settings.ledger.mode, 'off')
  })

  it('a bad redis_url: the default, and the line never quotes it (it may hold a password)', () => {
    const p = parse('[ledger]\nredis_url = http://user:pw-secret@example.com/', '')
    assert.deepEqual(p.problems, [
      '[ledger] redis_url: not a redis:// or rediss:// URL; using redis://127.0.0.1:6379',
    ])
    assert.equal(p.settings.ledger.redisUrl, 'redis://127.0.0.1:6379')
  })

  it('redis URLs: host, port, database, TLS', () => {
    for (const ok of ['redis://127.0.0.1:6379', 'redis://:pw@redis.example:6380/2', 'rediss://r.example'])
      assert.equal(redisUrlProblem(ok), undefined, ok)
    assert.equal(redisUrlProblem('localhost:6379'), 'not a redis:// or rediss:// URL')
    assert.equal(redisUrlProblem('127.0.0.1:6379'), 'not a URL such as redis://127.0.0.1:6379')
    assert.equal(redisUrlProblem('not a url'), 'not a URL such as redis://127.0.0.1:6379')
    assert.equal(redisUrlProblem('redis://h/x'), 'the path of the URL is not a database number')
  })

  it('a URL as logged hides its password', () => {
    assert.equal(shownUrl('redis://user:pw@127.0.0.1:6379/2'), 'redis://user:***@127.0.0.1:6379/2')
    assert.equal(shownUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379')
  })
})

describe('parseKeysFile: the ledger line', () => {
  it('`ledger = secret`, any case, beside the numbered keys; given twice, the last with a warning', () => {
    const { secrets, ledger, problems } = parseKeysFile(['1 = one', 'ledger = first', 'Ledger=second '])
    assert.deepEqual([...secrets.keys()], [1])
    assert.deepEqual(ledger, { secret: 'second', file: 'backscatter.keys', line: 3 })
    assert.deepEqual(problems, [
      {
        severity: 'warning',
        file: 'backscatter.keys',
        line: 3,
        text: "the ledger key is given again (first on line 2); this line's is used",
      },
    ])
  })
})
