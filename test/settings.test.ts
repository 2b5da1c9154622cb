import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { BACKSCATTERER, DEFAULT_MESSAGE, isIpOrCidr, parseServer, parseSettings } from '../lib/settings/parse'
import { settingRows, ZONE_SECTION, ZONE_SECTION_NAME, zoneDefaults } from '../lib/settings/schema'
import { REPO } from './support/repo'
import { loadDeploymentIni, loadPackageIni } from './support/load-ini'

describe('parseSettings defaults', () => {
  const { settings, problems } = parseSettings({})

  it('has no problems with an empty ini', () => assert.deepEqual(problems, []))

  it('queries ips.backscatterer.org with score 5, IPv4 only', () => {
    assert.equal(settings.zones.length, 1)
    const z = settings.zones[0]!
    assert.equal(z.name, BACKSCATTERER)
    assert.equal(z.score, 5)
    assert.equal(z.ipv4, true)
    assert.equal(z.ipv6, false)
    assert.equal(z.lookupUrl, 'https://www.backscatterer.org/?target=test&ip={ip}')
    assert.equal(z.file, '')
  })

  it('rejects at threshold 5, exempts postmaster and abuse, adds the header', () => {
    assert.equal(settings.threshold, 5)
    assert.equal(settings.action, 'reject')
    assert.deepEqual([...settings.exemptRecipients], ['postmaster', 'abuse'])
    assert.equal(settings.header, 'X-Haraka-Backscatter')
    assert.equal(settings.message, DEFAULT_MESSAGE)
  })

  it('bounds a dead resolver to about 2 s', () => {
    assert.equal(settings.dns.timeoutMs * settings.dns.tries, 2000)
    assert.deepEqual(settings.dns.servers, [])
  })

  it('skips private and relaying clients, treats <> and postmaster as bounces', () => {
    assert.equal(settings.skip.private, true)
    assert.equal(settings.skip.relaying, true)
    assert.equal(settings.senders.null, true)
    assert.deepEqual([...settings.senders.localParts], ['postmaster'])
  })

  it('is frozen', () => {
    assert.ok(Object.isFrozen(settings))
    assert.ok(Object.isFrozen(settings.dns))
    assert.ok(Object.isFrozen(settings.zones[0]))
  })
})

describe('the shipped config/backscatter.ini', () => {
  it('parses without problems and equals the built-in defaults', () => {
    const parsed = parseSettings(loadPackageIni())
    assert.deepEqual(parsed.problems, [])
    assert.deepEqual(parsed.settings, parseSettings({}).settings)
  })

  it('sets every key of the table to its default, in the order of the table', () => {
    const text = fs.readFileSync(path.join(REPO, 'config', 'backscatter.ini'), 'utf8')
    const shipped = new Map<string, [string, string][]>()
    let section = 'main'
    for (const line of text.split('\n')) {
      const heading = /^\[([^\]]+)\]$/.exec(line)
      if (heading) section = heading[1]!
      const entry = /^([\w.]+) =(?: (.*))?$/.exec(line)
      if (!entry) continue
      if (!shipped.has(section)) shipped.set(section, [])
      shipped.get(section)!.push([entry[1]!, entry[2] ?? ''])
    }
    const expected = new Map<string, [string, string][]>()
    for (const { section, key, setting } of settingRows()) {
      const name = section === ZONE_SECTION_NAME ? BACKSCATTERER : section
      if (!expected.has(name)) expected.set(name, [])
      expected.get(name)!.push([key, setting.kind.format(defaultOf(section, key))])
    }
    assert.deepEqual([...shipped], [...expected])
  })

  it('shows a per-answer score as a commented example', () => {
    const text = fs.readFileSync(path.join(REPO, 'config', 'backscatter.ini'), 'utf8')
    const examples = [...text.matchAll(/^; ([\d.]+) = \S+$/gm)].map((m) => m[1]!)
    assert.ok(
      examples.some((key) => ZONE_SECTION.patternKeys.matches(key)),
      examples.join(' '),
    )
  })
})

