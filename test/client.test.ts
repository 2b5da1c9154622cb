import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { clientToCheck, isOwnClient, leftAlone, provenanceOf, zoneSkipReason } from '../lib/core/client'
import { parseSettings } from '../lib/settings/parse'

describe('zoneSkipReason: a zone is queried only for the address families it checks', () => {
  const v4only = { ipv4: true, ipv6: false }
  const v6only = { ipv4: false, ipv6: true }
  const both = { ipv4: true, ipv6: true }

  it('an IPv4 zone skips IPv6 clients, and says so', () => {
    assert.equal(zoneSkipReason(v4only, '45.1.2.3'), undefined)
    assert.equal(zoneSkipReason(v4only, '2a00:1450::1'), 'IPv6 not checked')
  })

  it('an IPv6-only zone skips IPv4 clients', () => {
    assert.equal(zoneSkipReason(v6only, '45.1.2.3'), 'IPv4 not checked')
    assert.equal(zoneSkipReason(v6only, '2a00:1450::1'), undefined)
  })

  it('a zone with both queries both', () => {
    assert.equal(zoneSkipReason(both, '45.1.2.3'), undefined)
    assert.equal(zoneSkipReason(both, '2a00:1450::1'), undefined)
  })
})

describe('isOwnClient: the clients whose mail is our users’ mail (the ledger and the outbound guard)', () => {
  const own = (authUser: unknown, relaying: boolean, connectionRelaying: boolean): boolean =>
    isOwnClient(provenanceOf({ ip: '45.1.2.3', authUser, relaying, connectionRelaying }))

  it('one that authenticated, or whose connection may relay', () => {
    assert.equal(own('bob', true, true), true)
    assert.equal(own('bob', false, false), true)
    assert.equal(own(undefined, true, true), true)
  })

  it('not one that relays for the recipient only (dest_domains), nor one that does not relay', () => {
    assert.equal(own(undefined, true, false), false)
    assert.equal(own('', true, false), false)
    assert.equal(own(undefined, false, false), false)
  })
})

describe('leftAlone: the clients [skip] leaves alone, whose mail nothing refuses or scores', () => {
  const { settings } = parseSettings({ skip: { ips: '198.51.100.0/24' } })
  const alone = (ip: string | undefined, relaying = false): boolean =>
    leftAlone(clientToCheck({ ip, relaying }, settings))

  it('private, relaying and [skip] ips clients', () => {
    assert.equal(alone('10.1.2.3'), true)
    assert.equal(alone('127.0.0.1'), true)
    assert.equal(alone('45.1.2.3', true), true)
    assert.equal(alone('198.51.100.7'), true)
  })

  it('not a public client, nor one with no address (only not looked up)', () => {
    assert.equal(alone('45.1.2.3'), false)
    assert.equal(alone(undefined), false)
  })
})
