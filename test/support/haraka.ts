// A real Haraka for end-to-end tests and the demo, set up with the README's
// install steps: `npm pack` the plugin, `haraka -i` a fresh deployment, install
// the tarball there, list `backscatter` in config/plugins, start `haraka -c DIR`.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

import { REPO } from './repo'
import { SmtpClient } from './smtp'

const run = promisify(execFile)

export { REPO }
/** What `node_modules/.bin/haraka` runs. */
export const HARAKA_BIN = path.join(REPO, 'node_modules', 'Haraka', 'bin', 'haraka')
export const HARAKA_VERSION = (
  JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', 'Haraka', 'package.json'), 'utf8')) as {
    version: string
  }
).version

/** The domain the deployments accept mail for (config/host_list). */
export const LOCAL_DOMAIN = 'example.net'

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** `npm pack` the repository (its `prepare` script builds dist/); returns the tarball's path. */
export async function packPlugin(destDir: string): Promise<string> {
  fs.mkdirSync(destDir, { recursive: true })
  await run(NPM, ['pack', '--pack-destination', destDir, '--loglevel=error'], {
    cwd: REPO,
    maxBuffer: 16 * 1024 * 1024,
  })
  const tgz = fs.readdirSync(destDir).filter((f) => /^haraka-plugin-backscatter-.*\.tgz$/.test(f))
  if (tgz.length !== 1) throw new Error(`npm pack left ${tgz.length} tarballs in ${destDir}`)
  return path.join(destDir, tgz[0] as string)
}

/** A scratch folder for one suite's deployment and tarball. */
export function makeWorkDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `backscatter-${label}-`))
}

/** Remove a scratch folder, or keep it (and say where) when E2E_KEEP is set. */
export function removeWorkDir(dir: string | undefined): void {
  if (!dir) return
  if (process.env.E2E_KEEP) console.log(`kept ${dir} (E2E_KEEP)`)
  else fs.rmSync(dir, { recursive: true, force: true })
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freeTcpPort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = srv.address() as net.AddressInfo
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

export interface Deployment {
  /** The deployment folder (`haraka -c DIR`). */
  readonly dir: string
  /** Where Haraka's queue/test plugin writes accepted messages (its TMPDIR). */
  readonly mailDir: string
  /** Write config/`name`; a `.keys` file (secrets) readable by its owner only, as an operator would. */
  writeConfig(name: string, text: string): void
  readConfig(name: string): string
  /** Remove the whole folder. */
  remove(): void
}

/** The version of a package in this repository's node_modules (to install the same one elsewhere). */
export function installedVersion(pkg: string): string {
  const file = path.join(REPO, 'node_modules', pkg, 'package.json')
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version
}

/**
 * `haraka -i DIR`, then `npm install <tarball>` in it, as the README says (with
 * `packages`, more npm packages in the same install). The npm cache makes the
 * install quick; the registry is only asked when the cache lacks a dependency.
 */
export async function createDeployment(
  tarball: string,
  parent?: string,
  packages: readonly string[] = [],
): Promise<Deployment> {
  const dep = await initDeployment(parent)
  await run(
    NPM,
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, ...packages],
    {
      cwd: dep.dir,
      maxBuffer: 16 * 1024 * 1024,
    },
  )
  const installed = path.join(dep.dir, 'node_modules', 'haraka-plugin-backscatter', 'package.json')
  if (!fs.existsSync(installed)) throw new Error(`npm install did not create ${installed}`)
  return dep
}

/** `haraka -i` a new deployment in `parent`/haraka, with nothing installed in it yet. */
export async function initDeployment(parent?: string): Promise<Deployment> {
  const base = parent ?? fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-e2e-'))
  const dir = path.join(base, 'haraka')
  await run(process.execPath, [HARAKA_BIN, '-i', dir])
  return deploymentAt(dir, base)
}

/** The Deployment handle for the Haraka folder `dir`; remove() deletes `owner`. */
function deploymentAt(dir: string, owner: string): Deployment {
  const mailDir = path.join(dir, 'mail')
  fs.mkdirSync(mailDir, { recursive: true })
  const cfg = (name: string): string => path.join(dir, 'config', name)
  return {
    dir,
    mailDir,
    writeConfig: (name, text) => {
      fs.writeFileSync(cfg(name), text)
      if (name.endsWith('.keys')) fs.chmodSync(cfg(name), 0o600)
    },
    readConfig: (name) => fs.readFileSync(cfg(name), 'utf8'),
    remove: () => fs.rmSync(owner, { recursive: true, force: true }),
  }
}

