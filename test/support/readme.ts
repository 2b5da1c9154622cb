// The steps of a README section, to run them as printed: its code blocks in
// order (`sh` commands, `ini` files, `console` sessions of `$ command` and the
// output it prints), and a comparison of printed and real output.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import { REPO } from './repo'

/** The README section a reader tries the plugin with, and the zone file it writes. */
export const TRY_SECTION = '## Try it on your own machine'
export const TRY_ZONE = '/tmp/try.zone'

export interface Block {
  /** The block's language: sh, ini, console… */
  readonly lang: string
  readonly text: string
}

/**
 * The fenced code blocks of the section under `heading` (`## …`, `### …`),
 * up to the next heading of its level or above, in order.
 */
export function sectionBlocks(heading: string, document = 'README.md'): Block[] {
  const text = fs.readFileSync(path.join(REPO, document), 'utf8')
  const start = text.indexOf(`\n${heading}\n`)
  assert.ok(start >= 0, `${document} has a section ${heading}`)
  const level = /^#+/.exec(heading)?.[0].length ?? 2
  const next = new RegExp(`\n#{2,${level}} `, 'g')
  next.lastIndex = start + 1
  const end = next.exec(text)?.index ?? -1
  const section = text.slice(start, end < 0 ? undefined : end)
  const blocks: Block[] = []
  for (const m of section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) {
    blocks.push({ lang: m[1] ?? '', text: m[2] ?? '' })
  }
  return blocks
}

export interface ConsoleStep {
  /** The command after `$ `, as a shell reads it. */
  readonly command: string
  /** The lines printed after it; a line `…` stands for lines left out. */
  readonly output: readonly string[]
}

/** The `$ command` lines of a console block and what each printed. */
export function consoleSteps(block: Block): ConsoleStep[] {
  const steps: { command: string; output: string[] }[] = []
  for (const line of block.text.replace(/\n$/, '').split('\n')) {
    if (line.startsWith('$ ')) steps.push({ command: line.slice(2), output: [] })
    else steps.at(-1)?.output.push(line)
  }
  return steps
}

// `config: PATH …`: the path is the reader's own.
const CONFIG_LINE = /^config: +\S+/

/**
 * Does the real output say what the README prints? Line for line, but for
 * the path on a `config:` line; where the README shows `…`, lines may be left
 * out (then each printed line must come, in order).
 */
export function assertPrinted(actual: string, printed: readonly string[], what: string): void {
  const real = actual.replace(/\n$/, '').split('\n')
  const same = (a: string, b: string): boolean =>
    CONFIG_LINE.test(a) && CONFIG_LINE.test(b)
      ? a.replace(CONFIG_LINE, 'config:') === b.replace(CONFIG_LINE, 'config:')
      : a === b
  if (!printed.includes('…')) {
    assert.equal(real.length, printed.length, `${what}: as many lines as printed\n${actual}`)
    real.forEach((line, i) => assert.ok(same(line, printed[i] ?? ''), `${what}: line ${i + 1}\n${actual}`))
    return
  }
  let at = 0
  for (const line of printed) {
    if (line === '…') continue
    const found = real.findIndex((l, i) => i >= at && same(l, line))
    assert.ok(found >= 0, `${what}: the printed line\n  ${line}\ncomes in the output:\n${actual}`)
    at = found + 1
  }
}

/** Run a shell command as the README shows it, in `cwd`; `npx haraka-backscatter` is this package's bin. */
export function runShell(
  command: string,
  cwd: string,
): { status: number | null; stdout: string; stderr: string } {
  const bin = path.join(REPO, 'bin', 'haraka-backscatter')
  // npx would find the installed package's bin; here it is the repository's.
  const npx = `npx() { if [ "$1" = haraka-backscatter ]; then shift; exec "${process.execPath}" "${bin}" "$@"; fi; exit 127; }`
  const r = spawnSync('sh', ['-c', `${npx}\n${command}`], { cwd, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}
