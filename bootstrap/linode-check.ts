#!/usr/bin/env node
// `npm run linode:check`: the Linode settings checked before customers pay (token, rights,
// region, image, server types, DNS zone, Cloud Firewall), read-only unless --attach-firewall
// asks for the one repair. The checks are the server's own start-up checks
// (api/provisioning/linode-preflight.ts), the repair the firewall module's; this file only
// parses arguments and prints.
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, type Config } from '../api/config.ts'
import { ExecutorError } from '../api/provisioning/executor.ts'
import { FIREWALL_LABEL, attachUnprotected, type FirewallRepair } from '../api/provisioning/linode-firewall.ts'
import { countResults, linodePreflight, preflightApi, preflightSettings, type PreflightCheck } from '../api/provisioning/linode-preflight.ts'
import { absentSqliteFile, openStore } from '../api/store/index.ts'
import type { Store } from '../api/store/store.ts'
import type { Io } from './stripe-bootstrap.ts'
import { renderTable } from './table.ts'
import { isMain, refuseRepeated, runCli } from './cli-output.ts'

type Env = Record<string, string | undefined>

export const USAGE = `Usage: npm run linode:check -- [--json] [--attach-firewall]

Checks, read-only, that the Linode settings can provision a tenant: the token (LINODE_API_TOKEN)
and its user's rights, the region (LINODE_REGION: Linodes, Metadata, Cloud Firewall), the
image (LINODE_IMAGE: available, cloud-init), the server type of every plan (LINODE_PLAN:
g6-standard-2 by default, each plan's own with per-plan: exists, at least 2 CPUs, not sold
out in the region), the DNS zone for BASE_DOMAIN and those of older
domains tenants with a server still live under (read from the store at DATABASE_URL), the
Cloud Firewall ${FIREWALL_LABEL} and whether every tenant server sits behind a firewall.
It cannot prove the token may write (its scopes need linodes, domains and firewall read/write).

--json             the checks as JSON on stdout, for scripts: run it as
                   \`npm run -s linode:check -- --json\` (without -s, npm prints its banner
                   on stdout too, and the output is no longer JSON)
--attach-firewall  first put every tenant server that is behind no firewall behind
                   ${FIREWALL_LABEL} (made if there is none yet), then check. Servers behind a
                   disabled firewall are left alone: enable it in the console.

Environment: LINODE_API_TOKEN, LINODE_API_BASE, LINODE_REGION, LINODE_IMAGE, LINODE_PLAN, BASE_DOMAIN,
DATABASE_URL.
Exit status: 0 every check passed (warnings allowed) and every server asked for was added,
1 a check or an addition failed or Linode did not answer, 2 bad usage or configuration.
`

/**
 * The domains tenants with a server live under, read from the store without migrating it.
 * No database (none yet, or a wrong DATABASE_URL) or one that cannot be read is said, and
 * the check goes on.
 */
async function tenantDomains (config: Config, io: Io): Promise<string[]> {
  const absent = absentSqliteFile(config)
  if (absent !== null) {
    io.stderr.write(`note: no database at ${absent} (DATABASE_URL): older tenant domains not checked\n`)
    return []
  }
  let store: Store | undefined
  try {
    store = await openStore(config, { migrate: false })
    return await store.tenantDomains({ withServer: true })
  } catch (err) {
    io.stderr.write(`note: the zones of older tenant domains were not checked: ${(err as Error).message}\n`)
    return []
  } finally {
    await store?.close()
  }
}

const named = (s: { label: string, id: number }): string => `${s.label} (${s.id})`

