// A scripted DNS server on 127.0.0.1 for tests: real packets over UDP (and TCP,
// for truncated answers), coded by dns-packet, real node:dns on the other side. Each query is logged
// and answered by the test's script, which can also misbehave on purpose.
import dgram from 'node:dgram'
import net from 'node:net'
import * as dnsPacket from 'dns-packet'
import { toType } from 'dns-packet/types'

export const TYPE = { A: 1, CNAME: 5, TXT: 16, AAAA: 28, ANY: 255 } as const
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const

export interface Query {
  readonly name: string
  readonly type: number
  readonly transport: 'udp' | 'tcp'
}

/** How to answer one query. Omitted fields: NOERROR, no records. */
export interface Script {
  rcode?: keyof typeof RCODE
  /** A records. */
  a?: string[]
  /** TXT records, each an array of strings (or one string). */
  txt?: (string | string[])[]
  /** CNAME chain: the answer starts with these names, the A/TXT records hang off the last. */
  cname?: string[]
  ttl?: number
  /** Answer after this many milliseconds. */
  delayMs?: number
  /** Answer when this settles: the test decides when, with no clock involved. */
  until?: Promise<unknown>
  /** Never answer. */
  drop?: boolean
  /** Answer with these raw bytes instead of a DNS message. */
  garbage?: Buffer
  /** Set the TC bit over UDP so the client retries over TCP (where the full answer is sent). */
  truncate?: boolean
}

/** Answers one query: a script, or undefined for NXDOMAIN. */
export type Handler = (q: Query) => Script | undefined

/** The query's question, or undefined when dns-packet cannot read the message. */
function parseQuestion(
  msg: Buffer,
): { packet: dnsPacket.DecodedPacket; question: dnsPacket.Question } | undefined {
  try {
    const packet = dnsPacket.decode(msg)
    const question = packet.questions?.[0]
    return question ? { packet, question } : undefined
  } catch {
    return undefined
  }
}

function buildAnswer(query: dnsPacket.DecodedPacket, q: Query, s: Script | undefined, tc: boolean): Buffer {
  const answers: dnsPacket.Answer[] = []
  const rcode = s ? RCODE[s.rcode ?? 'NOERROR'] : RCODE.NXDOMAIN
  if (s && rcode === RCODE.NOERROR && !tc) {
    const ttl = s.ttl ?? 300
    let owner = q.name
    for (const target of s.cname ?? []) {
      answers.push({ type: 'CNAME', name: owner, ttl, data: target })
      owner = target
    }
    if (q.type === TYPE.A || q.type === TYPE.ANY) {
      for (const ip of s.a ?? []) answers.push({ type: 'A', name: owner, ttl, data: ip })
    }
    if (q.type === TYPE.TXT || q.type === TYPE.ANY) {
      for (const t of s.txt ?? []) {
        const strings = (Array.isArray(t) ? t : [t]).map((x) => Buffer.from(x, 'utf8').subarray(0, 255))
        answers.push({ type: 'TXT', name: owner, ttl, data: strings })
      }
    }
  }
  const flags =
    dnsPacket.AUTHORITATIVE_ANSWER |
    dnsPacket.RECURSION_AVAILABLE |
    (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) |
    (tc ? dnsPacket.TRUNCATED_RESPONSE : 0) |
    rcode
  return dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    flags,
    questions: query.questions ?? [],
    answers,
  })
}

export interface ScriptedDns {
  readonly port: number
  /** `127.0.0.1:port`, for `[dns] servers`. */
  readonly server: string
  /** Every query received, in order. */
  readonly queries: Query[]
  /** Queries for names ending in `suffix` (e.g. a zone), optionally of one type. */
  count(suffix: string, type?: number): number
  setHandler(h: Handler): void
  close(): Promise<void>
}