/** A key's default as the table declares it; zone keys as for ips.backscatterer.org. */
function defaultOf(section: string, key: string): unknown {
  if (section !== ZONE_SECTION_NAME)
    return settingRows().find((r) => r.section === section && r.key === key)!.setting.default
  return (zoneDefaults(BACKSCATTERER) as Record<string, unknown>)[key]
}

describe('every setting in the table', () => {
  const defaults = parseSettings({}).settings
  const sectionName = (section: string): string => (section === ZONE_SECTION_NAME ? BACKSCATTERER : section)
  const raw = (section: string, key: string, value: unknown): object => ({
    [sectionName(section)]: { [key]: value },
  })

  for (const { section, key, setting } of settingRows()) {
    const shown = setting.kind.format(defaultOf(section, key))
    if (setting.freeText) {
      it(`[${section}] ${key} is free text: ; and # are part of it`, () => {
        const value = `${shown} ; not a comment # either`
        const { settings, problems } = parseSettings(raw(section, key, value))
        assert.deepEqual(problems, [])
        assert.notDeepEqual(settings, defaults)
      })
    } else {
      it(`[${section}] ${key}: a comment after the value is not part of it`, () => {
        for (const comment of ['; a comment', '# a comment']) {
          const { settings, problems, errors } = parseSettings(raw(section, key, `${shown}   ${comment}`))
          assert.deepEqual([...problems, ...errors], [])
          assert.deepEqual(settings, defaults)
        }
      })
    }

    const range = setting.kind.range
    if (!range) continue
    it(`[${section}] ${key}: ${range.min} and ${range.max} are accepted, one beyond either is refused`, () => {
      for (const edge of [range.min, range.max]) {
        const { settings, problems } = parseSettings(raw(section, key, edge))
        assert.deepEqual(problems, [], `${edge}`)
        if (edge !== defaultOf(section, key)) assert.notDeepEqual(settings, defaults, `${edge} is used`)
      }
      for (const beyond of [range.min - 1, range.max + 1]) {
        const { settings, problems } = parseSettings(raw(section, key, beyond))
        assert.deepEqual(problems, [
          `[${sectionName(section)}] ${key}: ${beyond} is outside ${range.min}..${range.max}; using ${shown}`,
        ])
        assert.deepEqual(settings, defaults)
      }
    })
  }

  it(`[<zone>] ${ZONE_SECTION.patternKeys.label}: the bounds of a per-answer score, both edges`, () => {
    const range = ZONE_SECTION.patternKeys.kind.range!
    for (const edge of [range.min, range.max]) {
      const { settings, problems } = parseSettings(raw(ZONE_SECTION_NAME, '127.0.0.3', edge))
      assert.deepEqual(problems, [])
      assert.equal(settings.zones[0]!.answerScores.get('127.0.0.3'), edge)
    }
    for (const beyond of [range.min - 1, range.max + 1]) {
      const { settings, problems } = parseSettings(raw(ZONE_SECTION_NAME, '127.0.0.3', beyond))
      assert.deepEqual(problems, [
        `[${BACKSCATTERER}] 127.0.0.3: ${beyond} is outside ${range.min}..${range.max}; ignored, the zone's score applies`,
      ])
      assert.equal(settings.zones[0]!.answerScores.size, 0)
    }
  })
})