/** What --attach-firewall did, a line per kind of outcome. */
export function formatRepair (r: FirewallRepair): string {
  const lines: string[] = []
  const fw = `firewall ${FIREWALL_LABEL} (${r.firewall.id}${r.firewall.status === 'enabled' ? '' : `, ${r.firewall.status}: it filters nothing until enabled`})`
  if (r.attached.length > 0) lines.push(`added to ${fw}: ${r.attached.map((s) => named(s) + (s.now === r.firewall.id ? '' : ` (found behind firewall ${s.now})`)).join(', ')}`)
  if (r.disabled.length > 0) lines.push(`left behind a disabled firewall (enable it in the console): ${r.disabled.map((s) => `${named(s)} behind ${String(s.behind)}`).join(', ')}`)
  for (const f of r.failed) lines.push(`could not add ${named(f)}: ${f.error}`)
  if (lines.length === 0) lines.push(`${fw}: all ${r.total} tenant server${r.total === 1 ? ' was' : 's were'} behind a firewall already`)
  return lines.map((l) => `${l}\n`).join('')
}

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
    const parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      tokens: true,
      options: { json: { type: 'boolean', default: false }, 'attach-firewall': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } }
    })
    refuseRepeated(parsed.tokens)
    args = parsed.values
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

  const timedOut = (err: unknown): boolean => (err as Error).name === 'TimeoutError'
  let repair: FirewallRepair | undefined
  let repairError: string | undefined
  if (args['attach-firewall']) {
    try {
      const log = { warn: (_obj: object, msg: string) => { io.stderr.write(`warning: ${msg}\n`) } }
      repair = await attachUnprotected(preflightApi(config), { sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)), maxAttempts: 3, log }, AbortSignal.timeout(timeoutMs))
      if (!args.json) io.stderr.write(formatRepair(repair))
    } catch (err) {
      // Servers added before the failure stay added; the check below shows what is left.
      if (timedOut(err)) repairError = `Linode did not answer within ${timeoutMs / 1000} s; servers added before that stay added, run it again`
      else if (err instanceof ExecutorError) repairError = err.message
      // A reply not shaped as Linode documents it (a proxy's page, a null body) fails deep in
      // the repair: one line, not a stack trace, and the check still runs.
      else repairError = `unexpected failure, most likely a malformed reply from Linode (LINODE_API_BASE): ${err instanceof Error ? err.message : String(err)}`
      io.stderr.write(`error: the firewall repair stopped: ${repairError}\n`)
    }
  }

  let checks: PreflightCheck[]
  try {
    checks = await linodePreflight(preflightApi(config), preflightSettings(config, await tenantDomains(config, io)), AbortSignal.timeout(timeoutMs))
  } catch (err) {
    if (timedOut(err)) return fail(1, `Linode did not answer within ${timeoutMs / 1000} s; nothing was checked to the end`)
    throw err
  }
  const plural = (k: number, what: string): string => `${k} ${what}${k === 1 ? '' : 's'}`
  const { fail: failed, unknown, warn: warned } = countResults(checks)
  const repaired = repairError === undefined && (repair?.failed.length ?? 0) === 0
  const ok = failed + unknown === 0 && repaired
  const repairJson = args['attach-firewall'] ? { repair: repair ?? { error: repairError } } : {}
  io.stdout.write(args.json ? `${JSON.stringify({ ok, checks, ...repairJson }, null, 2)}\n` : formatChecks(checks))
  if (failed > 0) io.stderr.write(`${plural(failed, 'check')} failed: provisioning will fail until ${failed === 1 ? 'it is' : 'they are'} fixed\n`)
  // An outage proves nothing either way: not OK, and not a wrong setting.
  if (unknown > 0) io.stderr.write(`${plural(unknown, 'check')} could not be run: Linode did not answer, or its reply was malformed (see "got"); run it again later\n`)
  const settings = `Linode settings OK${warned > 0 ? ` (${plural(warned, 'warning')})` : ''}`
  if (failed + unknown === 0) io.stderr.write(repaired ? `${settings}\n` : `${settings}, but the firewall repair did not finish: see above\n`)
  else if (!repaired) io.stderr.write('the firewall repair did not finish: see above\n')
  return ok ? 0 : 1
}

if (isMain(import.meta)) await runCli(main)
