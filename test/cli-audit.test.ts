// `haraka-backscatter audit`: the rules over a Haraka config folder, and the
// command run in process on config folders, with our own IPs looked up on a
// scripted zone on 127.0.0.1.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { auditConfig, pluginName, recipientChecks, type AuditInput } from '../lib/cli/audit-rules'
import { LISTED, configDir, dnsIni, run, scriptedDns, tmpDir } from './cli/harness'

const input = (plugins: string[], more: Partial<AuditInput> = {}): AuditInput => ({
  plugins,
  forwardChecksRecipient: false,
  routesAddresses: false,
  guardMode: undefined,
  ...more,
})
const ids = (i: AuditInput): string[] => auditConfig(i).map((f) => `${f.level} ${f.id}`)

describe('the rules', () => {
  it('names plugins as Haraka does', () => {
    assert.equal(pluginName('haraka-plugin-qmail-deliverable'), 'qmail-deliverable')
    assert.equal(pluginName('rcpt_to.ldap'), 'rcpt-ldap')
    assert.equal(pluginName(' queue/lmtp '), 'queue/lmtp')
  })

  it('an onward queue with no recipient check, or a domain-only one, is accept-then-bounce', () => {
    for (const queue of ['queue/smtp_forward', 'queue/lmtp', 'queue/qmail-queue']) {
      assert.deepEqual(ids(input(['backscatter', queue])), ['critical accept-then-bounce'], queue)
      const [f] = auditConfig(input(['backscatter', 'rcpt_to.in_host_list', queue]))
      assert.match(
        f?.what ?? '',
        /rcpt_to\.in_host_list checks only the domain: every local part is accepted/,
      )
      assert.match(f?.why ?? '', /backscatter/)
      assert.match(f?.fix ?? '', /at RCPT/)
    }
    const forward = auditConfig(
      input(['backscatter', 'queue/smtp_forward'], { forwardChecksRecipient: true }),
    )
    assert.match(forward[0]?.what ?? '', /smtp_forward check_recipient checks only the domain/)
  })

  it('a recipient check at RCPT passes; recipient-routes only with routes per address', () => {
    for (const v of [
      'qmail-deliverable',
      'haraka-plugin-rcpt-ldap',
      'rcpt_to.qmail_deliverable',
      'rcpt_to.mine',
    ]) {
      assert.deepEqual(ids(input(['backscatter', v, 'queue/lmtp'])), [], v)
    }
    assert.deepEqual(ids(input(['backscatter', 'recipient-routes', 'queue/lmtp'])), [
      'critical accept-then-bounce',
    ])
    const routed = input(['backscatter', 'recipient-routes', 'queue/lmtp'], { routesAddresses: true })
    assert.deepEqual(recipientChecks(routed).validators, ['recipient-routes'])
    assert.deepEqual(ids(routed), [])
  })

  it('queues that keep the mail, or check RCPT at the backend (smtp_proxy), are no finding', () => {
    assert.deepEqual(ids(input(['backscatter', 'rcpt_to.in_host_list', 'queue/smtp_proxy'])), [])
    assert.deepEqual(ids(input(['backscatter', 'rcpt_to.in_host_list', 'queue/test'])), [])
  })

  it('the outbound guard off, logging only, unknown or not loaded is a warning', () => {
    assert.deepEqual(ids(input(['backscatter'], { guardMode: 'suppress' })), [])
    for (const mode of ['off', 'log', 'supress']) {
      assert.deepEqual(ids(input(['backscatter'], { guardMode: mode })), ['warning outbound-guard'], mode)
    }
    const [missing] = auditConfig(input(['rcpt_to.in_host_list']))
    assert.match(missing?.what ?? '', /backscatter is not in config\/plugins/)
  })

  it('auto-reply and callout plugins, judged by name', () => {
    assert.deepEqual(ids(input(['backscatter', 'vacation', 'my_sender_verify'])), [
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
      ['xclient', 'backscatter', 'rcpt_to.in_host_list', 'queue/lmtp'],
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
    const dir = harakaConfig(['backscatter', 'qmail-deliverable', 'queue/lmtp'], dnsIni(dns.current))
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
    fs.writeFileSync(path.join(install, 'config', 'plugins'), 'backscatter\nvacation\n')
    fs.writeFileSync(path.join(install, 'config', 'backscatter.ini'), dnsIni(dns.current))
    const r = await run(['audit', '--config', install])
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /^AUDIT WARNING: 1 finding in .*\/config\n\[warning\] auto-reply: vacation/)
  })

  it('a folder without a plugins file is no Haraka config: exit 3', async () => {
    const r = await run(['audit', '--config', tmpDir()])
    assert.equal(r.code, 3)
    assert.match(r.stderr, /holds no plugins file: not a Haraka config folder/)
  })
})
