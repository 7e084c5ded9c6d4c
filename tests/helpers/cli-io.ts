// What a CLI's main(argv, env, io) wrote, for in-process tests of the operator tools; and a CLI
// run as a process whose reader has gone away, as in `… | head -1`.
import { execFileSync, spawn } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface CapturedIo {
  out: { stdout: string, stderr: string }
  io: { stdout: { write: (s: string) => void }, stderr: { write: (s: string) => void } }
}

export function capture (): CapturedIo {
  const out = { stdout: '', stderr: '' }
  const io = { stdout: { write: (s: string) => { out.stdout += s } }, stderr: { write: (s: string) => { out.stderr += s } } }
  return { out, io }
}

export interface ClosedStdoutRun { code: number | null, signal: NodeJS.Signals | null, stderr: string }

/**
 * Runs `node script …argv` with a stdout nobody reads: a FIFO whose only reader is closed before
 * the process starts, so its first write fails with EPIPE whatever the timing.
 */
export async function runWithClosedStdout (script: string, argv: string[], env: Record<string, string | undefined>): Promise<ClosedStdoutRun> {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-epipe-'))
  const fifo = join(dir, 'stdout')
  let writer: number | undefined
  try {
    execFileSync('mkfifo', [fifo])
    // A FIFO opens for writing only while it has a reader: open one, then close it.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
    writer = openSync(fifo, constants.O_WRONLY)
    closeSync(reader)
    const child = spawn(process.execPath, [script, ...argv], { env, stdio: ['ignore', writer, 'pipe'] })
    closeSync(writer)
    writer = undefined
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    return await new Promise((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code, signal) => resolve({ code, signal, stderr }))
    })
  } finally {
    if (writer !== undefined) closeSync(writer)
    rmSync(dir, { recursive: true, force: true })
  }
}
