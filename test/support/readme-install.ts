// The README's Install section as a user reads it: its shell blocks, in order,
// and the package metadata they name, so tests run exactly what it prints.
import fs from 'node:fs'
import path from 'node:path'

import { REPO } from './haraka'

export interface PackageMetadata {
  name: string
  version: string
  author?: string
  homepage?: string
  repository?: { type?: string; url?: string }
  bugs?: { url?: string }
  engines: { node: string }
  dependencies: Record<string, string>
}

export function packageMetadata(): PackageMetadata {
  return JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as PackageMetadata
}

/** `https://github.com/OWNER/NAME`, from package.json's `repository.url` (`git+https://….git`). */
export function repositoryWebUrl(pkg: PackageMetadata): string {
  return (pkg.repository?.url ?? '').replace(/^git\+/, '').replace(/\.git$/, '')
}

/** The text of the README from `## Install` up to the next `## ` heading. */
export function installSection(): string {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8')
  const start = readme.indexOf('\n## Install\n')
  if (start < 0) throw new Error('README.md has no "## Install" section')
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
}

export interface InstallBlock {
  /** The block's commands, as printed. */
  readonly text: string
  /** The prose between the previous block (or the heading) and this one. */
  readonly before: string
}

/** Every ```sh block of the Install section, in order. */
export function installBlocks(): InstallBlock[] {
  const section = installSection()
  const blocks: InstallBlock[] = []
  const re = /```sh\n([\s\S]*?)```/g
  let last = 0
  for (const m of section.matchAll(re)) {
    blocks.push({ text: m[1] ?? '', before: section.slice(last, m.index) })
    last = (m.index ?? 0) + m[0].length
  }
  return blocks
}

/** The one block whose commands match `re`. */
export function installBlock(re: RegExp): InstallBlock {
  const found = installBlocks().filter((b) => re.test(b.text))
  if (found.length !== 1) throw new Error(`${found.length} Install blocks match ${re}`)
  return found[0] as InstallBlock
}

/** The blocks of the three ways to install: build a tarball, install it, install from git; and the registry's. */
export function installSteps(): {
  build: InstallBlock
  tarball: InstallBlock
  git: InstallBlock
  registry: InstallBlock
} {
  return {
    build: installBlock(/^git clone /m),
    tarball: installBlock(/^npm install \S+\.tgz$/m),
    git: installBlock(/^npm install git\+/m),
    registry: installBlock(/^npm install haraka-plugin-backscatter$/m),
  }
}