/**
 * What `npm pack` packs or builds dist/ from (package.json `files`, the build's
 * config, the lockfile): the same content gives the same tarball.
 */
const PACKED_INPUTS = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'index.js',
  'lib',
  'bin',
  'config',
  'docs',
  'contrib',
  'README.md',
  'CHANGELOG.md',
  'LICENSE',
]

/** A digest of the packed inputs and of `more`: the key of what was built from them. */
function contentKey(more: readonly string[] = []): string {
  const hash = crypto.createHash('sha256').update([process.version, HARAKA_VERSION, ...more].join('\n'))
  const add = (rel: string): void => {
    const file = path.join(REPO, rel)
    const stat = fs.statSync(file, { throwIfNoEntry: false })
    if (stat?.isDirectory()) for (const name of fs.readdirSync(file).sort()) add(path.join(rel, name))
    else if (stat) hash.update(`\0${rel}\0${stat.size}\0`).update(fs.readFileSync(file))
  }
  for (const rel of PACKED_INPUTS) add(rel)
  return hash.digest('hex').slice(0, 20)
}

/** Where the e2e files share what they build from the same tree: tarballs and installed deployments. */
const SHARED = path.join(os.tmpdir(), 'backscatter-e2e-shared')
/** A build left unfinished this long is taken for abandoned (its process died). */
const STALE_BUILD_MS = 10 * 60_000

/**
 * The folder `dir`, built once by `build(tmp)` into a scratch folder renamed to
 * `dir` when done. Test files running at the same time wait for the one that
 * builds it (a lock folder beside it), checking every quarter second.
 */
async function buildOnce(dir: string, build: (tmp: string) => Promise<void>): Promise<string> {
  const lock = `${dir}.lock`
  for (;;) {
    if (fs.existsSync(dir)) return dir
    fs.mkdirSync(path.dirname(dir), { recursive: true })
    try {
      fs.mkdirSync(lock)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now())
      if (age > STALE_BUILD_MS) fs.rmSync(lock, { recursive: true, force: true })
      else await new Promise((r) => setTimeout(r, 250))
      continue
    }
    try {
      if (fs.existsSync(dir)) return dir
      const tmp = fs.mkdtempSync(`${dir}.build-`)
      try {
        await build(tmp)
        fs.renameSync(tmp, dir)
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true })
      }
      return dir
    } finally {
      fs.rmSync(lock, { recursive: true, force: true })
    }
  }
}

/** Drop what was built from other trees more than a day ago. */
function pruneShared(keep: string): void {
  for (const name of fs.readdirSync(SHARED, { withFileTypes: true })) {
    const entry = path.join(SHARED, name.name)
    if (entry === keep || !name.isDirectory()) continue
    if (Date.now() - fs.statSync(entry).mtimeMs > 24 * 3_600_000)
      fs.rmSync(entry, { recursive: true, force: true })
  }
}

/**
 * A deployment as createDeployment makes it (`npm pack`, `haraka -i`, `npm
 * install` of the tarball and of `packages`), copied into `parent`/haraka. The
 * tarball and each set of packages' install are made once per content of the
 * tree and shared by the e2e files through the system's temporary folder.
 */
export async function sharedDeployment(
  parent: string,
  packages: readonly string[] = [],
): Promise<Deployment> {
  const tree = path.join(SHARED, contentKey())
  const pack = await buildOnce(path.join(tree, 'pack'), async (tmp) => {
    await packPlugin(tmp)
  })
  // In use: not pruned by a run from another tree.
  fs.utimesSync(tree, new Date(), new Date())
  pruneShared(tree)
  const [tarball] = fs.readdirSync(pack).filter((f) => f.endsWith('.tgz'))
  if (!tarball) throw new Error(`no tarball in ${pack}`)
  const installed = await buildOnce(path.join(tree, `deployment-${contentKey(packages)}`), async (tmp) => {
    await createDeployment(path.join(pack, tarball), tmp, packages)
  })
  return cloneDeployment(deploymentAt(path.join(installed, 'haraka'), installed), parent)
}

