// The pure core of the watch of our own IPs: which addresses are watched, what
// a look changed, and what the log says about it.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import {
  delistedText,
  hostCandidates,
  listedText,
  listenHost,
  nextListings,
  reservedReason,
  watchList,
  type SelfListing,
} from '../lib/core/self-check'
import { parseSettings } from '../lib/settings/parse'
import type { ZoneOutcome } from '../lib/core/types'

const Z = 'ips.backscatterer.org'
const listed = (zone: string, reason = 'seen sending backscatter'): ZoneOutcome => ({
  zone,
  status: 'listed',
  codes: ['127.0.0.2'],
  reason,
})
const clean = (zone: string): ZoneOutcome => ({ zone, status: 'not-listed' })
const failed = (zone: string): ZoneOutcome => ({ zone, status: 'error', reason: 'timeout' })

describe('reservedReason: addresses that are never looked up', () => {
  it('names the kind of every private, loopback, link-local, documentation and reserved block', () => {
    const cases: [string, RegExp][] = [
      ['10.1.2.3', /private/],
      ['172.20.0.1', /private/],
      ['192.168.1.1', /private/],
      ['127.0.0.1', /loopback/],
      ['169.254.10.1', /link-local/],
      ['100.64.0.1', /carrier-grade NAT/],
      ['192.0.2.2', /documentation/],
      ['198.51.100.7', /documentation/],
      ['203.0.113.9', /documentation/],
      ['198.18.0.7', /benchmarking/],
      ['0.0.0.0', /this network/],
      ['224.0.0.5', /multicast/],
      ['255.255.255.255', /reserved/],
      ['::', /unspecified/],
      ['::1', /loopback/],
      ['fe80::1', /link-local/],
      ['fd00::2', /unique local/],
      ['2001:db8::25', /documentation/],
      ['ff02::1', /multicast/],
      ['mail.example', /not an IP/],
    ]
    for (const [ip, why] of cases) assert.match(reservedReason(ip) ?? 'public', why, ip)
  })

  it('leaves public addresses to be looked up', () => {
    for (const ip of ['45.1.2.3', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2a00:1450:4001::1'])
      assert.equal(reservedReason(ip), undefined, ip)
  })
})

describe('watchList: each address once, public ones watched', () => {
  it('merges the sources of one address, unmaps ::ffff: and drops an IPv6 zone index', () => {
    const list = watchList([
      { ip: '45.1.2.3', source: 'smtp.ini public_ip' },
      { ip: '::ffff:45.1.2.3', source: 'interface eth0' },
      { ip: 'fe80::1%eth0', source: 'interface eth0' },
      { ip: '10.0.0.5', source: 'interface eth1' },
      { ip: '45.1.2.3', source: 'smtp.ini public_ip' },
    ])
    assert.deepEqual(list.watched, [{ ip: '45.1.2.3', sources: ['smtp.ini public_ip', 'interface eth0'] }])
    assert.deepEqual(
      list.skipped.map((s) => `${s.ip} ${s.sources.join(',')}: ${s.why}`),
      ['fe80::1 interface eth0: link-local', '10.0.0.5 interface eth1: private (RFC 1918)'],
    )
  })
})

describe('hostCandidates: what Haraka knows of its own addresses', () => {
  it('reads public_ip, listen, listen_host, smtp_forward binds, interfaces and me', () => {
    const found = hostCandidates({
      publicIp: ' 45.0.0.1 ',
      listen: '[::0]:25, 45.0.0.2:587,/run/haraka.sock, [2a00:1450::5]:25',
      listenHost: '45.0.0.3',
      forwardBinds: [
        { section: 'main', bind: '45.0.0.4' },
        { section: 'example.org', bind: 'not-an-ip' },
      ],
      interfaces: {
        lo: [{ address: '127.0.0.1', internal: true }],
        eth0: [
          { address: '45.0.0.5', internal: false },
          { address: 'fe80::1%eth0', internal: false },
        ],
      },
      me: { name: 'mx.example.org', addresses: ['45.0.0.6'] },
    })
    assert.deepEqual(
      found.map((c) => `${c.ip} ${c.source}`),
      [
        '45.0.0.1 smtp.ini public_ip',
        '::0 smtp.ini listen',
        '45.0.0.2 smtp.ini listen',
        '2a00:1450::5 smtp.ini listen',
        '45.0.0.3 smtp.ini listen_host',
        '45.0.0.4 smtp_forward.ini [main] bind',
        '45.0.0.5 interface eth0',
        'fe80::1%eth0 interface eth0',
        '45.0.0.6 me (mx.example.org)',
      ],
    )
    assert.deepEqual(
      watchList(found).watched.map((w) => w.ip),
      ['45.0.0.1', '45.0.0.2', '2a00:1450::5', '45.0.0.3', '45.0.0.4', '45.0.0.5', '45.0.0.6'],
    )
  })

  it('takes the host of a listen address', () => {
    assert.equal(listenHost('[::0]:25'), '::0')
    assert.equal(listenHost('0.0.0.0:25'), '0.0.0.0')
    assert.equal(listenHost('2a00:1450::5'), '2a00:1450::5')
    assert.equal(listenHost('/tmp/sock'), undefined)
  })
})

describe('nextListings: a change of listing is said once', () => {
  const ip = '45.1.2.3'

  it('a first listing is a change; the same listing again is not', () => {
    const first = nextListings(new Map(), [{ ip, outcomes: [listed(Z)] }])
    assert.deepEqual(
      first.changes.map((c) => `${c.change} ${c.listing.ip} ${c.listing.zone} ${c.listing.reason}`),
      [`listed ${ip} ${Z} seen sending backscatter`],
    )
    const again = nextListings(first.listings, [{ ip, outcomes: [listed(Z)] }])
    assert.deepEqual(again.changes, [])
  })

  it('a listed IP no longer listed is a delisting; a clean IP seen first is no change', () => {
    const before = nextListings(new Map(), [{ ip, outcomes: [listed(Z)] }]).listings
    const after = nextListings(before, [
      { ip, outcomes: [clean(Z)] },
      { ip: '45.9.9.9', outcomes: [clean(Z)] },
    ])
    assert.deepEqual(
      after.changes.map((c) => `${c.change} ${c.listing.ip}`),
      [`delisted ${ip}`],
    )
    assert.deepEqual(
      [...after.listings.values()].map((l) => `${l.ip} ${l.listed}`),
      [`${ip} false`, '45.9.9.9 false'],
    )
  })

  it('a zone that gives no answer keeps what was known, and says nothing', () => {
    const before = nextListings(new Map(), [{ ip, outcomes: [listed(Z)] }]).listings
    const after = nextListings(before, [{ ip, outcomes: [failed(Z)] }])
    assert.deepEqual(after.changes, [])
    assert.equal(after.listings.get(`${Z} ${ip}`)?.listed, true)
  })

  it('a listing without TXT is told by its answer codes', () => {
    const { changes } = nextListings(new Map(), [{ ip, outcomes: [listed(Z, '')] }])
    assert.equal(changes[0]?.listing.reason, '127.0.0.2')
  })
})

describe('what the log says', () => {
  const l: SelfListing = { ip: '45.1.2.3', zone: Z, listed: true, reason: 'backscatter seen' }

  it('a listing names the IP, the zone, the lookup URL and what to do', () => {
    const text = listedText(l, 'https://www.backscatterer.org/?target=test&ip={ip}')
    assert.match(text, /^our own IP 45\.1\.2\.3 is listed on ips\.backscatterer\.org \(backscatter seen\)/)
    assert.match(text, /Find the source and fix it/)
    assert.match(text, /four weeks after the last abuse seen, or at once with the list's express delisting/)
    assert.match(text, /details: https:\/\/www\.backscatterer\.org\/\?target=test&ip=45\.1\.2\.3$/)
    assert.doesNotMatch(listedText(l, ''), /details:/)
  })

  it('a delisting names the IP and the zone', () => {
    assert.equal(delistedText(l), 'our own IP 45.1.2.3 is no longer listed on ips.backscatterer.org')
  })
})

describe('[self_check] settings', () => {
  it('defaults: on, no IPs of its own, every 30 minutes', () => {
    assert.deepEqual(parseSettings({}).settings.selfCheck, {
      enabled: true,
      ips: [],
      ipsSet: false,
      intervalMinutes: 30,
    })
    assert.equal(parseSettings({ self_check: { ips: ' ; unset' } }).settings.selfCheck.ipsSet, false)
  })

  it('keeps a private IP to say it is never looked up, drops a malformed one, one line each', () => {
    const { settings, problems } = parseSettings({
      self_check: {
        enabled: 'false',
        ips: '45.1.2.3, 10.0.0.1, mx.example, 192.0.2.10',
        interval_minutes: 5,
      },
    })
    assert.deepEqual(settings.selfCheck, {
      enabled: false,
      ips: ['45.1.2.3', '10.0.0.1', '192.0.2.10'],
      ipsSet: true,
      intervalMinutes: 5,
    })
    assert.deepEqual(problems, [
      '[self_check] ips: 10.0.0.1 is private (RFC 1918): never looked up',
      '[self_check] ips: "mx.example" is not an IP address; ignored',
      '[self_check] ips: 192.0.2.10 is documentation (RFC 5737): never looked up',
    ])
    // Set, even to nothing usable: the addresses Haraka gives are not watched instead.
    const junk = parseSettings({ self_check: { ips: 'mx.example' } }).settings.selfCheck
    assert.deepEqual([junk.ips, junk.ipsSet], [[], true])
  })
})
