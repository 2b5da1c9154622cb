// describeError: one way to put an error in a few words, for the zone files,
// the keys and config files, the metrics endpoint and the command.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { describe, it } from 'node:test'
import zlib from 'node:zlib'

import { configLinesReader, keysFileReader } from '../lib/batv/keys-file'
import { describeError } from '../lib/core/error'

// A system error as node makes it: code, negative errno, and a message naming the path.
const system = (code: string, message: string): Error =>
  Object.assign(new Error(message), { code, errno: -(os.constants.errno as Record<string, number>)[code]! })

function thrown(f: () => unknown): unknown {
  try {
    f()
  } catch (err) {
    return err
  }
  assert.fail('nothing thrown')
}

describe('describeError', () => {
  it("a file's system error as the operating system's reason and its code, without the path", () => {
    assert.equal(
      describeError(system('EACCES', "EACCES: permission denied, open '/var/lib/rbldnsd/zone'")),
      'permission denied (EACCES)',
    )
    const missing = thrown(() => fs.readFileSync('/nonexistent/backscatter.keys'))
    assert.equal(describeError(missing), 'no such file or directory (ENOENT)')
    const directory = thrown(() => fs.readFileSync(os.tmpdir()))
    assert.equal(describeError(directory), 'illegal operation on a directory (EISDIR)')
  })

  it("a socket's system error the same way, without the address", async () => {
    const first = net.createServer()
    await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve))
    const { port } = first.address() as net.AddressInfo
    const second = net.createServer()
    const err = await new Promise<Error>((resolve) => {
      second.once('error', resolve)
      second.listen(port, '127.0.0.1')
    })
    first.close()
    assert.equal(describeError(err), 'address already in use (EADDRINUSE)')
  })

  it('any other error by its message, without its name', () => {
    const gzip = thrown(() => zlib.gunzipSync(Buffer.from('not gzip')))
    assert.equal(describeError(gzip), 'incorrect header check')
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
    assert.equal(keysFileReader([], failing)(), undefined)
    const dir = fs.mkdtempSync(`${os.tmpdir()}/core-error-`)
    try {
      fs.writeFileSync(`${dir}/backscatter.keys`, '1=x\n')
      assert.deepEqual(keysFileReader([dir], failing)(), { error: why })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
