// End to end: the README's "Try it on your own machine" against a real Haraka
// with the packed plugin. Its zone file and ini as printed (the file's path the
// test's own), a bounce from 127.0.0.1 that is skipped and logged once, and
// the swaks command as printed (the port the test's Haraka listens on).
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import {
  LOCAL_DOMAIN,
  makeWorkDir,
  removeWorkDir,
  sharedDeployment,
  startHaraka,
  uncaughtErrors,
  type Haraka,
} from '../support/haraka'
import { findProgram } from '../support/programs'
import {
  assertPrinted,
  consoleSteps,
  runShell,
  sectionBlocks,
  TRY_SECTION,
  TRY_ZONE,
} from '../support/readme'
import { SmtpClient } from '../support/smtp'

const SWAKS = findProgram('swaks')
const skip = SWAKS ? false : 'swaks is not installed (Debian package swaks)'

describe('README: Try it on your own machine, with a real Haraka and swaks', { skip }, () => {
  const blocks = sectionBlocks(TRY_SECTION)
  let work: string
  let haraka: Haraka
  let own: (text: string) => string

  before(async () => {
    work = makeWorkDir('e2e-readme-try')
    const zone = path.join(work, 'try.zone')
    own = (text) => text.replaceAll(TRY_ZONE, zone)
    for (const block of blocks.filter((b) => b.lang === 'sh')) {
      const r = runShell(own(block.text), work)
      assert.equal(r.status, 0, r.stderr)
    }
    const ini = blocks.find((b) => b.lang === 'ini')
    assert.ok(ini, 'the section shows config/backscatter.ini')
    const dep = await sharedDeployment(work)
    haraka = await startHaraka(dep, {
      // xclient first, as the README says.
      plugins: ['xclient', 'backscatter', 'rcpt_to.in_host_list', 'queue/test'],
      backscatterIni: own(ini.text),
    })
  })

  after(async () => {
    await haraka?.stop()
    removeWorkDir(work)
  })

  test('a bounce from the machine itself is not looked up, and the log says why, once', async () => {
    for (let i = 0; i < 2; i++) {
      const c = await SmtpClient.connect(haraka.port)
      await c.ehlo()
      const r = await c.transaction({ from: '', to: [`someone@${LOCAL_DOMAIN}`] })
      assert.equal(r.rcpt[0]?.code, 250, r.rcpt[0]?.raw)
      await c.quit()
    }
    const lines = await haraka.waitForLog(/\[backscatter\] bounce not looked up: /)
    assert.match(lines[0] ?? '', /bounce not looked up: private address 127\.0\.0\.1 \(\[skip\] private\)/)
    assert.equal(haraka.log().match(/bounce not looked up/g)?.length, 1, 'said once')
  })

  test('the swaks command, as printed, gets the printed refusal', () => {
    const swaks = blocks.filter((b) => b.lang === 'console').flatMap(consoleSteps)
    const step = swaks.find((s) => s.command.startsWith('swaks '))
    assert.ok(step, 'the section shows a swaks command')
    const command = step.command.replace('--server 127.0.0.1 ', `--server 127.0.0.1:${haraka.port} `)
    assert.notEqual(command, step.command, 'the command names the server 127.0.0.1')
    const r = runShell(command, work)
    // swaks exits non-zero when the server refuses the recipient.
    assert.notEqual(r.status, 0, r.stdout)
    assertPrinted(r.stdout, step.output, step.command)
  })

  test("Haraka's log has no uncaught error", () => {
    const bad = uncaughtErrors(haraka.log())
    assert.deepEqual(bad, [], bad.join('\n'))
  })
})
