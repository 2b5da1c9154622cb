// The outbound guard in the plugin as Haraka loads it: what data_post records in
// transaction.notes, and what the bounce hook answers for an HMailItem whose
// todo.notes are those notes as the queue file gives them back (a JSON copy).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import Notes from 'haraka-notes'

import { PROVENANCE_NOTE } from '../lib/core/outbound-guard'
import { readExposition, valueOf } from './support/exposition'
import {
  addr,
  constants,
  dataPost,
  makeConnection,
  type HarakaConnection,
  type HarakaTestPlugin,
} from './support/harness'
import { pluginTests } from './support/plugin-tests'

const fx = pluginTests()
const { setup } = fx

const OUTSIDE_IP = '45.1.2.3'
const P = 'haraka_backscatter_'

/** A transaction from an outside client, its sender's SPF as haraka-plugin-spf left it. */
function inbound(spf?: string, ip = OUTSIDE_IP): HarakaConnection {
  const conn = makeConnection(ip)
  conn.transaction.mail_from = addr('alice@forged.example')
  if (spf) conn.transaction.notes.spf_mail_result = spf
  return conn
}

/** The HMailItem Haraka makes for the queued message: todo re-read from the queue file's JSON. */
function hmailOf(conn: HarakaConnection): {
  todo: unknown
  lines: string[]
  loginfo: unknown
  logerror: unknown
} {
  const lines: string[] = []
  const log = (_plugin: unknown, msg: string): number => lines.push(msg)
  const from = conn.transaction.mail_from as { user: string; host: string }
  return {
    todo: {
      mail_from: { user: from.user, host: from.host },
      rcpt_to: [addr('carol@example.net')],
      notes: new Notes(JSON.parse(JSON.stringify(conn.transaction.notes))),
    },
    lines,
    loginfo: log,
    logerror: log,
  }
}

/** Call the bounce hook; resolves with its code and whether it answered before returning. */
function bounce(plugin: HarakaTestPlugin, hmail: unknown): { code: number | undefined; sync: boolean } {
  let code: number | undefined
  let answered = false
  plugin.hook_bounce((c?: number) => {
    code = c
    answered = true
  }, hmail)
  return { code, sync: answered }
}

async function counted(plugin: HarakaTestPlugin, decision: string): Promise<number | undefined> {
  const samples = readExposition(await plugin.backscatter.metrics.exposition())
  return valueOf(samples, `${P}outbound_bounces_total`, { decision })
}

describe('data_post records the provenance in transaction.notes', () => {
  it('an outside client: not authenticated, not relaying; JSON survives', async () => {
    const { plugin } = setup()
    const conn = inbound('Fail')
    await dataPost(plugin, conn)
    assert.deepEqual(JSON.parse(JSON.stringify(conn.transaction.notes[PROVENANCE_NOTE])), {
      authenticated: false,
      relaying: 'no',
      ip: OUTSIDE_IP,
    })
  })

  it('relaying of the connection (relay ACL, AUTH) is the client; set in the transaction only, the recipient', async () => {
    const { plugin } = setup()
    const acl = inbound()
    acl._relaying = true
    await dataPost(plugin, acl)
    assert.equal(acl.transaction.notes[PROVENANCE_NOTE].relaying, 'client')

    const auth = inbound()
    auth._relaying = true
    auth.notes.auth_user = 'bob'
    await dataPost(plugin, auth)
    assert.equal(auth.transaction.notes[PROVENANCE_NOTE].authenticated, true)

    // The relay plugin's dest_domains: `connection.relaying = true` at RCPT lands on the transaction.
    const dest = inbound()
    dest.relaying = true
    assert.equal(dest._relaying, false)
    await dataPost(plugin, dest)
    assert.equal(dest.transaction.notes[PROVENANCE_NOTE].relaying, 'recipient')
  })

  it('mode off: nothing is recorded', async () => {
    const { plugin } = setup('[outbound_guard]\nmode = off')
    const conn = inbound()
    await dataPost(plugin, conn)
    assert.equal(conn.transaction.notes[PROVENANCE_NOTE], undefined)
  })
})

