// `haraka-backscatter audit`: the rules over a Haraka config folder, and the
// command run in process on config folders, with our own IPs looked up on a
// scripted zone on 127.0.0.1.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import {
  auditConfig,
  pluginName,
  recipientChecks,
  type AuditInput,
  type RelaySetup,
} from '../lib/cli/audit-rules'
import { LISTED, configDir, dnsIni, run, scriptedDns, tmpDir } from './cli/harness'

/** haraka-plugin-relay's defaults, and no relay_dest_domains.ini. */
const RELAY_DEFAULTS: RelaySetup = { destDomains: false, forceRouting: true, all: false, domains: [] }
const input = (plugins: string[], more: Partial<AuditInput> = {}): AuditInput => ({
  plugins,
  forwardChecksRecipient: false,
  routesAddresses: false,
  guardMode: undefined,
  absentUnverified: true,
  relay: RELAY_DEFAULTS,
  ...more,
})
const ids = (i: AuditInput): string[] => auditConfig(i).map((f) => `${f.level} ${f.id}`)
/** The plugin and the SPF results its guard reads. */
const GUARDED = ['spf', 'backscatter']

describe('the rules', () => {
  it('names plugins as Haraka does', () => {
    assert.equal(pluginName('haraka-plugin-qmail-deliverable'), 'qmail-deliverable')
    assert.equal(pluginName('rcpt_to.ldap'), 'rcpt-ldap')
    assert.equal(pluginName(' queue/lmtp '), 'queue/lmtp')
  })

  it('an onward queue with no recipient check, or a domain-only one, is accept-then-bounce', () => {
    for (const queue of [
      'queue/smtp_forward',
      'queue/lmtp',
      'queue/qmail-queue',
      'queue/smtp_bridge',
      'queue/deliver',
    ]) {
      assert.deepEqual(ids(input([...GUARDED, queue])), ['critical accept-then-bounce'], queue)
      const [f] = auditConfig(input([...GUARDED, 'rcpt_to.in_host_list', queue]))
      assert.match(
        f?.what ?? '',
        /rcpt_to\.in_host_list checks only the domain: every local part is accepted/,
      )
      assert.match(f?.why ?? '', /backscatter/)
      assert.match(f?.fix ?? '', /at RCPT/)
    }
    const forward = auditConfig(input([...GUARDED, 'queue/smtp_forward'], { forwardChecksRecipient: true }))
    assert.match(forward[0]?.what ?? '', /smtp_forward check_recipient checks only the domain/)
  })

  it('a recipient check at RCPT passes; recipient-routes only with routes per address', () => {
    for (const v of [
      'qmail-deliverable',
      'haraka-plugin-rcpt-ldap',
      'rcpt_to.qmail_deliverable',
      'rcpt_to.mine',
    ]) {
      assert.deepEqual(ids(input([...GUARDED, v, 'queue/lmtp'])), [], v)
    }
    assert.deepEqual(ids(input([...GUARDED, 'recipient-routes', 'queue/lmtp'])), [
      'critical accept-then-bounce',
    ])
    const routed = input([...GUARDED, 'recipient-routes', 'queue/lmtp'], { routesAddresses: true })
    assert.deepEqual(recipientChecks(routed).validators, ['recipient-routes'])
    assert.deepEqual(ids(routed), [])
  })

  it('queues that keep the mail, or check RCPT at the backend (smtp_proxy), are no finding', () => {
    assert.deepEqual(ids(input([...GUARDED, 'rcpt_to.in_host_list', 'queue/smtp_proxy'])), [])
    assert.deepEqual(ids(input([...GUARDED, 'rcpt_to.in_host_list', 'queue/test'])), [])
  })

  it('a plugin that accepts every local part, listed before the recipient check, leaves it unasked', () => {
    // rcpt_to.in_host_list answers OK for its domains, which ends Haraka's rcpt hook.
    const shadowed = input([...GUARDED, 'rcpt_to.in_host_list', 'qmail-deliverable', 'queue/lmtp'])
    const [f, ...more] = auditConfig(shadowed)
    assert.deepEqual(more, [])
    assert.equal(f?.id, 'accept-then-bounce')
    assert.equal(f?.level, 'critical')
    assert.equal(
      f?.what,
      'queue/lmtp queues inbound mail onward, and rcpt_to.in_host_list accepts every local part of its domains before qmail-deliverable is asked: for those domains no recipient is checked at RCPT',
    )
    assert.match(
      f?.why ?? '',
      /^a plugin that answers OK at RCPT ends Haraka's rcpt hook, so qmail-deliverable never runs for them; queue\/lmtp delivers/,
    )
    assert.equal(
      f?.fix,
      'list qmail-deliverable before rcpt_to.in_host_list in config/plugins, so each recipient is looked up before its domain alone is accepted',
    )
    assert.deepEqual(recipientChecks(shadowed).shadowing, ['rcpt_to.in_host_list'])
    // In the other order the recipient check comes first: no finding.
    assert.deepEqual(ids(input([...GUARDED, 'qmail-deliverable', 'rcpt_to.in_host_list', 'queue/lmtp'])), [])
    // smtp_forward's check_recipient answers at smtp_forward's place in the list.
    const forward = input([...GUARDED, 'queue/smtp_forward', 'rcpt-ldap'], { forwardChecksRecipient: true })
    assert.match(
      auditConfig(forward)[0]?.what ?? '',
      /smtp_forward check_recipient accepts every local part .* before rcpt-ldap is asked/,
    )
    assert.deepEqual(
      ids(input([...GUARDED, 'rcpt-ldap', 'queue/smtp_forward'], { forwardChecksRecipient: true })),
      [],
    )
  })

  it('relay routing inbound mail onward (dest_domains, force_routing) with no recipient check', () => {
    const routed: RelaySetup = {
      ...RELAY_DEFAULTS,
      destDomains: true,
      domains: [{ domain: 'example.com', action: 'continue', nexthop: '10.0.0.5:25' }],
    }
    const [f] = auditConfig(input([...GUARDED, 'relay', 'rcpt_to.in_host_list'], { relay: routed }))
    assert.equal(f?.id, 'accept-then-bounce')
    assert.equal(
      f?.what,
      "relay (dest_domains, force_routing) sends inbound mail for example.com on through Haraka's outbound queue, and nothing checks at RCPT that the recipient exists (rcpt_to.in_host_list checks only the domain: every local part is accepted)",
    )
    assert.match(f?.why ?? '', /next hop 10\.0\.0\.5:25 does not know/)
    // force_routing alone, a nexthop for the domain: mail for it goes on from here.
    const forced: RelaySetup = {
      ...RELAY_DEFAULTS,
      domains: [{ domain: 'example.com', action: '', nexthop: '10.0.0.5' }],
    }
    assert.deepEqual(ids(input([...GUARDED, 'relay'], { relay: forced })), ['critical accept-then-bounce'])
    // action accept answers OK itself: a recipient check after relay is never asked.
    const accepting: RelaySetup = {
      ...routed,
      domains: [{ domain: 'example.com', action: 'accept', nexthop: '' }],
    }
    const [g] = auditConfig(input([...GUARDED, 'relay', 'qmail-deliverable'], { relay: accepting }))
    assert.match(
      g?.what ?? '',
      /relay \(dest_domains\) sends inbound mail .*, and relay \(dest_domains accept\) accepts every local part of its domains before qmail-deliverable is asked/,
    )
    // Checked first, or no domain routed: no finding.
    assert.deepEqual(ids(input([...GUARDED, 'qmail-deliverable', 'relay'], { relay: accepting })), [])
    assert.deepEqual(
      ids(input([...GUARDED, 'relay'], { relay: { ...RELAY_DEFAULTS, destDomains: true } })),
      [],
    )
    assert.deepEqual(ids(input([...GUARDED, 'relay'])), [])
    // relay not loaded: its files do nothing.
    assert.deepEqual(ids(input([...GUARDED], { relay: routed })), [])
  })

  it('the outbound guard off, logging only, unknown or not loaded is a warning', () => {
    assert.deepEqual(ids(input(GUARDED, { guardMode: 'suppress' })), [])
    for (const mode of ['off', 'log', 'supress']) {
      assert.deepEqual(ids(input(['backscatter'], { guardMode: mode })), ['warning outbound-guard'], mode)
    }
    const [missing] = auditConfig(input(['rcpt_to.in_host_list']))
    assert.match(missing?.what ?? '', /backscatter is not in config\/plugins/)
  })

  it('suppress with no SPF plugin: every inbound DSN would count as SPF absent', () => {
    const [f, ...more] = auditConfig(input(['backscatter', 'qmail-deliverable', 'queue/lmtp']))
    assert.deepEqual(more, [])
    assert.deepEqual(f, {
      id: 'guard-without-spf',
      level: 'warning',
      what: '[outbound_guard] mode = suppress, and spf is not in config/plugins',
      why: "the guard reads the sender's SPF result that haraka-plugin-spf records; without it every inbound DSN counts as SPF absent, and a real sender's DSN is suppressed unless a DKIM signature aligned with its domain passed",
      fix: 'list spf (haraka-plugin-spf) in config/plugins, so a DSN to a sender whose SPF passes is sent',
    })
    assert.deepEqual(ids(input(['haraka-plugin-spf', 'backscatter'])), [])
    assert.deepEqual(ids(input(['backscatter'], { guardMode: 'log' })), ['warning outbound-guard'])
    // absent left out of unverified_spf: no DSN is suppressed for want of SPF.
    assert.deepEqual(ids(input(['backscatter'], { absentUnverified: false })), [])
  })

  it('auto-reply and callout plugins, judged by name', () => {
    assert.deepEqual(ids(input([...GUARDED, 'vacation', 'my_sender_verify'])), [
      'warning auto-reply',
      'warning sender-callout',
    ])
  })
})

