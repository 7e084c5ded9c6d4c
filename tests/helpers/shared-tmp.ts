// Temp dirs that a process run as another user (postgres, nobody: tests running as root do
// that) must enter. That user needs search permission on every parent, and a private TMPDIR
// (mode 0700, as some CI runners give) stops it at the first one.
import { realpathSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname } from 'node:path'

/** True when a user who owns none of them may search `dir` and every directory above it. */
export function searchableByAll (dir: string): boolean {
  let p: string
  try {
    p = realpathSync(dir)
  } catch {
    return false
  }
  for (;;) {
    if ((statSync(p).mode & 0o001) === 0) return false
    if (dirname(p) === p) return true
    p = dirname(p)
  }
}

/**
 * Where to make a temp dir another user must enter: tmpdir(), or /tmp when tmpdir() is private.
 * Throws, saying why, when neither serves.
 */
export function sharedTmpdir (): string {
  for (const dir of [tmpdir(), '/tmp']) if (searchableByAll(dir)) return dir
  throw new Error(`tests run as root hand temp dirs to another user, who cannot enter ${tmpdir()} nor /tmp (each parent needs o+x): set TMPDIR to a directory it can`)
}
