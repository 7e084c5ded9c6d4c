#!/usr/bin/env node
// Copies an embedded SQLite database into PostgreSQL verbatim — tenants, the subscription
// index, Stripe events, jobs and the audit log with its seq and MACs unchanged — then walks
// the audit chain on the target with PROVISION_AUDIT_SECRET to prove nothing was lost or altered.
import { existsSync, statSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { ConfigError, DEFAULT_AUDIT_SECRET, loadConfig, withoutUserinfo, type Config } from '../api/config.ts'
import { auditKeyFits, verifyStoredChain, type AuditVerdict } from '../api/provisioning/audit.ts'
import { settingRefusal, sqliteSettingProblem } from '../api/store/index.ts'
import { NotCtfhiveDatabase, SchemaAhead, SchemaBehind, holdsOtherTables, refuseAhead, refuseUnlessCurrent, tableList } from '../api/store/migrations.ts'
import { PostgresStore, SCHEMA_TABLES_SQL } from '../api/store/postgres.ts'
import { PgOps } from '../api/store/postgres-ops.ts'
import { TENANT_COLUMNS } from '../api/store/rows.ts'
import { Connection, SqliteOps, schemaStatus } from '../api/store/sqlite-ops.ts'
import { sqlitePathFromUrl } from '../api/store/sqlite.ts'
import type { Io } from './stripe-bootstrap.ts'
import { isMain, refuseRepeated, runCli } from './cli-output.ts'

type Env = Record<string, string | undefined>

export const USAGE = `Usage: node bootstrap/migrate-sqlite-to-postgres.ts --to postgres://… [--from sqlite:./data/ctfhive.db] [--force]

Copies tenants, subscriptions, stripe_events, jobs and audit_log from the SQLite database
into PostgreSQL (schema migrated first), keeping every seq and MAC, then verifies the audit
chain on the target with PROVISION_AUDIT_SECRET (it must be the server's).

  --from URL   the SQLite database (default: sqlite:./data/ctfhive.db)
  --to URL     the PostgreSQL database (default: DATABASE_URL when it is postgres://…)
  --force      replace the CTFHive data the target already holds (default: refuse a
               non-empty target); a database holding other tables is always refused

Stop the app first: writes made during the copy would not be copied.
Exit status: 0 copied and verified, 1 failed (non-empty target or another application's
database, broken chain, store error), 2 bad usage or configuration (a URL the server would
refuse, a wrong password or a database that does not exist, a file that is not SQLite; a
source at another release's schema, or a target a newer release migrated; PROVISION_AUDIT_SECRET
unset or the development default while the chain's first entry does not verify under it, or
not the key the chain was written with).
`

/**
 * Tables in copy order (parents first) with their columns, identical on both sides.
 * `rate_limits` is not copied: it holds the last minute's checkout counts.
 */
export const TABLES: ReadonlyArray<{ name: string, columns: readonly string[], order: string }> = [
  { name: 'tenants', columns: Object.values(TENANT_COLUMNS), order: 'id' },
  { name: 'subscriptions', columns: ['subscription_id', 'tenant_id'], order: 'subscription_id' },
  { name: 'stripe_events', columns: ['id', 'type', 'created', 'received', 'outcome', 'tenant', 'payload', 'unmatched_subscription'], order: 'id' },
  { name: 'jobs', columns: ['id', 'kind', 'tenant', 'status', 'step', 'step_at', 'attempts', 'run_after', 'lease_until', 'lease_owner', 'last_error', 'created_at', 'updated_at'], order: 'id' },
  { name: 'audit_log', columns: ['seq', 'at', 'tenant', 'action', 'detail', 'prev_mac', 'mac'], order: 'seq' }
]

const BATCH = 500
/** pg waits forever by default: a host that accepts TCP but never answers would hang the copy. */
export const CONNECT_TIMEOUT_MS = 10_000

class UsageError extends Error {}

const POSTGRES_URL = /^postgres(ql)?:\/\//i
/** Query parameters that may hold a secret: password, sslpassword, sslkey, … */
const SECRET_PARAM = /pass|key|secret/i

function decoded (text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    return text
  }
}

/**
 * The URL without its secrets (the userinfo's password, a query parameter such as ?password=
 * or ?sslpassword=), for messages. A value with no host (a bare file path, `user:pw@host`
 * without its scheme) or that does not parse is shown as it is, but for whatever stands
 * before its last `@` and the values of such parameters.
 */