/** A copy of a deployment (config, plugins and node_modules) in `parent`/haraka. */
export function cloneDeployment(dep: Deployment, parent: string): Deployment {
  const dir = path.join(parent, 'haraka')
  fs.cpSync(dep.dir, dir, { recursive: true, verbatimSymlinks: true })
  return deploymentAt(dir, parent)
}

export interface HarakaOptions {
  /** Plugins for config/plugins, in order; comments ('# …') allowed. */
  plugins: readonly string[]
  /** config/backscatter.ini in the deployment (overrides the package's defaults). */
  backscatterIni: string
  /** smtp.ini `nodes`: 0 = one process, 2 = cluster mode with two workers. */
  nodes?: number
  /** More config files, by name. */
  files?: Record<string, string>
  /** Milliseconds to wait for Haraka to listen. */
  startTimeoutMs?: number
  /** log.ini `level` (default info). */
  logLevel?: string
  /**
   * Run Haraka in a private mount namespace with this file bind-mounted over
   * /etc/resolv.conf (`unshare -m`, needs root), so the system resolver of
   * Haraka and every plugin is the one this file names.
   */
  resolvConf?: string
  /** More environment variables for Haraka. */
  env?: Record<string, string>
  /** Options for node itself, before bin/haraka (e.g. --cpu-prof). */
  nodeArgs?: readonly string[]
  /** A command that runs node, before it (e.g. valgrind and its options). */
  wrapper?: readonly string[]
}

export interface Haraka {
  readonly port: number
  readonly pid: number
  /** Worker pids in cluster mode (empty with nodes=0). */
  readonly workers: number[]
  /** Everything Haraka wrote to stdout and stderr so far. */
  log(): string
  /** The log's current length, to wait for or read only what comes after. */
  mark(): number
  /** Wait until `re` has matched `count` lines written after `from`; returns the lines. */
  waitForLog(re: RegExp, opts?: { from?: number; count?: number; timeoutMs?: number }): Promise<string[]>
  /** The stored message queue/test wrote for this queue id (`mail_<id>.eml`). */
  message(queueId: string): Promise<string>
  /**
   * The process that serves SMTP: the child of bin/haraka when it started one,
   * else bin/haraka's own process (Linux /proc).
   */
  serverPid(): number
  /** Stop Haraka (SIGINT, then SIGKILL for the whole process group); never throws. */
  stop(): Promise<void>
}

/**
 * A plain plugin for the deployment's plugins/ folder: when a transaction ends
 * it logs the transaction's backscatter results, so tests and the demo can show
 * them for refused transactions too. It only observes.
 */
export const RESULTS_PLUGIN = `'use strict'
// Logs each transaction's backscatter results when the transaction ends.
exports.hook_reset_transaction = function (next, connection) {
    const txn = connection.transaction
    if (txn) {
        const r = Object.assign({}, txn.results.get('backscatter') || {})
        delete r.human
        delete r.human_html
        connection.loginfo(this, 'port=' + connection.remote.port + ' txn=' + txn.uuid + ' backscatter=' + JSON.stringify(r))
    }
    next()
}
`

/**
 * A plain plugin that answers Haraka's reverse lookup of every client with a
 * fixed name, so no DNS query leaves 127.0.0.1 (Haraka would otherwise ask the
 * system resolver about each client address).
 */
export const RDNS_PLUGIN = `'use strict'
// Answers every reverse lookup with a fixed name: no query to the system resolver.
exports.hook_lookup_rdns = function (next) {
    next(OK, 'mail.sender.e2e.test')
}
`

export interface BackscatterResults {
  pass: string[]
  fail: string[]
  skip: string[]
  err: string[]
  msg: string[]
  score?: number
}

/** The backscatter results e2e_results logged for transactions of the client on `clientPort`, in order. */
export function loggedResults(
  log: string,
  clientPort: number,
): { txn: string; results: BackscatterResults }[] {
  const re = new RegExp(`\\[e2e_results\\] port=${clientPort} txn=(\\S+) backscatter=(.*)$`, 'gm')
  return [...log.matchAll(re)].map((m) => ({
    txn: m[1] ?? '',
    results: JSON.parse(m[2] ?? '{}') as BackscatterResults,
  }))
}

