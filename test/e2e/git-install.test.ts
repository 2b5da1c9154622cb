// `npm install git+file://…` builds the plugin through its prepare script, as an
// install straight from the repository would; the tarball path is covered by
// the Haraka suites.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'

import { REPO } from '../support/harness'

describe('install from git', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-git-install-'))
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  test('builds dist/ and gives Haraka an entry with the hooks', { timeout: 240_000 }, () => {
    fs.writeFileSync(
      path.join(dir, 'package.json'),
      '{"name":"deployment","version":"1.0.0","private":true}\n',
    )
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `git+file://${REPO}`], {
      cwd: dir,
      stdio: 'pipe',
      timeout: 230_000,
    })
    const pkg = path.join(dir, 'node_modules', 'haraka-plugin-backscatter')
    assert.ok(fs.existsSync(path.join(pkg, 'dist', 'plugin.js')), 'dist/plugin.js was built')
    assert.ok(fs.existsSync(path.join(pkg, 'config', 'backscatter.ini')))
    assert.ok(!fs.existsSync(path.join(pkg, 'lib')), 'sources are not installed')
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        `const p = require(${JSON.stringify(pkg)}); console.log(Object.keys(p).filter((k) => /^(register|hook_)/.test(k)).join(' '))`,
      ],
      { encoding: 'utf8', env: { ...process.env, HARAKA_LOGS_SUPPRESS: '1' } },
    )
    assert.match(out, /register/)
    assert.match(out, /hook_mail/)
    assert.match(out, /hook_rcpt/)
  })
})
