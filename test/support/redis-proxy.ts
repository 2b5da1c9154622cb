// A TCP proxy on 127.0.0.1 in front of a redis-server that counts round trips.
// A turn begins when a client writes after an answer has reached it (or writes
// first): commands pipelined together are one turn, a command sent only after
// an answer is another. hold() keeps the server's answers from the client, so
// that what a client sends without waiting for an answer is one turn, however
// the kernel splits a large write. The commands (RESP arrays of bulk strings)
// are parsed too, so a test can say what each turn carried.
import net from 'node:net'

/** One round trip: what the client sent before an answer reached it. */
export interface Turn {
  /** Each command as its arguments, the name upper-cased; binary arguments as latin1. */
  readonly commands: string[][]
}

export interface RedisProxy {
  readonly port: number
  /** The redis:// URL that goes through the proxy. */
  readonly url: string
  /** Every turn so far, on every connection through the proxy, oldest first. */
  readonly turns: readonly Turn[]
  /** True when an answer has reached the client since it last wrote (or nothing was sent yet). */
  answered(): boolean
  /** Keep the server's answers from now on: the client gets none until release(). */
  hold(): void
  /** Pass on the answers kept, and every later one as it comes. */
  release(): void
  close(): Promise<void>
}

/** The complete commands at the start of `buf`, and how many bytes they take. */
function parseCommands(buf: Buffer): { commands: string[][]; used: number } {
  const commands: string[][] = []
  let pos = 0
  const line = (from: number): { text: string; next: number } | undefined => {
    const end = buf.indexOf('\r\n', from)
    return end < 0 ? undefined : { text: buf.toString('latin1', from, end), next: end + 2 }
  }
  for (;;) {
    const head = line(pos)
    if (!head) break
    if (!head.text.startsWith('*')) throw new Error(`not a RESP command: ${JSON.stringify(head.text)}`)
    const args: string[] = []
    let at = head.next
    for (let n = Number(head.text.slice(1)); n > 0; n--) {
      const len = line(at)
      if (!len) return { commands, used: pos }
      const size = Number(len.text.slice(1))
      if (buf.length < len.next + size + 2) return { commands, used: pos }
      args.push(buf.toString('latin1', len.next, len.next + size))
      at = len.next + size + 2
    }
    args[0] = args[0]?.toUpperCase() ?? ''
    commands.push(args)
    pos = at
  }
  return { commands, used: pos }
}

export async function startRedisProxy(redisPort: number): Promise<RedisProxy> {
  const turns: Turn[] = []
  let answered = true
  let holding = false
  const kept: { client: net.Socket; chunk: Buffer }[] = []
  const toClient = (client: net.Socket, chunk: Buffer): void => {
    answered = true
    client.write(chunk)
  }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect({ port: redisPort, host: '127.0.0.1' })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.setNoDelay(true)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    let pending = Buffer.alloc(0)
    client.on('data', (chunk: Buffer) => {
      if (answered) turns.push({ commands: [] })
      answered = false
      pending = Buffer.concat([pending, chunk])
      const { commands, used } = parseCommands(pending)
      pending = pending.subarray(used)
      turns.at(-1)?.commands.push(...commands)
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (holding) kept.push({ client, chunk })
      else toClient(client, chunk)
    })
    client.on('end', () => upstream.end())
    upstream.on('end', () => client.end())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    turns,
    answered: () => answered,
    hold: () => void (holding = true),
    release: () => {
      holding = false
      for (const { client, chunk } of kept.splice(0)) toClient(client, chunk)
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
