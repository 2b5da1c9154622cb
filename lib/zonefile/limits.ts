/**
 * The most a zone file may hold. Beyond any limit the whole file is refused
 * (the data in use stays), so loading memory is bounded by these figures
 * whatever the file says.
 */
export interface ZoneLimits {
  /** Largest file, plain or once decompressed, in bytes. */
  readonly maxBytes: number
  /** Most entry lines (listings and exclusions). */
  readonly maxEntries: number
  /** Most distinct values (A, TXT) one address may answer with. */
  readonly maxValuesPerAddress: number
}

export const ZONE_LIMITS: ZoneLimits = Object.freeze({
  // About 40 times the list's whole zone; a gzip bomb stops here too.
  maxBytes: 512 * 1024 * 1024,
  // About 5 times the list's whole zone; loading takes at most about 600 bytes per entry.
  maxEntries: 5_000_000,
  // rbldnsd's 512-byte UDP answer holds about 28 A records; real lists give one value.
  maxValuesPerAddress: 64,
})