describe('parseSettings values', () => {
  it('reads zones, per-zone sections and per-answer scores', () => {
    const { settings, problems } = parseSettings({
      main: { zones: 'ips.backscatterer.org, Bounces.Example.NET.', threshold: 7 },
      'ips.backscatterer.org': { score: 4, '127.0.0.2': 6 },
      'bounces.example.net': { score: 2.5, ipv6: 'true', lookup_url: 'https://bounces.example.net/{ip}' },
    })
    assert.deepEqual(problems, [])
    assert.deepEqual(
      settings.zones.map((z) => z.name),
      ['ips.backscatterer.org', 'bounces.example.net'],
    )
    assert.equal(settings.zones[0]!.answerScores.get('127.0.0.2'), 6)
    assert.equal(settings.zones[1]!.score, 2.5)
    assert.equal(settings.zones[1]!.ipv6, true)
    assert.equal(settings.zones[1]!.lookupUrl, 'https://bounces.example.net/{ip}')
    assert.equal(settings.threshold, 7)
  })

  it('reads lists with commas, spaces or ini arrays', () => {
    const { settings } = parseSettings({
      main: { exempt_recipients: ['Postmaster', 'abuse  hostmaster'] },
      skip: { ips: '45.1.0.0/16;2a00:1450::/32 45.9.9.9' },
      dns: { servers: '127.0.0.1:5353, [::1]:53, 10.0.0.1' },
    })
    assert.deepEqual([...settings.exemptRecipients], ['postmaster', 'abuse', 'hostmaster'])
    assert.deepEqual(settings.skip.ips, ['45.1.0.0/16', '2a00:1450::/32', '45.9.9.9'])
    assert.deepEqual(settings.dns.servers, ['127.0.0.1:5353', '[::1]:53', '10.0.0.1'])
  })

  it('accepts the action words in any case', () => {
    assert.equal(parseSettings({ main: { action: 'Defer' } }).settings.action, 'defer')
    assert.equal(parseSettings({ main: { action: 'score' } }).settings.action, 'score')
  })

  it('an empty header setting adds none', () => {
    assert.equal(parseSettings({ main: { header: '' } }).settings.header, '')
  })
})

