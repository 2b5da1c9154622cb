/** Where the core reports: the plugin passes Haraka's log methods, the command its stderr. */
export interface Log {
  info(msg: string): void
  warn(msg: string): void
}
