/**
 * A zone answered from a local rbldnsd file (a mirror of the list): loaded
 * without stalling the event loop, reloaded when rsync replaces it, and kept
 * when a reload fails or looks like a failed download. The parsing itself is
 * in zonefile/.
 */
import { constants as fsConstants, promises as fsp, watch, type FSWatcher, type Stats } from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import zlib from 'node:zlib'

import { describeError } from '../core/error'
import type { Log } from '../core/log'
import { parseZoneAsync, ZONE_LIMITS, type ZoneData, type ZoneFormat, type ZoneLimits } from '.'
import type { LookupResult } from '../core/types'

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
  /** Beyond these a file is refused. Default ZONE_LIMITS. */
  readonly limits?: Partial<ZoneLimits>
}

/** A new file with fewer entries than this share of those in use is taken for a failed download. */
export const MIN_SHARE_OF_ENTRIES = 0.1
/** The share is checked only when the data in use has this many entries: small hand-kept zones may shrink freely. */
export const SHRINK_CHECK_FROM_ENTRIES = 1000

const gunzip = promisify(zlib.gunzip)
const GZIP_MAGIC = [0x1f, 0x8b] as const

/** What parsing a file found, as far as deciding whether to use it goes. */
export interface ParsedCounts {
  readonly entries: number
  readonly malformed: number
  readonly problems: readonly string[]
  readonly fatal?: string
}

/**
 * Why a parsed file must not replace the data in use (which has `inUseEntries`
 * entries, 0 when none is loaded), or undefined when it may. A file with no
 * entry is never used; one with under a tenth of the entries in use is taken
 * for a truncated download.
 */
export function refusalOf(parsed: ParsedCounts, inUseEntries: number): string | undefined {
  if (parsed.fatal !== undefined) return parsed.fatal
  if (parsed.entries === 0) {
    return parsed.malformed > 0
      ? `no valid entry, ${parsed.malformed} malformed lines (${parsed.problems[0] ?? ''})`
      : 'no entries: the file is empty or holds only comments and directives (a failed download?)'
  }
  if (inUseEntries >= SHRINK_CHECK_FROM_ENTRIES && parsed.entries < inUseEntries * MIN_SHARE_OF_ENTRIES) {
    return (
      `${parsed.entries} entries, under ${MIN_SHARE_OF_ENTRIES * 100} % of the ${inUseEntries} in use: ` +
      'taken for a failed download (restart Haraka to load a list that really shrank)'
    )
  }
  return undefined
}

function signature(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`
}

function megabytes(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MB`
}

/** A zone file's state, for `health` and the metrics: what is in use, and what went wrong last. */
export interface ZoneFileStatus {
  readonly path: string
  /** Entries of the data in use; 0 before the first successful load. */
  readonly entries: number
  /** When the data in use was loaded (ms since the epoch); undefined before the first successful load. */
  readonly loadedAtMs: number | undefined
  /** The modification time of the file the data in use came from (ms since the epoch). */
  readonly modifiedMs: number | undefined
  /** The data's `$TIMESTAMP` (Unix seconds); undefined when the file has none. */
  readonly timestampSeconds: number | undefined
  /** Why the last load failed or was refused ('' when it did not): a failure after it clears it. */
  readonly error: string
}

/** The bytes of a file, or why they could not be had; `signature` is '' when the file could not be opened. */
type ReadOutcome =
  | {
      readonly signature: string
      readonly modifiedMs: number
      readonly bytes: Buffer
      readonly gzipped: boolean
    }
  | { readonly signature: string; readonly error: string }

/**
 * A zone answered from a local rbldnsd file (plain or gzip). Loads it without
 * stalling the event loop, reloads it when it changes (rsync replaces it by
 * rename: the directory is watched and the file's identity polled), and keeps
 * the previous data when a reload fails or is refused. Neither watcher nor
 * timer keeps the process alive; loading never rejects.
 */
export class ZoneFileSource {
  private current: ZoneData | undefined
  private loadedSignature = ''
  private loadedAt = 0
  private loadedEntries = 0
  private loadedModifiedMs = 0
  // The last file refused: not read again until it changes.
  private refusedSignature = ''
  // The last failure logged, so that a retry failing the same way is not logged again.
  private lastFailure = ''
  // Why the last load failed, until one succeeds.
  private lastError = ''
  private watcher: FSWatcher | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private debounceTimer: NodeJS.Timeout | undefined
  private running: Promise<boolean> | undefined
  private again = false
  private closed = false
  private readonly pollMs: number
  private readonly debounceMs: number
  private readonly limits: ZoneLimits

  constructor(
    readonly path: string,
    readonly zoneName: string,
    private readonly log: Log,
    private readonly options: ZoneFileOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 60_000
    this.debounceMs = options.debounceMs ?? 500
    this.limits = { ...ZONE_LIMITS, ...options.limits }
  }

  /** The data in use, or undefined before the first successful load. */
  get data(): ZoneData | undefined {
    return this.current
  }

  /** Entries in the file whose data is in use (0 before the first successful load). */
  get entries(): number {
    return this.current ? this.loadedEntries : 0
  }

