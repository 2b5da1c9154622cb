// Reading a received message back at the end of DATA (lib/haraka/message-prefix.ts),
// from haraka-message-stream as Haraka fills it: bounded in bytes and in time, the
// stream left free for the next reader.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import HarakaMessageStream from 'haraka-message-stream'

import { readMessagePrefix, type MessageStream } from '../lib/haraka/message-prefix'

/** A message stream as Haraka leaves it after DATA: every line added, the end marked. */
async function received(lines: readonly string[]): Promise<MessageStream> {
  const ms = new HarakaMessageStream({ main: {} }, 'test-uuid')
  for (const l of lines) ms.add_line(`${l}\r\n`)
  await new Promise<void>((resolve) => ms.add_line_end(() => resolve()))
  return ms
}

describe('readMessagePrefix', () => {
  it('reads the whole of a small message, dots unstuffed', async () => {
    const ms = await received(['Subject: hi', '', '..a dotted line', 'end'])
    const got = await readMessagePrefix(ms, 1024, 1000)
    assert.equal(got.toString(), 'Subject: hi\r\n\r\n.a dotted line\r\nend\r\n')
  })

  it('stops at maxBytes, and the stream can be read again in full afterwards', async () => {
    const body = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'x'.repeat(60)}`)
    const ms = await received(['Subject: big', '', ...body])
    const got = await readMessagePrefix(ms, 4096, 1000)
    assert.equal(got.length, 4096)
    assert.ok(got.toString().startsWith('Subject: big\r\n'))
    const all = await readMessagePrefix(ms, 10_000_000, 1000)
    assert.ok(all.length > 100_000, 'the next reader gets the whole message')
  })

  it('a stream that never ends answers with what it had when the time is up', async () => {
    const never: MessageStream = { pipe: () => undefined, unpipe: () => undefined }
    const started = Date.now()
    const got = await readMessagePrefix(never, 1024, 50)
    assert.equal(got.length, 0)
    assert.ok(Date.now() - started < 1000)
  })

  it('a stream that throws on pipe answers empty, never rejects', async () => {
    const broken: MessageStream = {
      pipe: () => {
        throw new Error('Cannot pipe while currently piping')
      },
    }
    assert.equal((await readMessagePrefix(broken, 1024, 1000)).length, 0)
  })
})