const CONFIG_PLUGINS_HEADER = [
  '# Written by the end-to-end tests. Order matters: backscatter must come',
  '# before the rcpt_to.* plugin that accepts recipients, or its RCPT hook',
  '# would never run.',
]

/** Lines of the log that show an uncaught error in Haraka or a plugin. */
export function uncaughtErrors(log: string): string[] {
  return log
    .split('\n')
    .filter(
      (l) =>
        /\[(CRIT|EMERG)\]/.test(l) ||
        /Caught exception|uncaught|unhandled/i.test(l) ||
        /^\s+at .+\(.+:\d+:\d+\)$/.test(l) ||
        /\[ERROR\].*\[backscatter\]/.test(l),
    )
}

/** Haraka log levels at which it logs "Listening on" (a NOTICE). */
const LEVELS_THAT_LOG_LISTENING = new Set(['data', 'protocol', 'debug', 'info', 'notice'])

/** Resolve once a TCP connection to 127.0.0.1:`port` is accepted. */
async function waitForPort(port: number, exited: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ port, host: '127.0.0.1' })
      sock.once('connect', () => {
        sock.destroy()
        resolve(true)
      })
      sock.once('error', () => resolve(false))
    })
    if (ok) return
    if (exited()) throw new Error(`haraka exited before listening on 127.0.0.1:${port}`)
    if (Date.now() > deadline) throw new Error(`haraka did not listen on 127.0.0.1:${port} in time`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Write the deployment's config and start `haraka -c DIR`; resolves once every worker listens. */
export async function startHaraka(dep: Deployment, opts: HarakaOptions): Promise<Haraka> {
  const nodes = opts.nodes ?? 0
  const port = await freeTcpPort()
  dep.writeConfig(
    'smtp.ini',
    [
      `listen=127.0.0.1:${port}`,
      `nodes=${nodes}`,
      'inactivity_timeout=30',
      'force_shutdown_timeout=3',
      '',
    ].join('\n'),
  )
  dep.writeConfig('plugins', [...CONFIG_PLUGINS_HEADER, 'e2e_rdns', ...opts.plugins, ''].join('\n'))
  dep.writeConfig('host_list', `${LOCAL_DOMAIN}\n`)
  dep.writeConfig('log.ini', `[main]\nlevel=${opts.logLevel ?? 'info'}\ntimestamps=false\nformat=default\n`)
  dep.writeConfig('backscatter.ini', opts.backscatterIni)
  for (const [name, text] of Object.entries(opts.files ?? {})) dep.writeConfig(name, text)
  fs.writeFileSync(path.join(dep.dir, 'plugins', 'e2e_results.js'), RESULTS_PLUGIN)
  fs.writeFileSync(path.join(dep.dir, 'plugins', 'e2e_rdns.js'), RDNS_PLUGIN)

  const logFile = path.join(dep.dir, 'haraka.log')
  const logStream = fs.createWriteStream(logFile)
  let text = ''
  const node = [...(opts.wrapper ?? []), process.execPath, ...(opts.nodeArgs ?? [])]
  const argv = [...node, HARAKA_BIN, '-c', dep.dir]
  const [command, ...args] = opts.resolvConf
    ? [
        'unshare',
        '-m',
        'sh',
        '-c',
        'mount --bind "$0" /etc/resolv.conf && exec "$@"',
        opts.resolvConf,
        ...argv,
      ]
    : argv
  const child: ChildProcess = spawn(command as string, args, {
    cwd: dep.dir,
    // queue/test writes each accepted message to os.tmpdir()/mail_<uuid>.eml.
    env: { ...process.env, ...opts.env, TMPDIR: dep.mailDir },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so stop() can end the workers with it.
    detached: true,
  })
  const append = (d: Buffer): void => {
    text += d.toString()
    // Output still in the pipe when stop() has closed the file is kept in `text` only.
    if (!logStream.writableEnded) logStream.write(d)
  }
  child.stdout?.on('data', append)
  child.stderr?.on('data', append)
  const exited = new Promise<void>((r) => child.once('exit', () => r()))

  const pid = child.pid
  if (pid === undefined) throw new Error('haraka did not start')

  const waitForLog: Haraka['waitForLog'] = async (re, o = {}) => {
    const from = o.from ?? 0
    const count = o.count ?? 1
    const deadline = Date.now() + (o.timeoutMs ?? 10_000)
    for (;;) {
      const lines = text
        .slice(from)
        .split('\n')
        .filter((l) => re.test(l))
      if (lines.length >= count) return lines
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `haraka exited (${child.exitCode ?? child.signalCode}) before logging ${re}:\n${text}`,
        )
      }
      if (Date.now() > deadline)
        throw new Error(`haraka did not log ${re} ${count}x in time:\n${text.slice(from)}`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT')
      const timer = setTimeout(() => {
        try {
          process.kill(-pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }, 5000)
      await exited
      clearTimeout(timer)
    }
    // Cluster workers leave when the master does; make sure none lingers.
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      // the group is empty
    }
    await new Promise<void>((r) => logStream.end(() => r()))
  }

  try {
    const timeoutMs = opts.startTimeoutMs ?? 20_000
    if (LEVELS_THAT_LOG_LISTENING.has(opts.logLevel ?? 'info')) {
      const listening = nodes > 0 ? /worker \d+ listening on 127\.0\.0\.1:/ : /Listening on 127\.0\.0\.1:/
      await waitForLog(listening, { count: Math.max(nodes, 1), timeoutMs })
    } else {
      // A quieter log level does not show "Listening on": wait for the port instead.
      await waitForPort(port, () => child.exitCode !== null || child.signalCode !== null, timeoutMs)
    }
  } catch (err) {
    await stop()
    throw err
  }
  const workers = [...text.matchAll(/worker started worker=\d+ pid=(\d+)/g)].map((m) => Number(m[1]))

  return {
    port,
    pid,
    workers,
    log: () => text,
    mark: () => text.length,
    waitForLog,
    serverPid: () => childPids(pid)[0] ?? pid,
    message: async (queueId) => {
      const file = path.join(dep.mailDir, `mail_${queueId}.eml`)
      // queue/test answers once the file is closed, but allow for a slow disk.
      for (let i = 0; i < 40 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 25))
      return fs.readFileSync(file, 'utf8')
    },
    stop,
  }
}

