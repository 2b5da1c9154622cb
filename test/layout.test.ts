// lib/ reads as the design: a few folders, one per concern, each named in docs/layout.md.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

const REPO = path.join(__dirname, '..')

describe('the layout of lib/', () => {
  const entries = fs.readdirSync(path.join(REPO, 'lib'), { withFileTypes: true })

  it('has at most 10 entries, all folders', () => {
    assert.ok(entries.length <= 10, entries.map((e) => e.name).join(', '))
    assert.deepEqual(
      entries.filter((e) => !e.isDirectory()).map((e) => e.name),
      [],
    )
  })

  it('names every folder in docs/layout.md, and no folder that is gone', () => {
    const doc = fs.readFileSync(path.join(REPO, 'docs/layout.md'), 'utf8')
    const documented = [...doc.matchAll(/^\| `lib\/([\w-]+)\/`/gm)].map((m) => m[1])
    assert.deepEqual(documented.sort(), entries.map((e) => e.name).sort())
  })
})
