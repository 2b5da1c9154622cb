// config/backscatter.keys: its own strict parser, the permission check, and the
// reader that finds the file in the deployment's config folder before the package's.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, it } from 'node:test'

import { KEYS_FILE, keysFileReader, modeProblem, parseKeysFile } from '../lib/batv/keys-file'

describe('parseKeysFile', () => {
  it('N=secret lines, spaces around the = trimmed, # comments and blank lines skipped', () => {
    const { secrets, problems } = parseKeysFile(['# keys', '', '0=zero', ' 9 = nine # not a comment ', '\t'])
    assert.deepEqual(problems, [])
    assert.deepEqual(
      [...secrets].map(([id, s]) => [id, s.secret, s.line]),
      [
        [0, 'zero', 3],
        [9, 'nine # not a comment', 4],
      ],
    )
  })

  it("an editor's byte order mark before the first key is not part of it", () => {
    const { secrets, problems } = parseKeysFile(['\uFEFF1 = k'])
    assert.deepEqual(problems, [])
    assert.equal(secrets.get(1)?.secret, 'k')
  })

  it('a bad line is an error by file and line, whatever it holds', () => {
    const { secrets, problems } = parseKeysFile(['1 = ok', 'x'.repeat(20)], 'other.keys')
    assert.equal(secrets.size, 1)
    assert.deepEqual(problems, [
      {
        severity: 'error',
        file: 'other.keys',
        line: 2,
        text: 'no "=": each line is N=secret; line ignored, not shown',
      },
    ])
  })
})

describe('modeProblem', () => {
  it('only the group and other bits count', () => {
    assert.equal(modeProblem(0o100600), undefined)
    assert.equal(modeProblem(0o100700), undefined)
    assert.equal(modeProblem(0o100400), undefined)
    assert.match(modeProblem(0o100644)?.text ?? '', /^mode 0644: group or others can read the BATV secrets/)
    assert.match(modeProblem(0o100601)?.text ?? '', /^mode 0601: /)
    assert.match(modeProblem(0o102640)?.text ?? '', /^mode 2640: /)
  })
})

describe('keysFileReader', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-keys-'))
  after(() => fs.rmSync(root, { recursive: true, force: true }))
  const deployment = path.join(root, 'deployment')
  const pkg = path.join(root, 'package')
  fs.mkdirSync(deployment)
  fs.mkdirSync(pkg)
  const asked: string[] = []
  const getData = (name: string): unknown => {
    asked.push(name)
    for (const dir of [deployment, pkg]) {
      const file = path.join(dir, name)
      if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').split('\n')
    }
    return []
  }
  const read = keysFileReader([deployment, undefined, pkg], getData)

  it('no file: undefined, and the name is still asked for, so a file created later is watched', () => {
    asked.length = 0
    assert.equal(read(), undefined)
    assert.deepEqual(asked, [KEYS_FILE])
  })

  it("the package's file, with its mode, when the deployment has none", () => {
    fs.writeFileSync(path.join(pkg, KEYS_FILE), '1 = p\n', { mode: 0o640 })
    fs.chmodSync(path.join(pkg, KEYS_FILE), 0o640)
    const text = read()
    assert.ok(text && 'lines' in text)
    assert.deepEqual(text.lines, ['1 = p', ''])
    assert.equal((text.mode ?? 0) & 0o777, 0o640)
  })

  it("the deployment's file first, with its mode", () => {
    fs.writeFileSync(path.join(deployment, KEYS_FILE), '1 = d\n')
    fs.chmodSync(path.join(deployment, KEYS_FILE), 0o600)
    const text = read()
    assert.ok(text && 'lines' in text)
    assert.deepEqual(text.lines, ['1 = d', ''])
    assert.equal((text.mode ?? 0) & 0o777, 0o600)
  })

  it('something that is not a file: an error', () => {
    fs.rmSync(path.join(deployment, KEYS_FILE))
    fs.mkdirSync(path.join(deployment, KEYS_FILE))
    assert.deepEqual(read(), { error: 'not a regular file' })
  })
})