describe('parseSettings invalid values: one line naming the key, then the default', () => {
  const cases: {
    name: string
    raw: object
    key: RegExp
    check: (s: ReturnType<typeof parseSettings>['settings']) => void
  }[] = [
    {
      name: 'non-numeric score',
      raw: { 'ips.backscatterer.org': { score: 'high' } },
      key: /\[ips\.backscatterer\.org\] score: "high" is not a number; using 5/,
      check: (s) => assert.equal(s.zones[0]!.score, 5),
    },
    {
      name: 'non-numeric per-answer score',
      raw: { 'ips.backscatterer.org': { '127.0.0.2': 'lots' } },
      key: /\[ips\.backscatterer\.org\] 127\.0\.0\.2: "lots" is not a number/,
      check: (s) => assert.equal(s.zones[0]!.answerScores.size, 0),
    },
    {
      name: 'non-numeric threshold',
      raw: { main: { threshold: 'five' } },
      key: /\[main\] threshold: "five" is not a number; using 5/,
      check: (s) => assert.equal(s.threshold, 5),
    },
    {
      name: 'bad CIDR in [skip] ips',
      raw: { skip: { ips: '45.1.2.0/33, 45.7.7.7, not-an-ip' } },
      key: /\[skip\] ips: "45\.1\.2\.0\/33" is not an IP address or CIDR; ignored/,
      check: (s) => assert.deepEqual(s.skip.ips, ['45.7.7.7']),
    },
    {
      name: 'empty zone list',
      raw: { main: { zones: '' } },
      key: /\[main\] zones: no usable zone; using ips\.backscatterer\.org/,
      check: (s) =>
        assert.deepEqual(
          s.zones.map((z) => z.name),
          ['ips.backscatterer.org'],
        ),
    },
    {
      name: 'bad zone name',
      raw: { main: { zones: 'ips.backscatterer.org, bad_zone!, -x.example' } },
      key: /\[main\] zones: "bad_zone!" is not a DNS zone name; ignored/,
      check: (s) =>
        assert.deepEqual(
          s.zones.map((z) => z.name),
          ['ips.backscatterer.org'],
        ),
    },
    {
      name: 'boolean typo',
      raw: { skip: { private: 'ture' } },
      key: /\[skip\] private: "ture" is not true or false; using true/,
      check: (s) => assert.equal(s.skip.private, true),
    },
    {
      name: 'timeout out of range',
      raw: { dns: { timeout_ms: 0 } },
      key: /\[dns\] timeout_ms: 0 is outside 50\.\.10000; using 1000/,
      check: (s) => assert.equal(s.dns.timeoutMs, 1000),
    },
    {
      name: 'fractional tries',
      raw: { dns: { tries: 1.5 } },
      key: /\[dns\] tries: "1\.5" is not a whole number; using 2/,
      check: (s) => assert.equal(s.dns.tries, 2),
    },
    {
      name: 'bad resolver address',
      raw: { dns: { servers: 'dns.example.com, 127.0.0.1:99999, 127.0.0.1:5300' } },
      key: /\[dns\] servers: "dns\.example\.com" is not ip, ip:port or \[ipv6\]:port; ignored/,
      check: (s) => assert.deepEqual(s.dns.servers, ['127.0.0.1:5300']),
    },
    {
      name: 'unknown key',
      raw: { main: { treshold: 3 } },
      key: /\[main\] treshold: unknown setting; ignored/,
      check: (s) => assert.equal(s.threshold, 5),
    },
    {
      name: 'unknown section',
      raw: { 'zen.spamhaus.org': { score: 1 } },
      key: /\[zen\.spamhaus\.org\]: section is not a zone named in \[main\] zones; ignored/,
      check: (s) => assert.equal(s.zones.length, 1),
    },
    {
      name: 'header with a colon',
      raw: { main: { header: 'X-Bad: header' } },
      key: /\[main\] header: "X-Bad: header" is not a header field name/,
      check: (s) => assert.equal(s.header, 'X-Haraka-Backscatter'),
    },
    {
      name: "a lookup budget above Haraka's hook timeout",
      raw: { dns: { timeout_ms: 10000, tries: 5 } },
      key: /\[dns\] tries: timeout_ms × tries exceeds 20000 ms; using 1/,
      check: (s) => assert.equal(s.dns.timeoutMs * s.dns.tries, 10000),
    },
  ]
  for (const c of cases) {
    it(c.name, () => {
      const { settings, problems } = parseSettings(c.raw)
      assert.equal(problems.filter((p) => c.key.test(p)).length, 1, `problems: ${problems.join(' | ')}`)
      c.check(settings)
    })
  }

  it('postmaster is always exempt (RFC 5321 §4.5.1)', () => {
    const { settings, problems } = parseSettings({ main: { exempt_recipients: 'abuse' } })
    assert.deepEqual([...settings.exemptRecipients].sort(), ['abuse', 'postmaster'])
    assert.deepEqual(problems, [
      '[main] exempt_recipients: postmaster is always exempt (RFC 5321 section 4.5.1); added',
    ])
  })

  it('a /0 network in [skip] ips is refused: it would skip everyone', () => {
    const { settings, problems } = parseSettings({ skip: { ips: '0.0.0.0/0, ::/0, 45.1.0.0/16' } })
    assert.deepEqual(settings.skip.ips, ['45.1.0.0/16'])
    assert.equal(problems.filter((p) => /would skip every client/.test(p)).length, 2)
  })

  it('cache_size is bounded (lru-cache allocates for the maximum up front)', () => {
    const { settings, problems } = parseSettings({ dns: { cache_size: 5_000_000 } })
    assert.equal(settings.dns.cacheSize, 10_000)
    assert.match(problems[0]!, /\[dns\] cache_size: 5000000 is outside 0\.\.1000000/)
  })

  it('never throws, whatever it is given', () => {
    for (const raw of [
      null,
      undefined,
      42,
      'text',
      [],
      { main: null },
      { main: { zones: 7 } },
      { dns: { servers: {} } },
      { 'Bounces.Example.NET': null, main: { zones: ['bounces.example.net', {}] } },
      { main: { action: ['reject', 'defer'], message: [] }, dns: { tries: [] } },
      { 'ips.backscatterer.org': { '127.0.0.2': {}, score: [1, 2] } },
      Object.assign(Object.create(null), {
        main: Object.assign(Object.create(null), { zones: 'x.example' }),
      }),
    ]) {
      assert.doesNotThrow(() => parseSettings(raw))
    }
  })
})

