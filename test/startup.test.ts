// The lines the plugin logs when it loads its settings: sentences that name
// the zones (and their zone files), the action and threshold, and BATV's
// domains and keys.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'

import { parseSettings } from '../lib/settings/parse'
import { listText, startupLines } from '../lib/haraka/startup'
import { makeTestPlugin } from './support/harness'
import { loadDeploymentIni } from './support/load-ini'

/** The start-up lines of a deployment whose config/backscatter.ini is `ini`. */
function linesOf(ini: string): string[] {
  const { settings, errors } = parseSettings(loadDeploymentIni(ini), {
    readLines: (name) => (name === 'backscatter.ini' ? ini.split('\n') : { error: 'no such file' }),
  })
  assert.deepEqual(errors, [])
  return startupLines(settings)
}

describe('start-up lines', () => {
  it('the defaults: the zone, how it is queried, the action and the threshold', () => {
    assert.deepEqual(linesOf(''), [
      'checking bounces against ips.backscatterer.org (by DNS through the system resolvers); ' +
        'a recipient is rejected with 550 when the score reaches 5',
    ])
  })

  it('a zone answered from a file is named with its file; defer and its threshold', () => {
    const ini =
      '[main]\nzones = ips.backscatterer.org, bounces.example.net\naction = defer\nthreshold = 7\n' +
      '[dns]\nservers = 127.0.0.1, 127.0.0.2:5353\n' +
      '[ips.backscatterer.org]\nfile = /var/lib/rbldnsd/ips.backscatterer.org\n'
    assert.deepEqual(linesOf(ini), [
      'checking bounces against ips.backscatterer.org (answered from the zone file ' +
        '/var/lib/rbldnsd/ips.backscatterer.org) and bounces.example.net (by DNS through 127.0.0.1, ' +
        '127.0.0.2:5353); a recipient is deferred with 450 when the score reaches 7',
    ])
  })

  it('action score says that nothing is refused; per-domain actions are named', () => {
    const ini = '[main]\naction = score\n[recipient_domains]\nexample.org = reject\nlists.example.org = off\n'
    assert.deepEqual(linesOf(ini), [
      'checking bounces against ips.backscatterer.org (by DNS through the system resolvers); ' +
        'nothing is refused (action score): the score is recorded in the results and the header',
      'recipients in these domains get their own action ([recipient_domains]): example.org: reject, lists.example.org: off',
    ])
  })

  it('BATV: its domains, the signing key and the checking keys, and when a missing tag counts', () => {
    const batv = '[batv]\ndomains = example.com, example.org\nmissing_from = 2026-12-08\nsign_key = 2\n'
    const keys = '[batv.keys]\n1 = first-secret\n2 = second-secret\n'
    assert.equal(
      linesOf(batv + keys)[1],
      'signed bounces (BATV) for example.com and example.org: senders are signed with key 2, ' +
        'tags are checked with keys 1 and 2; a missing tag counts from 2026-12-08',
    )
    const checkOnly = '[batv]\ndomains = example.com\nsign = false\n[batv.keys]\n1 = first-secret\n'
    assert.equal(
      linesOf(checkOnly)[1],
      'signed bounces (BATV) for example.com: senders are not signed ([batv] sign = false), ' +
        'tags are checked with key 1; a missing tag is recorded, not scored until [batv] missing_from is set',
    )
    assert.equal(linesOf('').length, 1, 'no BATV line while BATV is off')
  })

  it('listText', () => {
    assert.equal(listText([]), '')
    assert.equal(listText(['a']), 'a')
    assert.equal(listText(['a', 'b']), 'a and b')
    assert.equal(listText(['a', 'b', 'c']), 'a, b and c')
  })

  it('the plugin logs them at INFO when it loads its settings, and never a secret', () => {
    const tp = makeTestPlugin(
      '[ips.backscatterer.org]\nfile = /var/lib/rbldnsd/ips.backscatterer.org\n' +
        '[batv]\ndomains = example.com\nmissing_from = 2026-12-08\n[batv.keys]\n1 = s3cret-value\n',
    )
    try {
      const info = tp.logs.filter((l) => l.level === 'loginfo').map((l) => l.text)
      assert.ok(
        info.includes(
          'checking bounces against ips.backscatterer.org (answered from the zone file ' +
            '/var/lib/rbldnsd/ips.backscatterer.org); a recipient is rejected with 550 when the score reaches 5',
        ),
        info.join('\n'),
      )
      assert.ok(
        info.includes(
          'signed bounces (BATV) for example.com: senders are signed with key 1, tags are checked with key 1; ' +
            'a missing tag counts from 2026-12-08',
        ),
        info.join('\n'),
      )
      assert.ok(!tp.logs.some((l) => l.text.includes('s3cret-value')))
    } finally {
      tp.close()
    }
  })
})
