// Types for the untyped Haraka libraries, limited to what this plugin uses.
declare module 'haraka-net-utils' {
  export function ipv6_reverse(ip: string): string
  export function is_private_ip(ip: string): boolean
  export function ip_in_list(list: readonly string[], ip: string): boolean
  export function normalize_ip(ip: string): string | null
  /** config/me, else the host name: the name Haraka's outbound uses in a Message-ID it adds. */
  export function get_primary_host_name(): string
}

declare module 'haraka-tld' {
  /** The Public Suffix List's rules; empty until the list is loaded. */
  export const public_suffix_list: ReadonlyMap<string, unknown>
  /** Settles once the lists are loaded from the package's files. */
  export const ready: Promise<void>
  export function is_public_suffix(host: string): boolean
  /** The registered name under the public suffix; null for a suffix itself or a name under no known suffix. */
  export function get_organizational_domain(host: string): string | null
}

declare module 'haraka-constants' {
  export const CONT: number
  export const DENY: number
  export const DENYSOFT: number
  export const OK: number
}

declare module 'haraka-dsn' {
  export default class DSN {
    static create(code: number, msg: string, subject: number, detail: number): DSN
    code: number
    reply: string
  }
}
