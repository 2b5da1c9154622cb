// The `[metrics] listen` setting: where /metrics is served. Loopback unless the
// operator writes out another address: a bare port means 127.0.0.1, and every
// interface is 0.0.0.0 or [::], never an empty host.
import net from 'node:net'
import type { ListenAddress } from '../core/types'

/** The address as written in the ini and in log lines: `127.0.0.1:9100`, `[::1]:9100`. */
export function formatListen({ host, port }: ListenAddress): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/** Is `host` on the loopback interface (127.0.0.0/8 or ::1)? */
export function isLoopback(host: string): boolean {
  if (net.isIPv4(host)) return host.startsWith('127.')
  return host === '::1' || host === '0:0:0:0:0:0:0:1'
}

function readPort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined
  const port = Number(text)
  return port >= 1 && port <= 65535 ? port : undefined
}

/**
 * Read `listen`: empty for off, `PORT` (on 127.0.0.1), `localhost:PORT`,
 * `IPv4:PORT` or `[IPv6]:PORT`. Returns the address, undefined for off, or why
 * the value cannot be used.
 */
export function parseListen(value: string): { address: ListenAddress | undefined } | { why: string } {
  const text = value.trim()
  if (text === '') return { address: undefined }
  const bare = readPort(text)
  if (bare !== undefined) return { address: { host: '127.0.0.1', port: bare } }
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(text)
  const host = m?.[1] ?? m?.[2]
  const port = m?.[3] === undefined ? undefined : readPort(m[3])
  if (host === undefined || port === undefined) {
    return { why: `"${text}" is not PORT, IP:PORT or [IPv6]:PORT (port 1..65535)` }
  }
  if (host === '') {
    return {
      why: `"${text}" names no address: write 127.0.0.1:${port}, or 0.0.0.0:${port} to serve every interface`,
    }
  }
  if (host.toLowerCase() === 'localhost') return { address: { host: '127.0.0.1', port } }
  if (m?.[1] !== undefined ? !net.isIPv6(host) : !net.isIPv4(host)) {
    return { why: `"${host}" is not an IP address (a name is not resolved; IPv6 goes in brackets)` }
  }
  return { address: { host, port } }
}

/** The address of a `listen` value already checked by parseListen(); undefined for off. */
export function listenAddress(value: string): ListenAddress | undefined {
  const r = parseListen(value)
  return 'address' in r ? r.address : undefined
}
