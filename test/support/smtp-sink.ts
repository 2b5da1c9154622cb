// An SMTP server on 127.0.0.1 that accepts every message and records its
// envelope: where a real Haraka's queue (queue/smtp_forward, outbound) delivers
// in end-to-end tests, so a test can read the MAIL FROM and RCPT TO it sent.
// It can also refuse a message after DATA, as an MX that accepts at RCPT and
// fails delivery later does: the case that makes Haraka send a DSN.
import net from 'node:net'

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

const PATH = /^<(.*)>/

export interface SinkOptions {
  /** The reply to a message after DATA; default `250 2.0.0 queued by the sink`. Every message is recorded. */
  dataReply?: (message: Envelope) => string
}

/** Start a sink on a free port of 127.0.0.1. */
export async function startSmtpSink(opts: SinkOptions = {}): Promise<SmtpSink> {
  const messages: Envelope[] = []
  const waiters: (() => void)[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    socket.setEncoding('utf8')
    let buffer = ''
    let from: string | undefined
    let to: string[] = []
    let data: string[] | undefined
    const say = (line: string): void => {
      socket.write(`${line}\r\n`)
    }
    const onLine = (line: string): void => {
      if (data) {
        if (line !== '.') {
          data.push(line.startsWith('.') ? line.slice(1) : line)
          return
        }
        const message = { from: from ?? '', to, data: data.join('\r\n') }
        messages.push(message)
        for (const wake of waiters.splice(0)) wake()
        data = undefined
        from = undefined
        to = []
        say(opts.dataReply?.(message) ?? '250 2.0.0 queued by the sink')
        return
      }
      const verb = line.slice(0, 4).toUpperCase()
      const arg = line.slice(line.indexOf(':') + 1).trim()
      if (verb === 'EHLO' || verb === 'HELO') say('250 sink.e2e.test')
      else if (verb === 'MAIL') {
        from = PATH.exec(arg)?.[1] ?? arg
        say('250 2.1.0 sender ok')
      } else if (verb === 'RCPT') {
        to.push(PATH.exec(arg)?.[1] ?? arg)
        say('250 2.1.5 recipient ok')
      } else if (verb === 'DATA') {
        data = []
        say('354 go ahead')
      } else if (verb === 'RSET') {
        from = undefined
        to = []
        say('250 reset')
      } else if (verb === 'QUIT') {
        say('221 bye')
        socket.end()
      } else say('250 ok')
    }
    socket.on('data', (chunk: string) => {
      buffer += chunk
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        onLine(line)
      }
    })
    say('220 sink.e2e.test ESMTP')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
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
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
