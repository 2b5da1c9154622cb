// The test fixtures and Haraka's address parser are plain JavaScript.
declare module 'haraka-test-fixtures' {
  const fixtures: any // eslint-disable-line @typescript-eslint/no-explicit-any
  export default fixtures
}
declare module '@haraka/email-address' {
  export class Address {
    constructor(text: string)
    user: string | null
    host: string | null
    isNull(): boolean
  }
}
declare module 'dns-packet/types' {
  /** A record type's number from its name (`A` → 1, `UNKNOWN_65` → 65). */
  export function toType(name: string): number
}
declare module 'haraka-email-message' {
  /** Haraka's header parser: `transaction.header` is one. */
  export class Header {
    parse(lines: string[]): void
    get(name: string): string
  }
}
declare module 'haraka-notes' {
  /** Haraka's notes object: what todo.notes is made from the queue file's JSON. */
  export default class Notes {
    constructor(notes?: object)
    [key: string]: unknown
  }
}
declare module 'haraka-message-stream' {
  import type { Writable } from 'node:stream'
  /** The message as Haraka stores it during DATA: lines in, pipes out. */
  export default class MessageStream {
    constructor(cfg: object, id: string)
    add_line(line: string): void
    add_line_end(cb?: () => void): void
    pipe(destination: Writable, options?: object): unknown
    unpipe(): void
  }
}
