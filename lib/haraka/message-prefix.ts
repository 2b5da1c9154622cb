// The first bytes of a received message, read back from Haraka's message
// stream at the end of DATA. Only a message a machine sent in reply is read,
// and only as far as its report and the headers it returns can reach.
import { Writable } from 'node:stream'

/** Haraka's transaction.message_stream, as far as it is used here (haraka-message-stream 2.x). */
export interface MessageStream {
  pipe(destination: Writable, options?: { dot_stuffed?: boolean; line_endings?: string }): unknown
  unpipe?(): void
}

/**
 * Up to `maxBytes` of the message as received (dots unstuffed), within
 * `timeoutMs`; what was read by then when the time runs out. Never rejects
 * for a stream error: the bytes read so far are the answer.
 */
export function readMessagePrefix(
  stream: MessageStream,
  maxBytes: number,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    let settled = false
    const finish = (): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      // The stream allows one reader at a time: stop this one so later plugins can read.
      if (size >= maxBytes || !sink.writableFinished) stream.unpipe?.()
      resolve(Buffer.concat(chunks, Math.min(size, maxBytes)))
    }
    const sink = new Writable({
      write(chunk: Buffer, _enc, callback): void {
        if (settled) return callback()
        chunks.push(chunk)
        size += chunk.length
        callback()
        if (size >= maxBytes) finish()
      },
    })
    sink.on('finish', finish)
    sink.on('error', finish)
    const timer = setTimeout(finish, timeoutMs)
    try {
      // dot_stuffed: true reads the message as sent, its SMTP dot-stuffing undone (haraka-message-stream 2.x).
      stream.pipe(sink, { dot_stuffed: true, line_endings: '\r\n' })
    } catch {
      finish()
    }
  })
}
