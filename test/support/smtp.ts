// A small SMTP client for end-to-end tests and the demo: one command at a time,
// every reply parsed (multi-line replies included) and kept in a transcript.
import net from 'node:net'

export interface Reply {
  readonly code: number
  /** The text of each reply line, without the code and separator. */
  readonly lines: readonly string[]
  /** All lines joined by a space, e.g. "5.7.1 Backscatter refused: …". */
  readonly text: string
  /** The reply as the server sent it, e.g. "550 5.7.1 Backscatter refused: …" (last line). */
  readonly raw: string
}

export interface Message {
  from: string
  to: readonly string[]
  /** Header and body; CRLF line ends are added and leading dots doubled. */
  data?: string
}

export interface TransactionReplies {
  mail: Reply
  rcpt: Reply[]
  /** The reply after the message, or undefined when no recipient was accepted. */
  data?: Reply
}

/** The queue id in Haraka's "250 Message Queued (UUID)" reply. */
export function queuedId(reply: Reply | undefined): string | undefined {
  return reply?.code === 250 ? /\(([0-9A-F.-]+)\)/i.exec(reply.text)?.[1] : undefined
}

export class SmtpClient {
  /** "C: …" and "S: …" lines, in order. */
  readonly transcript: string[] = []
  private buffer = ''
  private pending: string[] = []
  /** Replies that arrived before anyone asked for them. */
  private queue: (Reply | Error)[] = []
  private waiter: ((r: Reply | Error) => void) | undefined
  private closed = false
  /** The server's greeting (220 …). */
  greeting: Reply | undefined

  private constructor(
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => this.onData(chunk))
    socket.on('error', (err) => this.fail(err))
    socket.on('close', () => {
      this.closed = true
      this.fail(new Error('connection closed'))
    })
  }

  /**
   * Connect and read the greeting. With `proxy`, first send a PROXY protocol v1
   * line presenting that client address (for servers that trust this host as
   * a front end, e.g. Haraka's connection.ini [haproxy] hosts).
   */
  static async connect(
    port: number,
    opts: { host?: string; timeoutMs?: number; proxy?: string } = {},
  ): Promise<SmtpClient> {
    const host = opts.host ?? '127.0.0.1'
    const socket = net.connect({ port, host })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
    const client = new SmtpClient(socket, opts.timeoutMs ?? 10_000)
    if (opts.proxy) {
      const family = net.isIPv6(opts.proxy) ? 'TCP6' : 'TCP4'
      const dst = family === 'TCP6' ? '::1' : host
      const line = `PROXY ${family} ${opts.proxy} ${dst} ${socket.localPort ?? 0} ${port}`
      client.transcript.push(`C: ${line}`)
      socket.write(`${line}\r\n`)
    }
    client.greeting = await client.read()
    return client
  }

  /** The local TCP port of this connection (to find the server process that holds it). */
  get localPort(): number {
    return this.socket.localPort ?? 0
  }

  private onData(chunk: string): void {
    this.buffer += chunk
    let nl
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '')
      this.buffer = this.buffer.slice(nl + 1)
      this.transcript.push(`S: ${line}`)
      this.pending.push(line)
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        const lines = this.pending
        this.pending = []
        const last = lines[lines.length - 1] ?? ''
        const reply: Reply = {
          code: Number(last.slice(0, 3)),
          lines: lines.map((l) => l.slice(4)),
          text: lines.map((l) => l.slice(4)).join(' '),
          raw: last,
        }
        this.deliver(reply)
      }
    }
  }

  private deliver(r: Reply | Error): void {
    const w = this.waiter
    if (w) {
      this.waiter = undefined
      w(r)
    } else this.queue.push(r)
  }

  private fail(err: Error): void {
    if (this.waiter) this.deliver(err)
  }

  /** The next reply from the server. */
  read(): Promise<Reply> {
    const queued = this.queue.shift()
    if (queued) return queued instanceof Error ? Promise.reject(queued) : Promise.resolve(queued)
    if (this.closed) return Promise.reject(new Error('connection closed'))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        reject(
          new Error(`no SMTP reply within ${this.timeoutMs} ms; transcript:\n${this.transcript.join('\n')}`),
        )
      }, this.timeoutMs)
      this.waiter = (r) => {
        clearTimeout(timer)
        if (r instanceof Error) reject(r)
        else resolve(r)
      }
    })
  }

  /** Send one command line and read its reply. */
  async command(line: string): Promise<Reply> {
    this.transcript.push(`C: ${line}`)
    this.socket.write(`${line}\r\n`)
    return this.read()
  }

  ehlo(name = 'client.e2e.test'): Promise<Reply> {
    return this.command(`EHLO ${name}`)
  }

  /**
   * Present another client address through XCLIENT (Haraka's xclient plugin) and
   * greet again. NAME is given so Haraka does no reverse lookup of the address.
   */
  async xclient(ip: string, name = 'mail.sender.e2e.test'): Promise<Reply> {
    const addr = net.isIPv6(ip) ? `IPV6:${ip}` : ip
    const r = await this.command(`XCLIENT ADDR=${addr} NAME=${name} PROTO=ESMTP`)
    if (r.code !== 220) return r
    await this.ehlo()
    return r
  }

  /** Send a message after DATA: dot-stuffed, CRLF line ends, final dot. */
  async data(message: string): Promise<Reply> {
    const r = await this.command('DATA')
    if (r.code !== 354) return r
    const body = message
      .replace(/\r?\n/g, '\r\n')
      .split('\r\n')
      .map((l) => (l.startsWith('.') ? `.${l}` : l))
      .join('\r\n')
    this.transcript.push(`C: <message, ${body.length} octets>`)
    this.socket.write(`${body.replace(/(\r\n)?$/, '\r\n')}.\r\n`)
    return this.read()
  }

  /** MAIL, each RCPT, then DATA when at least one recipient was accepted. */
  async transaction(m: Message): Promise<TransactionReplies> {
    const mail = await this.command(`MAIL FROM:<${m.from}>`)
    const rcpt: Reply[] = []
    if (mail.code !== 250) return { mail, rcpt }
    for (const to of m.to) rcpt.push(await this.command(`RCPT TO:<${to}>`))
    if (!rcpt.some((r) => r.code === 250)) {
      await this.command('RSET')
      return { mail, rcpt }
    }
    const data = await this.data(m.data ?? sampleMessage(m.from, m.to))
    return { mail, rcpt, data }
  }

  /** QUIT politely, then close; never throws. */
  async quit(): Promise<void> {
    if (!this.closed) {
      try {
        await this.command('QUIT')
      } catch {
        // already gone
      }
    }
    this.close()
  }

  close(): void {
    this.socket.destroy()
  }
}

/** A short message: a bounce (DSN-looking) for the null sender, else a plain note. */
export function sampleMessage(from: string, to: readonly string[], subject?: string): string {
  const bounce = from === '' || /^postmaster@/i.test(from)
  const headerFrom = bounce
    ? `Mail Delivery System <MAILER-DAEMON@${from.split('@')[1] ?? 'mx.sender.e2e.test'}>`
    : from
  return [
    `From: ${headerFrom}`,
    `To: ${to.join(', ')}`,
    `Subject: ${subject ?? (bounce ? 'Undelivered Mail Returned to Sender' : 'Hello')}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${Date.now()}.${Math.random().toString(36).slice(2)}@e2e.test>`,
    '',
    bounce ? 'This is the mail system at host mx.sender.e2e.test.' : 'An ordinary message.',
    '.a line that starts with a dot',
    '',
  ].join('\r\n')
}
