// An SMTP server on 127.0.0.1 (smtp-server) that accepts every message and records
// its envelope: where a real Haraka's queue (queue/smtp_forward, outbound) delivers
// in end-to-end tests, so a test can read the MAIL FROM and RCPT TO it sent.
// It can also refuse a message after DATA, as an MX that accepts at RCPT and
// fails delivery later does: the case that makes Haraka send a DSN.
import type net from 'node:net'
import { SMTPServer } from 'smtp-server'

export interface Envelope {
  /** The MAIL FROM path as sent, without the angle brackets. */
  readonly from: string
  /** The RCPT TO paths as sent, without the angle brackets. */
  readonly to: string[]
  /** The message, dot-unstuffed, lines joined with CRLF. */
  readonly data: string
}

export interface SmtpSink {
  readonly port: number
  /** Every message received so far, in order. */
  readonly messages: Envelope[]
  /** Resolves with the `count`-th message (1-based) once it has arrived. */
  message(count: number, timeoutMs?: number): Promise<Envelope>
  close(): Promise<void>
}

export interface SinkOptions {
  /** The reply to a message after DATA (`554 5.7.1 text`); default `250 queued by the sink`. Every message is recorded. */
  dataReply?: (message: Envelope) => string
}

/** Start a sink on a free port of 127.0.0.1. */
export async function startSmtpSink(opts: SinkOptions = {}): Promise<SmtpSink> {
  const messages: Envelope[] = []
  const waiters: (() => void)[] = []
  const server = new SMTPServer({
    name: 'sink.e2e.test',
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    // No reverse lookup of 127.0.0.1: nothing leaves loopback.
    disableReverseLookup: true,
    logger: false,
    // A queue may keep its connection open; closing the sink should not wait for it.
    closeTimeout: 1,
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        const { mailFrom, rcptTo } = session.envelope
        const message = {
          from: mailFrom ? mailFrom.address : '',
          to: rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks).toString('utf8').replace(/\r\n$/, ''),
        }
        messages.push(message)
        for (const wake of waiters.splice(0)) wake()
        const reply = /^(\d{3}) (.*)$/.exec(opts.dataReply?.(message) ?? '')
        if (!reply || reply[1]?.startsWith('2')) return callback(null, reply?.[2] ?? 'queued by the sink')
        callback(Object.assign(new Error(reply[2]), { responseCode: Number(reply[1]) }))
      })
    },
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.server.address() as net.AddressInfo
  return {
    port,
    messages,
    async message(count, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs
      while (messages.length < count) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`the sink received ${messages.length} messages, not ${count}`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          waiters.push(() => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
      return messages[count - 1] as Envelope
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