  /** What is in use and what went wrong last. */
  get status(): ZoneFileStatus {
    const loaded = this.current !== undefined
    const timestamp = this.current?.timestamp ?? 0
    return {
      path: this.path,
      entries: this.entries,
      loadedAtMs: loaded ? this.loadedAt : undefined,
      modifiedMs: loaded ? this.loadedModifiedMs : undefined,
      timestampSeconds: timestamp > 0 ? timestamp : undefined,
      error: this.lastError,
    }
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

  /** Read and parse the file now (one run at a time); true when new data is in use. Never rejects. */
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

  /** Reload when the file is a new one: neither the one in use nor the one last refused. */
  private async poll(): Promise<void> {
    if (this.closed) return
    let sig: string
    try {
      sig = signature(await fsp.stat(this.path))
    } catch (err) {
      // Missing for now (being replaced, or not yet mirrored): the next change or poll retries.
      if ((err as { code?: unknown }).code !== 'ENOENT') this.failed(describeError(err), '')
      return
    }
    if (sig !== this.loadedSignature && sig !== this.refusedSignature && !this.closed) await this.reload()
  }

  private async loadOnce(): Promise<boolean> {
    try {
      return await this.loadFile()
    } catch (err) {
      // A bug or a failed allocation: the data in use stays, and the next file is tried.
      this.failed(`unexpected error: ${describeError(err)}`, '')
      return false
    }
  }

  private async loadFile(): Promise<boolean> {
    const started = performance.now()
    const verb = this.current ? 'reloaded' : 'loaded'
    const file = await this.read()
    if (file.signature !== '' && file.signature === this.loadedSignature) return false
    if ('error' in file) {
      this.failed(file.error, file.signature)
      return false
    }
    const { bytes, gzipped } = file
    const parsed = await parseZoneAsync(bytes, {
      format: this.options.format,
      sliceMs: this.options.sliceMs,
      limits: this.limits,
    })
    if (this.closed && this.current) return false
    const refusal = refusalOf(parsed, this.entries)
    if (refusal !== undefined) {
      this.failed(refusal, file.signature)
      return false
    }
    this.current = parsed.data
    this.loadedSignature = file.signature
    this.refusedSignature = ''
    this.lastFailure = ''
    this.lastError = ''
    this.loadedAt = Date.now()
    this.loadedEntries = parsed.entries
    this.loadedModifiedMs = file.modifiedMs
    const ms = Math.round(performance.now() - started)
    this.log.info(
      `zone ${this.zoneName}: ${verb} ${this.path} (${megabytes(bytes.length)}${gzipped ? ' uncompressed from gzip' : ''}): ` +
        `${parsed.entries} entries, ${parsed.data.size} ranges, ${parsed.malformed} malformed lines, ` +
        `TTL ${parsed.data.ttlSeconds} s, in ${ms} ms`,
    )
    if (parsed.malformed > 0) {
      const more = parsed.malformed > parsed.problems.length ? '; ...' : ''
      this.log.warn(
        `zone ${this.zoneName}: ${this.path}: ${parsed.malformed} malformed lines ignored: ${parsed.problems.join('; ')}${more}`,
      )
    }
    try {
      this.options.onLoad?.()
    } catch (err) {
      this.log.warn(`zone ${this.zoneName}: after loading ${this.path}: ${describeError(err)}`)
    }
    return true
  }

  /** The file's bytes (decompressed), within the size limit, or why not. */
  private async read(): Promise<ReadOutcome> {
    const maxBytes = this.limits.maxBytes
    let sig = ''
    let modifiedMs = 0
    try {
      // Non-blocking, so that a FIFO in the file's place cannot hang the load waiting for a writer.
      const handle = await fsp.open(this.path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
      let bytes: Buffer
      try {
        const st = await handle.stat()
        sig = signature(st)
        modifiedMs = st.mtimeMs
        if (!st.isFile()) {
          return {
            signature: sig,
            error: st.isDirectory() ? 'a directory, not a file' : 'not a regular file',
          }
        }
        if (st.size > maxBytes) {
          return { signature: sig, error: `${megabytes(st.size)}, over the ${megabytes(maxBytes)} limit` }
        }
        bytes = await handle.readFile()
      } finally {
        await handle.close()
      }
      if (bytes.length > maxBytes) {
        return { signature: sig, error: `${megabytes(bytes.length)}, over the ${megabytes(maxBytes)} limit` }
      }
      if (bytes.length < 2 || bytes[0] !== GZIP_MAGIC[0] || bytes[1] !== GZIP_MAGIC[1]) {
        return { signature: sig, modifiedMs, bytes, gzipped: false }
      }
      try {
        const unzipped = await gunzip(bytes, { maxOutputLength: maxBytes })
        return { signature: sig, modifiedMs, bytes: unzipped, gzipped: true }
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ERR_BUFFER_TOO_LARGE') throw err
        return { signature: sig, error: `over the ${megabytes(maxBytes)} limit once decompressed` }
      }
    } catch (err) {
      return { signature: sig, error: describeError(err) }
    }
  }

  /** Log why a load failed, once per file and reason, and do not read that file again until it changes. */
  private failed(why: string, fileSignature: string): void {
    if (fileSignature !== '') this.refusedSignature = fileSignature
    this.lastError = why
    const key = `${fileSignature}\n${why}`
    if (key === this.lastFailure) return
    this.lastFailure = key
    const keeping = this.current
      ? `keeping the data loaded at ${new Date(this.loadedAt).toISOString()} (${this.loadedEntries} entries)`
      : 'no data loaded, the zone is not answered from the file'
    this.log.warn(`zone ${this.zoneName}: cannot load ${this.path}: ${why}; ${keeping}`)
  }
}
