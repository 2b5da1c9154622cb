// haraka-config in tests: its file watch, without waiting on the wall clock.
// It watches every folder it reads a file from; a change there arms a timer
// of 5 s (lib/watch.js), after which it reloads the file and calls back.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

import { untilTicking } from './mock-clock'

interface HarakaConfig {
  stop_watching(name: string): void
}

const harakaConfig = createRequire(__filename)('haraka-config') as HarakaConfig

/**
 * Remove a folder of config files, once haraka-config has stopped watching it
 * and every folder in it: the removal would otherwise arm a 5 s timer there
 * that keeps the test process alive.
 */
export function removeConfigFolder(root: string): void {
  const folders = fs
    .readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => path.join(entry.parentPath, entry.name))
  // An absolute name is taken as given; its folder's watch is closed with it.
  for (const folder of [root, ...folders]) harakaConfig.stop_watching(path.join(folder, 'backscatter.ini'))
  fs.rmSync(root, { recursive: true, force: true })
}

/**
 * Wait until an edit of a watched config file has been delivered, that is
 * until `delivered()` holds. The edit's watch event and the reading of the
 * file are real; haraka-config's timer runs on node:test's mock clock
 * (setTimeout mocked since before the edit), which this moves up to a minute.
 */
export async function editDelivered(delivered: () => boolean, what = 'the reload'): Promise<void> {
  await untilTicking(delivered, what, 60_000)
}
