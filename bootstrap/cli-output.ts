// The entry point every operator CLI shares: run main, exit with its status, and take a reader
// that went away (`… | head -1`) calmly.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * Whether the module is the one Node was asked to run. `import.meta.main` arrived in Node
 * 24.2; on 24.0 and 24.1 it is undefined, and a CLI testing it alone would quietly do nothing
 * and exit 0 (a scheduled `audit verify` passing without verifying). The script's path says
 * the same, through the `bin` symlink too.
 */
export function isMain (meta: ImportMeta): boolean {
  const main = (meta as { main?: boolean }).main
  if (main !== undefined) return main
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(meta.url))
  } catch {
    return false
  }
}

/**
 * A closed stdout or stderr (EPIPE) is not the command's failure: the reader has what it wanted.
 * Node reports it as an 'error' event, which unhandled ends the process with a stack trace and
 * exit status 1. Ignored here, so the command finishes its work and cleanup (a store closed, a
 * temporary directory removed) and exits with its own status; the rest of its output goes
 * nowhere (a destroyed stream drops later writes without another error). Any other write error
 * still ends the process as before.
 */
export function ignoreClosedOutput (streams: ReadonlyArray<NodeJS.WritableStream> = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err
    })
  }
}

/**
 * parseArgs keeps the last of a repeated option in silence: `--base-url a --base-url b` would act
 * on b alone. Throws `--base-url given twice` for an option that takes a value and is given more
 * than once (a repeated flag means the same thing, and passes). Called with parseArgs' tokens
 * (`tokens: true`) inside the try that turns a parse error into the usage error, exit status 2.
 */
export function refuseRepeated (tokens: ReadonlyArray<{ kind: string, name?: string, value?: string }>): void {
  const seen = new Set<string>()
  for (const token of tokens) {
    if (token.kind !== 'option' || token.value === undefined || token.name === undefined) continue
    if (seen.has(token.name)) throw new Error(`--${token.name} given twice`)
    seen.add(token.name)
  }
}

/** Runs a CLI's main with this process's arguments; its result is the exit status. */
export async function runCli (main: (argv: string[]) => Promise<number>): Promise<void> {
  ignoreClosedOutput()
  process.exitCode = await main(process.argv.slice(2))
}
