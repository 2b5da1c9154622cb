/**
 * A zone answered from a local rbldnsd file (a mirror of the list): loaded
 * without stalling the event loop, reloaded when rsync replaces it, and kept
 * when a reload fails. The parsing itself is in zonefile.ts.
 */
import { promises as fsp, watch, type FSWatcher, type Stats } from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import zlib from 'node:zlib'

import { cleanText } from './answer'
import type { Log } from './log'
import type { LookupResult } from './resolver'
import { parseZoneAsync, type ZoneData, type ZoneFormat } from './zonefile'


export interface ZoneFileOptions {
  readonly format?: ZoneFormat
  /** Check the file's identity (inode, size, mtime) this often, in ms; 0 = never. Default 60 000. */
  readonly pollMs?: number
  /** Wait this long after a change event before reloading, in ms. Default 500. */
  readonly debounceMs?: number
  /** Longest parsing slice between yields to the event loop, in ms. Default 8. */
  readonly sliceMs?: number
  /** Called after each load that put new data in use. */
  readonly onLoad?: () => void
}

const gunzip = promisify(zlib.gunzip)

/** Largest uncompressed zone accepted: about 40 × the list's whole zone; a gzip bomb stops here. */
export const MAX_ZONE_BYTES = 512 * 1024 * 1024

function signature(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`
}

function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null
  if (e && typeof e.code === 'string' && typeof e.message === 'string') return cleanText(e.message, 160)
  return cleanText(String(err), 160)
}

/**
 * A zone answered from a local rbldnsd file (plain or gzip). Loads it without
 * stalling the event loop, reloads it when it changes (rsync replaces it by
 * rename: the directory is watched and the file's identity polled), and keeps
 * the previous data when a reload fails. Neither watcher nor timer keeps the
 * process alive.
 */
export class ZoneFileSource {
  private current: ZoneData | undefined
  private loadedSignature = ''
  private loadedAt = 0
  private loadedEntries = 0
  private watcher: FSWatcher | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private debounceTimer: NodeJS.Timeout | undefined
  private running: Promise<boolean> | undefined
  private again = false
  private closed = false
  private readonly pollMs: number
  private readonly debounceMs: number

  constructor(
    readonly path: string,
    readonly zoneName: string,
    private readonly log: Log,
    private readonly options: ZoneFileOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 60_000
    this.debounceMs = options.debounceMs ?? 500
  }

  /** The data in use, or undefined before the first successful load. */
  get data(): ZoneData | undefined {
    return this.current
  }

  /** Entries in the file whose data is in use (0 before the first successful load). */
  get entries(): number {
    return this.current ? this.loadedEntries : 0
  }

  /** Load the file and start watching it. Resolves true when data was loaded; never rejects. */
  async load(): Promise<boolean> {
    this.startWatching()
    return this.reload()
  }

  /** The answer for `ip`, or undefined while no data is loaded. */
  lookup(ip: string): LookupResult | undefined {
    return this.current?.lookup(ip)
  }

  /** Stop watching and polling; the loaded data stays usable. */
  close(): void {
    this.closed = true
    this.watcher?.close()
    this.watcher = undefined
    clearInterval(this.pollTimer)
    this.pollTimer = undefined
    clearTimeout(this.debounceTimer)
    this.debounceTimer = undefined
  }

  /** Read and parse the file now (one run at a time); true when new data is in use. */
  reload(): Promise<boolean> {
    if (this.running) {
      this.again = true
      return this.running
    }
    const run = this.loadOnce().finally(() => {
      this.running = undefined
      if (this.again && !this.closed) {
        this.again = false
        void this.reload()
      }
    })
    this.running = run
    return run
  }

  private startWatching(): void {
    if (this.closed || this.watcher || this.pollTimer) return
    const dir = path.dirname(this.path)
    const base = path.basename(this.path)
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || name === undefined || String(name) === base) this.changed()
      })
      this.watcher.on('error', (err) => {
        this.log.warn(`zone ${this.zoneName}: cannot watch ${dir} (${describeError(err)}); polling only`)
        this.watcher?.close()
        this.watcher = undefined
      })
      this.watcher.unref()
    } catch (err) {
      this.log.warn(`zone ${this.zoneName}: cannot watch ${dir} (${describeError(err)}); polling only`)
    }
    if (this.pollMs > 0) {
      this.pollTimer = setInterval(() => void this.poll(), this.pollMs)
      this.pollTimer.unref()
    }
  }

  private changed(): void {
    if (this.closed) return
    clearTimeout(this.debounceTimer)
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined
      void this.poll()
    }, this.debounceMs)
    this.debounceTimer.unref()
  }

  private async poll(): Promise<void> {
    if (this.closed) return
    try {
      const st = await fsp.stat(this.path)
      if (signature(st) !== this.loadedSignature && !this.closed) await this.reload()
    } catch {
      // Missing for now (being replaced, or not yet mirrored): the next change or poll retries.
    }
  }

  private async loadOnce(): Promise<boolean> {
    const started = performance.now()
    const verb = this.current ? 'reloaded' : 'loaded'
    let sig: string
    let bytes: Buffer
    let gzipped = false
    try {
      const handle = await fsp.open(this.path, 'r')
      try {
        sig = signature(await handle.stat())
        bytes = await handle.readFile()
      } finally {
        await handle.close()
      }
      if (sig === this.loadedSignature) return false
      if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
        gzipped = true
        bytes = await gunzip(bytes, { maxOutputLength: MAX_ZONE_BYTES })
      }
    } catch (err) {
      this.failed(describeError(err))
      return false
    }
    const size = `${(bytes.length / 1048576).toFixed(1)} MB${gzipped ? ' uncompressed from gzip' : ''}`
    const parsed = await parseZoneAsync(bytes, { format: this.options.format, sliceMs: this.options.sliceMs })
    if (this.closed && this.current) return false
    if (parsed.fatal !== undefined) {
      this.failed(parsed.fatal)
      return false
    }
    if (parsed.entries === 0 && parsed.malformed > 0) {
      this.failed(`no valid entry, ${parsed.malformed} malformed lines (${parsed.problems[0] ?? ''})`)
      return false
    }
    this.current = parsed.data
    this.loadedSignature = sig
    this.loadedAt = Date.now()
    this.loadedEntries = parsed.entries
    const ms = Math.round(performance.now() - started)
    this.log.info(
      `zone ${this.zoneName}: ${verb} ${this.path} (${size}): ${parsed.entries} entries, ` +
        `${parsed.data.size} ranges, ${parsed.malformed} malformed lines, TTL ${parsed.data.ttlSeconds} s, in ${ms} ms`,
    )
    this.options.onLoad?.()
    if (parsed.malformed > 0) {
      const more = parsed.malformed > parsed.problems.length ? '; ...' : ''
      this.log.warn(
        `zone ${this.zoneName}: ${this.path}: ${parsed.malformed} malformed lines ignored: ${parsed.problems.join('; ')}${more}`,
      )
    }
    return true
  }

  private failed(why: string): void {
    const keeping = this.current
      ? `keeping the data loaded at ${new Date(this.loadedAt).toISOString()} (${this.loadedEntries} entries)`
      : 'no data loaded, the zone is not answered from the file'
    this.log.warn(`zone ${this.zoneName}: cannot load ${this.path}: ${why}; ${keeping}`)
  }
}
