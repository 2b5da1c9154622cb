// A private redis-server on a loopback port, for haraka-plugin-karma (which needs
// Redis) in end-to-end tests. Nothing is saved to disk.
import { spawn } from 'node:child_process'
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

export async function startRedis(binary: string): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backscatter-redis-'))
  let output = ''
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeTcpPort()
    const child = spawn(
      binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && child.exitCode === null) {
      if (await ping(port)) {
        return {
          port,
          close: async () => {
            await stopChild(child)
            fs.rmSync(dir, { recursive: true, force: true })
          },
        }
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    await stopChild(child)
  }
  fs.rmSync(dir, { recursive: true, force: true })
  throw new Error(`redis-server did not start:\n${output}`)
}
