import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { recipientPluginsBefore } from '../lib/haraka/placement'
import { makeTestPlugin } from './support/harness'

describe('recipientPluginsBefore', () => {
  it('names recipient plugins listed before backscatter', () => {
    assert.deepEqual(
      recipientPluginsBefore([
        'xclient',
        'rcpt_to.in_host_list',
        'qmail-deliverable',
        'backscatter',
        'rcpt_to.ldap',
      ]),
      ['rcpt_to.in_host_list', 'qmail-deliverable'],
    )
  })

  it('nothing when backscatter comes first, is absent, or the list has comments', () => {
    assert.deepEqual(recipientPluginsBefore(['backscatter', 'rcpt_to.in_host_list']), [])
    assert.deepEqual(recipientPluginsBefore(['rcpt_to.in_host_list']), [])
    assert.deepEqual(recipientPluginsBefore(['# rcpt_to.in_host_list', ' backscatter ']), [])
  })

  it('recognises the package name too', () => {
    assert.deepEqual(recipientPluginsBefore(['recipient-routes', 'haraka-plugin-backscatter']), [
      'recipient-routes',
    ])
  })
})

describe('the plugin warns at load when it is listed too late', () => {
  it('one warning naming the plugins and the fix', () => {
    const t = makeTestPlugin('[dns]\nhealth_interval = 0\n')
    try {
      // The deployment's config/plugins, read through the plugin's own config as Haraka does.
      fs.writeFileSync(path.join(t.dir, 'config', 'plugins'), 'xclient\nrcpt_to.in_host_list\nbackscatter\n')
      t.logs.length = 0
      t.plugin.register()
      const warnings = t.logs.filter((l) => l.level === 'logwarn' && /config\/plugins/.test(l.text))
      assert.equal(warnings.length, 1, JSON.stringify(t.logs))
      assert.match(
        warnings[0]!.text,
        /listed after rcpt_to\.in_host_list in config\/plugins: .*list backscatter before them/,
      )
    } finally {
      t.close()
    }
  })
})
