// BackscatterChecker with a zone file instead of DNS: answers from the file,
// its test points, a file that loads late, appears late or cannot be loaded.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, it, mock } from 'node:test'

import { BackscatterChecker } from '../lib/dns/checker'
import { parseSettings } from '../lib/settings/parse'
import { ZONE } from './support/checker'
import { onMockClock, untilTicking } from './support/mock-clock'

describe('BackscatterChecker with a zone file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-zonefile-'))
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  function fileChecker(text: string | undefined, dnsExtra: Record<string, unknown> = {}) {
    const file = path.join(dir, `zone-${Math.random().toString(36).slice(2)}`)
    if (text !== undefined) fs.writeFileSync(file, text)
    const { settings, problems } = parseSettings({
      main: { zones: ZONE },
      // No DNS server answers here: every answer must come from the file. The budget a
      // lookup waits for the file's first load is generous: a busy machine reads slowly.
      dns: { servers: '127.0.0.1:9', timeout_ms: 2000, tries: 1, health_interval: 300, ...dnsExtra },
      [ZONE]: { file },
    })
    assert.deepEqual(problems, [])
    const lines: string[] = []
    const checker = new BackscatterChecker(settings, {
      info: (m) => lines.push(`info ${m}`),
      warn: (m) => lines.push(`warn ${m}`),
    })
    return { checker, lines, file }
  }

  it('answers from the file, TXT with $ replaced, after its test points pass', async () => {
    const { checker, lines } = fileChecker(
      ':127.0.0.2:Backscatter from $, see the list\n127.0.0.2\n45.1.1.0/24\n!45.1.1.9\n',
    )
    checker.start()
    assert.deepEqual(await checker.check('45.1.1.7'), [
      {
        zone: ZONE,
        status: 'listed',
        codes: ['127.0.0.2'],
        reason: 'Backscatter from 45.1.1.7, see the list',
      },
    ])
    assert.deepEqual(await checker.check('45.1.1.9'), [{ zone: ZONE, status: 'not-listed' }])
    assert.deepEqual(await checker.check('45.2.2.2'), [{ zone: ZONE, status: 'not-listed' }])
    assert.ok(
      lines.some((l) => /passed its RFC 5782 test-point check/.test(l)),
      lines.join('\n'),
    )
    checker.close()
  })

  it('a file that lists 127.0.0.1 (everything) suspends the zone', async () => {
    const { checker } = fileChecker('0.0.0.0/1\n64.0.0.0/2\n127.0.0.0/8\n')
    checker.start()
    const [o] = await checker.check('45.1.1.7')
    assert.equal(o!.status, 'skipped')
    assert.match((o as { reason: string }).reason, /lists test point 127\.0\.0\.1/)
    checker.close()
  })

  it('a file slower to load than the DNS budget is checked when it is loaded, not suspended', async () => {
    const lines = Array.from(
      { length: 300_000 },
      (_, i) => `46.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    )
    const { checker, lines: log } = fileChecker(`127.0.0.2\n${lines.join('\n')}\n`, { timeout_ms: 50 })
    checker.start()
    const [early] = await checker.check('46.0.0.7')
    assert.equal(early!.status, 'error', 'too early: no verdict yet')
    await checker.checkHealth() // joins the first check, which waits for the load
    assert.equal(checker.healthStates()[0]!.state, 'usable', log.join('\n'))
    assert.equal((await checker.check('46.0.0.7'))[0]!.status, 'listed')
    assert.ok(!log.some((l) => l.includes('suspended')), log.join('\n'))
    checker.close()
  })

  it('a file that appears after start is loaded and used without waiting for the interval', async (t) => {
    // The file's watch is real; its wait for the file to settle runs on the mock clock.
    mock.timers.enable({ apis: ['setTimeout'] })
    t.after(() => mock.timers.reset())
    const { checker, file } = fileChecker(undefined)
    checker.start()
    const [before] = await checker.check('45.1.1.7')
    assert.equal(before!.status, 'skipped')
    assert.match(
      (before as { reason: string }).reason,
      /zone file \S+ not loaded: no such file or directory \(ENOENT\)/,
    )
    fs.writeFileSync(`${file}.tmp`, '127.0.0.2\n45.1.1.0/24\n')
    fs.renameSync(`${file}.tmp`, file)
    const usable = (): boolean => checker.healthStates()[0]!.state === 'usable'
    // The clock stops well short of the 300 s health interval: the watch brought the file in.
    await untilTicking(usable, 'the file loaded and checked', 10_000)
    assert.equal((await checker.check('45.1.1.7'))[0]!.status, 'listed')
    checker.close()
  })

  it('a missing file: an error result within the budget, and the mail goes on', async () => {
    const { checker } = fileChecker(undefined, { health_interval: 0, timeout_ms: 200 })
    const budgetMs = 200
    const { result, ms } = await onMockClock(async () => {
      checker.start()
      return checker.check('45.1.1.7')
    }, budgetMs)
    // Whether the failed load has been seen by then depends on the disk, not on the clock.
    assert.equal(result.length, 1)
    assert.deepEqual([result[0]!.zone, result[0]!.status], [ZONE, 'error'])
    assert.match((result[0] as { reason: string }).reason, /^zone file (\S+ )?not loaded/)
    assert.ok(ms <= budgetMs, `within the budget: ${ms} ms`)
    checker.close()
  })
})

describe('BackscatterChecker: a zone file that cannot be loaded', () => {
  it('once its load has failed, lookups name the file and the reason', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-zonefile-'))
    const file = path.join(dir, 'absent.zone')
    const { settings } = parseSettings({
      main: { zones: ZONE },
      dns: { servers: '127.0.0.1:9', timeout_ms: 200, tries: 1, health_interval: 0 },
      [ZONE]: { file },
    })
    const checker = new BackscatterChecker(settings, { info: () => undefined, warn: () => undefined })
    try {
      // probeZone waits for the file's load, however it ends.
      await checker.probeZone(settings.zones[0]!)
      assert.equal(checker.fileStatus(ZONE)?.error, 'no such file or directory (ENOENT)')
      assert.deepEqual(await checker.check('45.1.1.7'), [
        {
          zone: ZONE,
          status: 'error',
          reason: `zone file ${file} not loaded: no such file or directory (ENOENT)`,
        },
      ])
    } finally {
      checker.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
