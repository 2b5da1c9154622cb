// The repository's root, for tests that read its files: its own small module,
// so that they need not load the plugin and haraka-test-fixtures to find it.
import path from 'node:path'

export const REPO = path.resolve(__dirname, '..', '..')
