// An SMTP client for end-to-end tests and the demo. Transactions go through nodemailer's
// SMTP connection; a minimal raw client does only what nodemailer cannot: the PROXY
// header, XCLIENT, and single commands whose reply a test reads on its own (a callout
// of MAIL and RCPT without DATA, a MAIL with the SMTPUTF8 parameter for an ASCII path).
// Every line either side sends is kept in a transcript.
import net from 'node:net'
import { StringDecoder } from 'node:string_decoder'
import type { NodemailerError } from 'nodemailer/lib/errors'
import SMTPConnection, { type SMTPConnectionSendInfo } from 'nodemailer/lib/smtp-connection'

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

/** A reply from its lines as the server sent them, joined by LF (as nodemailer joins them). */
function toReply(response: string): Reply {
  const lines = response.split('\n')
  const last = lines[lines.length - 1] ?? ''
  const texts = lines.map((l) => l.slice(4))
  return { code: Number(last.slice(0, 3)), lines: texts, text: texts.join(' '), raw: last }
}

/** nodemailer tells that a MAIL or RCPT was accepted, not the words of the reply. */
const ACCEPTED = toReply('250 (accepted)')

export class SmtpClient {
  /** "C: …" and "S: …" lines, in order. */
  readonly transcript: string[] = []
  /** The server's greeting (220 …). */
  greeting: Reply | undefined
  /** Set once nodemailer has taken the connection over; raw commands end there. */
  private smtp: Promise<SMTPConnection> | undefined
  /** The 220 lines that opened the current session (greeting or XCLIENT), handed to nodemailer. */
  private sessionOpening = ''
  private readonly decoder = new StringDecoder('utf8')
  private buffer = ''
  private pending: string[] = []
  /** Replies that arrived before anyone asked for them. */
  private queue: (Reply | Error)[] = []
  private waiter: ((r: Reply | Error) => void) | undefined
  private closed = false
  private readonly onRawData = (chunk: Buffer): void => this.onData(this.decoder.write(chunk))

  private constructor(
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', this.onRawData)
    socket.on('error', (err) => this.fail(err))
    socket.on('close', () => {
      this.closed = true
      this.fail(new Error('connection closed'))
    })
  }

