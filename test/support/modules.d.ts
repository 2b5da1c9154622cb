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
