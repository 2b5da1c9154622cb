// ZoneFileSource: a zone file on disk, loaded, watched, reloaded, and kept
// when a new file is broken, empty, too small or over a limit. Real files in a
// temporary directory; waits are on the source's own events (its log lines and
// onLoad), and polling is driven by mock timers.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import zlib from 'node:zlib'

import { DEFAULT_TTL_SECONDS } from '../lib/zonefile'
import {
  MIN_SHARE_OF_ENTRIES,
  refusalOf,
  SHRINK_CHECK_FROM_ENTRIES,
  ZoneFileSource,
  type ZoneFileOptions,
} from '../lib/zonefile/source'

const dirs: string[] = []
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'zonesource-test-'))
  dirs.push(d)
  return d
}

/** Replace the file the way rsync does: write a temporary file, then rename it over. */
function replace(file: string, text: string | Buffer): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`)
  fs.writeFileSync(tmp, text)
  fs.renameSync(tmp, file)
}

/** A zone of `n` single addresses in 10.0.0.0/8, with the RFC 5782 test point. */
function zoneOf(n: number): string {
  const lines = ['127.0.0.2']
  for (let i = 1; i < n; i++) lines.push(`10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`)
  return lines.join('\n') + '\n'
}

// Real-time bound on a wait for an event, so that a missing event fails the test instead of hanging it.
const EVENT_WAIT_MS = 15_000

/** A source with its log and loads as events to wait on. */
function watched(file: string, options: ZoneFileOptions = {}) {
  const info: string[] = []
  const warn: string[] = []
  let loads = 0
  const waiters: { ready: () => boolean; resolve: () => void }[] = []
  const wake = (): void => {
    for (const w of [...waiters]) {
      if (w.ready()) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
    }
  }
  const until = (what: string, ready: () => boolean): Promise<void> => {
    if (ready()) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const timer = realTimeout(() => reject(new Error(`timed out waiting for ${what}`)), EVENT_WAIT_MS)
      waiters.push({ ready, resolve: () => (clearRealTimeout(timer), resolve()) })
    })
  }
  const log = {
    info: (m: string) => (info.push(m), wake()),
    warn: (m: string) => (warn.push(m), wake()),
  }
  const onLoad = options.onLoad
  const source = new ZoneFileSource(file, 'z.test', log, {
    pollMs: 0,
    debounceMs: 20,
    ...options,
    onLoad: () => {
      loads++
      wake()
      onLoad?.()
    },
  })
  return {
    source,
    info,
    warn,
    /** Resolves once `n` loads have put data in use. */
    loaded: (n: number) => until(`load ${n}`, () => loads >= n),
    /** Resolves once `n` warnings have been logged. */
    warned: (n: number) => until(`warning ${n}`, () => warn.length >= n),
  }
}

// Timers that mock.timers leaves alone, for the bound on waits.
const realTimeout = globalThis.setTimeout.bind(globalThis)
const clearRealTimeout = globalThis.clearTimeout.bind(globalThis)

/**
 * A loaded source over a new file holding `text`, polled every minute by hand:
 * only setInterval is mocked, and the watcher's (real) debounce is an hour away.
 */
async function polledSource(t: TestContext, text: string, options: ZoneFileOptions = {}) {
  t.mock.timers.enable({ apis: ['setInterval'] })
  const file = path.join(tmpdir(), 'zone')
  fs.writeFileSync(file, text)
  const w = watched(file, { pollMs: 60_000, debounceMs: 3_600_000, ...options })
  await w.source.load()
  return { ...w, file }
}

describe('ZoneFileSource: loading and reloading', () => {
  test('loads a gzip file (by its magic bytes) and logs one line', async () => {
    const dir = tmpdir()
    const file = path.join(dir, 'ips.backscatterer.org') // no .gz suffix: detected by content
    fs.writeFileSync(file, zlib.gzipSync(':127.0.0.2:Listed $\n192.0.2.1\nbad line\n'))
    const info: string[] = []
    const warn: string[] = []
    const log = { info: (m: string) => info.push(m), warn: (m: string) => warn.push(m) }
    const src = new ZoneFileSource(file, 'ips.backscatterer.org', log, { pollMs: 0 })
    assert.equal(src.lookup('192.0.2.1'), undefined)
    assert.equal(await src.load(), true)
    src.close()
    assert.deepEqual(src.lookup('192.0.2.1'), {
      status: 'listed',
      codes: ['127.0.0.2'],
      reason: 'Listed 192.0.2.1',
      ttlSeconds: DEFAULT_TTL_SECONDS,
    })
    assert.equal(info.length, 1)
    assert.match(
      info[0] ?? '',
      /^zone ips\.backscatterer\.org: loaded .*ips\.backscatterer\.org \(0\.0 MB uncompressed from gzip\): 1 entries, 1 ranges, 1 malformed lines, TTL 2100 s, in \d+ ms$/,
    )
    assert.deepEqual(warn, [
      `zone ips.backscatterer.org: ${file}: 1 malformed lines ignored: line 3: invalid address: "bad line"`,
    ])
  })

  test('a missing file: load resolves false, lookups stay undefined, the file is picked up later', async () => {
    const file = path.join(tmpdir(), 'zone')
    const w = watched(file)
    assert.equal(await w.source.load(), false)
    assert.equal(w.source.lookup('192.0.2.1'), undefined)
    // The path once, and the operating system's reason with its code.
    assert.equal(
      w.warn[0],
      `zone z.test: cannot load ${file}: no such file or directory (ENOENT); no data loaded, the zone is not answered from the file`,
    )
    assert.deepEqual(w.source.status, {
      path: file,
      entries: 0,
      loadedAtMs: undefined,
      modifiedMs: undefined,
      timestampSeconds: undefined,
      error: 'no such file or directory (ENOENT)',
    })
    replace(file, '192.0.2.1\n')
    await w.loaded(1)
    assert.equal(w.source.lookup('192.0.2.1')?.status, 'listed')
    assert.equal(w.source.status.error, '', 'a load that succeeds clears the error')
    w.source.close()
  })

  test('status: entries, when the data was loaded, the file’s modification time and its $TIMESTAMP', async () => {
    const file = path.join(tmpdir(), 'zone')
    fs.writeFileSync(file, '$TIMESTAMP 2024:05:31:12:00\n127.0.0.2\n192.0.2.1\n')
    const modified = new Date('2024-05-31T12:30:00Z')
    fs.utimesSync(file, modified, modified)
    const w = watched(file)
    const before = Date.now()
    assert.equal(await w.source.load(), true)
    const status = w.source.status
    assert.equal(status.entries, 2)
    assert.equal(status.modifiedMs, modified.getTime())
    assert.equal(status.timestampSeconds, Date.UTC(2024, 4, 31, 12) / 1000)
    assert.ok(
      status.loadedAtMs !== undefined && status.loadedAtMs >= before && status.loadedAtMs <= Date.now(),
    )
    assert.equal(status.error, '')

    // A refused reload: the data in use stays, and the status says why the new file was not used.
    replace(file, '')
    await w.warned(1)
    assert.equal(w.source.status.entries, 2)
    assert.equal(w.source.status.loadedAtMs, status.loadedAtMs)
    assert.match(w.source.status.error, /^no entries: the file is empty/)
    w.source.close()
  })

  test('reloads when the file is replaced by rename; a failed reload keeps the old data', async () => {
    const file = path.join(tmpdir(), 'zone')
    fs.writeFileSync(file, '192.0.2.1\n')
    // No polling: only the directory watcher can notice the change.
    const w = watched(file)
    await w.source.load()
    assert.equal(w.source.lookup('192.0.2.2')?.status, 'not-listed')

    replace(file, '192.0.2.2\n')
    await w.loaded(2)
    assert.equal(w.source.lookup('192.0.2.2')?.status, 'listed')
    assert.equal(w.source.lookup('192.0.2.1')?.status, 'not-listed')
    assert.match(w.info[1] ?? '', /^zone z\.test: reloaded .*: 1 entries/)

    // A broken download: gzip magic, then garbage. The old data stays.
    replace(file, Buffer.from([0x1f, 0x8b, 1, 2, 3, 4]))
    await w.warned(1)
    assert.match(
      w.warn[0] ?? '',
      /^zone z\.test: cannot load .*; keeping the data loaded at \S+ \(1 entries\)$/,
    )
    assert.equal(w.source.lookup('192.0.2.2')?.status, 'listed')

    // A file of nothing but garbage (an HTML error page) is refused too.
    replace(file, '<html>\n<body>Not found</body>\n</html>\n')
    await w.warned(2)
    assert.match(w.warn[1] ?? '', /no valid entry, 3 malformed lines/)
    assert.equal(w.source.lookup('192.0.2.2')?.status, 'listed')

    // A future $TIMESTAMP is refused as rbldnsd refuses it.
    replace(file, '$TIMESTAMP 2037:01:01\n192.0.2.3\n')
    await w.warned(3)
    assert.match(w.warn[2] ?? '', /in the future, aborting loading/)
    assert.equal(w.source.lookup('192.0.2.3')?.status, 'not-listed')
    w.source.close()
  })

  test('polling notices a change the watcher cannot see (same name, new inode)', async (t) => {
    // The debounce is an hour away: only the poll can pick the change up.
    const w = await polledSource(t, '192.0.2.1\n')
    replace(w.file, '192.0.2.9\n')
    assert.equal(w.source.lookup('192.0.2.9')?.status, 'not-listed')
    t.mock.timers.tick(60_000)
    await w.loaded(2)
    assert.equal(w.source.lookup('192.0.2.9')?.status, 'listed')
    w.source.close()
  })

  test('close() stops watching and polling: later changes are not even looked at', async (t) => {
    const w = await polledSource(t, '192.0.2.1\n', { debounceMs: 0 })
    w.source.close()
    const stat = t.mock.method(fs.promises, 'stat')
    const open = t.mock.method(fs.promises, 'open')
    replace(w.file, '192.0.2.2\n')
    t.mock.timers.tick(10 * 60_000)
    assert.equal(stat.mock.callCount(), 0)
    assert.equal(open.mock.callCount(), 0)
    assert.equal(w.source.lookup('192.0.2.2')?.status, 'not-listed')
    assert.equal(w.source.lookup('192.0.2.1')?.status, 'listed')
    assert.equal(w.info.length, 1)
  })

  test('neither the watcher nor the timer keeps the process alive', () => {
    const file = path.join(tmpdir(), 'zone')
    fs.writeFileSync(file, '192.0.2.1\n')
    const script = `
      const { ZoneFileSource } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib', 'zonefile', 'source.ts'))})
      const src = new ZoneFileSource(${JSON.stringify(file)}, 'z.test', { info() {}, warn() {} }, { pollMs: 1000 })
      src.load().then((ok) => console.log('loaded', ok))
    `
    const run = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    assert.equal(run.signal, null, 'the process had to be killed: something kept it alive')
    assert.equal(run.status, 0, run.stderr)
    assert.match(run.stdout, /loaded true/)
  })
})

describe('ZoneFileSource: an empty or much smaller file never replaces data with entries', () => {
  test('a 0-byte file and a comments-only file are refused with a warning; the data in use stays', async () => {
    const file = path.join(tmpdir(), 'zone')
    fs.writeFileSync(file, '127.0.0.2\n192.0.2.1\n')
    const w = watched(file)
    assert.equal(await w.source.load(), true)

    replace(file, '')
    await w.warned(1)
    assert.match(
      w.warn[0] ?? '',
      /^zone z\.test: cannot load .*: no entries: the file is empty or holds only comments and directives \(a failed download\?\); keeping the data loaded at \S+ \(2 entries\)$/,
    )
    assert.equal(w.source.lookup('192.0.2.1')?.status, 'listed')

    replace(file, '# mirror of the list\n$TTL 2100\n; nothing here yet\n')
    await w.warned(2)
    assert.match(w.warn[1] ?? '', /: no entries: .*; keeping the data loaded at \S+ \(2 entries\)$/)
    assert.equal(w.source.lookup('192.0.2.1')?.status, 'listed')
    assert.equal(w.info.length, 1, 'nothing else was loaded')
    w.source.close()
  })

  test('a first file with no entries is not used either', async () => {
    const file = path.join(tmpdir(), 'zone')
    fs.writeFileSync(file, '# empty\n')
    const w = watched(file)
    assert.equal(await w.source.load(), false)
    assert.equal(w.source.data, undefined)
    assert.match(w.warn[0] ?? '', /: no entries: .*; no data loaded, the zone is not answered from the file$/)
    w.source.close()
  })

  test('under a tenth of the entries in use is taken for a failed download; a fresh start loads it', async () => {
    const file = path.join(tmpdir(), 'zone')
    fs.writeFileSync(file, zoneOf(5000))
    const w = watched(file)
    assert.equal(await w.source.load(), true)

    replace(file, zoneOf(499)) // 9.98 %: refused
    await w.warned(1)
    assert.match(
      w.warn[0] ?? '',
      /^zone z\.test: cannot load .*: 499 entries, under 10 % of the 5000 in use: taken for a failed download \(restart Haraka to load a list that really shrank\); keeping the data loaded at \S+ \(5000 entries\)$/,
    )
    assert.equal(w.source.lookup('10.0.19.0')?.status, 'listed', 'the old data stays')

    replace(file, zoneOf(500)) // exactly 10 %: used
    await w.loaded(2)
    assert.equal(w.source.lookup('10.0.1.243')?.status, 'listed')
    assert.equal(w.source.lookup('10.0.1.244')?.status, 'not-listed')
    w.source.close()

    // What a restart does: a new source has no data in use to compare with.
    fs.writeFileSync(file, zoneOf(3))
    const fresh = watched(file)
    assert.equal(await fresh.source.load(), true)
    assert.equal(fresh.source.lookup('10.0.0.2')?.status, 'listed')
    fresh.source.close()
  })

  test('refusalOf: no entry is never used; the share is checked from 1000 entries in use', () => {
    const counts = (entries: number, malformed = 0) => ({ entries, malformed, problems: ['line 1: x'] })
    assert.equal(MIN_SHARE_OF_ENTRIES, 0.1)
    assert.equal(SHRINK_CHECK_FROM_ENTRIES, 1000)
    assert.match(refusalOf(counts(0), 0) ?? '', /^no entries/)
    assert.match(refusalOf(counts(0), 50) ?? '', /^no entries/)
    assert.equal(refusalOf(counts(0, 2), 0), 'no valid entry, 2 malformed lines (line 1: x)')
    assert.equal(refusalOf({ ...counts(10), fatal: 'over' }, 0), 'over')
    assert.equal(refusalOf(counts(1), 0), undefined, 'a first load has nothing to compare with')
    assert.equal(refusalOf(counts(1), 999), undefined, 'small zones shrink freely')
    assert.match(refusalOf(counts(99), 1000) ?? '', /^99 entries, under 10 % of the 1000 in use/)
    assert.equal(refusalOf(counts(100), 1000), undefined)
    assert.equal(refusalOf(counts(2_000_000), 1000), undefined)
  })
})

describe('ZoneFileSource: loading never rejects, and the next good file is used', () => {
  test('a directory, then a FIFO, in the file’s place: each load says why; the file placed later is used', async () => {
    const dir = tmpdir()
    const file = path.join(dir, 'zone')
    fs.mkdirSync(file)
    const w = watched(file)
    assert.equal(await w.source.load(), false)
    assert.match(w.warn[0] ?? '', /^zone z\.test: cannot load .*: a directory, not a file; no data loaded/)

    fs.rmdirSync(file)
    execFileSync('mkfifo', [file])
    // Opening a FIFO for reading waits for a writer: the load must not.
    let bound: NodeJS.Timeout | undefined
    const settled = await Promise.race([
      w.source.reload(),
      new Promise<string>((resolve) => (bound = realTimeout(resolve, EVENT_WAIT_MS, 'still waiting'))),
    ])
    // The bound is not waited out: a timer left behind would keep the process alive.
    clearRealTimeout(bound)
    assert.equal(settled, false)
    assert.match(w.warn[1] ?? '', /: not a regular file; no data loaded/)

    fs.rmSync(file)
    replace(file, '192.0.2.1\n')
    await w.loaded(1)
    assert.equal(w.source.lookup('192.0.2.1')?.status, 'listed')
    w.source.close()
  })

  test('an exception after the data is in use does not reject load(): it is logged, and later files load', async () => {
    const file = path.join(tmpdir(), 'zone')
    fs.writeFileSync(file, '192.0.2.1\n')
    let calls = 0
    const w = watched(file, {
      onLoad: () => {
        if (++calls === 1) throw new Error('health check could not start')
      },
    })
    assert.equal(await w.source.load(), true)
    assert.match(w.warn[0] ?? '', /^zone z\.test: after loading .*: health check could not start$/)
    assert.equal(w.source.lookup('192.0.2.1')?.status, 'listed')

    replace(file, '192.0.2.2\n')
    await w.loaded(2)
    assert.equal(w.source.lookup('192.0.2.2')?.status, 'listed')
    w.source.close()
  })

  test('a reload started by polling that fails is logged, not swallowed', async (t) => {
    let calls = 0
    const w = await polledSource(t, '192.0.2.1\n', {
      onLoad: () => {
        if (++calls === 2) throw new Error('second load failed late')
      },
    })
    replace(w.file, '192.0.2.2\n')
    t.mock.timers.tick(60_000)
    await w.warned(1)
    assert.match(w.warn[0] ?? '', /: second load failed late$/)
    w.source.close()
  })

  test('a refused file is not read again at every poll; a change (even a touch) makes it read again', async (t) => {
    const w = await polledSource(t, '192.0.2.1\n')
    replace(w.file, '')
    t.mock.timers.tick(60_000)
    await w.warned(1)

    const open = t.mock.method(fs.promises, 'open')
    const polls = spyOnStat(t)
    t.mock.timers.tick(60_000)
    assert.equal(polls.length, 1, 'the poll looked at the file')
    await polls[0]
    await new Promise((r) => setImmediate(r))
    assert.equal(open.mock.callCount(), 0, 'the same refused file is not opened again')
    assert.equal(w.warn.length, 1)
    t.mock.restoreAll()

    const later = new Date(Date.now() + 5000)
    fs.utimesSync(w.file, later, later)
    t.mock.timers.tick(60_000)
    await w.warned(2)
    assert.match(w.warn[1] ?? '', /: no entries: /)
    w.source.close()
  })
})

describe('ZoneFileSource: a file beyond the limits is refused with one line, the data in use kept', () => {
  async function refused(text: string | Buffer, options: ZoneFileOptions): Promise<string> {
    const file = path.join(tmpdir(), 'zone')
    fs.writeFileSync(file, '127.0.0.2\n192.0.2.1\n')
    const w = watched(file, options)
    assert.equal(await w.source.load(), true)
    replace(file, text)
    await w.warned(1)
    assert.equal(w.source.lookup('192.0.2.1')?.status, 'listed', 'the old data stays')
    w.source.close()
    assert.equal(w.warn.length, 1)
    return w.warn[0] ?? ''
  }

  test('size: a plain file, or a gzip file once decompressed, over the limit', async () => {
    const big = zoneOf(40) // 12 + 39 × 10 bytes
    assert.match(
      await refused(big, { limits: { maxBytes: 300 } }),
      /^zone z\.test: cannot load .*: 0\.0 MB, over the 0\.0 MB limit; keeping the data loaded at \S+ \(2 entries\)$/,
    )
    assert.match(
      await refused(zlib.gzipSync(big), { limits: { maxBytes: 300 } }),
      /: over the 0\.0 MB limit once decompressed; keeping the data/,
    )
  })

  test('entries: more entry lines than the limit', async () => {
    assert.match(
      await refused(zoneOf(4), { limits: { maxEntries: 3 } }),
      /: more than 3 entries \(the limit\); keeping the data/,
    )
  })

  test('values: more different values for one address than the limit', async () => {
    // Values count per granularity: these three /32 runs give 10.1.2.3 three.
    const text = '10.1.2.1-10.1.2.9 :2:a\n10.1.2.3-10.1.2.20 :3:b\n10.1.2.3 :4:c\n'
    assert.match(
      await refused(text, { limits: { maxValuesPerAddress: 2 } }),
      /: more than 2 different values for 10\.1\.2\.3 \(the limit\); keeping the data/,
    )
  })
})

/** Record the promise of every fs.promises.stat call, so that a test can wait for the poll that made it. */
function spyOnStat(t: TestContext): Promise<unknown>[] {
  const original = fs.promises.stat.bind(fs.promises) as (file: string) => Promise<fs.Stats>
  const calls: Promise<unknown>[] = []
  t.mock.method(fs.promises, 'stat', (file: string) => {
    const p = original(file)
    calls.push(p.catch(() => undefined))
    return p
  })
  return calls
}
