// Load a config/backscatter.ini the way Haraka does: the package's config/ as
// defaults, the deployment's file overriding them key by key (haraka-config).
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'

import { removeConfigFolder } from './haraka-config'
import { REPO } from './repo'

interface HarakaConfig {
  get(name: string): unknown
  module_config(defaultsPath: string, overridesPath?: string): HarakaConfig
}

const harakaConfig = createRequire(__filename)('haraka-config') as HarakaConfig

/** The raw ini object Haraka hands the plugin when the deployment's file holds `ini`. */
export function loadDeploymentIni(ini: string): unknown {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-ini-'))
  try {
    fs.mkdirSync(path.join(dir, 'config'))
    fs.writeFileSync(path.join(dir, 'config', 'backscatter.ini'), ini)
    return harakaConfig.module_config(REPO, dir).get('backscatter.ini')
  } finally {
    removeConfigFolder(dir)
  }
}

/** The package's config/backscatter.ini alone, as Haraka reads it. */
export function loadPackageIni(): unknown {
  return harakaConfig.module_config(REPO).get('backscatter.ini')
}
