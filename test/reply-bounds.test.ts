// readReply on what no corpus holds: RFC 6533 reports, the byte limit, and
// truncated, huge, deeply nested and malformed input, which must stay bounded
// and never throw. Plus the Message-ID syntax the references keep to.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { headerFields, messageIds, quotedMessageIds } from '../lib/ledger/reply/message-id'
import { MAX_REFERENCES, MAX_REPLY_BYTES, readReply } from '../lib/ledger/reply/read'
import { prng } from './support/prng'

const KINDS = new Set(['dsn', 'mdn', 'auto-reply', 'challenge', 'none'])
const ID_SHAPE = /^<[^<>\s@]+@[^<>\s@]+>$/

/** A multipart/report with `parts` ([Content-Type, content]), as an MTA builds one. */
function report(reportType: string, parts: [string, string][], head = ''): string {
  const body = parts.map(([type, content]) => `--b\nContent-Type: ${type}\n\n${content}\n`).join('')
  return (
    `From: MAILER-DAEMON@mx.example.net\nMessage-ID: <report-1@mx.example.net>\n${head}` +
    `Content-Type: multipart/report; report-type=${reportType}; boundary="b"\n\n${body}--b--\n`
  )
}

const NOTICE: [string, string] = ['text/plain', 'Your message could not be delivered.']

describe('RFC 6533 internationalised reports', () => {
  it('message/global-delivery-status with message/global-headers: a dsn, the UTF-8 ID kept', async () => {
    const raw = report('global-delivery-status', [
      NOTICE,
      [
        'message/global-delivery-status',
        'Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: utf-8; josé@example.org\nAction: failed\nStatus: 5.1.1',
      ],
      ['message/global-headers', 'From: josé@example.com\nMessage-ID: <naïve.1@example.com>\nSubject: hola'],
    ])
    assert.deepEqual(await readReply(Buffer.from(raw)), {
      kind: 'dsn',
      references: ['<naïve.1@example.com>'],
    })
  })

  it('message/global (a returned whole message) and a global read receipt', async () => {
    const dsn = report('global-delivery-status', [
      NOTICE,
      ['message/global-delivery-status', 'Reporting-MTA: dns; mx.example.net'],
      ['message/global', 'Message-ID: <whole@example.com>\n\nbody'],
    ])
    assert.deepEqual(await readReply(dsn), { kind: 'dsn', references: ['<whole@example.com>'] })
    const mdn = report('global-disposition-notification', [
      ['text/plain', 'Displayed.'],
      [
        'message/global-disposition-notification',
        'Reporting-UA: ua.example.net\nOriginal-Message-ID: <read@example.com>\nDisposition: manual-action/MDN-sent-manually; displayed',
      ],
    ])
    assert.deepEqual(await readReply(mdn), { kind: 'mdn', references: ['<read@example.com>'] })
  })
})

describe('the byte limit', () => {
  const padded = (padBytes: number): string =>
    report('delivery-status', [
      [
        'text/plain',
        'x'
          .repeat(76)
          .concat('\n')
          .repeat(Math.ceil(padBytes / 77)),
      ],
      ['message/delivery-status', 'Reporting-MTA: dns; mx.example.net'],
      ['message/rfc822', 'Message-ID: <far@example.com>\n\nbody'],
    ])

  it(`reads the first ${MAX_REPLY_BYTES / 1024} KiB by default: an original after them is not seen`, async () => {
    assert.deepEqual((await readReply(padded(100 * 1024))).references, ['<far@example.com>'])
    assert.deepEqual(await readReply(padded(MAX_REPLY_BYTES)), { kind: 'dsn', references: [] })
  })

  it('maxBytes moves the limit, for strings and buffers alike', async () => {
    const raw = padded(MAX_REPLY_BYTES)
    assert.deepEqual((await readReply(raw, { maxBytes: 2 * MAX_REPLY_BYTES })).references, [
      '<far@example.com>',
    ])
    assert.deepEqual((await readReply(Buffer.from(padded(4096)), { maxBytes: 1024 })).references, [])
  })

  it('a 32 MB message is read only as far as the limit', async () => {
    const huge = Buffer.concat([Buffer.from(padded(1024)), Buffer.alloc(32 * 1024 * 1024, 0x41)])
    assert.deepEqual(await readReply(huge), { kind: 'dsn', references: ['<far@example.com>'] })
  })
})

