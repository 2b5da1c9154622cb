// A lean SMTP load generator for the whole-system benchmarks: many sessions,
// one command at a time each (no pipelining), XCLIENT before a transaction to
// present its client address, RCPT latency measured per command.
import net from 'node:net'
import { performance } from 'node:perf_hooks'

/** One transaction to send: the client address XCLIENT presents, the envelope and the message. */
export interface TxnSpec {
  /** Presented with XCLIENT; none: the client stays 127.0.0.1. */
  ip?: string
  from: string
  to: string
  /** The message, lines joined by CRLF, none starting with a dot; the final dot line is added. */
  data: string
}

export interface TxnRecord {
  /** performance.now() when the connection was opened. */
  start: number
  /** performance.now() when the transaction ended. */
  end: number
  /** From sending MAIL to the MAIL reply, ms. */
  mailMs: number
  /** From sending RCPT to its reply, ms (NaN when no RCPT was sent). */
  rcptMs: number
  mailCode: number
  rcptCode: number
  /** The final DATA reply (0 when no DATA). */
  dataCode: number
}

class Session {
  private buffer = ''
  private waiter: ((code: number) => void) | undefined
  private failed: Error | undefined
  private readonly socket: net.Socket

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.setNoDelay(true)
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => this.onData(chunk))
    const fail = (err: Error): void => {
      this.failed ??= err
      const w = this.waiter
      this.waiter = undefined
      w?.(-1)
    }
    socket.on('error', fail)
    socket.on('close', () => fail(new Error('connection closed')))
  }

  static async open(port: number): Promise<Session> {
    const socket = net.connect({ port, host: '127.0.0.1' })
    const s = new Session(socket)
    const greeting = await s.read()
    if (greeting !== 220) throw new Error(`greeting ${greeting}`)
    return s
  }

  private onData(chunk: string): void {
    this.buffer += chunk
    for (;;) {
      const nl = this.buffer.indexOf('\n')
      if (nl < 0) return
      const line = this.buffer.slice(0, nl)
      this.buffer = this.buffer.slice(nl + 1)
      // The last line of a reply has a space (or nothing) after the code.
      if (line.length >= 3 && line.charCodeAt(3) !== 45 /* '-' */) {
        const w = this.waiter
        this.waiter = undefined
        w?.(Number(line.slice(0, 3)))
      }
    }
  }

  read(): Promise<number> {
    if (this.failed) return Promise.reject(this.failed)
    return new Promise((resolve, reject) => {
      this.waiter = (code) => (code < 0 ? reject(this.failed) : resolve(code))
    })
  }

  command(line: string): Promise<number> {
    const p = this.read()
    this.socket.write(`${line}\r\n`)
    return p
  }

  async expect(line: string, code: number): Promise<void> {
    const got = await this.command(line)
    if (got !== code) throw new Error(`${line.split(' ')[0]}: ${got}, expected ${code}`)
  }

  /** XCLIENT (when the spec has an address), EHLO, MAIL, RCPT, then DATA (accepted) or RSET (refused). */
  async transaction(t: TxnSpec): Promise<TxnRecord> {
    if (t.ip) await this.expect(`XCLIENT ADDR=${t.ip} NAME=mail.sender.example PROTO=ESMTP`, 220)
    await this.expect('EHLO mx.sender.example', 250)
    const m0 = performance.now()
    const mailCode = await this.command(`MAIL FROM:<${t.from}>`)
    const m1 = performance.now()
    let rcptMs = NaN
    let rcptCode = 0
    let dataCode = 0
    if (mailCode === 250) {
      rcptCode = await this.command(`RCPT TO:<${t.to}>`)
      rcptMs = performance.now() - m1
      if (rcptCode === 250) {
        const go = await this.command('DATA')
        if (go !== 354) throw new Error(`DATA: ${go}`)
        dataCode = await this.command(`${t.data}\r\n.`)
      }
    }
    if (dataCode === 0) await this.expect('RSET', 250)
    return { start: 0, end: performance.now(), mailMs: m1 - m0, rcptMs, mailCode, rcptCode, dataCode }
  }

  close(): void {
    this.socket.destroy()
  }
}

/**
 * Load from `size` concurrent clients. XCLIENT is honoured once per connection
 * (Haraka's xclient plugin then sees the presented address, not 127.0.0.1), so
 * each transaction has its own connection: connect, XCLIENT, EHLO, MAIL, RCPT,
 * DATA or RSET, QUIT.
 */
export class LoadClients {
  constructor(
    readonly port: number,
    readonly size: number,
  ) {}

  /**
   * Every client sends transactions (the next spec each) until `ms` have
   * passed; resolves when the last transaction started before then has ended.
   */
  async run(
    ms: number,
    next: () => TxnSpec,
  ): Promise<{ records: TxnRecord[]; started: number; ended: number; errors: number }> {
    const records: TxnRecord[] = []
    let errors = 0
    const started = performance.now()
    const deadline = started + ms
    await Promise.all(
      Array.from({ length: this.size }, async () => {
        while (performance.now() < deadline) {
          let s: Session | undefined
          try {
            const start = performance.now()
            s = await Session.open(this.port)
            const r = await s.transaction(next())
            r.start = start
            await s.command('QUIT')
            records.push(r)
          } catch (err) {
            if (process.env.BENCH_DEBUG) console.error(String(err))
            errors++
            await new Promise((r) => setTimeout(r, 10))
          } finally {
            s?.close()
          }
        }
      }),
    )
    return { records, started, ended: performance.now(), errors }
  }
}
