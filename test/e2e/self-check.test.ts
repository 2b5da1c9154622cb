// End to end: a real Haraka with the packed plugin watches its own IP on a zone
// served by rbldnsd on 127.0.0.1 (single process and cluster mode): the listing
// in the log once, on /metrics and in `health`; and `audit` on the deployment's
// config folder, accept-then-bounce first, then fixed.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import {
  freeTcpPort,
  makeWorkDir,
  removeWorkDir,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Deployment,
  type Haraka,
} from '../support/haraka'
import { startZone, ZONE, type ZoneServer } from '../support/rbldnsd'

// Public-looking: the watch never looks up private or documentation addresses.
const OURS = '45.6.0.1'
const CLEAN = '45.6.0.2'
const PLUGINS = ['xclient', 'backscatter', 'rcpt_to.in_host_list', 'queue/test']

/** The packed command of the deployment, as an operator runs it. */
function command(dep: Deployment, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const bin = path.join(dep.dir, 'node_modules', '.bin', 'haraka-backscatter')
  const r = spawnSync(bin, args, { cwd: dep.dir, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('our own IP listed on the zone, with a real Haraka', () => {
  let work: string
  let zone: ZoneServer
  let dep: Deployment

  before(async () => {
    work = makeWorkDir('e2e-self-check')
    zone = await startZone({ listed: [OURS] })
    console.log(`DNSBL zone ${ZONE} served by ${zone.description}`)
    dep = await sharedDeployment(work)
  })

  after(async () => {
    await zone?.close()
    removeWorkDir(work)
  })

  for (const nodes of [0, 2]) {
    describe(nodes ? 'cluster mode (nodes=2): the master watches' : 'single process', () => {
      let haraka: Haraka
      let port: number

      before(async () => {
        port = await freeTcpPort()
        haraka = await startHaraka(dep, {
          nodes,
          plugins: PLUGINS,
          backscatterIni: `[dns]\nservers = ${zone.server}\n[metrics]\nlisten = ${port}\n[self_check]\nips = ${OURS}, ${CLEAN}\n`,
        })
      })

      after(async () => {
        await haraka?.stop()
      })

      test('one ERROR line naming the IP, the zone, the lookup URL and what to do', async () => {
        const [line] = await haraka.waitForLog(/\[backscatter\] our own IP 45\.6\.0\.1 is listed/)
        assert.match(line ?? '', /\[ERROR\]/)
        assert.match(line ?? '', /listed on ips\.backscatterer\.org .*Find the source and fix it/)
        assert.match(
          line ?? '',
          /four weeks .* express delisting; details: https:\/\/www\.backscatterer\.org\/\?target=test&ip=45\.6\.0\.1/,
        )
        const all = haraka
          .log()
          .split('\n')
          .filter((l) => /our own IP/.test(l))
        assert.equal(all.length, 1, 'once, by one process')
      })

      test('the gauge on /metrics: 1 for the listed IP, 0 for the clean one', async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
        assert.match(
          text,
          /^haraka_backscatter_self_listed\{zone="ips\.backscatterer\.org",ip="45\.6\.0\.1"\} 1$/m,
        )
        assert.match(
          text,
          /^haraka_backscatter_self_listed\{zone="ips\.backscatterer\.org",ip="45\.6\.0\.2"\} 0$/m,
        )
        assert.equal((text.match(/^# TYPE haraka_backscatter_self_listed /gm) ?? []).length, 1)
      })

      test('health on the deployment says CRITICAL, exit 2', () => {
        const r = command(dep, ['health', '--config', path.join(dep.dir, 'config')])
        assert.equal(r.status, 2, r.stdout + r.stderr)
        assert.match(
          r.stdout,
          /^BACKSCATTER CRITICAL: our own IP 45\.6\.0\.1 listed on ips\.backscatterer\.org/,
        )
      })

      test('no other error', () => {
        const others = uncaughtErrors(haraka.log()).filter((l) => !/our own IP 45\.6\.0\.1 is listed/.test(l))
        assert.deepEqual(others, [])
      })
    })
  }

  describe('audit on the deployment', () => {
    test('accept-then-bounce (queue/lmtp, rcpt_to.in_host_list): critical, exit 2', () => {
      dep.writeConfig('plugins', 'spf\nbackscatter\nrcpt_to.in_host_list\nqueue/lmtp\n')
      dep.writeConfig('backscatter.ini', `[dns]\nservers = ${zone.server}\n[self_check]\nips = ${CLEAN}\n`)
      const r = command(dep, ['audit', '--config', dep.dir])
      assert.equal(r.status, 2, r.stdout + r.stderr)
      assert.match(r.stdout, /^AUDIT CRITICAL: 1 finding in .*\n\[critical\] accept-then-bounce: queue\/lmtp/)
      assert.match(r.stdout, /rcpt_to\.in_host_list checks only the domain/)
    })

    test('a recipient check listed after rcpt_to.in_host_list is never asked: critical', () => {
      dep.writeConfig('plugins', 'spf\nbackscatter\nrcpt_to.in_host_list\nqmail-deliverable\nqueue/lmtp\n')
      const r = command(dep, ['audit', '--config', dep.dir])
      assert.equal(r.status, 2, r.stdout + r.stderr)
      assert.match(
        r.stdout,
        /^\[critical\] accept-then-bounce: queue\/lmtp .*rcpt_to\.in_host_list accepts every local part of its domains before qmail-deliverable is asked/m,
      )
      assert.match(
        r.stdout,
        /^ {2}fix: list qmail-deliverable before rcpt_to\.in_host_list in config\/plugins/m,
      )
    })

    test('our own IP listed: critical too', () => {
      dep.writeConfig('plugins', 'spf\nbackscatter\nqmail-deliverable\nqueue/lmtp\n')
      dep.writeConfig('backscatter.ini', `[dns]\nservers = ${zone.server}\n[self_check]\nips = ${OURS}\n`)
      const r = command(dep, ['audit', '--config', dep.dir])
      assert.equal(r.status, 2, r.stdout + r.stderr)
      assert.match(r.stdout, /^\[critical\] own-ip-listed: our own IP 45\.6\.0\.1 is listed/m)
    })

    test('fixed (a recipient check at RCPT, our IPs clean): passes, exit 0', () => {
      dep.writeConfig('backscatter.ini', `[dns]\nservers = ${zone.server}\n[self_check]\nips = ${CLEAN}\n`)
      const r = command(dep, ['audit', '--config', dep.dir])
      assert.equal(r.status, 0, r.stdout + r.stderr)
      assert.match(r.stdout, /^AUDIT OK: no findings in /)
      assert.match(
        r.stdout,
        /own IPs: 45\.6\.0\.2 \(\[self_check\] ips\): not listed on ips\.backscatterer\.org/,
      )
    })
  })
})