describe('the bounce hook', () => {
  it('suppress: a DSN to a sender whose SPF failed is discarded (OK), at once, logged and counted', async () => {
    const { plugin } = setup()
    const conn = inbound('Fail')
    await dataPost(plugin, conn)
    const hmail = hmailOf(conn)
    assert.deepEqual(bounce(plugin, hmail), { code: constants.OK, sync: true })
    assert.deepEqual(hmail.lines, [
      'DSN to <alice@forged.example> suppressed ([outbound_guard] mode = suppress): accepted from 45.1.2.3, which neither authenticated nor was allowed to relay; SPF fail for forged.example; no passing DKIM signature aligned with forged.example',
    ])
    assert.equal(await counted(plugin, 'suppressed'), 1)
  })

  it('SPF pass, and an authenticated client: the DSN goes (no code)', async () => {
    const { plugin } = setup()
    const pass = inbound('Pass')
    await dataPost(plugin, pass)
    assert.deepEqual(bounce(plugin, hmailOf(pass)), { code: undefined, sync: true })
    const auth = inbound('Fail')
    auth._relaying = true
    auth.notes.auth_user = 'bob'
    await dataPost(plugin, auth)
    const hmail = hmailOf(auth)
    assert.deepEqual(bounce(plugin, hmail), { code: undefined, sync: true })
    assert.deepEqual(hmail.lines, ['DSN to <alice@forged.example> sent: the client authenticated'])
    assert.equal(await counted(plugin, 'sent'), 2)
  })

  it('a client on a private network that neither authenticated nor may relay: suppressed', async () => {
    const { plugin } = setup()
    const conn = inbound('Fail', '10.0.0.5')
    // As Haraka sets it for such an address.
    conn.remote.is_private = true
    await dataPost(plugin, conn)
    const hmail = hmailOf(conn)
    assert.equal(bounce(plugin, hmail).code, constants.OK)
    assert.match(
      hmail.lines[0] ?? '',
      /suppressed .*: accepted from 10\.0\.0\.5, which neither authenticated/,
    )
  })

  it('a DKIM signature of the sender that passed: the DSN goes', async () => {
    const { plugin } = setup()
    const conn = inbound('SoftFail')
    conn.transaction.notes.dkim_results = [
      { identity: '@forged.example', domain: 'forged.example', selector: 's1', result: 'pass' },
    ]
    await dataPost(plugin, conn)
    assert.equal(bounce(plugin, hmailOf(conn)).code, undefined)
  })

  it('log: the DSN goes, and the log says it would have been suppressed', async () => {
    const { plugin } = setup('[outbound_guard]\nmode = log')
    const conn = inbound()
    await dataPost(plugin, conn)
    const hmail = hmailOf(conn)
    assert.equal(bounce(plugin, hmail).code, undefined)
    assert.match(
      hmail.lines[0] ?? '',
      /^DSN to <alice@forged\.example> sent, would be suppressed \(\[outbound_guard\] mode = log\): .*; no SPF result for forged\.example; /,
    )
    assert.equal(await counted(plugin, 'would_suppress'), 1)
  })

  it('off: not judged, not logged, not counted', async () => {
    const { plugin } = setup('[outbound_guard]\nmode = off')
    const conn = inbound('Fail')
    conn.transaction.notes[PROVENANCE_NOTE] = { authenticated: false, relaying: 'no', ip: OUTSIDE_IP }
    const hmail = hmailOf(conn)
    assert.equal(bounce(plugin, hmail).code, undefined)
    assert.deepEqual(hmail.lines, [])
    for (const d of ['suppressed', 'would_suppress', 'sent', 'not_judged', 'error'])
      assert.equal(await counted(plugin, d), 0, d)
  })

  it('a message that never passed data_post here (no provenance): the DSN goes, not judged', async () => {
    const { plugin } = setup()
    const hmail = hmailOf(inbound('Fail'))
    assert.equal(bounce(plugin, hmail).code, undefined)
    assert.match(hmail.lines[0] ?? '', /not judged: no provenance recorded/)
    assert.equal(await counted(plugin, 'not_judged'), 1)
  })

  it('an error reading the HMailItem: the DSN goes, one error line, counted as error', async () => {
    const { plugin } = setup()
    const lines: string[] = []
    const hmail = {
      get todo(): never {
        throw new Error('queue file unreadable')
      },
      logerror: (_p: unknown, msg: string) => lines.push(msg),
    }
    assert.deepEqual(bounce(plugin, hmail), { code: undefined, sync: true })
    assert.deepEqual(lines, ['DSN not judged, it goes as Haraka decides: Error: queue file unreadable'])
    assert.equal(await counted(plugin, 'error'), 1)
  })

  it('a log line that throws: the DSN goes, counted once, as error', async () => {
    const { plugin } = setup()
    const conn = inbound('Fail')
    await dataPost(plugin, conn)
    const hmail = {
      ...hmailOf(conn),
      loginfo: () => {
        throw new Error('log closed')
      },
    }
    assert.equal(bounce(plugin, hmail).code, undefined)
    assert.deepEqual(hmail.lines, ['DSN not judged, it goes as Haraka decides: Error: log closed'])
    for (const [d, n] of [
      ['suppressed', 0],
      ['error', 1],
    ] as const)
      assert.equal(await counted(plugin, d), n, d)
  })
})
