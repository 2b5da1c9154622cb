// The ledger's pure core: a Message-ID's canonical form, its keyed hash as a
// bucket and a field, the keys and days, and what the lookups mean.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe, it } from 'node:test'

import { ageDays, judge, unknown, type Lookups } from '../lib/ledger/answer'
import {
  BUCKET_BITS,
  bucketKey,
  bucketTtlSeconds,
  canonicalMessageId,
  dayOf,
  daysOfWindow,
  FIELD_BYTES,
  ledgerEntry,
} from '../lib/ledger/entry'

const KEY = crypto.createSecretKey(Buffer.from('a ledger secret of some length', 'utf8'))
const OTHER = crypto.createSecretKey(Buffer.from('another secret of some length', 'utf8'))

describe('canonicalMessageId', () => {
  it('the text between < and >, without spaces and folding, the domain lower-cased', () => {
    assert.equal(canonicalMessageId('<Abc.123@Mail.Example.COM>'), 'Abc.123@mail.example.com')
    assert.equal(canonicalMessageId('  <abc.123@\r\n mail.example.com>\n'), 'abc.123@mail.example.com')
    assert.equal(canonicalMessageId('Message-ID: <a b@x>'), 'ab@x')
    assert.equal(canonicalMessageId('<CAF=x+Y@Mail.Gmail.com> (comment)'), 'CAF=x+Y@mail.gmail.com')
  })

  it('the left part keeps its case; an ID without brackets is taken whole', () => {
    assert.notEqual(canonicalMessageId('<ABC@x>'), canonicalMessageId('<abc@x>'))
    assert.equal(canonicalMessageId('abc@X.example'), 'abc@x.example')
    assert.equal(canonicalMessageId('no-at-sign'), 'no-at-sign')
  })

  it('the last @ starts the domain', () => {
    assert.equal(canonicalMessageId('<"a@B"@Host.Example>'), '"a@B"@host.example')
  })

  it('nothing left: undefined', () => {
    for (const raw of ['', '   ', '<>', '< \r\n >']) assert.equal(canonicalMessageId(raw), undefined, raw)
  })
})

describe('ledgerEntry', () => {
  it('the same ID as written in different headers gives the same entry', () => {
    const a = ledgerEntry(KEY, '<20261206.abc@Mail.Example.com>')
    const b = ledgerEntry(KEY, ' <20261206.abc@mail.example.COM\r\n >')
    assert.ok(a && b)
    assert.equal(a.bucket, b.bucket)
    assert.deepEqual(a.field, b.field)
  })

  it('a bucket of 12 bits and a field of 6 bytes, from HMAC-SHA256 with the key', () => {
    const id = 'x.1@example.com'
    const hash = crypto.createHmac('sha256', KEY).update(id).digest()
    const entry = ledgerEntry(KEY, `<${id}>`)
    assert.ok(entry)
    assert.equal(BUCKET_BITS, 12)
    assert.equal(entry.bucket, hash.readUInt16BE(0) >> 4)
    assert.deepEqual(entry.field, hash.subarray(2, 2 + FIELD_BYTES))
    assert.equal(entry.field.length, 6)
  })

  it('another key gives another entry: the ledger tells nothing without the secret', () => {
    const a = ledgerEntry(KEY, '<x@example.com>')
    const b = ledgerEntry(OTHER, '<x@example.com>')
    assert.ok(a && b)
    assert.notDeepEqual([a.bucket, a.field], [b.bucket, b.field])
  })

  it('spreads IDs evenly over the buckets', () => {
    const counts = new Map<number, number>()
    for (let i = 0; i < 40 * 4096; i++) {
      const bucket = ledgerEntry(KEY, `<${i}@example.com>`)!.bucket
      counts.set(bucket, (counts.get(bucket) ?? 0) + 1)
    }
    assert.equal(counts.size, 2 ** BUCKET_BITS)
    assert.ok([...counts.keys()].every((b) => b >= 0 && b < 2 ** BUCKET_BITS))
    // 40 a bucket on average: a bucket over 80 would be 6 standard deviations out.
    assert.ok(Math.max(...counts.values()) < 80, `fullest bucket ${Math.max(...counts.values())}`)
  })

  it('no ID: undefined', () => assert.equal(ledgerEntry(KEY, '<>'), undefined))
})

describe('keys and days', () => {
  it('a bucket key names the day and the bucket in three hex digits', () => {
    assert.equal(bucketKey(20793, 0x0a1), 'bs:l:20793:0a1')
    assert.equal(bucketKey(20793, 0xfff), 'bs:l:20793:fff')
  })

  it('days are whole UTC days since 1970', () => {
    assert.equal(dayOf(Date.parse('2026-12-06T00:00:00Z')), 20793)
    assert.equal(dayOf(Date.parse('2026-12-06T23:59:59.999Z')), 20793)
  })

  it('a bucket lives the window and one day more after its last write', () => {
    assert.equal(bucketTtlSeconds(30), 31 * 86400)
  })

  it('a check looks at today and the window before it', () => {
    assert.deepEqual(daysOfWindow(100, 3), [100, 99, 98, 97])
  })
})

describe('judge', () => {
  const base: Lookups = {
    references: [{ id: 'a@x', found: false }],
    complete: true,
    sinceDay: 100,
    today: 130,
    windowDays: 30,
  }

  it('ours when any reference is found, whatever the age', () => {
    const answer = judge({
      ...base,
      sinceDay: 129,
      references: [
        { id: 'a@x', found: false },
        { id: 'b@x', found: true },
      ],
    })
    assert.deepEqual(answer, {
      result: 'ours',
      reason: 'found',
      found: ['b@x'],
      noneFound: false,
      ageDays: 1,
    })
  })

  it('not ours when nothing is found and the ledger holds the whole window', () => {
    assert.deepEqual(judge(base), {
      result: 'not-ours',
      reason: 'not found',
      found: [],
      noneFound: true,
      ageDays: 30,
    })
  })

  it('young, one day short of the window: unknown, though every reference was looked up and none found', () => {
    assert.deepEqual(judge({ ...base, sinceDay: 101 }), {
      result: 'unknown',
      reason: 'young',
      found: [],
      noneFound: true,
      ageDays: 29,
    })
  })

  it('young with a reference found: ours, and not "none found"', () => {
    const answer = judge({
      ...base,
      sinceDay: 127,
      references: [
        { id: 'a@x', found: false },
        { id: 'b@x', found: true },
      ],
    })
    assert.equal(answer.result, 'ours')
    assert.equal(answer.noneFound, false)
  })

  it('nothing recorded yet: unknown, young', () => {
    assert.deepEqual(judge({ ...base, sinceDay: undefined }), {
      result: 'unknown',
      reason: 'young',
      found: [],
      noneFound: true,
    })
  })

  it('no references, or some left unchecked: unknown, not "none found", old or young', () => {
    for (const sinceDay of [100, 120, undefined]) {
      const none = judge({ ...base, sinceDay, references: [] })
      assert.deepEqual([none.reason, none.noneFound], ['no references', false])
      const partial = judge({ ...base, sinceDay, complete: false })
      assert.deepEqual([partial.reason, partial.noneFound], ['too many references', false])
    }
    assert.equal(unknown('timeout').noneFound, false)
  })

  it('the age counts from the first whole day, never below 0', () => {
    assert.equal(ageDays(undefined, 10), undefined)
    assert.equal(ageDays(11, 10), 0)
    assert.equal(ageDays(5, 10), 5)
  })
})
