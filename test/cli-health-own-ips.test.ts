// `haraka-backscatter health` and our own IPs: a listed one is a critical row,
// and the exit status says so; the addresses come from Haraka's config folder.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { CLEAN, LISTED, REASON, configDir, dnsIni, run, scriptedDns } from './cli/harness'

const dns = scriptedDns()

describe('health looks our own IPs up on the zones', () => {
  it('a listed own IP is CRITICAL (exit 2), named in the summary, its row and what to do', async () => {
    const dir = configDir(dnsIni(dns.current, `[self_check]\nips = ${LISTED}, ${CLEAN}\n`))
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.equal(
      r.stdout.split('\n')[0],
      `BACKSCATTER CRITICAL: our own IP ${LISTED} listed on ips.backscatterer.org`,
    )
    assert.match(
      r.stdout,
      new RegExp(
        `^own IPs: {3}${LISTED} \\(\\[self_check\\] ips\\): LISTED on ips\\.backscatterer\\.org \\(${REASON}\\)\\n {11}${CLEAN} \\(\\[self_check\\] ips\\): not listed on ips\\.backscatterer\\.org$`,
        'm',
      ),
    )
    assert.match(
      r.stdout,
      /^our own IP 45\.33\.12\.7 is listed on .*Find the source and fix it.*express delisting; details: https:\/\/www\.backscatterer\.org\/\?target=test&ip=45\.33\.12\.7\.$/m,
    )
  })

  it('--json: one line per own IP and zone', async () => {
    const dir = configDir(dnsIni(dns.current, `[self_check]\nips = ${LISTED}\n`))
    const r = await run(['health', '--config', dir, '--json'])
    assert.equal(r.code, 2)
    const own = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((o) => 'own_ip' in o)
    assert.deepEqual(own, [
      {
        own_ip: LISTED,
        zone: 'ips.backscatterer.org',
        status: 'critical',
        listed: true,
        result: 'listed',
        reason: REASON,
      },
    ])
  })

  it("reads the addresses from Haraka's config folder: smtp.ini public_ip", async () => {
    const dir = configDir(dnsIni(dns.current))
    fs.writeFileSync(path.join(dir, 'smtp.ini'), `public_ip = ${LISTED}\n`)
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 2, r.stdout)
    assert.match(r.stdout, new RegExp(`^own IPs: {3}${LISTED} \\(smtp\\.ini public_ip\\): LISTED`, 'm'))
  })

  it('[self_check] ips naming private addresses only: none watched, and no other address looked up', async () => {
    const dir = configDir(dnsIni(dns.current, '[self_check]\nips = 10.0.0.1\n'))
    fs.writeFileSync(path.join(dir, 'smtp.ini'), `public_ip = ${LISTED}\n`)
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, r.stdout)
    assert.match(
      r.stdout,
      /^own IPs: {3}none: \[self_check\] ips names no public address \(10\.0\.0\.1: private \(RFC 1918\)\)$/m,
    )
  })

  it('enabled = false: nothing looked up, OK', async () => {
    const dir = configDir(dnsIni(dns.current, `[self_check]\nenabled = false\nips = ${LISTED}\n`))
    const before = dns.current.count('7.12.33.45.ips.backscatterer.org')
    const r = await run(['health', '--config', dir])
    assert.equal(r.code, 0, r.stdout)
    assert.match(r.stdout, /^own IPs: {3}off \(\[self_check\] enabled = false\)$/m)
    assert.equal(dns.current.count('7.12.33.45.ips.backscatterer.org'), before)
  })
})
