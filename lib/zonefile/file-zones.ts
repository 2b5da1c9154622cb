// The zone files a checker answers from: each loaded (and watched) once, when
// the checker starts or at the first lookup, and handed with its data to the
// checker of a config reload that names the same file.
import { settleWithin } from '../core/deadline'
import type { Log } from '../core/log'
import { ZoneFileSource, type ZoneFileStatus } from './source'
import type { LookupResult, ZoneSettings } from '../core/types'

/** A zone file being answered from, and whom to tell when new data is in use. */
interface FileZone {
  readonly source: ZoneFileSource
  readonly path: string
  loaded?: Promise<boolean>
  onLoad: () => void
}

export class FileZones {
  private readonly files = new Map<string, FileZone>()
  /** Files a newer checker took over: not ours to close. */
  private readonly handedOver = new Set<FileZone>()

  /** `onLoad(zone)` runs each time new data of a zone's file is in use. */
  constructor(
    zones: readonly ZoneSettings[],
    log: Log,
    previous: FileZones | undefined,
    onLoad: (zone: string) => void,
  ) {
    for (const zone of zones) {
      if (!zone.file) continue
      const file = previous?.take(zone) ?? open(zone, log)
      file.onLoad = () => onLoad(zone.name)
      this.files.set(zone.name, file)
    }
  }

  /** Is `zone` answered from a file? */
  has(zone: string): boolean {
    return this.files.has(zone)
  }

  get size(): number {
    return this.files.size
  }

  /** Entries of the zone's file, once its data is loaded. */
  entries(zone: string): number | undefined {
    return this.files.get(zone)?.source.entries
  }

  /** The zone's file: what is in use and what went wrong last; undefined for a zone not answered from a file. */
  status(zone: string): ZoneFileStatus | undefined {
    return this.files.get(zone)?.source.status
  }

  /** The file's answer now, or undefined when its data is not loaded yet. */
  lookupNow(zone: string, ip: string): LookupResult | undefined {
    return this.files.get(zone)?.source.lookup(ip)
  }

  /** The file's answer, waiting for its first load within `budgetMs`. */
  async lookup(zone: string, ip: string, budgetMs: number): Promise<LookupResult> {
    const ready = this.lookupNow(zone, ip)
    if (ready) return ready
    await settleWithin(this.load(zone), budgetMs, false)
    return this.lookupNow(zone, ip) ?? { status: 'error', reason: this.notLoaded(zone) }
  }

  /** Why a zone has no data: its file is still loading, or which file failed to load and why. */
  private notLoaded(zone: string): string {
    const status = this.status(zone)
    return status?.error ? `zone file ${status.path} not loaded: ${status.error}` : 'zone file not loaded'
  }

  /** Start loading (and watching) a zone file once; resolves true when data is in use. */
  load(zone: string): Promise<boolean> {
    const file = this.files.get(zone)
    if (!file) return Promise.resolve(false)
    file.loaded ??= file.source.load()
    return file.loaded
  }

  loadAll(): void {
    for (const zone of this.files.keys()) void this.load(zone)
  }

  /** Stop watching the files this checker still holds. */
  close(): void {
    for (const file of this.files.values()) if (!this.handedOver.has(file)) file.source.close()
  }

  /** Hand a zone file with its loaded data to the checker that replaces this one. */
  private take(zone: ZoneSettings): FileZone | undefined {
    const file = this.files.get(zone.name)
    if (!file || file.path !== zone.file || this.handedOver.has(file)) return undefined
    this.handedOver.add(file)
    return file
  }
}

function open(zone: ZoneSettings, log: Log): FileZone {
  const file: FileZone = {
    path: zone.file,
    onLoad: () => undefined,
    source: new ZoneFileSource(zone.file, zone.name, log, { onLoad: () => file.onLoad() }),
  }
  return file
}
