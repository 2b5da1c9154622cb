// The HTTP endpoint Prometheus scrapes. It never stops Haraka: an address it
// cannot bind is one error line, and a scrape only reads counts already kept.
import http from 'node:http'

import { formatListen, isLoopback } from '../settings/listen'
import type { ListenAddress } from '../core/types'

export interface EndpointLog {
  info(msg: string): void
  error(msg: string): void
}

/** The exposition and its content type, made when a scrape asks. */
export interface Exposition {
  readonly contentType: string
  render(): Promise<string>
}

export const METRICS_PATH = '/metrics'

function describeListenError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'EADDRINUSE') return 'the port is already in use (EADDRINUSE)'
  if (code === 'EADDRNOTAVAIL') return 'no interface has that address (EADDRNOTAVAIL)'
  if (code === 'EACCES') return 'permission denied (EACCES)'
  return String((err as { message?: unknown } | null)?.message ?? err)
}

/**
 * Serves /metrics on one address at a time. listen() moves it (a config
 * reload), listen(undefined) and close() stop it. Scrapes that arrive together
 * share one rendering, so a burst of them costs the mail path one.
 */
export class MetricsEndpoint {
  private server: http.Server | undefined
  private address: ListenAddress | undefined
  private rendering: Promise<string> | undefined
  private waiting = 0
  private queue: Promise<void> = Promise.resolve()

  constructor(
    private readonly exposition: Exposition,
    private readonly log: EndpointLog,
  ) {}

  /** The address being served, once listening. */
  get listening(): ListenAddress | undefined {
    return this.server?.listening ? this.address : undefined
  }

  /** Scrapes waiting for the rendering in progress. */
  get scrapesWaiting(): number {
    return this.waiting
  }

  /** Serve on `address` (undefined: stop). Settles when done; never rejects. */
  listen(address: ListenAddress | undefined): Promise<void> {
    this.queue = this.queue.then(() => this.moveTo(address))
    return this.queue
  }

  /** Settles when every listen() asked for so far has. */
  settled(): Promise<void> {
    return this.queue
  }

  close(): Promise<void> {
    return this.listen(undefined)
  }

  private async moveTo(address: ListenAddress | undefined): Promise<void> {
    const same = address && this.address && formatListen(address) === formatListen(this.address)
    if (same && this.server) return
    await this.stop()
    if (!address) return
    const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) =>
      this.answer(req, res),
    )
    server.maxConnections = 32
    const where = formatListen(address)
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', (err) => {
        this.log.error(
          `metrics: cannot serve ${METRICS_PATH} on ${where}: ${describeListenError(err)}; ` +
            `Haraka and the mail go on without metrics`,
        )
        resolve(false)
      })
      server.listen(address.port, address.host, () => resolve(true))
    })
    if (!bound) return
    server.on('error', (err) => this.log.error(`metrics: ${describeListenError(err)}`))
    // The endpoint never keeps Haraka running.
    server.unref()
    this.server = server
    this.address = address
    const scope = isLoopback(address.host) ? 'loopback only' : 'NOT loopback: reachable from the network'
    this.log.info(`metrics: serving http://${where}${METRICS_PATH} (${scope})`)
  }

  private async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    this.address = undefined
    if (!server) return
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '').split('?')[0]
    if (path !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`only ${METRICS_PATH} is served here\n`)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET only\n')
      return
    }
    this.rendering ??= this.exposition.render().finally(() => (this.rendering = undefined))
    this.waiting++
    this.rendering.then(
      (body) => {
        this.waiting--
        res.writeHead(200, { 'content-type': this.exposition.contentType })
        res.end(req.method === 'HEAD' ? undefined : body)
      },
      (err: unknown) => {
        this.waiting--
        res.writeHead(503, { 'content-type': 'text/plain' })
        res.end(`metrics unavailable: ${describeListenError(err)}\n`)
      },
    )
  }
}
