// A private redis-server on a loopback port, for haraka-plugin-karma (which needs
// Redis) in end-to-end tests and for the sent-mail ledger's tests, which also
// freeze, stop and restart it. Nothing is saved to disk.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import { freeTcpPort } from './haraka'
import { findProgram } from './programs'
import { stopChild } from './rbldnsd'

/** redis-server's path, or undefined when it is not installed. */
export const findRedisServer = (): string | undefined => findProgram('redis-server')

export interface RedisServer {
  readonly port: number
  /** The redis:// URL of the server. */
  readonly url: string
  /** The running server's process id (for its CPU time); undefined while stopped. */
  pid(): number | undefined
  /** Freeze the server (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void
  /** Let a paused server run again (SIGCONT). */
  resume(): void
  /** Stop the server; its data is gone (nothing is saved). */
  stop(): Promise<void>
  /** Start it again on the same port, empty. */
  restart(): Promise<void>
  close(): Promise<void>
}

/** One PING over RESP; true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' })
    const done = (ok: boolean): void => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(500, () => done(false))
    sock.on('error', () => done(false))
    sock.on('connect', () => sock.write('PING\r\n'))
    sock.on('data', (d) => done(d.toString().startsWith('+PONG')))
  })
}

/** redis-server on `port`, once it answers PING; undefined when it exits or does not answer within 5 s. */
async function spawnRedis(
  binary: string,
  port: number,
  dir: string,
  output: (text: string) => void,
): Promise<ChildProcess | undefined> {
  const child = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  child.stdout?.on('data', (d: Buffer) => output(d.toString()))
  child.stderr?.on('data', (d: Buffer) => output(d.toString()))
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && child.exitCode === null) {
    if (await ping(port)) return child
    await new Promise((r) => setTimeout(r, 50))
  }
  await stopChild(child)
  return undefined
}

export async function startRedis(binary: string): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-redis-'))
  let output = ''
  const collect = (text: string): void => void (output += text)
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeTcpPort()
    let child = await spawnRedis(binary, port, dir, collect)
    if (!child) continue
    const running = (): ChildProcess => {
      if (!child) throw new Error('redis-server is stopped')
      return child
    }
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      pid: () => child?.pid,
      pause: () => void running().kill('SIGSTOP'),
      resume: () => void running().kill('SIGCONT'),
      stop: async () => {
        const c = child
        child = undefined
        if (!c) return
        c.kill('SIGCONT')
        await stopChild(c)
      },
      restart: async () => {
        if (child) throw new Error('redis-server is running')
        child = await spawnRedis(binary, port, dir, collect)
        if (!child) throw new Error(`redis-server did not start again on port ${port}:\n${output}`)
      },
      close: async () => {
        if (child) {
          child.kill('SIGCONT')
          await stopChild(child)
        }
        child = undefined
        fs.rmSync(dir, { recursive: true, force: true })
      },
    }
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw new Error(`redis-server did not start:\n${output}`)
}