describe('helpers', () => {
  it('isIpOrCidr', () => {
    for (const ok of ['1.2.3.4', '1.2.3.0/24', '::1', '2001:db8::/32', '0.0.0.0/0'])
      assert.equal(isIpOrCidr(ok), true, ok)
    for (const bad of ['1.2.3', '1.2.3.4/33', '::/129', '1.2.3.4/x', 'host', '1.2.3.4/24/1', ''])
      assert.equal(isIpOrCidr(bad), false, bad)
  })

  it('parseServer', () => {
    assert.deepEqual(parseServer('127.0.0.1'), { host: '127.0.0.1', port: 53 })
    assert.deepEqual(parseServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 })
    assert.deepEqual(parseServer('[::1]:5353'), { host: '::1', port: 5353 })
    assert.deepEqual(parseServer('::1'), { host: '::1', port: 53 })
    assert.equal(parseServer('127.0.0.1:0'), undefined)
    assert.equal(parseServer('resolver.example'), undefined)
  })
})

describe('trailing comments in values', () => {
  it('a comment after whitespace is not part of the value', () => {
    const { settings, problems, errors } = parseSettings(
      loadDeploymentIni(
        '[main]\naction = defer          ; try it out first\n[dns]\nservers = 127.0.0.1     ; a local caching resolver\ntries = 3 # three\n',
      ),
    )
    assert.deepEqual([...problems, ...errors], [])
    assert.equal(settings.action, 'defer')
    assert.deepEqual(settings.dns.servers, ['127.0.0.1'])
    assert.equal(settings.dns.tries, 3)
  })

  it('[main] message keeps everything after =', () => {
    const text = 'Go away ; really # now'
    assert.equal(parseSettings({ main: { message: text } }).settings.message, text)
  })

  it('a ; or # inside a word is part of the value', () => {
    const url = 'https://bounces.example.net/#{ip}'
    const { settings, problems } = parseSettings({
      main: { zones: 'bounces.example.net' },
      'bounces.example.net': { lookup_url: url },
    })
    assert.deepEqual(problems, [])
    assert.equal(settings.zones[0]!.lookupUrl, url)
  })
})

describe('an invalid action never makes the plugin stricter', () => {
  it('falls back to score, at error level, naming the key and the value', () => {
    const { settings, problems, errors } = parseSettings({ main: { action: 'blackhole' } })
    assert.equal(settings.action, 'score')
    assert.deepEqual(errors, ['[main] action: "blackhole" is not reject, defer or score; using score'])
    assert.deepEqual(problems, [])
  })
})

describe('sections for zones not in use', () => {
  it("the package's own [ips.backscatterer.org] is ignored quietly when the zone is not used", () => {
    const { settings, problems } = parseSettings(loadDeploymentIni('[main]\nzones = other.example\n'))
    assert.deepEqual(problems, [])
    assert.deepEqual(
      settings.zones.map((z) => z.name),
      ['other.example'],
    )
  })

  it('a section the operator wrote for a zone not in use is still reported', () => {
    const { problems } = parseSettings(
      loadDeploymentIni('[main]\nzones = other.example\n[ips.backscatterer.org]\nscore = 7\n'),
    )
    assert.deepEqual(problems, [
      '[ips.backscatterer.org]: section is not a zone named in [main] zones; ignored',
    ])
  })
})

describe('zone names are compared without regard to case', () => {
  it('[Bounces.Example.NET] configures the zone bounces.example.net', () => {
    const { settings, problems } = parseSettings({
      main: { zones: 'bounces.example.net' },
      'Bounces.Example.NET': { score: 3, file: '/var/lib/rbldnsd/bounces' },
    })
    assert.deepEqual(problems, [])
    assert.equal(settings.zones[0]!.score, 3)
    assert.equal(settings.zones[0]!.file, '/var/lib/rbldnsd/bounces')
  })
})

describe('a bad per-answer score', () => {
  it('says that the zone score applies, not NaN', () => {
    const { settings, problems } = parseSettings({ 'ips.backscatterer.org': { '127.0.0.3': 'lots' } })
    assert.deepEqual(problems, [
      `[ips.backscatterer.org] 127.0.0.3: "lots" is not a number; ignored, the zone's score applies`,
    ])
    assert.equal(settings.zones[0]!.answerScores.size, 0)
  })
})

describe('[dns] tries', () => {
  it('0 is refused: at least one try', () => {
    const { settings, problems } = parseSettings({ dns: { tries: 0 } })
    assert.equal(settings.dns.tries, 2)
    assert.deepEqual(problems, ['[dns] tries: 0 is outside 1..5; using 2'])
  })
})
