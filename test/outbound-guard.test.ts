// The outbound guard's decision on Haraka's own DSNs, over plain values: the
// provenance recorded at data_post, haraka-plugin-spf's and haraka-plugin-dkim's
// notes as the queue file keeps them, and [outbound_guard].
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'

import { ready as publicSuffixList } from 'haraka-tld'

import {
  alignedDkimPasses,
  alignedDomains,
  judgeBounce,
  readProvenance,
  spfResultOf,
  type BounceFacts,
} from '../lib/core/outbound-guard'
import { provenanceOf, type Provenance } from '../lib/core/client'
import { SPF_RESULTS, type OutboundGuardSettings } from '../lib/core/types'
import { parseSettings } from '../lib/settings/parse'

const guardOf = (section: Record<string, unknown> = {}): OutboundGuardSettings =>
  parseSettings({ outbound_guard: section }).settings.outboundGuard
const DEFAULTS = guardOf()

const OUTSIDE: Provenance = { authenticated: false, relaying: 'no', ip: '45.1.2.3' }

// Alignment reads the Public Suffix List, which haraka-tld loads from its own files.
before(() => publicSuffixList)

/** A DSN to alice@forged.example for a message from 45.1.2.3 whose sender's SPF failed. */
function facts(over: Partial<BounceFacts> = {}): BounceFacts {
  return {
    sender: { user: 'alice', host: 'forged.example' },
    // As the queue file gives it back: a JSON copy.
    provenance: JSON.parse(JSON.stringify(OUTSIDE)),
    spf: 'Fail',
    dkim: undefined,
    ...over,
  }
}

describe('[outbound_guard] settings', () => {
  it('default: suppress, and every SPF result but pass counts as unverified, absent included', () => {
    assert.equal(DEFAULTS.mode, 'suppress')
    assert.deepEqual([...DEFAULTS.unverifiedSpf].sort(), [
      'absent',
      'fail',
      'neutral',
      'none',
      'permerror',
      'softfail',
      'temperror',
    ])
  })

  it('pass can never be made unverified: dropped with a line saying why', () => {
    const { settings, problems } = parseSettings({ outbound_guard: { unverified_spf: 'fail, Pass, bogus' } })
    assert.deepEqual([...settings.outboundGuard.unverifiedSpf], ['fail'])
    assert.deepEqual(problems, [
      '[outbound_guard] unverified_spf: "pass" is a verified sender: a DSN to it is never suppressed; ignored',
      '[outbound_guard] unverified_spf: "bogus" is not one of fail, softfail, neutral, none, temperror, permerror, absent; ignored',
    ])
  })

  it('a mistyped mode discards nothing: an error line, and log is used', () => {
    const { settings, errors } = parseSettings({ outbound_guard: { mode: 'supress' } })
    assert.equal(settings.outboundGuard.mode, 'log')
    assert.deepEqual(errors, ['[outbound_guard] mode: "supress" is not suppress, log or off; using log'])
  })
})

