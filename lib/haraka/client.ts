// What a Haraka connection shows of its client, read one way for every feature
// that asks whether the client is one of our own: the outbound guard and the ledger.
import { provenanceOf, type Provenance } from '../core/client'

/** What is read of a connection (H/connection.js). */
export interface ClientConnection {
  remote: { ip?: string | null }
  /** The transaction's relaying when one was set during it, else the connection's own. */
  relaying: boolean
  /** The connection's own relaying (AUTH, the relay ACL); set during a transaction, relaying lands on the transaction. */
  _relaying?: unknown
  notes?: { auth_user?: unknown }
}

/**
 * The client's provenance. Haraka's `connection.relaying` prefers the
 * transaction's value, which the relay plugin's dest_domains sets for inbound
 * mail from anyone; the connection's own is `_relaying`.
 */
export function connectionProvenance(connection: ClientConnection): Provenance {
  return provenanceOf({
    ip: connection.remote.ip,
    authUser: connection.notes?.auth_user,
    relaying: connection.relaying,
    // Haraka 3.x keeps the connection's own value apart; without it, the transaction's is all there is.
    connectionRelaying: '_relaying' in connection ? connection._relaying : connection.relaying,
  })
}
