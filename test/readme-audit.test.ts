// The README's "Avoid being listed" section shows real `audit` output: run the
// command it shows on the setup it names, and compare. The machine's own
// interfaces and host name are set aside, so the output is the same everywhere
// and no DNS query is made.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import assert from 'node:assert/strict'
import { describe, it, mock } from 'node:test'

import { assertPrinted, consoleSteps, sectionBlocks } from './support/readme'
import { run, tmpDir } from './cli/harness'

describe('README: Avoid being listed', () => {
  it('prints what the README shows for the setup it names', async () => {
    const block = sectionBlocks('## Avoid being listed').find((b) => b.lang === 'console')
    assert.ok(block, 'the section shows a console block')
    const [step] = consoleSteps(block)
    assert.ok(step)
    const m = /^haraka-backscatter (audit --config (\S+)) +# plugins: (.+)$/.exec(step.command)
    assert.ok(m, step.command)
    const [, args = '', shownDir = '', plugins = ''] = m
    const dir = tmpDir()
    fs.writeFileSync(path.join(dir, 'plugins'), `${plugins.split(/\s+/).join('\n')}\n`)
    mock.method(os, 'networkInterfaces', () => ({}))
    mock.method(os, 'hostname', () => 'localhost')
    try {
      const r = await run(args.replace(shownDir, dir).split(' '))
      assert.equal(r.code, 2, r.stderr)
      assertPrinted(
        r.stdout,
        step.output.map((l) => l.replaceAll(shownDir, dir)),
        'audit',
      )
    } finally {
      mock.restoreAll()
    }
  })
})
