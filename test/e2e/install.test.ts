// The README's Install section, run as printed: a tarball built by `npm ci &&
// npm pack` in a clone, or `npm install git+…`, each into a fresh `haraka -i`
// deployment that then loads the plugin and refuses a listed bounce. The only
// changes to the commands are the addresses: the repository's URL becomes this
// repository (so what is installed is its last commit), and /path/to/ the clone.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'

import { dnsblZone, startDns, type ScriptedDns } from '../support/dns-server'
import {
  connectWithXclient,
  initDeployment,
  LOCAL_DOMAIN,
  makeWorkDir,
  removeWorkDir,
  REPO,
  startHaraka,
  uncaughtErrors,
  type Deployment,
} from '../support/haraka'
import { installSteps, packageMetadata, repositoryWebUrl } from '../support/readme-install'

const run = promisify(execFile)

const ZONE = 'ips.backscatterer.org'
const LISTED = '45.1.2.3'
const PACKAGE = 'haraka-plugin-backscatter'

// Settings of npm, not of the commands: answer from npm's cache where it can, quietly.
const NPM_ENV = {
  ...process.env,
  npm_config_prefer_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
  npm_config_loglevel: 'error',
}

/** Run a README block with sh -e in `cwd`, after replacing each `from` with its `to`. */
async function runBlock(text: string, cwd: string, replace: Record<string, string>): Promise<void> {
  let script = text
  for (const [from, to] of Object.entries(replace)) {
    assert.ok(script.includes(from), `the block names ${from}:\n${text}`)
    script = script.replaceAll(from, to)
  }
  await run('sh', ['-e', '-c', script], { cwd, env: NPM_ENV, maxBuffer: 16 * 1024 * 1024, timeout: 230_000 })
}

describe("the README's Install section, run as printed", () => {
  const pkg = packageMetadata()
  const web = repositoryWebUrl(pkg)
  const steps = installSteps()
  let work: string
  let dns: ScriptedDns

  before(async () => {
    work = makeWorkDir('install')
    dns = await startDns(dnsblZone(ZONE, { [LISTED]: { txt: 'seen sending backscatter' } }))
  })
  after(async () => {
    await dns?.close()
    removeWorkDir(work)
  })

  /** Start Haraka in `dep` with backscatter, and check that it runs and refuses a listed bounce. */
  async function assertLoaded(dep: Deployment): Promise<void> {
    const installed = path.join(dep.dir, 'node_modules', PACKAGE)
    assert.ok(
      fs.existsSync(path.join(installed, 'dist', 'haraka', 'plugin.js')),
      'dist/haraka/plugin.js was built',
    )
    assert.ok(fs.existsSync(path.join(installed, 'config', 'backscatter.ini')))
    assert.ok(!fs.existsSync(path.join(installed, 'lib')), 'sources are not installed')
    const haraka = await startHaraka(dep, {
      plugins: ['xclient', 'backscatter', 'rcpt_to.in_host_list', 'queue/test'],
      backscatterIni: `[dns]\nservers = ${dns.server}\n`,
    })
    try {
      assert.match(haraka.log(), /\[plugins\] loading backscatter/)
      await haraka.waitForLog(
        /\[backscatter\] zone ips\.backscatterer\.org passed its RFC 5782 test-point check/,
      )
      const c = await connectWithXclient(haraka.port, LISTED)
      const r = await c.transaction({ from: '', to: [`someone@${LOCAL_DOMAIN}`] })
      assert.equal(r.rcpt[0]?.code, 550, r.rcpt[0]?.raw)
      await c.quit()
      assert.deepEqual(uncaughtErrors(haraka.log()), [])
    } finally {
      await haraka.stop()
    }
  }

  test(
    'from a tarball: npm ci && npm pack in a clone, npm install of the tarball',
    { timeout: 300_000 },
    async () => {
      // git names the clone after the last part of the address, as it would for the URL.
      const source = path.join(work, 'source', pkg.name)
      fs.mkdirSync(path.dirname(source))
      fs.symlinkSync(REPO, source)
      await runBlock(steps.build.text, work, { [`${web}.git`]: source })
      const clone = path.join(work, pkg.name)
      assert.ok(
        fs.existsSync(path.join(clone, `${pkg.name}-${pkg.version}.tgz`)),
        'npm pack wrote the tarball',
      )

      const dep = await initDeployment(path.join(work, 'from-tarball'))
      await runBlock(steps.tarball.text, dep.dir, { '/path/to/': `${clone}/` })
      const deployment = JSON.parse(fs.readFileSync(path.join(dep.dir, 'package.json'), 'utf8')) as {
        dependencies?: Record<string, string>
      }
      assert.match(deployment.dependencies?.[PACKAGE] ?? '', /^file:.*\.tgz$/)
      await assertLoaded(dep)
    },
  )

  test(
    'from git: npm install git+URL builds the plugin through its prepare script',
    { timeout: 300_000 },
    async () => {
      const dep = await initDeployment(path.join(work, 'from-git'))
      await runBlock(steps.git.text, dep.dir, { [pkg.repository?.url ?? '']: `git+file://${REPO}` })
      await assertLoaded(dep)
    },
  )
})
