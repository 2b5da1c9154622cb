// The documentation says what the code does: every backscatter.ini example in
// README.md and docs/ loads as printed and means what its comments say, and the
// tables of docs/settings.md say what the settings schema says.
import type { TagKey } from '../lib/core/types'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import { prepareKeys, signAddress, type BatvKey } from '../lib/batv/sign'
import { KEYS_FILE, parseKeysFile } from '../lib/batv/keys-file'
import { parseSettings, type ReadConfigLines, type ReadKeysFile } from '../lib/settings/parse'
import {
  SECTIONS,
  ZONE_PRESETS,
  ZONE_SECTION,
  ZONE_SECTION_NAME,
  type SectionSpec,
} from '../lib/settings/schema'
import type { Setting } from '../lib/settings/kinds'
import { REPO } from './support/harness'
import { loadDeploymentIni, loadPackageIni } from './support/load-ini'
import type { BatvSettings, Settings, ZoneSettings } from '../lib/core/types'

const DOCUMENTS = [
  'README.md',
  ...fs
    .readdirSync(path.join(REPO, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
]

interface IniBlock {
  readonly where: string
  readonly text: string
  /** The file the block is an example of, from a comment line naming it. */
  readonly names: string | undefined
}

// A comment line whose first word is a file name: `; config/backscatter.ini …`.
const NAMES_FILE = /^[;#]\s*(\S+\.(?:ini|service|timer|conf))(?:\s|$)/m

function iniBlocks(document: string): IniBlock[] {
  const lines = fs.readFileSync(path.join(REPO, document), 'utf8').split('\n')
  const blocks: IniBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```ini') continue
    const end = lines.indexOf('```', i + 1)
    const text = lines.slice(i + 1, end).join('\n') + '\n'
    blocks.push({ where: `${document}:${i + 1}`, text, names: NAMES_FILE.exec(text)?.[1] })
    i = end
  }
  return blocks
}

const defaults = parseSettings({}).settings
const backscatterer = defaults.zones[0]!

function zone(name: string, values: Partial<ZoneSettings>): ZoneSettings {
  return {
    name,
    score: 5,
    answerScores: new Map(),
    ipv4: true,
    ipv6: false,
    lookupUrl: '',
    file: '',
    requireTestPoint: false,
    ...values,
  }
}

/** The keys a [batv.keys] example holds, prepared as the plugin prepares them. */
function keysOf(entries: [number, string][]): ReadonlyMap<number, BatvKey> {
  const { keys, problems } = prepareKeys(new Map(entries))
  assert.deepEqual(problems, [])
  return keys
}

/** [batv] of an example: the defaults with `values`; the sign key is key 1 of `keys`. */
function batv(values: Partial<BatvSettings>): BatvSettings {
  const keys = values.keys ?? new Map()
  return { ...defaults.batv, signKey: keys.get(1), ...values }
}

const SECRET = '6f1c3a9e0b7d4e52a8c1f09d3b6e7a214c5d8e9f0a1b2c3d'
const KEY = keysOf([[1, SECRET]])
const dayStart = (date: string): number => Date.parse(`${date}T00:00:00Z`)

/** docs/signed-bounces.md's config/backscatter.keys, which its examples use. */
const WITH_KEYS = batv({
  domains: new Set(['example.com']),
  keys: KEY,
  missingFrom: '2026-12-08',
  missingFromMs: dayStart('2026-12-08'),
})

/**
 * What each example means, found by a line it holds; every example needs one.
 * `secrets`: the secret text each key of the example must sign with (BatvKey
 * instances compare equal whatever their secret, so the test signs with them).
 */
const EXAMPLES: { document: string; holds: string; means: Settings; secrets?: [number, string][] }[] = [
  {
    document: 'README.md',
    holds: 'action = defer          ; try it out first: 450 instead of 550',
    means: { ...defaults, action: 'defer', dns: { ...defaults.dns, servers: ['127.0.0.1'] } },
  },
  {
    document: 'docs/settings.md',
    holds: 'zones = ips.backscatterer.org, bounces.example.net',
    means: {
      ...defaults,
      threshold: 6,
      zones: [
        backscatterer,
        zone('bounces.example.net', { score: 2, answerScores: new Map([['127.0.0.3', 4]]) }),
      ],
    },
  },
  {
    document: 'README.md',
    holds: '; config/backscatter.ini — for a test only: a list of your own instead of ips.backscatterer.org',
    means: { ...defaults, zones: [zone('try.example', { file: '/tmp/try.zone' })] },
  },
  {
    document: 'docs/resolver.md',
    holds: 'servers = 127.0.0.1',
    means: { ...defaults, dns: { ...defaults.dns, servers: ['127.0.0.1'] } },
  },
  {
    document: 'docs/metrics.md',
    holds: 'listen = 127.0.0.1:9100',
    means: { ...defaults, metrics: { listen: { host: '127.0.0.1', port: 9100 } } },
  },
  {
    document: 'docs/zone-mirror.md',
    holds: 'file = /var/lib/rbldnsd/ips.backscatterer.org',
    means: { ...defaults, zones: [{ ...backscatterer, file: '/var/lib/rbldnsd/ips.backscatterer.org' }] },
  },
  {
    document: 'docs/signed-bounces.md',
    holds: 'domains = example.com, example.org',
    means: {
      ...defaults,
      batv: batv({
        domains: new Set(['example.com', 'example.org']),
        keys: KEY,
        missingFrom: '2026-12-08',
        missingFromMs: dayStart('2026-12-08'),
      }),
    },
    secrets: [[1, SECRET]],
  },
  {
    document: 'docs/signed-bounces.md',
    holds: 'unsigned_recipients = announce@lists.example.org, @groups.example.net',
    means: {
      ...defaults,
      batv: {
        ...WITH_KEYS,
        unsignedRecipients: new Set(['announce@lists.example.org', '@groups.example.net']),
      },
    },
  },
]

/** Reads a file name as the lines of the example in `document` that names it (`backscatter.ini`: `own`). */
function exampleFiles(document: string, own: string): ReadConfigLines {
  return (name) => {
    if (name === 'backscatter.ini') return own.split('\n')
    const block = iniBlocks(document).find((b) => b.names !== undefined && path.basename(b.names) === name)
    return block ? block.text.split('\n') : { error: `no example of ${name} in ${document}` }
  }
}

/** Code blocks (of no language) that show config/backscatter.keys: their first line names it. */
function keysBlocks(document: string): IniBlock[] {
  const lines = fs.readFileSync(path.join(REPO, document), 'utf8').split('\n')
  const blocks: IniBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```' || !/^# config\/backscatter\.keys(\s|$)/.test(lines[i + 1] ?? '')) continue
    const end = lines.indexOf('```', i + 1)
    blocks.push({
      where: `${document}:${i + 1}`,
      text: lines.slice(i + 1, end).join('\n') + '\n',
      names: KEYS_FILE,
    })
    i = end
  }
  return blocks
}

/** config/backscatter.keys as the document's example of it shows it (mode 600); none without one. */
function exampleKeysFile(document: string): ReadKeysFile {
  return () => {
    const block = keysBlocks(document)[0]
    return block && { lines: block.text.split('\n'), mode: 0o100600 }
  }
}

/** Does `key` sign as a key made from `secret`? */
function signsWith(key: TagKey | undefined, id: number, secret: string): boolean {
  const reference = keysOf([[id, secret]]).get(id)!
  const now = dayStart('2026-12-01')
  const a = key && signAddress('bob@example.com', key, 7, now)
  const b = signAddress('bob@example.com', reference, 7, now)
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b)
}