describe('a DSN to a sender never verified, for mail accepted from outside', () => {
  it('suppress: not sent, with every reason', () => {
    assert.deepEqual(judgeBounce(facts(), DEFAULTS), {
      decision: 'suppressed',
      reasons: [
        'accepted from 45.1.2.3, which neither authenticated nor was allowed to relay',
        'SPF fail for forged.example',
        'no passing DKIM signature aligned with forged.example',
      ],
    })
  })

  it('log: sent, marked as one that would have been suppressed', () => {
    assert.equal(judgeBounce(facts(), guardOf({ mode: 'log' })).decision, 'would-suppress')
  })

  it('off: not judged', () => {
    assert.equal(judgeBounce(facts(), guardOf({ mode: 'off' })).decision, 'not-judged')
  })

  it('each SPF result of haraka-plugin-spf but Pass, and none at all, is unverified by default', () => {
    for (const spf of [
      'Fail',
      'SoftFail',
      'Neutral',
      'None',
      'TempError',
      'PermError',
      undefined,
      null,
      '',
    ]) {
      assert.equal(judgeBounce(facts({ spf }), DEFAULTS).decision, 'suppressed', String(spf))
    }
    assert.deepEqual(
      judgeBounce(facts({ spf: undefined }), DEFAULTS).reasons[1],
      'no SPF result for forged.example',
    )
  })

  it('relaying switched on for the recipient only (relay dest_domains) is still mail from outside', () => {
    const provenance: Provenance = { ...OUTSIDE, relaying: 'recipient' }
    const j = judgeBounce(facts({ provenance }), DEFAULTS)
    assert.equal(j.decision, 'suppressed')
    assert.match(j.reasons[0] ?? '', /relayed for the recipient's domain only/)
  })

  it('a client on a private network is not ours unless it authenticated or may relay', () => {
    // Behind a gateway the address is the gateway's; XCLIENT or PROXY give the real one.
    const provenance = { ...OUTSIDE, ip: '10.0.0.5' }
    const j = judgeBounce(facts({ provenance }), DEFAULTS)
    assert.equal(j.decision, 'suppressed')
    assert.equal(j.reasons[0], 'accepted from 10.0.0.5, which neither authenticated nor was allowed to relay')
    // A note written by an earlier version, with its privateClient flag, reads the same.
    const earlier = judgeBounce(facts({ provenance: { ...provenance, privateClient: true } }), DEFAULTS)
    assert.deepEqual(earlier, j)
  })

  it('a passing DKIM signature of another domain verifies nothing; a failing aligned one neither', () => {
    const dkim = [
      { domain: 'bulk-sender.example', result: 'pass' },
      { domain: 'forged.example', result: 'fail', error: 'body hash did not verify' },
      { domain: 'evilforged.example', result: 'pass' },
    ]
    assert.equal(judgeBounce(facts({ dkim }), DEFAULTS).decision, 'suppressed')
  })
})

describe('a DSN that goes', () => {
  it('SPF pass: sent, whatever the settings say', () => {
    for (const mode of ['suppress', 'log', 'off']) {
      const all = guardOf({ mode, unverified_spf: SPF_RESULTS.join(',') })
      for (const spf of ['Pass', 'pass', ' PASS ']) {
        const j = judgeBounce(facts({ spf }), all)
        assert.notEqual(j.decision, 'suppressed', `${mode} ${spf}`)
        assert.notEqual(j.decision, 'would-suppress', `${mode} ${spf}`)
      }
    }
    assert.deepEqual(judgeBounce(facts({ spf: 'Pass' }), DEFAULTS), {
      decision: 'sent',
      reasons: ['SPF pass for forged.example'],
    })
  })

  it('a client that authenticated, or was allowed to relay: sent', () => {
    const cases: [Partial<Provenance>, string][] = [
      [{ authenticated: true, relaying: 'client' }, 'the client authenticated'],
      [{ relaying: 'client' }, 'the client was allowed to relay'],
    ]
    for (const [p, reason] of cases) {
      assert.deepEqual(judgeBounce(facts({ provenance: { ...OUTSIDE, ...p } }), DEFAULTS), {
        decision: 'sent',
        reasons: [reason],
      })
    }
  })

  it('a passing DKIM signature aligned with the sender: the same domain, a parent or a subdomain', () => {
    for (const domain of ['forged.example', 'FORGED.example.', 'mail.forged.example']) {
      const j = judgeBounce(facts({ dkim: [{ domain, result: 'pass' }] }), DEFAULTS)
      assert.equal(j.decision, 'sent', domain)
      assert.match(j.reasons[0] ?? '', /^a DKIM signature of .+ passed, aligned with forged\.example$/)
    }
    const sub = facts({
      sender: { user: 'a', host: 'bounces.forged.example' },
      dkim: [{ domain: 'forged.example', result: 'pass' }],
    })
    assert.equal(judgeBounce(sub, DEFAULTS).decision, 'sent')
  })

  it('an SPF result left out of unverified_spf: sent', () => {
    const j = judgeBounce(facts({ spf: 'Neutral' }), guardOf({ unverified_spf: 'fail, softfail' }))
    assert.deepEqual(j, {
      decision: 'sent',
      reasons: [
        'SPF neutral for forged.example, which [outbound_guard] unverified_spf does not count as unverified',
      ],
    })
  })
})

describe('nothing to judge by: the DSN goes as Haraka decides', () => {
  const notJudged = (over: Partial<BounceFacts>): string[] => {
    const j = judgeBounce(facts(over), DEFAULTS)
    assert.equal(j.decision, 'not-judged')
    return [...j.reasons]
  }

  it('the original sender is <> (Haraka double-bounces it)', () => {
    assert.deepEqual(notJudged({ sender: { user: '', host: '' } }), [
      'the original sender is <>: Haraka sends no DSN for a bounce',
    ])
    notJudged({ sender: null })
  })

  it('no provenance: the message did not come in over SMTP through this plugin', () => {
    assert.deepEqual(notJudged({ provenance: undefined }), [
      'no provenance recorded: the message did not come in over SMTP through this plugin',
    ])
  })

  it('a provenance, SPF result or sender it cannot read', () => {
    for (const provenance of ['client', 42, {}, { ...OUTSIDE, relaying: 'yes' }, [1]])
      notJudged({ provenance })
    assert.deepEqual(notJudged({ spf: 'Maybe' }), ['the SPF result "Maybe" is not one this guard knows'])
    notJudged({ spf: { result: 'Fail' } })
    notJudged({ sender: { user: 'alice', host: '' } })
  })

  it('odd values anywhere never throw', () => {
    const odd: unknown[] = [
      undefined,
      null,
      0,
      NaN,
      '',
      'x',
      [],
      {},
      [null],
      [{ domain: 1, result: 'pass' }],
      10n,
    ]
    for (const a of odd)
      for (const b of odd) {
        const j = judgeBounce(
          { sender: { user: 'u', host: 'h.example' }, provenance: a, spf: b, dkim: a },
          DEFAULTS,
        )
        assert.ok(['sent', 'suppressed', 'not-judged'].includes(j.decision))
      }
  })
})

describe('provenance', () => {
  it("relaying of the connection is the client's; relaying set in the transaction only is the recipient's", () => {
    const base = { ip: '45.1.2.3', authUser: undefined }
    assert.equal(provenanceOf({ ...base, relaying: true, connectionRelaying: true }).relaying, 'client')
    assert.equal(provenanceOf({ ...base, relaying: true, connectionRelaying: false }).relaying, 'recipient')
    assert.equal(provenanceOf({ ...base, relaying: false, connectionRelaying: false }).relaying, 'no')
    assert.equal(
      provenanceOf({ ...base, authUser: 'bob', relaying: true, connectionRelaying: true }).authenticated,
      true,
    )
    assert.equal(
      provenanceOf({ ...base, authUser: '', relaying: false, connectionRelaying: false }).authenticated,
      false,
    )
  })

  it('survives the queue file: small, and read back as written', () => {
    const p = provenanceOf({
      ip: '45.1.2.3',
      authUser: 'bob',
      relaying: true,
      connectionRelaying: true,
    })
    const text = JSON.stringify(p)
    assert.ok(text.length < 100, text)
    assert.deepEqual(readProvenance(JSON.parse(text)), p)
  })
})

describe('alignment and results', () => {
  it('aligned: the same organizational domain; never a look-alike or a bare label', () => {
    assert.ok(alignedDomains('example.com', 'example.com'))
    assert.ok(alignedDomains('mail.example.com', 'example.com'))
    assert.ok(alignedDomains('example.com', 'mail.example.com'))
    assert.ok(alignedDomains('a.example.com', 'b.example.com'))
    assert.ok(alignedDomains('bounces.example.co.uk', 'example.co.uk'))
    assert.ok(!alignedDomains('badexample.com', 'example.com'))
    assert.ok(!alignedDomains('example.com', 'com'))
    assert.ok(!alignedDomains('com', 'example.com'))
    assert.deepEqual(alignedDkimPasses([{ domain: 'Example.COM', result: 'PASS' }], 'example.com'), [
      'example.com',
    ])
  })

  it('across a public suffix, never: each name under it is a registrant of its own', () => {
    assert.ok(!alignedDomains('duckdns.org', 'attacker.duckdns.org'))
    assert.ok(!alignedDomains('victim.duckdns.org', 'attacker.duckdns.org'))
    assert.ok(!alignedDomains('example.co.uk', 'co.uk'))
    assert.ok(!alignedDomains('alice.github.io', 'github.io'))
    // The domain itself signing for itself is aligned, suffix or not.
    assert.ok(alignedDomains('duckdns.org', 'duckdns.org'))
    const j = judgeBounce(
      facts({
        sender: { user: 'x', host: 'duckdns.org' },
        dkim: [{ domain: 'attacker.duckdns.org', result: 'pass' }],
      }),
      DEFAULTS,
    )
    assert.equal(j.decision, 'suppressed')
  })

  it("haraka-plugin-spf's words, any case", () => {
    assert.equal(spfResultOf('SoftFail'), 'softfail')
    assert.equal(spfResultOf(undefined), 'absent')
    assert.equal(spfResultOf('absent'), undefined, "absent is the guard's word, never a result")
  })
})