export function redact (url: string): string {
  if (!URL.canParse(url) || new URL(url).host === '') {
    return withoutUserinfo(url).replace(/([?&])([^=&#]*)=([^&#]*)/g, (m, sep: string, name: string) => SECRET_PARAM.test(decoded(name)) ? `${sep}${name}=***` : m)
  }
  const u = new URL(url)
  if (u.password !== '') u.password = '***'
  for (const key of [...u.searchParams.keys()]) if (SECRET_PARAM.test(key)) u.searchParams.set(key, '***')
  return u.toString()
}

/**
 * `value` (of --from or --to) checked as the server checks DATABASE_URL, so the same value is
 * refused with the same reason here (a port out of range, an @ not percent-encoded), never
 * echoing its password; answered as the server would read it (trimmed, the scheme in lower case).
 */
function checkedUrl (env: Env, option: string, value: string): string {
  try {
    return loadConfig({ ...env, NODE_ENV: 'development', DATABASE_URL: value }).databaseUrl
  } catch (e) {
    if (e instanceof ConfigError && e.variable === 'DATABASE_URL') throw new UsageError(`${option} ${e.message.slice(`${e.variable}: `.length)}`)
    throw e
  }
}

function describe (v: AuditVerdict): string {
  return v.ok
    ? `ok (${v.entries} entries, last seq ${v.lastSeq})`
    : `BROKEN at seq ${v.badSeq} (${v.problem}): ${v.reason}`
}

export interface CopyResult {
  counts: Record<string, number>
  source: AuditVerdict
  target: AuditVerdict
}

export class TargetNotEmpty extends Error {}
/**
 * The source or the target cannot be used as its URL gives it (a wrong password, a database
 * that does not exist, a file that is not SQLite): only another --from or --to fixes it.
 */
export class UnusableDatabase extends Error {
  readonly option: 'from' | 'to'
  constructor (option: 'from' | 'to', message: string) {
    super(message)
    this.option = option
  }
}
/** The target holds tables of something else: nothing was written to it. */
export class TargetNotCtfhive extends Error {}
/**
 * PROVISION_AUDIT_SECRET is not the key the source's chain was written with, as the server
 * would refuse it (unset, or its last entry does not verify): a setting, not tampering.
 */
export class AuditKeyMismatch extends Error {}
/** The copy was not made (nothing written): the chain does not verify. */
export class ChainBroken extends Error {
  readonly result: CopyResult
  constructor (message: string, result: CopyResult) {
    super(message)
    this.result = result
  }
}

/**
 * Copies every table from one snapshot of the source, in one PostgreSQL transaction, and
 * commits only if the audit chain verifies on both sides: on a failure nothing is written.
 */
export async function copySqliteToPostgres (opts: { sqlitePath: string, postgresUrl: string, force: boolean, auditSecret: string, progress?: (line: string) => void, connectTimeoutMs?: number }): Promise<CopyResult> {
  const progress = opts.progress ?? (() => {})
  const connectTimeoutMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
  let source: DatabaseSync
  try {
    source = new DatabaseSync(opts.sqlitePath, { readOnly: true })
  } catch (err) {
    throw sourceProblem(err, opts.sqlitePath)
  }
  try {
    // Columns are copied by name: a database an older release left needs this release's
    // migrations (the server applies them when it starts on it) before it can be copied, and
    // one a newer release migrated has columns this release's lists would leave behind.
    const status = schemaStatus(source)
    refuseUnlessCurrent(status)
    refuseAhead(status, `the source (${opts.sqlitePath})`, '`npm run db:to-postgres`')
  } catch (err) {
    source.close()
    throw sourceProblem(err, opts.sqlitePath)
  }
  // One read transaction: every table from the same moment, even if a server still writes.
  source.exec('BEGIN')
  const store = new PostgresStore({ url: opts.postgresUrl, poolSize: 2, statementTimeoutMs: 0 })
  const client = new pg.Client({ connectionString: opts.postgresUrl, connectionTimeoutMillis: connectTimeoutMs })
  try {
    // Both chains are walked as the server's `audit verify` walks its own, a page at a time
    // (the same verdicts): read whole, a chain of a million entries exhausts a default heap.
    const sourceOps = new SqliteOps(new Connection(source, { readOnly: true }))
    // Entry 1 failing under the key is far more often the wrong key than tampering (as
    // `ctfhive audit verify` says it): a key the server would refuse is a setting to fix.
    const firstFits = await auditKeyFits(sourceOps, opts.auditSecret, 'first')
    if (!firstFits) {
      if (opts.auditSecret === DEFAULT_AUDIT_SECRET) {
        throw new AuditKeyMismatch('PROVISION_AUDIT_SECRET is not set (or is the development default), and the first entry of the source\'s audit chain does not verify under it: set the server\'s secret; nothing was copied')
      }
      if (!await auditKeyFits(sourceOps, opts.auditSecret, 'last')) {
        throw new AuditKeyMismatch('PROVISION_AUDIT_SECRET is not the key the source\'s audit chain was written with (neither its first nor its last entry verifies under it; the server would refuse to start with it): set the server\'s secret; nothing was copied')
      }
    }
    const sourceVerdict = await verifyStoredChain(sourceOps, opts.auditSecret)
    if (!sourceVerdict.ok) {
      const why = firstFits
        ? 'the source\'s audit chain does not verify, under a key that verifies its first entry'
        : 'the first entry of the source\'s audit chain does not verify under PROVISION_AUDIT_SECRET, though its last does: the key was changed while entries were being written, or entry 1 was altered'
      throw new ChainBroken(`${why} (\`ctfhive audit verify\` on it says more); nothing was copied`,
        { counts: {}, source: sourceVerdict, target: sourceVerdict })
    }
    // Our client first, with the caller's timeout: an unreachable target is one clear line
    // before the store's pool (which migrates) tries with its own.
    try {
      await client.connect()
    } catch (err) {
      // pg's connectionTimeoutMillis failure is a plain Error with this text and no code.
      const why = (err as Error).message === 'timeout expired' ? `no answer within ${connectTimeoutMs / 1000} s` : (err as Error).message
      throw targetProblem(new Error(`could not connect to PostgreSQL at ${redact(opts.postgresUrl)}: ${why}`, { cause: err }))
    }
    // Migrating creates tables: a database of another application (a wrong --to) must be
    // refused before, not after, or the refusal would leave CTFHive's tables among its own.
    const held = (await client.query(SCHEMA_TABLES_SQL)).rows.map((r) => String(r.name))
    if (holdsOtherTables(held)) {
      throw new TargetNotCtfhive(`the target is not a CTFHive database: it holds other tables (${tableList(held)}) and no schema_migrations table; give an empty database (nothing was written)`)
    }
    // Migrated by a newer release, it has columns this copy would leave empty, and that
    // release's server would not apply its migrations again to fill them.
    refuseAhead(await store.schema(), 'the target', '`npm run db:to-postgres` (or an empty database)')
    try {
      await store.migrate()
    } catch (err) {
      throw targetProblem(err)
    }
    await client.query('BEGIN')
    try {
      // Taken before the emptiness check, so two copies into one target cannot interleave.
      await client.query(`LOCK TABLE ${TABLES.map((t) => t.name).join(', ')} IN ACCESS EXCLUSIVE MODE`)
      const present: string[] = []
      for (const { name } of TABLES) {
        const r = await client.query(`SELECT count(*)::int AS n FROM ${name}`)
        if (r.rows[0].n > 0) present.push(`${name}: ${r.rows[0].n}`)
      }
      if (present.length > 0) {
        if (!opts.force) throw new TargetNotEmpty(`the target is not empty (${present.join(', ')}); use --force to replace its contents`)
        progress(`replacing the target's contents (${present.join(', ')})`)
        await client.query(`TRUNCATE ${TABLES.map((t) => t.name).join(', ')} RESTART IDENTITY`)
      }
      const counts: Record<string, number> = {}
      for (const { name, columns, order } of TABLES) {
        counts[name] = await copyTable(source, client, name, columns, order)
        progress(`${name}: ${counts[name]} rows`)
      }
      // Job ids were copied as they were: the identity must continue after the largest.
      await client.query("SELECT setval(pg_get_serial_sequence('jobs', 'id'), GREATEST((SELECT max(id) FROM jobs), 1), (SELECT max(id) FROM jobs) IS NOT NULL)")
      // Read back inside the transaction: the copy commits only if it is faithful.
      const result = { counts, source: sourceVerdict, target: await verifyStoredChain(new PgOps(client), opts.auditSecret) }
      if (!result.target.ok) throw new ChainBroken('the chain verifies on the source but not on the copy: it is not faithful; nothing was written', result)
      await client.query('COMMIT')
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    }
  } finally {
    source.exec('COMMIT')
    source.close()
    await client.end().catch(() => {})
    await store.close()
  }
}

/** An error opening or reading the source as a setting to fix when it is one (not a database file, not readable). */
function sourceProblem (err: unknown, path: string): unknown {
  const why = sqliteSettingProblem(err)
  return why === null ? err : new UnusableDatabase('from', `${path}: ${(err as Error).message} (${why})`)
}

/** PostgreSQL's refusal of the target that only another URL (or role) fixes: a wrong password, no such database. */
function targetProblem (err: unknown): unknown {
  // Another application's database stays a failure (exit 1), as the check before migrating says.
  const refusal = err instanceof NotCtfhiveDatabase ? null : settingRefusal(err)
  return refusal === null ? err : new UnusableDatabase('to', `${(err as Error).message}; ${refusal.message.slice(`${refusal.variable}: `.length)}`)
}

async function copyTable (source: DatabaseSync, client: pg.Client, table: string, columns: readonly string[], order: string): Promise<number> {
  const select = source.prepare(`SELECT ${columns.join(', ')} FROM ${table} ORDER BY ${order}`)
  let batch: unknown[][] = []
  let copied = 0
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return
    const values: unknown[] = []
    const tuples = batch.map((row) => {
      const start = values.length
      values.push(...row)
      return `(${row.map((_, i) => `$${start + i + 1}`).join(', ')})`
    })
    await client.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}`, values)
    copied += batch.length
    batch = []
  }
  // Stepped a row at a time, never read whole: stripe_events holds a payload per event.
  for (const row of select.iterate()) {
    const r = row as Record<string, unknown>
    batch.push(columns.map((c) => r[c] ?? null))
    if (batch.length >= BATCH) await flush()
  }
  await flush()
  return copied
}

export async function main (argv: string[], env: Env = process.env, io: Io = process, opts: { connectTimeoutMs?: number } = {}): Promise<number> {
  const out = (s: string): void => { io.stdout.write(s) }
  const err = (s: string): void => { io.stderr.write(s) }
  let from: string
  let to: string
  let force: boolean
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      options: { from: { type: 'string' }, to: { type: 'string' }, force: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
      tokens: true
    })
    // `--to A --to B --force` must not quietly empty B.
    refuseRepeated(parsed.tokens)
  } catch (e) {
    err(`error: ${(e as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (parsed.values.help === true) {
    out(USAGE)
    return 0
  }
  let config: Config
  try {
    // DATABASE_URL and PROVISION_AUDIT_SECRET as the server reads them (trimmed, defaulted):
    // a secret the server trims would otherwise fail entry 1 here as "modified". Not a
    // server start, so the production guard does not apply.
    config = loadConfig({ ...env, NODE_ENV: 'development' })
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    err(`error: ${e.message}\n`)
    return 2
  }
  // The target defaults to DATABASE_URL, which config checked already: messages name it.
  const toName = parsed.values.to === undefined ? 'DATABASE_URL' : '--to'
  try {
    from = (parsed.values.from ?? 'sqlite:./data/ctfhive.db').trim()
    to = (parsed.values.to ?? (POSTGRES_URL.test(config.databaseUrl) ? config.databaseUrl : '')).trim()
    force = parsed.values.force
    if (!/^sqlite:/i.test(from)) {
      // A bare path is the likely slip: say how to write it.
      const hint = URL.canParse(from) ? '' : ` (a file is given as sqlite:${redact(from)})`
      throw new UsageError(`--from must be a sqlite: URL, got ${redact(from)}${hint}`)
    }
    if (!POSTGRES_URL.test(to)) throw new UsageError(to === '' ? '--to postgres://… is required' : `--to must be a postgres:// URL, got ${redact(to)}`)
    from = checkedUrl(env, '--from', from)
    to = checkedUrl(env, '--to', to)
  } catch (e) {
    err(`error: ${(e as Error).message}\n\n${USAGE}`)
    return 2
  }
  const sqlitePath = sqlitePathFromUrl(from)
  if (!existsSync(sqlitePath)) {
    err(`error: no SQLite database at ${sqlitePath}\n`)
    return 2
  }
  if (statSync(sqlitePath).isDirectory()) {
    err(`error: --from names a directory, not an SQLite database file: ${sqlitePath}\n`)
    return 2
  }
  const auditSecret = config.auditSecret
  if (auditSecret === DEFAULT_AUDIT_SECRET) err('warning: PROVISION_AUDIT_SECRET is not set, or is the development default; the chain is verified with that default\n')

  err(`copying ${sqlitePath} → ${redact(to)}\n`)
  let result: CopyResult
  try {
    result = await copySqliteToPostgres({ sqlitePath, postgresUrl: to, force, auditSecret, progress: (line) => err(`  ${line}\n`), connectTimeoutMs: opts.connectTimeoutMs })
  } catch (e) {
    if (e instanceof ChainBroken) out(`source audit chain: ${describe(e.result.source)}\n`)
    if (e instanceof UnusableDatabase) {
      err(`error: ${e.option === 'from' ? '--from' : toName}: ${e.message}\n`)
      return 2
    }
    err(`error: ${(e as Error).message}\n`)
    // Settings and another release's schema: nothing failed, the wrong thing was asked.
    return e instanceof AuditKeyMismatch || e instanceof SchemaBehind || e instanceof SchemaAhead ? 2 : 1
  }
  for (const { name } of TABLES) out(`${name.padEnd(14)} ${result.counts[name]}\n`)
  out(`source audit chain: ${describe(result.source)}\n`)
  out(`target audit chain: ${describe(result.target)}\n`)
  return 0
}

if (isMain(import.meta)) await runCli(main)