describe('ini examples in README.md and docs/', () => {
  const blocks = DOCUMENTS.flatMap(iniBlocks)
  const examples = blocks.filter((b) => b.names !== undefined && path.basename(b.names) === 'backscatter.ini')

  it('finds the examples', () => assert.ok(examples.length >= EXAMPLES.length, `${examples.length} found`))

  for (const block of blocks) {
    if (block.names === undefined) {
      it(`${block.where}: names the file it shows`, () => {
        assert.fail(
          `an ini block without a comment line naming its file (; config/backscatter.ini):\n${block.text}`,
        )
      })
    }
  }

  for (const example of examples) {
    it(`${example.where} loads as printed, with no problem, and means what it says`, () => {
      const document = example.where.replace(/:\d+$/, '')
      const meanings = EXAMPLES.filter((e) => e.document === document && example.text.includes(e.holds))
      assert.equal(meanings.length, 1, `no single expectation for this example:\n${example.text}`)
      const meaning = meanings[0]!
      const readLines = exampleFiles(document, example.text)
      const readKeysFile = exampleKeysFile(document)
      const parsed = parseSettings(loadDeploymentIni(example.text), { readLines, readKeysFile })
      const { settings, problems, errors, keyProblems } = parsed
      assert.deepEqual([...errors, ...problems, ...keyProblems.map((p) => p.text)], [])
      assert.deepEqual(settings, meaning.means)
      for (const [id, secret] of meaning.secrets ?? []) {
        assert.ok(
          signsWith(settings.batv.keys.get(id), id, secret),
          `key ${id} signs with its secret as printed`,
        )
      }
    })
  }

  it('examples of config/backscatter.keys read with no problem, and hold a key', () => {
    const keyFiles = DOCUMENTS.flatMap(keysBlocks)
    assert.ok(keyFiles.length >= 2, `${keyFiles.length} found`)
    for (const block of keyFiles) {
      const { secrets, problems } = parseKeysFile(block.text.split('\n'))
      assert.deepEqual(problems, [], block.where)
      assert.ok(secrets.size > 0, block.where)
    }
  })

  it('every expectation has its example', () => {
    for (const e of EXAMPLES) {
      const found = examples.filter((b) => b.where.startsWith(`${e.document}:`) && b.text.includes(e.holds))
      assert.equal(found.length, 1, `${e.document}: ${e.holds}`)
    }
  })

  it('the shipped config/backscatter.ini alone loads with no problem', () => {
    const { problems, errors } = parseSettings(loadPackageIni())
    assert.deepEqual([...errors, ...problems], [])
  })
})