const dns = scriptedDns()

function harakaConfig(plugins: string[], ini: string, files: Record<string, string> = {}): string {
  const dir = configDir(ini)
  fs.writeFileSync(path.join(dir, 'plugins'), `# config/plugins\n${plugins.join('\n')}\n`)
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text)
  return dir
}

describe('audit on a config folder', () => {
  it('accept-then-bounce: says so with why and the fix, and exits 2', async () => {
    const dir = harakaConfig(
      ['xclient', 'spf', 'backscatter', 'rcpt_to.in_host_list', 'queue/lmtp'],
      dnsIni(dns.current),
    )
    const r = await run(['audit', '--config', dir])
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.match(
      r.stdout,
      new RegExp(`^AUDIT CRITICAL: 1 finding in ${dir}\\n\\[critical\\] accept-then-bounce: queue/lmtp`),
    )
    assert.match(r.stdout, /^ {2}why: .*DSN to the envelope sender/m)
    assert.match(r.stdout, /^ {2}fix: check each recipient at RCPT/m)
  })

  it('the fixed setup passes with exit 0, and says what it checked', async () => {
    const dir = harakaConfig(['spf', 'backscatter', 'qmail-deliverable', 'queue/lmtp'], dnsIni(dns.current))
    const r = await run(['audit', '--config', dir])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(
      r.stdout,
      new RegExp(`^AUDIT OK: no findings in ${dir}\\nchecked: recipients at RCPT: qmail-deliverable\\n`),
    )
  })

  it('our own IP listed now is critical; the guard set to log a warning; --json one line each', async () => {
    const ini = dnsIni(dns.current, `[self_check]\nips = ${LISTED}\n[outbound_guard]\nmode = log ; for now\n`)
    const dir = harakaConfig(['backscatter', 'qmail-deliverable', 'queue/lmtp'], ini)
    const r = await run(['audit', '--config', dir, '--json'])
    assert.equal(r.code, 2, r.stdout + r.stderr)
    const found = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; level: string; what: string })
    assert.deepEqual(
      found.map((f) => `${f.level} ${f.id}`),
      ['critical own-ip-listed', 'warning outbound-guard'],
    )
    assert.match(found[0]?.what ?? '', /^our own IP 45\.33\.12\.7 is listed on ips\.backscatterer\.org/)
  })

  it('a warning alone exits 1; an install directory works as its config/', async () => {
    const install = tmpDir()
    fs.mkdirSync(path.join(install, 'config'))
    fs.writeFileSync(path.join(install, 'config', 'plugins'), 'spf\nbackscatter\nvacation\n')
    fs.writeFileSync(path.join(install, 'config', 'backscatter.ini'), dnsIni(dns.current))
    const r = await run(['audit', '--config', install])
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /^AUDIT WARNING: 1 finding in .*\/config\n\[warning\] auto-reply: vacation/)
  })

  it("relay's files as haraka-plugin-relay reads them: dest_domains routing inbound mail on", async () => {
    const withRelay = (relayIni: string): string =>
      harakaConfig(['spf', 'backscatter', 'relay', 'rcpt_to.in_host_list'], dnsIni(dns.current), {
        'relay.ini': relayIni,
        'relay_dest_domains.ini':
          '[domains]\nexample.com = { "action": "continue", "nexthop": "10.0.0.5:25" }\n',
      })
    const r = await run(['audit', '--config', withRelay('[relay]\nacl=true\ndest_domains=true\n')])
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.match(
      r.stdout,
      /^\[critical\] accept-then-bounce: relay \(dest_domains, force_routing\) sends inbound mail for example\.com on through Haraka's outbound queue/m,
    )
    const r2 = await run([
      'audit',
      '--config',
      withRelay('[relay]\ndest_domains=false\nforce_routing=false\n'),
    ])
    assert.equal(r2.code, 0, r2.stdout + r2.stderr)
  })

  it('a folder without a plugins file is no Haraka config: exit 3', async () => {
    const r = await run(['audit', '--config', tmpDir()])
    assert.equal(r.code, 3)
    assert.match(r.stderr, /holds no plugins file: not a Haraka config folder/)
  })
})
