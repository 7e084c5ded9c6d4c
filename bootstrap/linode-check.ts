#!/usr/bin/env node
// `npm run linode:check`: the Linode settings checked before customers pay (token, rights,
// region, image, server types, DNS zone), read-only. The checks are the server's own start-up
// checks (api/provisioning/linode-preflight.ts); this file only parses arguments and prints.
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, type Config } from '../api/config.ts'
import { countResults, linodePreflight, preflightApi, preflightSettings, type PreflightCheck } from '../api/provisioning/linode-preflight.ts'
import type { Io } from './stripe-bootstrap.ts'
import { renderTable } from './table.ts'

type Env = Record<string, string | undefined>

export const USAGE = `Usage: npm run linode:check -- [--json]

Checks, read-only, that the Linode settings can provision a tenant: the token (LINODE_API_TOKEN)
and its user's rights, the region (LINODE_REGION: Linodes and Metadata), the image
(LINODE_IMAGE: available, cloud-init), each plan's server type (or LINODE_PLAN: exists, at
least 2 CPUs, not sold out in the region) and the DNS zone for BASE_DOMAIN.
It cannot prove the token may write (its scopes need linodes and domains read/write).

Environment: LINODE_API_TOKEN, LINODE_API_BASE, LINODE_REGION, LINODE_IMAGE, LINODE_PLAN, BASE_DOMAIN.
Exit status: 0 every check passed (warnings allowed), 1 a check failed or Linode did not
answer, 2 bad usage or configuration.
`

export function formatChecks (checks: readonly PreflightCheck[]): string {
  return renderTable(['check', 'expected', 'got', 'result'], checks.map((c) => [c.check, c.expected, c.got, c.result.toUpperCase()]))
}

export async function main (argv: string[], env: Env = process.env, io: Io = process, timeoutMs = 120_000): Promise<number> {
  const fail = (code: number, message: string): number => {
    io.stderr.write(`error: ${message}\n`)
    return code
  }
  let args
  try {
    args = parseArgs({ args: argv, strict: true, allowPositionals: false, options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } }).values
  } catch (err) {
    return fail(2, `${(err as Error).message}\n\n${USAGE}`)
  }
  if (args.help) {
    io.stdout.write(USAGE)
    return 0
  }
  let config: Config
  try {
    // Only the Linode settings matter here: the production guard is the server's.
    config = loadConfig({ ...env, NODE_ENV: 'development' })
  } catch (err) {
    if (err instanceof ConfigError) return fail(2, err.message)
    throw err
  }
  if (config.linode.token === '') return fail(2, 'LINODE_API_TOKEN is not set: without it the server uses the fake executor and makes no servers.')

  let checks: PreflightCheck[]
  try {
    checks = await linodePreflight(preflightApi(config), preflightSettings(config), AbortSignal.timeout(timeoutMs))
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') return fail(1, `Linode did not answer within ${timeoutMs / 1000} s; nothing was checked to the end`)
    throw err
  }
  const plural = (k: number, what: string): string => `${k} ${what}${k === 1 ? '' : 's'}`
  const { fail: failed, unknown, warn: warned } = countResults(checks)
  io.stdout.write(args.json ? `${JSON.stringify({ ok: failed + unknown === 0, checks }, null, 2)}\n` : formatChecks(checks))
  if (failed > 0) io.stderr.write(`${plural(failed, 'check')} failed: provisioning will fail until ${failed === 1 ? 'it is' : 'they are'} fixed\n`)
  // An outage proves nothing either way: not OK, and not a wrong setting.
  if (unknown > 0) io.stderr.write(`${plural(unknown, 'check')} could not be run: Linode did not answer; run it again later\n`)
  if (failed + unknown === 0) io.stderr.write(`Linode settings OK${warned > 0 ? ` (${plural(warned, 'warning')})` : ''}\n`)
  return failed + unknown > 0 ? 1 : 0
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
