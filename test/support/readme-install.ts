// The package's own package.json, as the tests read it.
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
