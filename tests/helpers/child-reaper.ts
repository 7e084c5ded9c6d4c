// Child processes a test file starts (app servers) die with it: a test that fails before its
// teardown, or tap ending the file on a timeout, must not leave one listening on loopback.
import type { ChildProcess } from 'node:child_process'

/** Each live child, and whether to kill its whole process group (it was spawned detached). */
const live = new Map<ChildProcess, boolean>()
let hooked = false

/**
 * The signals that end a test process without Node's 'exit' event: tap ends a file that runs
 * past its timeout with SIGALRM (then SIGKILL, which nothing can catch).
 */
export const ENDING_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGALRM'] as const

function killAll (): void {
  for (const [child, group] of live) {
    try {
      if (group && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
      else child.kill('SIGKILL')
    } catch { /* already gone */ }
  }
  live.clear()
}

/**
 * SIGKILLs `child` when this process exits or is ended by one of ENDING_SIGNALS, if it still
 * runs; with `group`, its process group too (a child spawned `detached` leads its own).
 */
export function reapWithThisProcess (child: ChildProcess, options: { group?: boolean } = {}): void {
  // Hooked once per process, not each time the set empties: listeners must not pile up.
  if (!hooked) {
    hooked = true
    process.once('exit', killAll)
    for (const signal of ENDING_SIGNALS) {
      process.once(signal, () => {
        killAll()
        process.kill(process.pid, signal)
      })
    }
  }
  live.set(child, options.group === true)
  child.once('exit', () => { live.delete(child) })
}