describe('bad input never throws', () => {
  it('a real report cut at every 61st byte gives a kind and only its own IDs', async () => {
    const file = path.join(__dirname, 'fixtures', 'replies', 'sisimai', 'bsd', 'rfc3464-01.eml')
    const raw = fs.readFileSync(file)
    const whole = await readReply(raw)
    for (let end = 0; end < raw.length; end += 61) {
      const r = await readReply(raw.subarray(0, end))
      assert.ok(KINDS.has(r.kind), `cut at ${end}`)
      for (const id of r.references) assert.ok(whole.references.includes(id), `cut at ${end}: ${id}`)
    }
  })

  it('5000 nested multiparts and 300 nested messages', async () => {
    const depth = 5000
    let nested = 'Content-Type: text/plain\n\nMessage-ID: <deep@example.com>\n'
    for (let i = 0; i < depth; i++)
      nested = `Content-Type: multipart/mixed; boundary="n${i}"\n\n--n${i}\n${nested}--n${i}--\n`
    const r = await readReply(`From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail\n${nested}`)
    assert.ok(KINDS.has(r.kind))
    let messages = 'Message-ID: <inner@example.com>\n\nbody\n'
    for (let i = 0; i < 300; i++) messages = `Content-Type: message/rfc822\n\n${messages}`
    const m = await readReply(
      report('delivery-status', [
        NOTICE,
        ['message/delivery-status', 'Action: failed'],
        ['message/rfc822', messages],
      ]),
    )
    assert.equal(m.kind, 'dsn')
  })

  it('random bytes, NULs, an empty message, headers only, no header at all, not a buffer', async () => {
    const rand = prng(21)
    for (let n = 0; n < 50; n++) {
      const bytes = Buffer.from(
        Array.from({ length: Math.floor(rand() * 4000) }, () => Math.floor(rand() * 256)),
      )
      const r = await readReply(bytes)
      assert.ok(KINDS.has(r.kind))
      for (const id of r.references) assert.match(id, ID_SHAPE)
    }
    for (const raw of [
      '',
      '\0\0\0',
      'Subject: x\n',
      'no header here\n\nMessage-ID: <a@b>',
      'Content-Type: multipart/report; boundary=\n\n--\n--\n',
    ]) {
      assert.ok(KINDS.has((await readReply(raw)).kind), JSON.stringify(raw))
    }
    assert.deepEqual(await readReply(42 as unknown as string), { kind: 'none', references: [] })
    assert.deepEqual(await readReply(null as unknown as string), { kind: 'none', references: [] })
  })

  it("never returns the report's own ID, even quoted in its body", async () => {
    const raw = report('delivery-status', [
      ['text/plain', 'Message-ID: <report-1@mx.example.net>\n> Message-ID:\n>  <orig@example.com>'],
      ['message/delivery-status', 'Action: failed'],
    ])
    assert.deepEqual(await readReply(raw), { kind: 'dsn', references: ['<orig@example.com>'] })
  })
})

describe('how many references', () => {
  const autoReply = (refs: number): string =>
    'From: bob@example.net\nAuto-Submitted: auto-replied\nIn-Reply-To: <parent@example.com>\n' +
    `References: ${Array.from({ length: refs }, (_, i) => `<thread-${i}@example.com>`).join(' ')}\n\nAway.\n`

  it(`at most ${MAX_REFERENCES}, the most telling first; more: the reading says not all are there`, async () => {
    const many = await readReply(autoReply(MAX_REFERENCES + 2))
    assert.equal(many.kind, 'auto-reply')
    assert.equal(many.references.length, MAX_REFERENCES)
    assert.equal(many.references[0], '<parent@example.com>')
    assert.equal(many.truncated, true)
    // A report quoting each header twice: the repeats do not hide that some were left out.
    const quoted = Array.from({ length: MAX_REFERENCES + 2 }, (_, i) => `Message-ID: <m${i}@example.com>`)
    const twice = await readReply(
      'From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender\n\n' +
        `Your message could not be delivered.\n\n${quoted.flatMap((l) => [l, l]).join('\n')}\n`,
      { nullSender: true },
    )
    assert.equal(twice.kind, 'dsn')
    assert.equal(twice.references.length, MAX_REFERENCES)
    assert.equal(twice.truncated, true)
    const enough = await readReply(autoReply(MAX_REFERENCES - 1))
    assert.equal(enough.references.length, MAX_REFERENCES)
    assert.equal(enough.truncated, undefined)
  })
})

describe('Message-ID syntax', () => {
  it('keeps <left@right>, also bare, and drops HTML-escaped, cut and spaced forms', () => {
    assert.deepEqual(messageIds(' <a.b@c.d>\n <e@[192.0.2.1]>'), ['<a.b@c.d>', '<e@[192.0.2.1]>'])
    assert.deepEqual(messageIds('bare.id@host.example'), ['<bare.id@host.example>'])
    assert.deepEqual(messageIds('<&lt;x@y.z&gt;>'), [])
    assert.deepEqual(messageIds('<x@mail.gmail=>'), [])
    assert.deepEqual(messageIds('<a b@c>'), [])
    assert.deepEqual(messageIds(`<${'x'.repeat(300)}@y>`), [])
  })

  it('a returned header block: folded lines joined, unindented ones too, up to the empty line', () => {
    const block =
      'Received: from a\nby b (Postfix)\n\twith ESMTP\nMessage-ID: <m@x>\nSubject: s\n\nMessage-ID: <body@x>\n'
    const fields = headerFields(block)
    assert.deepEqual(fields.get('received'), ['from a by b (Postfix) with ESMTP'])
    assert.deepEqual(fields.get('message-id'), ['<m@x>'])
  })

  it('quoted headers: indented, after > or |, folded onto the next line; Message-ID lines only', () => {
    const text =
      '  Message-Id: <one@x>\n> message-id:\n>    <two@x>\n| Message-ID: <three@x>\nIn-Reply-To: <no@x>\n'
    assert.deepEqual(quotedMessageIds(text, 10), ['<one@x>', '<two@x>', '<three@x>'])
    assert.deepEqual(quotedMessageIds(text, 2), ['<one@x>', '<two@x>'])
  })
})
