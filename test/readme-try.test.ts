// The README's "Try it on your own machine" works as printed: its shell lines,
// its ini file and its haraka-backscatter commands are run in that order in a
// fresh Haraka directory, and each command prints what the README shows. Only
// the zone file's path is the test's own (/tmp/try.zone is shared by every
// reader). The swaks step needs a running Haraka: test/e2e/readme-try.test.ts.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import { REPO } from './support/repo'
import { assertPrinted, consoleSteps, runShell, sectionBlocks, TRY_SECTION, TRY_ZONE } from './support/readme'

describe('README: Try it on your own machine', () => {
  const blocks = sectionBlocks(TRY_SECTION)
  let dir: string

  before(() => {
    assert.ok(fs.existsSync(path.join(REPO, 'dist', 'cli', 'main.js')), 'build first: npm run build')
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-try-'))
    fs.mkdirSync(path.join(dir, 'config'))
  })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('shows a skipped bounce, a zone file, its ini, a refusal and the swaks session', () => {
    assert.deepEqual(
      blocks.map((b) => b.lang),
      ['console', 'sh', 'ini', 'console', 'console'],
    )
    assert.ok(blocks.every((b) => b.lang !== 'sh' || b.text.includes(TRY_ZONE)))
  })

  it('every step, in order, does what the README says', () => {
    const zone = path.join(dir, 'try.zone')
    const own = (text: string): string => text.replaceAll(TRY_ZONE, zone)
    let commands = 0
    for (const block of blocks) {
      if (block.lang === 'sh') {
        const r = runShell(own(block.text), dir)
        assert.equal(r.status, 0, r.stderr)
      } else if (block.lang === 'ini') {
        const name = /^; (config\/\S+)/.exec(block.text)?.[1]
        assert.equal(name, 'config/backscatter.ini')
        fs.writeFileSync(path.join(dir, name), own(block.text))
      } else {
        for (const step of consoleSteps(block)) {
          if (step.command.startsWith('swaks ')) continue
          assert.match(step.command, /^npx haraka-backscatter /)
          const r = runShell(step.command, dir)
          assert.equal(r.status, 0, `${step.command}: ${r.stderr}`)
          assert.equal(r.stderr, '', step.command)
          assertPrinted(r.stdout, step.output, step.command)
          commands++
        }
      }
    }
    assert.equal(commands, 2)
  })
})