/** The children of a process (Linux /proc); empty when it has none or is gone. */
export function childPids(pid: number): number[] {
  try {
    const text = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    return text.split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** The value of header `name` in a stored message (first occurrence, unfolded). */
export function headerOf(message: string, name: string): string | undefined {
  const head = message.split(/\r?\n\r?\n/)[0] ?? ''
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ')
  const re = new RegExp(`^${name.replace(/[-]/g, '\\-')}:[ \\t]*(.*)$`, 'im')
  return re.exec(unfolded)?.[1]?.trim()
}

/** The server-side socket of a client connection: which process holds it (Linux /proc). */
export function processHoldingConnection(
  pids: readonly number[],
  serverPort: number,
  clientPort: number,
): number | undefined {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')
  const local = `0100007F:${hex(serverPort)}`
  const remote = `0100007F:${hex(clientPort)}`
  let inode: string | undefined
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f[1] === local && f[2] === remote) inode = f[9]
  }
  if (!inode || inode === '0') return undefined
  for (const pid of pids) {
    let fds: string[] = []
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return pid
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined
}

/**
 * Connect to Haraka on 127.0.0.1:`port`, greet, and present `ip` as the client's
 * address through XCLIENT (the xclient plugin must be loaded). Throws, with the
 * transcript, when a reply is not the expected one.
 */
export async function connectWithXclient(port: number, ip: string): Promise<SmtpClient> {
  const c = await SmtpClient.connect(port)
  const fail = (what: string): Error => {
    c.close()
    return new Error(`${what}:\n${c.transcript.join('\n')}`)
  }
  if (c.greeting?.code !== 220) throw fail('no 220 greeting')
  if ((await c.ehlo()).code !== 250) throw fail('EHLO not accepted')
  if ((await c.xclient(ip)).code !== 220) throw fail(`XCLIENT ${ip} not accepted`)
  return c
}