/** docs/settings.md, split at its `## ` headings, by the section each names. */
function documentedSettings(): Map<string, string> {
  const doc = fs.readFileSync(path.join(REPO, 'docs', 'settings.md'), 'utf8')
  const parts = new Map<string, string>()
  for (const part of doc.split('\n## ').slice(1)) {
    const section = /^`\[([^\]]+)\]`/.exec(part)?.[1]
    if (section !== undefined) parts.set(section, part)
  }
  return parts
}

/** The rows of the first table in `text`, as trimmed cells. */
function tableRows(text: string): string[][] {
  const lines = text.split('\n')
  const first = lines.findIndex((l) => l.startsWith('|'))
  const rows: string[][] = []
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break
    rows.push(
      line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    )
  }
  return rows
}

/** A default as the tables show it. */
function shown(setting: Setting<unknown>, value: unknown): string {
  const text = setting.kind.format(value)
  return text === '' ? '(empty)' : `\`${text}\``
}

describe('the tables of docs/settings.md follow the table in lib/settings/schema.ts', () => {
  const documented = documentedSettings()
  const sections: [string, { keys: Record<string, Setting<unknown>> }][] = [
    ...Object.entries(SECTIONS),
    [ZONE_SECTION_NAME, ZONE_SECTION],
  ]

  it('has one table per section, in order', () => {
    assert.deepEqual(
      [...documented.keys()],
      sections.map(([name]) => name),
    )
  })

  for (const [name, spec] of sections as [string, SectionSpec][]) {
    it(`[${name}]: every key with its default`, () => {
      const part = documented.get(name) ?? ''
      const expected = Object.entries(spec.keys).map(([key, setting]) => {
        let cell = shown(setting, setting.default)
        // A long default is shown under the table: "Default `message`:" and the value.
        if (part.includes(`Default \`${key}\`:\n\`${setting.kind.format(setting.default)}\``))
          cell = 'see below'
        if (name === ZONE_SECTION_NAME) {
          for (const [zoneName, preset] of Object.entries(ZONE_PRESETS)) {
            const value = (preset as Record<string, unknown>)[key]
            if (value !== undefined) cell += `; ${zoneName}: ${shown(setting, value)}`
          }
        }
        return [`\`${key}\``, cell]
      })
      // Keys recognised by their form have one row, after `score` for a zone, else last.
      const pattern = spec.patternKeys
      if (pattern)
        expected.splice(name === ZONE_SECTION_NAME ? 1 : expected.length, 0, [`\`${pattern.label}\``, '—'])
      assert.deepEqual(
        tableRows(part).map((row) => row.slice(0, 2)),
        expected,
      )
    })
  }
})
