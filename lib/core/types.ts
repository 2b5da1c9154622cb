// The types every layer shares: what a lookup found, what a zone said, the
// verdict on a client, and the settings as the plugin uses them (settings/
// reads config/backscatter.ini into these). Types only, and the few constants
// that define them; no behaviour.
import type { KeyObject } from 'node:crypto'

import type { Template } from './template'

/** Why a tag does not count. */
export type InvalidReason =
  /** Starts with `prvs=` but is not a well-formed tag. */
  | 'malformed'
  /** No key with the tag's number. */
  | 'unknown key'
  /** The signature does not match. */
  | 'bad signature'
  /** Genuine, but past the end of its expiry day (or further ahead than `lifetimeDays`). */
  | 'expired'

/** A BATV key as the decisions use it: its number and its signature of a text (batv/sign.ts makes them). */
export interface TagKey {
  /** Key number 0..9, the K of a tag. */
  readonly id: number
  /** The six-hex-digit signature of `head` then `text`, as a number 0..0xffffff. */
  signatureOf(text: string, head?: string): number
}

/** What one lookup of one IP in one zone found. */
export type LookupResult =
  | {
      readonly status: 'listed'
      readonly codes: readonly string[]
      /** Clean TXT reason, '' when the zone gave none or the TXT query failed. */
      readonly reason: string
      /** Shortest TTL of the A records, in seconds. */
      readonly ttlSeconds: number
    }
  | { readonly status: 'not-listed' }
  | { readonly status: 'error'; readonly reason: string }

/** What one zone said about the client. */
export type ZoneOutcome =
  | {
      readonly zone: string
      readonly status: 'listed'
      readonly codes: readonly string[]
      /** Clean TXT reason ('' when the zone gave none). */
      readonly reason: string
    }
  | { readonly zone: string; readonly status: 'not-listed' }
  | { readonly zone: string; readonly status: 'error'; readonly reason: string }
  | { readonly zone: string; readonly status: 'skipped'; readonly reason: string }

export type ListedOutcome = Extract<ZoneOutcome, { status: 'listed' }>

/** The decision for one transaction's client, before any recipient is looked at. */
export interface Verdict {
  readonly ip: string
  readonly outcomes: readonly ZoneOutcome[]
  /** Listings, highest score first. */
  readonly listed: readonly ListedOutcome[]
  /** Sum of the listing zones' scores. */
  readonly score: number
  /** The score reached the threshold, so the configured action applies. */
  readonly actionable: boolean
}

/** What the plugin may do with a bounce whose score reaches the threshold. */
export const ACTIONS = ['reject', 'defer', 'score'] as const
export type Action = (typeof ACTIONS)[number]

/** The actions for one recipient domain: an Action, or off (never refused, like an exempt recipient). */
export const RECIPIENT_ACTIONS = [...ACTIONS, 'off'] as const
export type RecipientAction = (typeof RECIPIENT_ACTIONS)[number]

export interface ZoneSettings {
  /** DNS zone queried, e.g. `ips.backscatterer.org`. */
  readonly name: string
  /** Score added when the zone lists the client and no per-answer score matches. */
  readonly score: number
  /** Per-answer scores, keyed by A record (`127.0.0.2`). Overrides `score`. */
  readonly answerScores: ReadonlyMap<string, number>
  /** Query the zone for IPv4 clients. */
  readonly ipv4: boolean
  /** Query the zone for IPv6 clients (ips.backscatterer.org lists IPv4 only). */
  readonly ipv6: boolean
  /** Where a refused sender can look the listing up; `{ip}` is replaced. Empty: none. */
  readonly lookupUrl: string
  /** rbldnsd zone file to answer from instead of DNS. Empty: use DNS. */
  readonly file: string
  /**
   * Suspend the zone when it does not list its RFC 5782 positive test point
   * (127.0.0.2). Off, a missing entry only warns: it cannot cause a false refusal.
   */
  readonly requireTestPoint: boolean
}

export interface DnsSettings {
  /** Resolvers as `ip` or `ip:port`. Empty: the system resolvers. */
  readonly servers: readonly string[]
  /** Wait for one DNS try, in milliseconds. */
  readonly timeoutMs: number
  /** DNS tries per query; a lookup never waits longer than timeoutMs × tries. */
  readonly tries: number
  /** Cached answers (per zone and IP) at most; 0 turns the cache off. */
  readonly cacheSize: number
  /** Longest time a listing is cached, whatever its TTL, in seconds. */
  readonly maxTtlSeconds: number
  /** How long a not-listed answer is cached, in seconds. */
  readonly negativeTtlSeconds: number
  /** Seconds between RFC 5782 test-point checks of each zone; 0 turns them off. */
  readonly healthIntervalSeconds: number
}

