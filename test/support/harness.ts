// Helpers for plugin tests: a real Haraka Plugin (haraka-test-fixtures) with the
// package's config/ as defaults and a per-test override folder, as in a deployment.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, afterEach, before } from 'node:test'

import constants from 'haraka-constants'
import fixtures from 'haraka-test-fixtures'

import * as pluginSource from '../../lib/haraka/plugin'
import { addr } from './address'
import { startDns, type Handler, type ScriptedDns } from './dns-server'
import { removeConfigFolder } from './haraka-config'
import { REPO } from './repo'

export { addr, REPO }

export interface LogLine {
  level: string
  text: string
}

export interface TestPlugin {
  plugin: HarakaTestPlugin
  logs: LogLine[]
  dir: string
  /** Rewrite the deployment's config/backscatter.ini (the plugin reloads it). */
  writeIni(ini: string): void
  close(): void
}

// Loosely typed: the fixtures are plain JavaScript.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type HarakaTestPlugin = any
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type HarakaConnection = any

const LEVELS = ['logdebug', 'loginfo', 'lognotice', 'logwarn', 'logerror', 'logcrit']

/**
 * Make and register the plugin with `ini` as the deployment's
 * config/backscatter.ini, and `files` (e.g. backscatter.keys) beside it, readable by the owner only.
 */
export function makeTestPlugin(ini: string, files: Record<string, string> = {}): TestPlugin {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-test-'))
  fs.mkdirSync(path.join(dir, 'config'))
  const iniPath = path.join(dir, 'config', 'backscatter.ini')
  fs.writeFileSync(iniPath, ini)
  for (const [name, text] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, 'config', name), text, { mode: 0o600 })
  }
  const plugin = fixtures.makePlugin('backscatter', { register: false })
  // The hooks from the TypeScript source, not from a dist/ that may be older than lib/:
  // the package's own entry (index.js → dist/) is tested by package.test.ts and the e2e suite.
  Object.assign(plugin, pluginSource)
  plugin.config = plugin.config.module_config(REPO, dir)
  const logs: LogLine[] = []
  for (const level of LEVELS) {
    plugin[level] = (...args: unknown[]) => logs.push({ level, text: args.map(String).join(' ') })
  }
  plugin.register()
  return {
    plugin,
    logs,
    dir,
    writeIni: (text) => fs.writeFileSync(iniPath, text),
    close: () => {
      plugin.shutdown()
      removeConfigFolder(dir)
    },
  }
}

export interface PluginFixture {
  /** The scripted DNS server of the file's tests, on 127.0.0.1. */
  readonly dns: ScriptedDns
  /** How the server answers; set by a test, back to the file's own after it. */
  handler: Handler
  /** The plugin with `ini` as the deployment's backscatter.ini and `files` beside it, closed after the test. */
  start(ini: string, files?: Record<string, string>): TestPlugin
}

/**
 * What a test file of the plugin shares: a scripted DNS server answering with
 * `handler` (started before the file's tests, stopped after them), and the
 * plugin each test starts, closed after it.
 */
export function pluginFixture(handler: Handler): PluginFixture {
  let dns: ScriptedDns | undefined
  let current: TestPlugin | undefined
  let answer = handler
  before(async () => {
    dns = await startDns((q) => answer(q))
  })
  after(() => dns?.close())
  afterEach(() => {
    current?.close()
    current = undefined
    answer = handler
  })
  return {
    get dns(): ScriptedDns {
      assert.ok(dns, 'the DNS server starts before the tests')
      return dns
    },
    get handler(): Handler {
      return answer
    },
    set handler(next: Handler) {
      answer = next
    },
    start(ini, files = {}) {
      current = makeTestPlugin(ini, files)
      return current
    },
  }
}

/** Resolves after the plugin has read the edited ini (haraka-config waits for the edit to settle). */
export function nextReload(plugin: HarakaTestPlugin): Promise<void> {
  return new Promise((resolve) => {
    const load = plugin.load_backscatter_ini as () => void
    plugin.load_backscatter_ini = function (this: unknown): void {
      plugin.load_backscatter_ini = load
      load.call(this)
      resolve()
    }
  })
}

/**
 * A connection from `ip` with a transaction, its log lines collected. `relaying`
 * is the connection's own, as AUTH or the relay ACL set it before MAIL (the
 * fixtures' own option sets it through the setter, after the transaction is
 * made, so it would land on the transaction, as the relay plugin's dest_domains does).
 */
export function makeConnection(ip: string, opts: { relaying?: boolean } = {}): HarakaConnection {
  const conn = fixtures.makeConnection({ ip, withTxn: true })
  conn._relaying = opts.relaying ?? false
  conn.logs = [] as LogLine[]
  for (const level of LEVELS) {
    conn[level] = (...args: unknown[]) =>
      conn.logs.push({ level, text: args.map((a) => (typeof a === 'string' ? a : '')).join(' ') })
  }
  return conn
}

export interface HookReply {
  rc: number | undefined
  msg: unknown
  /** The reply as the client sees it, e.g. "550 5.7.1 Backscatter …" ('' for CONT). */
  text: string
}

/** A hook's answer as haraka-test-fixtures gives it, with the reply text the client would see. */
export function reply(r: { rc: number | undefined; msg: unknown }): HookReply {
  const msg = r.msg as { code?: number; reply?: string } | undefined
  const text = msg && typeof msg === 'object' && msg.code ? `${msg.code} ${msg.reply}` : String(msg ?? '')
  return { ...r, text }
}

export async function mail(
  plugin: HarakaTestPlugin,
  conn: HarakaConnection,
  from: string,
): Promise<HookReply> {
  const a = addr(from)
  conn.transaction.mail_from = a
  return reply(await fixtures.callHook(plugin, 'hook_mail', conn, [a, {}]))
}

/**
 * RCPT as Haraka does it: the address pushed onto rcpt_to before the hooks run
 * (`params[0]` is that same object), popped again when a hook refuses it.
 */
export async function rcpt(
  plugin: HarakaTestPlugin,
  conn: HarakaConnection,
  to: string,
): Promise<HookReply & { params: unknown[] }> {
  const params = [addr(to), {}]
  conn.transaction.rcpt_to.push(params[0])
  const r = reply(await fixtures.callHook(plugin, 'hook_rcpt', conn, params))
  if (r.rc === constants.DENY || r.rc === constants.DENYSOFT) conn.transaction.rcpt_to.pop()
  return { ...r, params }
}

export async function dataPost(plugin: HarakaTestPlugin, conn: HarakaConnection): Promise<HookReply> {
  return reply(await fixtures.callHook(plugin, 'hook_data_post', conn))
}

/** The plugin's results in this transaction. */
export function results(conn: HarakaConnection): Record<string, unknown> & {
  pass: string[]
  fail: string[]
  skip: string[]
  err: string[]
} {
  return conn.transaction.results.get('backscatter') ?? { pass: [], fail: [], skip: [], err: [] }
}

/** An ini text for tests: DNS on the scripted server, health checks as given. */
export function testIni(server: string, extra = '', dns = ''): string {
  return `[dns]\nservers = ${server}\n${dns}\n${extra}\n`
}

export { constants }
