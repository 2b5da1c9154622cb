// The README stays a front page (short, its prose wrapped), and every relative
// link in the README, BENCHMARKS.md and docs/ leads to a file that exists and,
// for a `#fragment`, to a heading of that file.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { REPO } from './support/harness'

const README_MAX_LINES = 350
const PROSE_MAX_COLUMNS = 100

const DOCUMENTS = [
  'README.md',
  'BENCHMARKS.md',
  ...fs
    .readdirSync(path.join(REPO, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
]

/** The lines of a Markdown file outside fenced code blocks, with their line numbers. */
function textLines(file: string): { line: string; number: number }[] {
  const out: { line: string; number: number }[] = []
  let fenced = false
  fs.readFileSync(path.join(REPO, file), 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (/^\s*(```|~~~)/.test(line)) fenced = !fenced
      else if (!fenced) out.push({ line, number: i + 1 })
    })
  return out
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens. */
function headingAnchor(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .trim()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-')
}

/** Every anchor of a file's headings; a repeated heading gets -1, -2 … as on GitHub. */
function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  for (const { line } of textLines(file)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1]
    if (heading === undefined) continue
    const base = headingAnchor(heading)
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    anchors.add(n === 0 ? base : `${base}-${n}`)
  }
  return anchors
}

/** The relative links of a file (`[text](target)`), code spans and blocks left out. */
function relativeLinks(file: string): { target: string; number: number }[] {
  const links: { target: string; number: number }[] = []
  for (const { line, number } of textLines(file)) {
    const text = line.replace(/`[^`]*`/g, 'code')
    for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = m[1] as string
      if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) links.push({ target, number })
    }
  }
  return links
}

describe('README.md is a front page', () => {
  const lines = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8').replace(/\n$/, '').split('\n')

  it(`has at most ${README_MAX_LINES} lines; long tables and sections live in docs/`, () => {
    assert.ok(lines.length <= README_MAX_LINES, `${lines.length} lines`)
  })

  it(`wraps its prose at ${PROSE_MAX_COLUMNS} columns (code blocks and tables aside)`, () => {
    const long = textLines('README.md')
      .filter(({ line }) => !line.startsWith('|') && [...line].length > PROSE_MAX_COLUMNS)
      .map(({ line, number }) => `README.md:${number}: ${line}`)
    assert.deepEqual(long, [])
  })
})

describe('relative links in README.md, BENCHMARKS.md and docs/', () => {
  it('finds links to check', () => {
    assert.ok(DOCUMENTS.flatMap(relativeLinks).length > 30)
  })

  for (const document of DOCUMENTS) {
    it(`${document}: every relative link leads to a file and heading that exist`, () => {
      const broken: string[] = []
      for (const { target, number } of relativeLinks(document)) {
        const [file = '', fragment] = target.split('#')
        const resolved = file === '' ? document : path.join(path.dirname(document), file)
        const where = `${document}:${number}: ${target}`
        if (!fs.existsSync(path.join(REPO, resolved))) broken.push(`${where}: no ${resolved}`)
        else if (fragment !== undefined && resolved.endsWith('.md') && !anchorsOf(resolved).has(fragment))
          broken.push(`${where}: no heading #${fragment} in ${resolved}`)
      }
      assert.deepEqual(broken, [])
    })
  }

  it('computes anchors as GitHub does', () => {
    assert.equal(headingAnchor('Known pitfalls, and what to do'), 'known-pitfalls-and-what-to-do')
    assert.equal(headingAnchor('`[<zone>]`, e.g. `[ips.backscatterer.org]`'), 'zone-eg-ipsbackscattererorg')
    assert.equal(headingAnchor('`[recipient_domains]`'), 'recipient_domains')
    assert.equal(headingAnchor('Migrating from `backscatterer`'), 'migrating-from-backscatterer')
  })
})
