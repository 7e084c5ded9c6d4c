// Child processes a test file starts (app servers) die with it: a test that fails before its
// teardown, or tap ending the file on a timeout, must not leave one listening on loopback.
import type { ChildProcess } from 'node:child_process'

const live = new Set<ChildProcess>()

/**
 * The signals that end a test process without Node's 'exit' event: tap ends a file that runs
 * past its timeout with SIGALRM (then SIGKILL, which nothing can catch).
 */
export const ENDING_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGALRM'] as const

function killAll (): void {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}

/** SIGKILLs `child` when this process exits or is ended by one of ENDING_SIGNALS, if it still runs. */
export function reapWithThisProcess (child: ChildProcess): void {
  if (live.size === 0) {
    process.once('exit', killAll)
    for (const signal of ENDING_SIGNALS) {
      process.once(signal, () => {
        killAll()
        process.kill(process.pid, signal)
      })
    }
  }
  live.add(child)
  child.once('exit', () => { live.delete(child) })
}
