// What a CLI's main(argv, env, io) wrote, for in-process tests of the operator tools.

export interface CapturedIo {
  out: { stdout: string, stderr: string }
  io: { stdout: { write: (s: string) => void }, stderr: { write: (s: string) => void } }
}

export function capture (): CapturedIo {
  const out = { stdout: '', stderr: '' }
  const io = { stdout: { write: (s: string) => { out.stdout += s } }, stderr: { write: (s: string) => { out.stderr += s } } }
  return { out, io }
}