export interface Settings {
  readonly zones: readonly ZoneSettings[]
  /** Score at which `action` applies. */
  readonly threshold: number
  readonly action: Action
  /** Reply text; placeholders {ip} {zone} {reason} {url} {score}. */
  readonly message: string
  /** `message`, split at its placeholders. */
  readonly messageTemplate: Template
  /**
   * Recipients always accepted, lower case: local parts, `local@domain` and
   * `@domain`; postmaster always among them (RFC 5321 §4.5.1).
   */
  readonly exemptRecipients: ReadonlySet<string>
  /** Per lower-case recipient domain, the action used instead of `action`. */
  readonly recipientActions: ReadonlyMap<string, RecipientAction>
  /** Header added to accepted, checked messages. Empty: none. */
  readonly header: string
  readonly senders: {
    /** Treat the null sender `<>` as a bounce. */
    readonly null: boolean
    /** Lower-case local parts that mark a bounce-type sender (always includes postmaster). */
    readonly localParts: ReadonlySet<string>
  }
  readonly skip: {
    /** Skip private, loopback and link-local clients. */
    readonly private: boolean
    /** Skip relaying (authenticated or relay-allowed) clients. */
    readonly relaying: boolean
    /** Addresses and CIDRs never looked up. */
    readonly ips: readonly string[]
  }
  readonly dns: DnsSettings
  readonly metrics: {
    /** Where /metrics is served; undefined: not served. */
    readonly listen: ListenAddress | undefined
  }
  /** Signed bounces (BATV); off while `batv.domains` is empty. */
  readonly batv: BatvSettings
  /** The sent-mail ledger in Redis; off unless `[ledger] mode` is set and a ledger key exists. */
  readonly ledger: LedgerSettings
  /** What happens to a DSN Haraka is about to send to a sender that was never verified. */
  readonly outboundGuard: OutboundGuardSettings
  /** The watch of this host's own IPs on the zones. */
  readonly selfCheck: SelfCheckSettings
}

/**
 * What the sent-mail ledger does: off; record sent mail and check bounces but
 * change no decision; or check, where its scores apply.
 */
export const LEDGER_MODES = ['off', 'record', 'check'] as const
export type LedgerMode = (typeof LEDGER_MODES)[number]

export interface LedgerSettings {
  /** The mode in effect: off also when the mode is set but no usable ledger key exists. */
  readonly mode: LedgerMode
  /** The Redis server, `redis://[user:password@]host[:port][/db]` or `rediss://…`. */
  readonly redisUrl: string
  /** Days a sent message is remembered; a younger ledger never says "not ours". */
  readonly windowDays: number
  /** Longest wait for one Redis round trip, in milliseconds; then the mail goes on. */
  readonly timeoutMs: number
  readonly scores: {
    /** Score of a bounce of mail we sent (negative: it overrides a listing or a missing tag). */
    readonly ours: number
    /** Score of a bounce whose every reference was checked and none was sent by us. */
    readonly notOurs: number
  }
  /** The HMAC key of config/backscatter.keys `ledger = …`; undefined while off. Never the secret's text. */
  readonly key: KeyObject | undefined
}

/** suppress: the DSN is not sent; log: it is sent, and the log says it would not have been; off: not judged. */
export const GUARD_MODES = ['suppress', 'log', 'off'] as const
export type GuardMode = (typeof GUARD_MODES)[number]

/**
 * haraka-plugin-spf's results for the envelope sender, lower case, and
 * `absent` when it recorded none (SPF not run, skipped, timed out or failed).
 */
export const SPF_RESULTS = [
  'pass',
  'fail',
  'softfail',
  'neutral',
  'none',
  'temperror',
  'permerror',
  'absent',
] as const
export type SpfResult = (typeof SPF_RESULTS)[number]

export interface OutboundGuardSettings {
  readonly mode: GuardMode
  /** SPF results that leave a sender unverified; never `pass`. */
  readonly unverifiedSpf: ReadonlySet<SpfResult>
}

export interface SelfCheckSettings {
  /** Watch this host's own IPs on the zones. */
  readonly enabled: boolean
  /** The IPs named to watch (reserved ones among them are never looked up). */
  readonly ips: readonly string[]
  /**
   * `ips` names something, usable or not: then only `ips` is watched, even when
   * that is nothing. Unset or empty: the addresses Haraka's configuration and
   * the interfaces give.
   */
  readonly ipsSet: boolean
  /** Minutes between two looks. */
  readonly intervalMinutes: number
}

export interface BatvSettings {
  /** Lower-case domains whose senders are signed and whose bounces are checked; empty: BATV is off. */
  readonly domains: ReadonlySet<string>
  /** The keys that check tags, by number. Never the secrets' text. */
  readonly keys: ReadonlyMap<number, TagKey>
  /** `[batv] sign_key`. */
  readonly signKeyId: number
  /** The key that signs; undefined: nothing is signed (sign is off, or there is no such key). */
  readonly signKey: TagKey | undefined
  readonly lifetimeDays: number
  /** Sign the MAIL FROM of relaying clients. */
  readonly sign: boolean
  readonly scores: { readonly missing: number; readonly invalid: number; readonly valid: number }
  /** `[batv] missing_from` as written ('' for none). */
  readonly missingFrom: string
  /** 00:00 UTC of missing_from: from then on `missing` is scored; undefined: never. */
  readonly missingFromMs: number | undefined
  /** Lower-case local parts of senders checked for tags besides the null sender; empty: <> only. */
  readonly checkLocalParts: ReadonlySet<string>
  /** Lower-case addresses and @domains whose mail leaves unsigned. */
  readonly unsignedRecipients: ReadonlySet<string>
  /** `[batv] keys_file`: another file of the config folder holding [batv.keys] (read for one more release). */
  readonly keysFile: string
}

export interface ListenAddress {
  /** An IP address literal, never a name to resolve. */
  readonly host: string
  readonly port: number
}

/** Mail that a machine sends in reply: a delivery report, a read receipt, an auto-reply, a challenge; or none of these. */
export const REPLY_KINDS = ['dsn', 'mdn', 'auto-reply', 'challenge', 'none'] as const
export type ReplyKind = (typeof REPLY_KINDS)[number]

/** What the sent-mail ledger says of the mail a message refers to. */
export type LedgerResult = 'ours' | 'not-ours' | 'unknown'
