// Shared by the two static builds (marketing/build.ts, docs-site/build.ts): their command line
// and configuration, and the precompressed variants the app serves (headers.ts).
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib'
import { ConfigError, EX_CONFIG, loadConfig, type Config } from '../config.ts'

export interface BuildCli {
  ifMissing: boolean
  out: string | undefined
  config: Config
}

/**
 * Parses `[--if-missing] [--out DIR]` and loads the configuration; on a mistake it says so on
 * stderr, prefixed with `tool`, and returns the exit code instead: 2 for the command line, 78
 * (EX_CONFIG) for a bad setting, as the server answers (`npm start` runs the builds first).
 */
export function buildCli (tool: string, script: string, argv: string[], env: Record<string, string | undefined>, stderr: { write (s: string): unknown }): BuildCli | number {
  let args
  try {
    args = parseArgs({ args: argv, options: { 'if-missing': { type: 'boolean', default: false }, out: { type: 'string' } }, strict: true }).values
  } catch (err) {
    stderr.write(`${tool}: ${(err as Error).message}\nUsage: node ${script} [--if-missing] [--out DIR]\n`)
    return 2
  }
  try {
    return { ifMissing: args['if-missing'], out: args.out, config: loadConfig(env) }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    stderr.write(`${tool}: configuration error: ${err.message}\n`)
    return EX_CONFIG
  }
}

/**
 * Writes `path.br` and `path.gz` next to a text file, each only when it saves at least 10 %
 * (a variant that saves almost nothing costs a header and a file). Returns the paths written.
 */
export function writeCompressedVariants (path: string, content: Buffer): string[] {
  const written: string[] = []
  const br = brotliCompressSync(content, {
    params: { [zlib.BROTLI_PARAM_QUALITY]: zlib.BROTLI_MAX_QUALITY, [zlib.BROTLI_PARAM_SIZE_HINT]: content.length, [zlib.BROTLI_PARAM_MODE]: zlib.BROTLI_MODE_TEXT }
  })
  if (br.length < content.length * 0.9) { writeFileSync(`${path}.br`, br); written.push(`${path}.br`) }
  const gz = gzipSync(content, { level: 9 })
  if (gz.length < content.length * 0.9) { writeFileSync(`${path}.gz`, gz); written.push(`${path}.gz`) }
  return written
}
