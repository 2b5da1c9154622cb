// describeError: one way to put an error in a few words, for the zone files,
// the keys and config files, and the command.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import { describe, it } from 'node:test'

import { configLinesReader, keysFileReader } from '../lib/batv/keys-file'
import { describeError } from '../lib/core/error'

const system = (code: string, message: string): Error => Object.assign(new Error(message), { code })

function thrown(f: () => unknown): unknown {
  try {
    f()
  } catch (err) {
    return err
  }
  assert.fail('nothing thrown')
}

describe('describeError', () => {
  it("a system error as the operating system's reason and its code, without the path", () => {
    assert.equal(
      describeError(system('EACCES', "EACCES: permission denied, open '/var/lib/rbldnsd/zone'")),
      'permission denied (EACCES)',
    )
    assert.equal(
      describeError(system('EISDIR', 'EISDIR: illegal operation on a directory, read')),
      'illegal operation on a directory (EISDIR)',
    )
    const missing = thrown(() => fs.readFileSync('/nonexistent/backscatter.keys'))
    assert.equal(describeError(missing), 'no such file or directory (ENOENT)')
    assert.equal(
      describeError(thrown(() => fs.readFileSync(os.tmpdir()))),
      'illegal operation on a directory (EISDIR)',
    )
  })

  it('any other error by its message, without its name', () => {
    assert.equal(describeError(system('Z_DATA_ERROR', 'incorrect header check')), 'incorrect header check')
    assert.equal(describeError(new Error('plain')), 'plain')
    assert.equal(describeError(new TypeError('not a function')), 'not a function')
  })

  it('anything else thrown as its text', () => {
    assert.equal(describeError('just text'), 'just text')
    assert.equal(describeError(42), '42')
    assert.equal(describeError(undefined), 'undefined')
    assert.equal(describeError(null), 'null')
  })

  it('the keys file and the config files say why they cannot be read in the same words', () => {
    const failing = (): never => {
      throw system('EISDIR', "EISDIR: illegal operation on a directory, read '/etc/haraka/config/x'")
    }
    const why = 'illegal operation on a directory (EISDIR)'
    assert.deepEqual(configLinesReader(failing)('backscatter.ini'), { error: why })
    assert.deepEqual(keysFileReader([], failing)(), undefined)
    const dir = fs.mkdtempSync(`${os.tmpdir()}/core-error-`)
    try {
      fs.writeFileSync(`${dir}/backscatter.keys`, '1=x\n')
      assert.deepEqual(keysFileReader([dir], failing)(), { error: why })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
