// readReply over real reports: sisimai's set-of-emails (bounces from dozens of
// MTAs and providers, auto-replies, feedback reports, mail that is not a
// bounce) and the RFC 3798 read receipt from MimeKit's tests. The ground truth
// is test/fixtures/replies/manifest.json, made without lib/ledger/reply/ by
// make-manifest.py and checked by hand (README.md there).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { before, describe, it } from 'node:test'

import { readReply, type ReplyReading } from '../lib/ledger/reply/read'

const DIR = path.join(__dirname, 'fixtures', 'replies')

interface Truth {
  readonly kind: ReplyReading['kind']
  /** Message-IDs in the text below the file's own header: the returned original's, and those it nests. */
  readonly original: readonly string[]
  /** The file's own In-Reply-To and References. */
  readonly thread: readonly string[]
}

const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'manifest.json'), 'utf8')) as Record<string, Truth>
const readings = new Map<string, ReplyReading>()

/** The file's own Message-ID fields, read plainly from its header block. */
function ownIds(file: string): string[] {
  const text = fs.readFileSync(path.join(DIR, file), 'latin1').replace(/\r\n?/g, '\n')
  const head = text.slice(0, text.indexOf('\n\n') + 1 || undefined)
  return [...head.matchAll(/^message-id:\s*(<[^>\s]+>)/gim)].map((m) => m[1] ?? '')
}

before(async () => {
  for (const file of Object.keys(manifest))
    readings.set(file, await readReply(fs.readFileSync(path.join(DIR, file))))
})

const reading = (file: string): ReplyReading => readings.get(file) ?? assert.fail(`${file} not read`)

describe('the corpus', () => {
  it('holds the files the manifest names, and enough of them', () => {
    const files = Object.keys(manifest)
    assert.ok(files.length >= 600, `${files.length} files`)
    for (const file of files) assert.ok(fs.existsSync(path.join(DIR, file)), file)
  })
})

describe('the original is found', () => {
  it("in at least 95 % of the replies that carry the original's Message-ID", () => {
    const carrying = Object.entries(manifest).filter(([, t]) => t.kind !== 'none' && t.original.length > 0)
    const missed = carrying.filter(
      ([file, t]) => !reading(file).references.some((id) => t.original.includes(id)),
    )
    const rate = 1 - missed.length / carrying.length
    assert.ok(carrying.length >= 500, `${carrying.length} replies carry one`)
    assert.ok(
      rate >= 0.95,
      `found in ${(rate * 100).toFixed(1)} %; missed: ${missed.map(([f]) => f).join(', ')}`,
    )
  })

  it('in the read receipt: the Original-Message-ID first', () => {
    assert.deepEqual(reading('mimekit/disposition-notification.txt'), {
      kind: 'mdn',
      references: ['<199509192301.23456@example.org>'],
    })
  })

  it('in an auto-reply: In-Reply-To, then References', () => {
    assert.deepEqual(reading('sisimai/bsd/rfc3834-03.eml'), {
      kind: 'auto-reply',
      references: ['<25203A4E-F90F-4A14-BF51-3E7B9D39BE8E@libsisimai.org>'],
    })
    assert.deepEqual(reading('sisimai/bsd/rfc3834-05.eml'), {
      kind: 'auto-reply',
      references: ['<foobar@dummy.org>'],
    })
  })
})

describe('broken reports still give their original', () => {
  const cases: [string, string, string][] = [
    [
      'a part without Content-Type, whose header swallows the returned one',
      'lhost-x1-01.eml',
      '<000000000000000000000000000000000000@example.jp>',
    ],
    ['a boundary that never comes', 'rhost-franceptt-07.eml', '<1576612562.xxxx@xxxx.com>'],
    [
      'a returned header whose folded lines lost their indentation',
      'lhost-postfix-57.eml',
      '<44kWHZ2S3Qz1yxHC@rokujo.cr.nyaan.jp>',
    ],
  ]
  for (const [what, file, id] of cases) {
    it(what, () => {
      assert.deepEqual(reading(`sisimai/bsd/${file}`), { kind: 'dsn', references: [id] })
    })
  }

  it('an abuse feedback report stays none, from the null sender too', async () => {
    const arf = fs.readFileSync(path.join(DIR, 'sisimai/bsd/arf-01.eml'), 'latin1')
    assert.deepEqual(await readReply(arf, { nullSender: true }), { kind: 'none', references: [] })
  })
})

describe('nothing unrelated is returned', () => {
  it("never the report's own Message-ID", () => {
    for (const file of Object.keys(manifest)) {
      const own = ownIds(file)
      for (const id of reading(file).references) assert.ok(!own.includes(id), `${file}: its own ${id}`)
    }
  })

  it("only IDs of the returned text or of the reply's own In-Reply-To and References", () => {
    for (const [file, truth] of Object.entries(manifest)) {
      for (const id of reading(file).references) {
        assert.ok(truth.original.includes(id) || truth.thread.includes(id), `${file}: ${id} is unrelated`)
      }
    }
  })

  it('at most 10 references, each <left@right>', () => {
    for (const file of Object.keys(manifest)) {
      const refs = reading(file).references
      assert.ok(refs.length <= 10, file)
      for (const id of refs) assert.match(id, /^<[^<>\s@]+@[^<>\s@]+>$/, file)
      assert.equal(new Set(refs).size, refs.length, `${file}: duplicates`)
    }
  })

  it('mail that is not a reply is kind none, with no reference: feedback reports, a forwarded bounce, ordinary mail', () => {
    const none = Object.entries(manifest).filter(([, t]) => t.kind === 'none')
    assert.ok(none.length >= 15, `${none.length} files`)
    for (const [file] of none) assert.deepEqual(reading(file), { kind: 'none', references: [] }, file)
  })
})

describe('the kind', () => {
  it('is right for at least 95 % of the bounces and every auto-reply and read receipt', () => {
    const bounces = Object.entries(manifest).filter(([, t]) => t.kind === 'dsn')
    const wrong = bounces.filter(([file]) => reading(file).kind !== 'dsn').map(([f]) => f)
    assert.ok(1 - wrong.length / bounces.length >= 0.95, `not dsn: ${wrong.join(', ')}`)
    for (const [file, truth] of Object.entries(manifest)) {
      if (truth.kind === 'auto-reply' || truth.kind === 'mdn')
        assert.equal(reading(file).kind, truth.kind, file)
    }
  })

  it('and the references do not change with CRLF line ends', async () => {
    for (const file of [
      'sisimai/bsd/lhost-postfix-01.eml',
      'sisimai/bsd/lhost-qmail-01.eml',
      'sisimai/bsd/rfc3834-03.eml',
    ]) {
      const crlf = fs.readFileSync(path.join(DIR, file), 'latin1').replace(/\r?\n/g, '\r\n')
      assert.deepEqual(await readReply(Buffer.from(crlf, 'latin1')), reading(file), file)
    }
  })
})
