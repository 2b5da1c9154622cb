// The MIME parser behind readReply, measured: postal-mime against mailparser
// over the reply corpus (test/fixtures/replies), each in a fresh child
// process. Per parser: the time per message, the peak memory, and how often
// the original's Message-ID is found (the same lib/ledger/reply/ logic over each
// parser's output, judged against manifest.json).
//
//   npm run bench:reply [-- rounds]   (default 5 rounds after one warm-up)
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { simpleParser } from 'mailparser'

import { MAX_REPLY_BYTES, readParsed } from '../lib/ledger/reply/read'
import {
  htmlToText,
  lookupOf,
  parseMessage,
  plainMessage,
  type ParsedMessage,
} from '../lib/ledger/reply/parse'

const DIR = path.join(__dirname, '..', 'test', 'fixtures', 'replies')
type Parser = 'postal-mime' | 'mailparser'

/** mailparser's output as readReply reads it, as lib/ledger/reply/parse.ts does for postal-mime. */
async function parseWithMailparser(raw: Buffer): Promise<ParsedMessage> {
  try {
    const mail = await simpleParser(raw, {
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipTextLinks: true,
      skipImageLinks: true,
    })
    const fields = new Map<string, string[]>()
    for (const { key, line } of mail.headerLines) {
      const value = line
        .slice(line.indexOf(':') + 1)
        .replace(/\r?\n[ \t]+/g, ' ')
        .trim()
      fields.set(key, [...(fields.get(key) ?? []), value])
    }
    const parts = mail.attachments
      .filter((a) => /^(message|text)\//i.test(a.contentType))
      .map((a) => ({ type: a.contentType.toLowerCase(), text: a.content.toString('utf8') }))
    const text = mail.text ?? (typeof mail.html === 'string' ? htmlToText(mail.html) : '')
    return { header: lookupOf(fields), text, parts, rawBody: plainMessage(raw.toString('latin1')).rawBody }
  } catch {
    return plainMessage(raw.toString('latin1'))
  }
}

const PARSE: Record<Parser, (raw: Buffer) => Promise<ParsedMessage>> = {
  'postal-mime': parseMessage,
  mailparser: parseWithMailparser,
}

interface Truth {
  kind: string
  original: string[]
}

interface ChildResult {
  parser: Parser
  messages: number
  usPerMessage: number
  p99Us: number
  peakRssGrowthMB: number
  peakHeapMB: number
  carrying: number
  found: number
}

async function child(parser: Parser, rounds: number): Promise<ChildResult> {
  const manifest = JSON.parse(fs.readFileSync(path.join(DIR, 'manifest.json'), 'utf8')) as Record<
    string,
    Truth
  >
  const files = Object.keys(manifest).map((f) => ({
    file: f,
    raw: fs.readFileSync(path.join(DIR, f)).subarray(0, MAX_REPLY_BYTES),
  }))
  const parse = PARSE[parser]
  let carrying = 0
  let found = 0
  for (const { file, raw } of files) {
    const truth = manifest[file]
    const reading = readParsed(await parse(raw))
    if (truth && truth.kind !== 'none' && truth.original.length) {
      carrying++
      if (reading.references.some((id) => truth.original.includes(id))) found++
    }
  }
  const rssBefore = process.resourceUsage().maxRSS
  let peakHeap = 0
  const times: number[] = []
  for (let round = 0; round < rounds; round++) {
    for (const { raw } of files) {
      const start = performance.now()
      readParsed(await parse(raw))
      times.push((performance.now() - start) * 1000)
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)
    }
  }
  times.sort((a, b) => a - b)
  const mean = times.reduce((a, b) => a + b, 0) / times.length
  return {
    parser,
    messages: files.length,
    usPerMessage: Math.round(mean),
    p99Us: Math.round(times[Math.floor(times.length * 0.99)] ?? 0),
    peakRssGrowthMB: +((process.resourceUsage().maxRSS - rssBefore) / 1024).toFixed(1),
    peakHeapMB: +(peakHeap / 1024 / 1024).toFixed(1),
    carrying,
    found,
  }
}

function main(): void {
  const rounds = Number(process.argv[2] ?? 5)
  const rows: ChildResult[] = []
  for (const parser of Object.keys(PARSE) as Parser[]) {
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', __filename, '--child', parser, String(rounds)],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    )
    rows.push(JSON.parse(out.trim().split('\n').pop() ?? '{}') as ChildResult)
  }
  console.log(
    `reply corpus: ${rows[0]?.messages} messages, ${rounds} rounds after one warm-up; node ${process.version}\n`,
  )
  console.log('| parser | µs per message (mean) | p99 µs | peak RSS growth | peak heap | original found |')
  console.log('| --- | --: | --: | --: | --: | --: |')
  for (const r of rows) {
    const rate = ((100 * r.found) / r.carrying).toFixed(1)
    console.log(
      `| ${r.parser} | ${r.usPerMessage} | ${r.p99Us} | ${r.peakRssGrowthMB} MB | ${r.peakHeapMB} MB | ${r.found}/${r.carrying} (${rate} %) |`,
    )
  }
}

if (process.argv[2] === '--child') {
  void child(process.argv[3] as Parser, Number(process.argv[4] ?? 5)).then((r) =>
    console.log(JSON.stringify(r)),
  )
} else {
  main()
}
