// What `npm pack` ships: what a deployment needs, and nothing else.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

import semver from 'semver'

import { REPO } from './support/harness'

interface PackEntry {
  path: string
}

describe('npm package', () => {
  const pack = JSON.parse(
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' }),
  ) as { name: string; files: PackEntry[] }[]
  const files = pack[0]!.files.map((f) => f.path).sort()

  it('is published as haraka-plugin-backscatter (the name backscatterer is taken by Haraka)', () => {
    assert.equal(pack[0]!.name, 'haraka-plugin-backscatter')
  })

  it('holds the entry, the compiled code with types, the default config, the docs and contrib/', () => {
    for (const f of [
      'index.js',
      'dist/plugin.js',
      'dist/plugin.d.ts',
      'config/backscatter.ini',
      'README.md',
      'docs/zone-mirror.md',
      'contrib/backscatter.cf',
      'contrib/prometheus-alerts.yml',
      'contrib/grafana-dashboard.json',
      'CHANGELOG.md',
      'LICENSE',
      'package.json',
    ]) {
      assert.ok(files.includes(f), `${f} missing from ${files.join(', ')}`)
    }
  })

  it('ships every compiled module the entry needs', () => {
    const sources = fs
      .readdirSync(path.join(REPO, 'lib'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    for (const src of sources) assert.ok(files.includes(`dist/${src.replace(/\.ts$/, '.js')}`), src)
  })

  it('holds nothing else: no sources, tests, benchmarks or tooling', () => {
    const allowed =
      /^(index\.js|package\.json|README\.md|CHANGELOG\.md|LICENSE|config\/backscatter\.ini|docs\/[\w-]+\.md|contrib\/[\w-]+\.(cf|yml|json)|dist\/([\w-]+\/)*[\w-]+\.(js|d\.ts)|bin\/haraka-backscatter)$/
    assert.deepEqual(
      files.filter((f) => !allowed.test(f)),
      [],
    )
  })

  it('builds on install from git and before packing', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>
    }
    assert.match(pkg.scripts.prepare ?? '', /npm run build/)
  })

  it('the entry exposes the hooks Haraka registers', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const entry = require(path.join(REPO, 'index.js')) as Record<string, unknown>
    const enumerable = Object.keys(entry)
    for (const hook of [
      'register',
      'hook_init_master',
      'hook_init_child',
      'hook_mail',
      'hook_rcpt',
      'hook_data_post',
      'shutdown',
    ]) {
      assert.ok(enumerable.includes(hook), `${hook} is not an enumerable export`)
      assert.equal(typeof entry[hook], 'function')
    }
  })
})

describe('supported Node.js versions', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
    engines: { node: string }
    dependencies: Record<string, string>
  }
  // Declares Node >= 22, yet Haraka 3.3 itself depends on it and the whole suite runs on Node 20.
  const TESTED_ON_20 = new Set(['@haraka/email-address'])

  it('engines.node is a range every runtime dependency supports', () => {
    const ours = pkg.engines.node
    for (const dep of Object.keys(pkg.dependencies)) {
      const theirs = (
        JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', dep, 'package.json'), 'utf8')) as {
          engines?: { node?: string }
        }
      ).engines?.node
      if (!theirs) continue
      const supported = TESTED_ON_20.has(dep) ? semver.intersects(ours, theirs) : semver.subset(ours, theirs)
      assert.ok(supported, `engines.node "${ours}" allows versions ${dep} does not support ("${theirs}")`)
    }
  })

  it('the Node.js running these tests is in the range', () => {
    assert.ok(semver.satisfies(process.versions.node, pkg.engines.node), process.versions.node)
  })
})

describe('runtime dependencies in a deployment', () => {
  it('none is named like a Haraka plugin (Haraka would load it for that name)', () => {
    // A deployment's node_modules/NAME is where Haraka looks for the plugin NAME:
    // a dependency called `redis` once replaced the redis plugin and broke karma.
    const tree = JSON.parse(
      execFileSync('npm', ['ls', '--omit=dev', '--all', '--json'], { cwd: REPO, encoding: 'utf8' }),
    ) as { dependencies?: Record<string, unknown> }
    const names = new Set<string>()
    const walk = (node: { dependencies?: Record<string, unknown> }): void => {
      for (const [name, child] of Object.entries(node.dependencies ?? {})) {
        names.add(name)
        walk(child as { dependencies?: Record<string, unknown> })
      }
    }
    walk(tree)
    assert.ok(names.has('lru-cache'), 'the tree was read')

    const haraka = path.join(REPO, 'node_modules', 'Haraka')
    const plugins = new Set<string>(['redis', 'karma', 'watch', 'dns-list', 'spf', 'dkim', 'limit', 'syslog'])
    const collect = (dir: string, prefix: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) collect(path.join(dir, entry.name), `${prefix}${entry.name}/`)
        else if (entry.name.endsWith('.js')) plugins.add(`${prefix}${entry.name.slice(0, -3)}`)
      }
    }
    collect(path.join(haraka, 'plugins'), '')
    const harakaDeps = JSON.parse(fs.readFileSync(path.join(haraka, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>
    }
    for (const dep of Object.keys(harakaDeps.dependencies)) {
      if (dep.startsWith('haraka-plugin-')) plugins.add(dep.slice('haraka-plugin-'.length))
    }
    assert.deepEqual(
      [...names].filter((n) => plugins.has(n) || plugins.has(n.replace(/^haraka-plugin-/, ''))),
      [],
    )
  })
})
