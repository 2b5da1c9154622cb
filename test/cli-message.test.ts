// `message FILE...`: saved mail read as a machine's reply, over files of the
// reply corpus (test/fixtures/replies). Run in process.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, it } from 'node:test'

import { runMessage } from '../lib/cli/message'
import { run } from './cli/harness'

const FIXTURES = path.join(__dirname, 'fixtures', 'replies')
const fixture = (name: string): string => path.join(FIXTURES, name)

const RECEIPT = fixture('mimekit/disposition-notification.txt')
const AUTO_REPLY = fixture('sisimai/bsd/rfc3834-03.eml')
const NOT_A_REPLY = fixture('sisimai/not/is-not-bounce-01.eml')

describe('message FILE...', () => {
  it('prints each file, its kind and its references, one line each', async () => {
    const r = await run(['message', RECEIPT, AUTO_REPLY, NOT_A_REPLY])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.equal(
      r.stdout,
      `${RECEIPT}: mdn <199509192301.23456@example.org>\n` +
        `${AUTO_REPLY}: auto-reply <25203A4E-F90F-4A14-BF51-3E7B9D39BE8E@libsisimai.org>\n` +
        `${NOT_A_REPLY}: none\n`,
    )
  })

  it('--json: one object per file per line, {file, kind, references}', async () => {
    const bounce = fixture('sisimai/bsd/rfc3464-01.eml')
    const r = await run(['message', '--json', bounce, NOT_A_REPLY])
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown)
    assert.deepEqual(lines, [
      { file: bounce, kind: 'dsn', references: ['<E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org>'] },
      { file: NOT_A_REPLY, kind: 'none', references: [] },
    ])
  })

  it("reads a folder of Exim's real bounces: each a dsn, with the returned original's ID where it carries one", async () => {
    const dir = path.join(FIXTURES, 'sisimai', 'bsd')
    const files = fs
      .readdirSync(dir)
      .filter((f) => f.startsWith('lhost-exim-'))
      .map((f) => path.join(dir, f))
    const r = await run(['message', '--json', ...files])
    assert.equal(r.code, 0, r.stderr)
    const out = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; kind: string; references: string[] })
    assert.deepEqual(
      out.map((o) => o.file),
      files,
    )
    assert.ok(
      out.every((o) => o.kind === 'dsn'),
      JSON.stringify(out.filter((o) => o.kind !== 'dsn')),
    )
    const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as Record<
      string,
      { original: string[] }
    >
    for (const o of out) {
      const truth = manifest[path.relative(FIXTURES, o.file)]?.original ?? []
      assert.equal(o.references.length > 0, truth.length > 0, o.file)
      for (const id of o.references) assert.ok(truth.includes(id), `${o.file}: ${id}`)
    }
  })

  it('a file that cannot be read: named on stderr, the others still read, exit 3', async () => {
    const missing = path.join(os.tmpdir(), 'no-such-message.eml')
    const r = await run(['message', missing, RECEIPT])
    assert.equal(r.code, 3)
    assert.equal(r.stderr, `haraka-backscatter message: ${missing}: no such file or directory (ENOENT)\n`)
    assert.match(r.stdout, /: mdn </)
  })

  it('reads only the first 256 KiB of a large file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bs-message-'))
    try {
      const file = path.join(dir, 'big.eml')
      const receipt = fs.readFileSync(RECEIPT, 'utf8')
      const head = receipt.slice(
        0,
        receipt.indexOf('--RAA14128.773615765/example.com\ncontent-type: message/disposition'),
      )
      fs.writeFileSync(file, `${head}${'x'.repeat(300 * 1024)}\n${receipt.slice(head.length)}`)
      const r = await run(['message', '--json', file])
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(JSON.parse(r.stdout), { file, kind: 'mdn', references: [] })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('usage: no FILE, or an option it does not take, is exit 3', async () => {
    const none = await run(['message'])
    assert.equal(none.code, 3)
    assert.match(none.stderr, /^haraka-backscatter message: give one or more message FILEs\n/)
    const other = await run(['message', '--max-age', '1', RECEIPT])
    assert.equal(other.code, 3)
    assert.match(other.stderr, /Unknown option '--max-age'/)
  })

  it('--help and help message show its usage', async () => {
    for (const args of [
      ['message', '--help'],
      ['help', 'message'],
    ]) {
      const r = await run(args)
      assert.equal(r.code, 0)
      assert.match(r.stdout, /^Usage: haraka-backscatter message \[--config DIR\] \[--json\] FILE\.\.\./)
    }
    assert.match((await run(['help'])).stdout, /\n {2}message FILE\.\.\. {6}/)
  })
})

describe('the seam for the ledger', () => {
  it("prints the ledger's answer per reference when one is given", async () => {
    let out = ''
    const io = { out: (t: string) => (out += t), err: () => undefined }
    const asked: string[][] = []
    const answers = (refs: readonly string[]) => {
      asked.push([...refs])
      return Promise.resolve(Object.fromEntries(refs.map((id) => [id, 'ours'])))
    }
    assert.equal(await runMessage({ json: true }, [RECEIPT, NOT_A_REPLY], io, answers), 0)
    assert.deepEqual(asked, [['<199509192301.23456@example.org>']])
    assert.deepEqual(JSON.parse(out.split('\n')[0] ?? ''), {
      file: RECEIPT,
      kind: 'mdn',
      references: ['<199509192301.23456@example.org>'],
      ledger: { '<199509192301.23456@example.org>': 'ours' },
    })
  })
})
