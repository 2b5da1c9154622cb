// What `npm pack` ships: what a deployment needs, and nothing else.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, it } from 'node:test'

import semver from 'semver'

import { REPO } from './support/repo'
import {
  installSection,
  installSteps,
  packageMetadata,
  repositoryWebUrl,
  type PackageMetadata,
} from './support/readme-install'

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
      'dist/haraka/plugin.js',
      'dist/haraka/plugin.d.ts',
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
      'hook_bounce',
      'shutdown',
    ]) {
      assert.ok(enumerable.includes(hook), `${hook} is not an enumerable export`)
      assert.equal(typeof entry[hook], 'function')
    }
  })
})

describe('package metadata', () => {
  const pkg = packageMetadata()
  const web = repositoryWebUrl(pkg)

  it('names its author, repository, issue tracker and home page, all at the one repository', () => {
    assert.ok(pkg.author, 'author')
    assert.equal(pkg.repository?.type, 'git')
    assert.match(web, /^https:\/\/github\.com\/[\w.-]+\/haraka-plugin-backscatter$/)
    assert.equal(pkg.repository?.url, `git+${web}.git`)
    assert.equal(pkg.bugs?.url, `${web}/issues`)
    assert.equal(pkg.homepage, `${web}#readme`)
  })

  it('npm finds nothing to correct in those fields', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-pkg-fix-'))
    try {
      fs.copyFileSync(path.join(REPO, 'package.json'), path.join(dir, 'package.json'))
      execFileSync('npm', ['pkg', 'fix'], { cwd: dir, stdio: 'pipe' })
      const fixed = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageMetadata
      for (const field of ['author', 'homepage', 'repository', 'bugs'] as const) {
        assert.deepEqual(fixed[field], pkg[field], field)
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('the CHANGELOG links every version heading to the repository', () => {
    const changelog = fs.readFileSync(path.join(REPO, 'CHANGELOG.md'), 'utf8')
    const headings = [...changelog.matchAll(/^## (.*)$/gm)].map((m) => m[1] ?? '')
    const versions = headings.map((h) => /^\[([^\]]+)\](?: - \d{4}-\d{2}-\d{2})?$/.exec(h)?.[1])
    assert.deepEqual(
      headings.filter((_, i) => versions[i] === undefined),
      [],
      'headings written as "[version] - date"',
    )
    const links = new Map([...changelog.matchAll(/^\[([^\]]+)\]: (\S+)$/gm)].map((m) => [m[1], m[2]]))
    const released = versions.filter((v) => v !== 'Unreleased') as string[]
    assert.equal(released[0], pkg.version, 'the newest release is the package version')
    assert.equal(links.get('Unreleased'), `${web}/compare/v${released[0]}...HEAD`)
    released.forEach((v, i) => {
      const older = released[i + 1]
      const expected = older ? `${web}/compare/v${older}...v${v}` : `${web}/releases/tag/v${v}`
      assert.equal(links.get(v), expected, v)
    })
  })
})

describe("the README's Install section", () => {
  const pkg = packageMetadata()
  const web = repositoryWebUrl(pkg)
  const steps = installSteps()

  it('builds the tarball in a clone of the repository', () => {
    assert.deepEqual(steps.build.text.trim().split('\n'), [
      `git clone ${web}.git`,
      `cd ${pkg.name}`,
      'npm ci && npm pack',
    ])
  })

  it('installs the tarball npm pack writes for this version', () => {
    const tgz = `${pkg.name}-${pkg.version}.tgz`
    assert.equal(steps.tarball.text, `npm install /path/to/${tgz}\n`)
    assert.ok(steps.tarball.before.includes(`\`${tgz}\``), 'names the file npm pack writes')
  })

  it('installs from the repository package.json names', () => {
    assert.equal(steps.git.text, `npm install ${pkg.repository?.url}\n`)
  })

  it('keeps the registry command, said not to work until the package is published', () => {
    assert.match(steps.registry.before, /once the package is published/)
    assert.match(installSection(), /not on the npm registry yet/)
  })
})

describe('supported Node.js versions', () => {
  const pkg = packageMetadata()
  const ours = pkg.engines.node

  /** engines.node of every package the plugin needs at run time, direct or indirect. */
  function productionEngines(): { name: string; node: string }[] {
    const dirs = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
      cwd: REPO,
      encoding: 'utf8',
    })
      .split('\n')
      .filter((d) => d !== '' && path.resolve(d) !== REPO)
    const engines: { name: string; node: string }[] = []
    for (const dir of dirs) {
      const dep = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
        name: string
        engines?: { node?: string }
      }
      if (dep.engines?.node) engines.push({ name: dep.name, node: dep.engines.node })
    }
    return engines
  }

  it('engines.node allows no Node.js version a production dependency does not support', () => {
    const engines = productionEngines()
    assert.ok(
      engines.some((e) => e.name === '@haraka/email-address'),
      'the whole production tree was read',
    )
    for (const dep of engines) {
      assert.ok(
        semver.subset(ours, dep.node),
        `engines.node "${ours}" allows versions ${dep.name} does not support ("${dep.node}")`,
      )
    }
  })

  it('engines.node starts where the dependencies do, not later', () => {
    const needed = productionEngines()
      .map((e) => semver.minVersion(e.node))
      .filter((v): v is semver.SemVer => v !== null)
      .reduce((a, b) => (semver.gt(a, b) ? a : b))
    assert.equal(semver.minVersion(ours)?.version, needed.version)
  })

  it('the README states the same requirement', () => {
    const major = semver.minVersion(ours)?.major
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8')
    const line = /^Requirements: .*$/m.exec(readme)?.[0] ?? ''
    assert.match(line, new RegExp(`Node\\.js ${major} or later`), line)
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