  /**
   * Connect and read the greeting. With `proxy`, first send a PROXY protocol v1
   * line presenting that client address (for servers that trust this host as
   * a front end, e.g. Haraka's connection.ini [haproxy] hosts). With
   * `localAddress`, connect from that address (another loopback address, say).
   */
  static async connect(
    port: number,
    opts: { host?: string; timeoutMs?: number; proxy?: string; localAddress?: string } = {},
  ): Promise<SmtpClient> {
    const host = opts.host ?? '127.0.0.1'
    const socket = net.connect({ port, host, localAddress: opts.localAddress })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
    const client = new SmtpClient(socket, opts.timeoutMs ?? 10_000)
    // nodemailer has no PROXY protocol: the line goes out before any SMTP.
    if (opts.proxy) {
      const family = net.isIPv6(opts.proxy) ? 'TCP6' : 'TCP4'
      const dst = family === 'TCP6' ? '::1' : host
      const line = `PROXY ${family} ${opts.proxy} ${dst} ${socket.localPort ?? 0} ${port}`
      client.transcript.push(`C: ${line}`)
      socket.write(`${line}\r\n`)
    }
    client.greeting = await client.read()
    client.sessionOpening = client.wire(client.greeting)
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
      if (/^\d{3}( |$)/.test(line)) {
        const reply = toReply(this.pending.join('\n'))
        this.pending = []
        this.deliver(reply)
      }
    }
  }

  /** A reply's lines as they came over the wire, codes and separators included. */
  private wire(r: Reply): string {
    return r.lines.map((l, i) => `${r.code}${i < r.lines.length - 1 ? '-' : ' '}${l}\r\n`).join('')
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

  /** The next reply from the server, read by the raw client. */
  private read(): Promise<Reply> {
    const queued = this.queue.shift()
    if (queued) return queued instanceof Error ? Promise.reject(queued) : Promise.resolve(queued)
    if (this.closed) return Promise.reject(new Error('connection closed'))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        reject(this.failure(`no SMTP reply within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.waiter = (r) => {
        clearTimeout(timer)
        if (r instanceof Error) reject(r)
        else resolve(r)
      }
    })
  }

  private failure(what: string): Error {
    return new Error(`${what}; transcript:\n${this.transcript.join('\n')}`)
  }

  /**
   * Send one command line and read its reply, for what nodemailer cannot send (a callout
   * without DATA, a MAIL with chosen parameters). Only before the first transaction.
   */
  async command(line: string): Promise<Reply> {
    if (this.smtp) throw this.failure(`raw command after nodemailer took the connection: ${line}`)
    this.transcript.push(`C: ${line}`)
    this.socket.write(`${line}\r\n`)
    return this.read()
  }

  ehlo(name = 'client.e2e.test'): Promise<Reply> {
    return this.command(`EHLO ${name}`)
  }

  /**
   * Present another client address through XCLIENT (Haraka's xclient plugin), which
   * nodemailer does not speak, and greet again. NAME is given so Haraka does no
   * reverse lookup of the address.
   */
  async xclient(ip: string, name = 'mail.sender.e2e.test'): Promise<Reply> {
    const addr = net.isIPv6(ip) ? `IPV6:${ip}` : ip
    const r = await this.command(`XCLIENT ADDR=${addr} NAME=${name} PROTO=ESMTP`)
    if (r.code !== 220) return r
    this.sessionOpening = this.wire(r)
    await this.ehlo()
    return r
  }

  /**
   * nodemailer's connection on this socket. It starts by reading a greeting and saying
   * EHLO, so it is handed the 220 that opened the current session (the server took a
   * second EHLO as RFC 5321 allows).
   */
  private library(): Promise<SMTPConnection> {
    if (this.smtp) return this.smtp
    this.socket.pause()
    this.socket.removeListener('data', this.onRawData)
    this.socket.unshift(Buffer.from(this.sessionOpening + this.buffer, 'utf8'))
    this.buffer = ''
    const log = (meta: { tnx?: string } | undefined, message: unknown): void => {
      const side = meta?.tnx === 'client' ? 'C' : meta?.tnx === 'server' ? 'S' : undefined
      if (side) for (const line of String(message).split('\n')) this.transcript.push(`${side}: ${line}`)
    }
    const none = (): void => undefined
    const conn = new SMTPConnection({
      connection: this.socket,
      name: 'client.e2e.test',
      ignoreTLS: true,
      greetingTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
      transactionLog: true,
      logger: { debug: log, trace: none, info: none, warn: none, error: none, fatal: none },
    })
    // Failures come back through each call's callback; the event needs a listener.
    conn.on('error', none)
    this.smtp = new Promise((resolve, reject) =>
      conn.connect((err) => (err ? reject(this.failure(`connect: ${err.message}`)) : resolve(conn))),
    )
    return this.smtp
  }

  /** MAIL, each RCPT, then DATA when at least one recipient was accepted (RSET when none was). */
  async transaction(m: Message): Promise<TransactionReplies> {
    const conn = await this.library()
    const message = m.data ?? sampleMessage(m.from, m.to)
    const sent = await new Promise<{ info?: SMTPConnectionSendInfo; err?: NodemailerError }>((resolve) =>
      conn.send({ from: m.from, to: [...m.to] }, message, (err, info) =>
        resolve({ err: err ?? undefined, info }),
      ),
    )
    const rcpt = (refused: readonly NodemailerError[] = []): Reply[] => {
      const left = [...refused]
      return m.to.map((to) => {
        const i = left.findIndex((e) => e.recipient === to.trim())
        const [e] = i < 0 ? [] : left.splice(i, 1)
        return e?.response ? toReply(e.response) : ACCEPTED
      })
    }
    const { err, info } = sent
    if (info) return { mail: ACCEPTED, rcpt: rcpt(info.rejectedErrors), data: toReply(info.response) }
    if (err?.command === 'MAIL FROM' && err.response) return { mail: toReply(err.response), rcpt: [] }
    if (err?.command === 'RCPT TO' && err.rejectedErrors) {
      await new Promise<void>((resolve) => conn.reset(() => resolve()))
      return { mail: ACCEPTED, rcpt: rcpt(err.rejectedErrors) }
    }
    // A refused message: nodemailer's error does not say which recipients RCPT refused.
    if (err?.command === 'DATA' && err.response) {
      return { mail: ACCEPTED, rcpt: rcpt(), data: toReply(err.response) }
    }
    throw this.failure(`send: ${err?.message ?? 'no result'}`)
  }

  /** RSET, a round trip that shows the connection is still open. */
  async rset(): Promise<boolean> {
    const conn = await this.library()
    return new Promise((resolve) => conn.reset((err) => resolve(!err)))
  }

  /** QUIT politely, then close; never throws. */
  async quit(): Promise<void> {
    if (this.smtp) {
      const conn = await this.smtp.catch(() => undefined)
      if (conn && !this.closed) {
        const gone = new Promise<void>((resolve) => this.socket.once('close', () => resolve()))
        conn.quit()
        await gone
      }
    } else if (!this.closed) {
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