/** Start a scripted server; `handler` answers every query (see Script). */
export async function startDns(handler: Handler): Promise<ScriptedDns> {
  let current = handler
  const queries: Query[] = []
  const tcpSockets = new Set<net.Socket>()
  const timers = new Set<NodeJS.Timeout>()

  const respond = (msg: Buffer, transport: 'udp' | 'tcp', send: (b: Buffer) => void): void => {
    const parsed = parseQuestion(msg)
    if (!parsed) return
    const q: Query = {
      name: parsed.question.name.toLowerCase(),
      type: toType(parsed.question.type),
      transport,
    }
    queries.push(q)
    const script = current(q)
    if (script?.drop) return
    const reply = (): void => {
      // A deliberately malformed answer is bytes no codec would write.
      if (script?.garbage) return send(script.garbage)
      send(buildAnswer(parsed.packet, q, script, transport === 'udp' && !!script?.truncate))
    }
    if (script?.until) {
      const late = (): void => {
        try {
          reply()
        } catch {
          // The server was closed while the answer was held.
        }
      }
      void script.until.then(late, late)
    } else if (script?.delayMs) {
      const t = setTimeout(() => {
        timers.delete(t)
        reply()
      }, script.delayMs)
      timers.add(t)
    } else reply()
  }

  const onUdp = (udp: dgram.Socket) =>
    udp.on('message', (msg, rinfo) =>
      respond(msg, 'udp', (b) => udp.send(b, rinfo.port, rinfo.address, () => undefined)),
    )

  const tcp = net.createServer((sock) => {
    tcpSockets.add(sock)
    sock.on('close', () => tcpSockets.delete(sock))
    sock.on('error', () => undefined)
    let buf = Buffer.alloc(0)
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0)
        if (buf.length < 2 + len) break
        const msg = buf.subarray(2, 2 + len)
        buf = buf.subarray(2 + len)
        respond(msg, 'tcp', (b) => {
          const lenBuf = Buffer.alloc(2)
          lenBuf.writeUInt16BE(b.length)
          if (!sock.destroyed) sock.write(Buffer.concat([lenBuf, b]))
        })
      }
    })
  })
  // The same port number for TCP as for UDP, where clients retry a truncated answer. A busy
  // machine may hold the UDP port's number for TCP (even in TIME-WAIT): then another port.
  let udp: dgram.Socket | undefined
  let port = 0
  for (let attempt = 1; !udp; attempt++) {
    const socket = onUdp(dgram.createSocket('udp4'))
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(0, '127.0.0.1', () => resolve())
    })
    port = socket.address().port
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false))
      tcp.listen(port, '127.0.0.1', () => resolve(true))
    })
    tcp.removeAllListeners('error')
    if (listening || attempt === 20) udp = socket
    else await new Promise<void>((r) => socket.close(() => r()))
  }

  return {
    port,
    server: `127.0.0.1:${port}`,
    queries,
    count: (suffix, type) =>
      queries.filter((q) => q.name.endsWith(suffix) && (type === undefined || q.type === type)).length,
    setHandler: (h) => (current = h),
    close: async () => {
      for (const t of timers) clearTimeout(t)
      for (const s of tcpSockets) s.destroy()
      await Promise.all([
        new Promise<void>((r) => udp.close(() => r())),
        new Promise<void>((r) => (tcp.listening ? tcp.close(() => r()) : r())),
      ])
    },
  }
}

/** Reverse an IPv4 address for a DNSBL query name. */
export function reverseIpv4(ip: string): string {
  return ip.split('.').reverse().join('.')
}

/** ::FFFF:7F00:2, the RFC 5782 IPv6 test point, as a query name prefix. */
export const IPV6_TEST_POINT = '2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0'

/**
 * A handler for a well-behaved DNSBL: passes the RFC 5782 test points (IPv4 and
 * IPv6) and lists
 * the given IPv4 addresses (value: A records and optional TXT).
 */
export function dnsblZone(
  zone: string,
  listed: Record<string, { a?: string[]; txt?: string | string[]; ttl?: number }>,
): Handler {
  const entries = new Map<string, Script>()
  entries.set(`2.0.0.127.${zone}`, { a: ['127.0.0.2'], txt: ['RFC 5782 test point'] })
  entries.set(`${IPV6_TEST_POINT}.${zone}`, { a: ['127.0.0.2'], txt: ['RFC 5782 test point'] })
  for (const [ip, v] of Object.entries(listed)) {
    entries.set(`${reverseIpv4(ip)}.${zone}`, {
      a: v.a ?? ['127.0.0.2'],
      txt: v.txt === undefined ? [] : [v.txt],
      ...(v.ttl === undefined ? {} : { ttl: v.ttl }),
    })
  }
  return (q) => entries.get(q.name)
}
