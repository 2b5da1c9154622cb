// One transaction's check, from MAIL to its last recipient and DATA: the
// verdict once known, the lookup while it runs. Most bounces come from clients
// whose answers are cached: their verdict is known at MAIL, and the hooks after
// it answer at once, with no promise to wait on.
import type { DataRecipient } from '../core/data-decision'
import type { BatvResult } from '../core/recipient'
import type { Settings, Verdict } from '../core/types'

/** One transaction's check: started in hook_mail, awaited in hook_rcpt and data_post. */
export interface Pending {
  readonly settings: Settings
  /** The sender is checked for tags (the null sender, see tagsCheckedFor): recipients' tags count. */
  readonly checkTags: boolean
  /**
   * The verdict: the lookup's promise while it runs, then what it settled with
   * (undefined when it failed). Known at once when the checker had every answer.
   */
  verdict: Promise<Verdict | undefined> | Verdict | undefined
  /** The BATV results of the recipients accepted so far, for the header. */
  readonly accepted: BatvResult[]
  /** The recipients accepted so far, for the decision at the end of DATA. */
  readonly recipients: DataRecipient[]
  /**
   * Recipients that would have been refused at RCPT, accepted there so that
   * the sent-mail ledger can be asked at the end of DATA ([ledger] mode = check).
   */
  held: number
}

/** Run `use` with the transaction's verdict: at once when it is known, else when the lookup settles. */
export function withVerdict(
  pending: Pending,
  use: (verdict: Verdict | undefined) => void,
  failed: (err: unknown) => void,
): void {
  const { verdict } = pending
  if (verdict instanceof Promise) {
    verdict.then(use).catch(failed)
    return
  }
  try {
    use(verdict)
  } catch (err) {
    failed(err)
  }
}
