// Reading a /metrics exposition in tests: promtool (Debian's prometheus package)
// judges that it is valid Prometheus text format; readExposition() takes the
// samples out, and throws on any line it cannot read.
import { execFileSync, spawnSync } from 'node:child_process'

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** promtool's path, or undefined where Debian's prometheus package is not installed. */
export const PROMTOOL: string | undefined = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
})()

/** `promtool check metrics`: exit code and whatever it printed (parse errors and lint problems). */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  if (!PROMTOOL) throw new Error('promtool is not installed (Debian package prometheus)')
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' })
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() }
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y

function readLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {}
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < text.length) {
    const start = LABEL.lastIndex
    const m = LABEL.exec(text)
    if (!m || LABEL.lastIndex === start) throw new Error(`cannot read the labels of: ${line}`)
    labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
  }
  return labels
}

/** Every sample of an exposition; comments and blank lines skipped. */
export function readExposition(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3])
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`not a value: ${line}`)
    samples.push({ name: m[1] as string, labels: readLabels(m[2] ?? '', line), value })
  }
  return samples
}

/** The value of the one sample named `name` whose labels include `labels`; undefined when none. */
export function valueOf(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}

/** haraka_backscatter_recipients_total by decision (undefined where a decision has no sample). */
export function recipientCounts(samples: readonly Sample[]): Record<string, number | undefined> {
  return Object.fromEntries(
    ['accepted', 'refused', 'deferred', 'exempt'].map((decision) => [
      decision,
      valueOf(samples, 'haraka_backscatter_recipients_total', { decision }),
    ]),
  )
}
