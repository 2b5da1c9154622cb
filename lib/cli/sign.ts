// `haraka-backscatter sign ADDRESS`: the signed form of an address, made with
// the configured key and lifetime by the plugin's own signAddress, for tests
// and for other MTAs. Never prints a secret: the keys hold none.
import { signAddress, type SignRefusal } from '../batv/sign'
import { dayText } from '../settings/batv'
import { KEYS_FILE } from '../batv/keys-file'
import { wireAddress } from '../core/sender'
import { addressArgument, dateOption, stringOption, type Values } from './args'
import { loadConfig } from './config'
import { EXIT, PROG, UsageError, type Io } from './io'
import { quote } from './table'

const REFUSAL_TEXT: Record<SignRefusal, string> = {
  'null sender': 'the null sender <> is never signed: a bounce carries no tag',
  'not an address': 'is not an address with a local part and a domain',
  'already tagged': 'is tagged already: an address is never signed twice',
  'too long':
    "is too long to sign: a tag adds 16 octets, and RFC 5321 allows 64 in a local part and 254 in an address; mail from it leaves unsigned and its bounces are judged as an unsigned domain's",
  'bad lifetime or clock': 'cannot be signed with this lifetime and date',
}

/** `--key N`: a digit 0-9, or undefined for [batv] sign_key. */
function keyOption(values: Values): number | undefined {
  const text = stringOption(values, 'key')
  if (text === undefined) return undefined
  if (!/^\d$/.test(text)) throw new UsageError(`--key ${quote(text)} is not a key number 0-9`, 'sign')
  return Number(text)
}

export interface SignOutput {
  readonly address: string
  readonly signed: string
  readonly key: number
  readonly lifetime_days: number
  /** The day it was signed and the last day it is valid, YYYY-MM-DD (UTC). */
  readonly signed_on: string
  readonly valid_until: string
  /** The address's domain is in [batv] domains: the plugin checks bounces to it. */
  readonly signing_domain: boolean
}

export async function runSign(values: Values, positionals: readonly string[], io: Io): Promise<number> {
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length ? `one ADDRESS only, not ${positionals.length}` : 'give an ADDRESS',
      'sign',
    )
  }
  const text = positionals[0] ?? ''
  const from = addressArgument(text, 'ADDRESS', 'sign')
  const address = wireAddress(from)
  const keyId = keyOption(values)
  const nowMs = dateOption(values, 'sign') ?? Date.now()
  const { settings } = loadConfig(stringOption(values, 'config'), io)
  const { batv } = settings

  if (batv.keys.size === 0) {
    // readBatv reads no key without domains, and turns BATV off when no key is usable (its error is printed above).
    throw new UsageError(
      `no BATV key to sign with: BATV is off (set [batv] domains and a key in config/${KEYS_FILE})`,
      'sign',
    )
  }
  const id = keyId ?? batv.signKeyId
  const key = batv.keys.get(id)
  if (!key) {
    const ids = [...batv.keys.keys()].join(', ')
    const which = keyId === undefined ? `[batv] sign_key ${id}` : `--key ${id}`
    throw new UsageError(`${which}: no such key (keys: ${ids})`, 'sign')
  }
  const signed = signAddress(address, key, batv.lifetimeDays, nowMs)
  if (!signed.ok) {
    const what = signed.reason === 'null sender' ? '' : `${quote(text)} `
    throw new UsageError(`${what}${REFUSAL_TEXT[signed.reason]}`, 'sign')
  }
  const domain = (from.host ?? '').toLowerCase()
  const out: SignOutput = {
    address,
    signed: signed.address,
    key: id,
    lifetime_days: batv.lifetimeDays,
    signed_on: dayText(nowMs),
    valid_until: dayText(nowMs, batv.lifetimeDays),
    signing_domain: batv.domains.has(domain),
  }
  if (!out.signing_domain) {
    io.err(
      `${PROG} sign: warning: ${domain} is not in [batv] domains: the plugin does not check bounces to it\n`,
    )
  }
  io.out(values.json ? `${JSON.stringify(out)}\n` : `${out.signed}\n`)
  return EXIT.OK
}
