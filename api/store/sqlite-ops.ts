// The SQLite statements: one connection's store operations, its settings and the migrations.
// The store (sqlite.ts) runs them on two connections: one for reads, one for group-committed writes.
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  RATE_CLOCK_SLACK_MS, StoreError,
  type AuditEntry, type AuditInput, type AuditSeal, type EventFilter, type EventOutcome, type EventPosition, type Job, type JobKind, type JobPatch,
  type JobStatus, type RateCount, type StoreOps, type StripeEventRecord, type Tenant, type TenantFilter, type TenantPatch
} from './store.ts'
import { migrationFiles, schemaStatusOf, type SchemaStatus } from './migrations.ts'
import { auditQuery, jobsQuery, payloadsBeforeQuery, recentEventsQuery } from './queries.ts'
import {
  GENESIS_MAC, JOB_COLUMNS, PRUNE_BATCH, RECLAIM_COUNTS, TENANT_COLUMNS, WITH_SERVER, auditFromRow, eventFromRow, jobFromRow, patchColumns, tenantFromRow,
  tenantPatchColumns, tenantValues
} from './rows.ts'

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations', 'sqlite')

type Row = Record<string, unknown>

// SQLite runs the shared listing queries as they are written.
export { auditQuery, jobsQuery, payloadsBeforeQuery, recentEventsQuery }

/**
 * A window ends at its reset_at, or once it ends more than a window (and a second's slack for
 * the clocks of instances) from now: the clock was stepped back after it began, and would
 * otherwise keep the client refused for the step's size.
 */
const RATE_ENDED = `rate_limits.reset_at <= ? OR rate_limits.reset_at > excluded.reset_at + ${RATE_CLOCK_SLACK_MS}`
const RATE_HIT_SQL = `INSERT INTO rate_limits (key, count, reset_at) VALUES (?, 1, ?)
  ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN ${RATE_ENDED} THEN 1 ELSE rate_limits.count + 1 END,
    reset_at = CASE WHEN ${RATE_ENDED} THEN excluded.reset_at ELSE rate_limits.reset_at END
  RETURNING count, reset_at`

export class Connection {
  readonly db: DatabaseSync
  private readonly statements = new Map<string, StatementSync>()
  private readonly writesInTransaction: boolean
  private readonly readOnly: boolean
  private readonly onError: ((err: unknown) => void) | undefined
  private closed = false

  /**
   * `writesInTransaction`: the group-commit writer, whose every write belongs to a batch.
   * `readOnly`: the store's reader, beside that writer; a write through it would contend for
   * the lock with the writer's batch (blocking the process for the busy timeout).
   * `onError`: sees every error a statement throws (the store notes a damaged file from them).
   */
  constructor (db: DatabaseSync, opts: { writesInTransaction?: boolean, readOnly?: boolean, onError?: (err: unknown) => void } = {}) {
    this.db = db
    this.writesInTransaction = opts.writesInTransaction ?? false
    this.readOnly = opts.readOnly ?? false
    this.onError = opts.onError
  }

  close (): void {
    this.closed = true
    this.db.close()
  }

  // Prepared statements are cached: preparing per call halves throughput.
  stmt (sql: string): StatementSync {
    // As PostgreSQL's store says it, rather than node:sqlite's plain "database is not open".
    if (this.closed) throw new StoreError('store is closed')
    let s = this.statements.get(sql)
    if (s === undefined) {
      s = this.db.prepare(sql)
      this.statements.set(sql, s)
    }
    return s
  }

  run (sql: string, ...params: unknown[]): { changes: number | bigint, lastInsertRowid: number | bigint } {
    this.refuseOutsideBatch()
    try {
      return this.stmt(sql).run(...(params as SQLInputValue[]))
    } catch (err) {
      this.failed(err)
    }
  }

  /** A write that answers a row (`RETURNING`). */
  returning (sql: string, ...params: unknown[]): Row | undefined {
    this.refuseOutsideBatch()
    return this.get(sql, ...params)
  }

  private refuseOutsideBatch (): void {
    if (this.readOnly) throw new StoreError('a write reached the read connection: it must go through transaction()')
    // After SQLite rolled a batch back itself (full disk, I/O error), a write would autocommit
    // on its own, outside the batch whose callers are all about to get an error.
    if (this.writesInTransaction && !this.db.isTransaction) throw new StoreError('the transaction was rolled back by SQLite')
  }

  get (sql: string, ...params: unknown[]): Row | undefined {
    try {
      return this.stmt(sql).get(...(params as SQLInputValue[])) as Row | undefined
    } catch (err) {
      this.failed(err)
    }
  }

  all (sql: string, ...params: unknown[]): Row[] {
    try {
      return this.stmt(sql).all(...(params as SQLInputValue[])) as Row[]
    } catch (err) {
      this.failed(err)
    }
  }

  private failed (err: unknown): never {
    this.onError?.(err)
    throw err
  }
}

/** SQLite's primary result codes the store tells apart (sqliteCode). */
export const SQLITE = { READONLY: 8, IOERR: 10, CORRUPT: 11, CANTOPEN: 14, NOTADB: 26 } as const

/**
 * SQLite's primary result code (SQLITE.CORRUPT is 11) of `err` or of an error it was caused
 * by; undefined when none came from SQLite. Extended codes keep the primary one in the low byte.
 */
export function sqliteCode (err: unknown): number | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { errcode?: unknown }).errcode
    if (typeof code === 'number') return code & 0xff
  }
  return undefined
}

function nowIso (): string {
  return new Date().toISOString()
}

/**
 * The WHERE of a count of tenants, or with `listing` of a page of them. A page of a (billing,
 * infra) pair, as the admin's state listing asks, reads along tenants_state (migration 015) from
 * its pair's first row in its order; its count reads that index alone. Any other page reads along
 * tenants_created (migration 012) in its order and stops when full. A billing alone is written
 * `+billing` then, which tenants_billing cannot serve: SQLite keeps no statistics and would take
 * that index for any billing, reading and sorting every tenant of it (most of the table for
 * 'paid').
 */
function tenantWhere (filter: TenantFilter, listing = false): [string, unknown[]] {
  const clauses: string[] = []
  const params: unknown[] = []
  const alongCreated = listing && filter.infra === undefined
  if (filter.billing !== undefined) { clauses.push(alongCreated ? '+billing = ?' : 'billing = ?'); params.push(filter.billing) }
  if (filter.infra !== undefined) { clauses.push('infra = ?'); params.push(filter.infra) }
  // Past `after` in listTenants' order: older, or as old with a greater id. The first term is
  // a range on the index, so a page seeks to where the one before ended instead of reading it.
  if (filter.after !== undefined) { clauses.push('created_at <= ? AND (created_at < ? OR id > ?)'); params.push(filter.after.createdAt, filter.after.createdAt, filter.after.id) }
  return [clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '', params]
}

/** A page of listTenants: newest first, then by id, as tenants_created (012) and tenants_state (015) hold them. */
export function tenantsQuery (filter: TenantFilter): [string, unknown[]] {
  const [where, params] = tenantWhere(filter, true)
  return [`SELECT * FROM tenants ${where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?`, [...params, filter.limit ?? 100, filter.offset ?? 0]]
}

/** countTenants' query: a (billing, infra) pair counts along tenants_state (015) alone. */
export function tenantCountQuery (filter: TenantFilter): [string, unknown[]] {
  const [where, params] = tenantWhere(filter)
  return [`SELECT count(*) AS n FROM tenants ${where}`, params]
}

/** Store operations on one connection; writes are only reached inside a transaction. */
export class SqliteOps implements StoreOps {
  protected readonly conn: Connection

  constructor (conn: Connection) {
    this.conn = conn
  }

  /** One host: its clock is the store's. */
  now (): number {
    return Date.now()
  }

  private nowIso (): string {
    return new Date(this.now()).toISOString()
  }

  async getTenant (id: string): Promise<Tenant | undefined> {
    const row = this.conn.get('SELECT * FROM tenants WHERE id = ?', id)
    return row === undefined ? undefined : tenantFromRow(row)
  }

  // The writer holds the database lock for the whole transaction: the row is already ours.
  getTenantForUpdate (id: string): Promise<Tenant | undefined> {
    return this.getTenant(id)
  }

  async getTenantBySlug (slug: string): Promise<Tenant | undefined> {
    const row = this.conn.get('SELECT * FROM tenants WHERE slug = ?', slug)
    return row === undefined ? undefined : tenantFromRow(row)
  }

  async findTenantIdBySubscription (subscriptionId: string): Promise<string | undefined> {
    const row = this.conn.get('SELECT tenant_id FROM subscriptions WHERE subscription_id = ?', subscriptionId)
    return row === undefined ? undefined : String(row.tenant_id)
  }

  async insertTenant (tenant: Tenant): Promise<void> {
    const columns = Object.values(TENANT_COLUMNS)
    this.conn.run(`INSERT INTO tenants (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`, ...tenantValues(tenant))
  }

  async assignFqdns (baseDomain: string): Promise<number> {
    return Number(this.conn.run("UPDATE tenants SET fqdn = slug || '.' || ? WHERE fqdn IS NULL", baseDomain).changes)
  }

  async tenantDomains (opts: { withServer?: boolean } = {}): Promise<string[]> {
    return this.conn.all(`SELECT DISTINCT substr(fqdn, instr(fqdn, '.') + 1) AS domain FROM tenants WHERE fqdn IS NOT NULL${opts.withServer === true ? WITH_SERVER : ''} ORDER BY domain`).map((r) => String(r.domain))
  }

  async updateTenant (id: string, patch: TenantPatch): Promise<void> {
    const [columns, values] = tenantPatchColumns({ ...patch, updatedAt: patch.updatedAt ?? this.nowIso() })
    this.conn.run(`UPDATE tenants SET ${columns.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`, ...values, id)
  }

  async deleteTenant (id: string): Promise<void> {
    this.conn.run('DELETE FROM tenants WHERE id = ?', id)
  }

  async listTenants (filter: TenantFilter = {}): Promise<Tenant[]> {
    const [sql, params] = tenantsQuery(filter)
    return this.conn.all(sql, ...params).map(tenantFromRow)
  }

  async countTenants (filter: TenantFilter = {}): Promise<number> {
    const [sql, params] = tenantCountQuery(filter)
    return Number(this.conn.get(sql, ...params)?.n ?? 0)
  }

  async linkSubscription (subscriptionId: string, tenantId: string): Promise<void> {
    this.conn.run('INSERT INTO subscriptions (subscription_id, tenant_id) VALUES (?, ?) ON CONFLICT DO NOTHING', subscriptionId, tenantId)
  }

  async lockSubscription (_subscriptionId: string): Promise<void> {
    // Write transactions run one at a time (one writer, BEGIN IMMEDIATE across processes).
  }

  async recordEvent (e: StripeEventRecord): Promise<boolean> {
    const r = this.conn.run(
      'INSERT INTO stripe_events (id, type, created, received, outcome, tenant, payload, unmatched_subscription) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
      e.id, e.type, e.created, e.received, e.outcome, e.tenant, e.payload, e.unmatchedSubscription ?? null)
    return Number(r.changes) === 1
  }

  async listUnmatchedEvents (subscriptionId: string): Promise<StripeEventRecord[]> {
    return this.conn.all('SELECT * FROM stripe_events WHERE unmatched_subscription = ? ORDER BY created, received, id', subscriptionId).map(eventFromRow)
  }

  async settleEvent (id: string, outcome: EventOutcome, tenant: string | null): Promise<void> {
    this.conn.run('UPDATE stripe_events SET outcome = ?, tenant = ?, unmatched_subscription = NULL WHERE id = ?', outcome, tenant, id)
  }

  async getEvent (id: string): Promise<StripeEventRecord | undefined> {
    const row = this.conn.get('SELECT * FROM stripe_events WHERE id = ?', id)
    return row === undefined ? undefined : eventFromRow(row)
  }

  async listEvents (filter: EventFilter): Promise<StripeEventRecord[]> {
    if (filter.tenant === undefined) {
      const [sql, params] = recentEventsQuery(filter)
      return this.conn.all(sql, ...params).map(eventFromRow)
    }
    const rows = this.conn.all(`SELECT * FROM (SELECT * FROM stripe_events WHERE tenant = ? ORDER BY created DESC, received DESC, id DESC LIMIT ?)
          ORDER BY created, received, id`, filter.tenant, filter.limit ?? 100)
    return rows.map(eventFromRow)
  }

  async listPayloadsBefore (before: string, after: EventPosition | undefined, limit: number): Promise<EventPosition[]> {
    const [sql, params] = payloadsBeforeQuery(before, after, limit)
    return this.conn.all(sql, ...params).map((r) => ({ received: String(r.received), id: String(r.id) }))
  }

  async blankPayloads (which: { ids: readonly string[] } | { tenant: string }): Promise<number> {
    const r = 'tenant' in which
      ? this.conn.run("UPDATE stripe_events SET payload = '' WHERE tenant = ? AND payload <> '' AND unmatched_subscription IS NULL", which.tenant)
      : this.conn.run("UPDATE stripe_events SET payload = '' WHERE id IN (SELECT value FROM json_each(?)) AND payload <> '' AND unmatched_subscription IS NULL", JSON.stringify(which.ids))
    return Number(r.changes)
  }

  async enqueueJob (job: { kind: JobKind, tenant: string, runAfter: number }): Promise<Job> {
    const live = this.conn.get("SELECT * FROM jobs WHERE tenant = ? AND kind = ? AND status IN ('queued', 'running')", job.tenant, job.kind)
    if (live !== undefined) return jobFromRow(live)
    const at = this.nowIso()
    const r = this.conn.run(
      "INSERT INTO jobs (kind, tenant, status, step, step_at, attempts, run_after, lease_until, created_at, updated_at) VALUES (?, ?, 'queued', '', ?, 0, ?, 0, ?, ?)",
      job.kind, job.tenant, Date.parse(at), job.runAfter, at, at)
    return jobFromRow(this.conn.get('SELECT * FROM jobs WHERE id = ?', r.lastInsertRowid)!)
  }

  // A provisioning under way first among the due jobs: one handed back at a stop, taken over
  // from a dead worker, or waiting for its health check (which gives its creation slot back at
  // once, jobs.ts, so it delays no create). Its buyer paid before any whose provisioning has not
  // begun, and behind those it would wait for every new server before its own was found ready.
  // Then a provisioning not begun: a buyer who just paid waits for no teardown or resize that
  // came due earlier. jobs_due finds the due ones; only they are sorted.
  async claimNextJob (owner: string, now: number, leaseMs: number): Promise<Job | undefined> {
    const row = this.conn.get(
      "SELECT id FROM jobs WHERE (status = 'queued' AND run_after <= ?) OR (status = 'running' AND lease_until <= ?) ORDER BY CASE WHEN kind <> 'provision' THEN 2 WHEN step <> '' THEN 0 ELSE 1 END, run_after, id LIMIT 1",
      now, now)
    if (row === undefined) return undefined
    this.conn.run(`UPDATE jobs SET ${RECLAIM_COUNTS}, status = 'running', lease_owner = ?, lease_until = ?, updated_at = ? WHERE id = ?`,
      owner, now + leaseMs, this.nowIso(), row.id)
    return jobFromRow(this.conn.get('SELECT * FROM jobs WHERE id = ?', row.id)!)
  }

  async updateJob (id: number, patch: JobPatch): Promise<void> {
    const [columns, values] = patchColumns(patch, JOB_COLUMNS)
    this.conn.run(`UPDATE jobs SET ${[...columns, 'updated_at'].map((c) => `${c} = ?`).join(', ')} WHERE id = ?`, ...values, this.nowIso(), id)
  }

  async getJob (id: number): Promise<Job | undefined> {
    const row = this.conn.get('SELECT * FROM jobs WHERE id = ?', id)
    return row === undefined ? undefined : jobFromRow(row)
  }

  // One writer at a time: a transaction's read is already as good as a lock.
  getJobForUpdate (id: number): Promise<Job | undefined> {
    return this.getJob(id)
  }

  async listJobs (filter: { tenant?: string, status?: JobStatus }): Promise<Job[]> {
    const [sql, params] = jobsQuery(filter)
    return this.conn.all(sql, ...params).map(jobFromRow)
  }

  async nextJobDueAt (): Promise<number | undefined> {
    const row = this.conn.get(
      "SELECT min(CASE WHEN status = 'queued' THEN run_after ELSE lease_until END) AS due FROM jobs WHERE status IN ('queued', 'running')")
    return row?.due === null || row?.due === undefined ? undefined : Number(row.due)
  }

  async releaseLeases (owner: string): Promise<number> {
    const r = this.conn.run("UPDATE jobs SET lease_until = 0, lease_owner = NULL, updated_at = ? WHERE status = 'running' AND lease_owner = ?", this.nowIso(), owner)
    return Number(r.changes)
  }

  async countHit (key: string, windowMs: number, now: number): Promise<RateCount> {
    const row = this.conn.returning(RATE_HIT_SQL, key, now + windowMs, now, now)!
    // A new window: clear some ended ones then. Bounded, as this runs in a shared write batch;
    // every key once began a window, so the clearing keeps up with the keys that end.
    if (Number(row.count) === 1) this.conn.run(`DELETE FROM rate_limits WHERE key IN (SELECT key FROM rate_limits WHERE reset_at <= ? LIMIT ${PRUNE_BATCH})`, now)
    return { count: Number(row.count), resetAt: Number(row.reset_at) }
  }

  async appendAudit (input: AuditInput, seal: AuditSeal): Promise<AuditEntry> {
    const row = this.conn.get('SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1')
    const last = row === undefined ? undefined : auditFromRow(row)
    const seq = last === undefined ? 1 : last.seq + 1
    const prevMac = last === undefined ? GENESIS_MAC : last.mac
    const mac = seal(prevMac, seq, last)
    this.conn.run('INSERT INTO audit_log (seq, at, tenant, action, detail, prev_mac, mac) VALUES (?, ?, ?, ?, ?, ?, ?)',
      seq, input.at, input.tenant, input.action, JSON.stringify(input.detail), prevMac, mac)
    return { seq, ...input, prevMac, mac }
  }

  async listAudit (filter: { tenant?: string, afterSeq?: number, limit?: number, newest?: boolean }): Promise<AuditEntry[]> {
    const [sql, params] = auditQuery(filter)
    return this.conn.all(sql, ...params).map(auditFromRow)
  }
}

/** SQLite's primary result code for "database is locked". */
const SQLITE_BUSY = 5
/** Between tries of a statement that does not wait in SQLite's busy handler. */
const BUSY_RETRY_MS = 5

/** Lets another process's lock be waited for by statements run before configure(). */
export function setBusyTimeout (db: DatabaseSync, busyTimeoutMs: number): void {
  db.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}`)
}

export function configure (db: DatabaseSync, busyTimeoutMs: number): void {
  setBusyTimeout(db, busyTimeoutMs)
  // While another connection holds the write lock of a file still in rollback-journal mode (a
  // process creating it at the same moment), switching to WAL fails at once with SQLITE_BUSY,
  // the busy handler not called: tried again until the busy timeout is spent. Opening is
  // synchronous, hence Atomics.wait.
  const until = Date.now() + busyTimeoutMs
  for (;;) {
    try {
      db.exec('PRAGMA journal_mode = WAL')
      break
    } catch (err) {
      if (sqliteCode(err) !== SQLITE_BUSY || Date.now() >= until) throw err
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, BUSY_RETRY_MS)
    }
  }
  db.exec('PRAGMA synchronous = FULL')
  db.exec('PRAGMA foreign_keys = ON')
}

/** The tables and views of `db`, SQLite's own (sqlite_*) left out. */
export function tableNames (db: DatabaseSync): string[] {
  return db.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND substr(name, 1, 7) <> 'sqlite_' ORDER BY 1").all().map((r) => String(r.name))
}

/** What this release would apply to `db`, and what it has that this release does not know. */
export function schemaStatus (db: DatabaseSync): SchemaStatus {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get()
  const applied = table === undefined ? undefined : db.prepare('SELECT version FROM schema_migrations').all().map((r) => Number(r.version))
  return schemaStatusOf(migrationFiles(MIGRATIONS_DIR), applied)
}

export function migrate (db: DatabaseSync): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)')
  for (const file of migrationFiles(MIGRATIONS_DIR)) {
    const version = Number.parseInt(file, 10)
    db.exec('BEGIN IMMEDIATE')
    try {
      // Re-checked under the lock: another process may have migrated meanwhile.
      const done = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(version)
      if (done === undefined) {
        db.exec(readFileSync(join(MIGRATIONS_DIR, file), 'utf8'))
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(version, file, nowIso())
      }
      db.exec('COMMIT')
    } catch (err) {
      // On a full disk or an I/O error SQLite has rolled back already: a ROLLBACK then throws
      // ("no transaction is active") and would hide the cause the operator needs.
      if (db.isTransaction) db.exec('ROLLBACK')
      throw new StoreError(`migration ${file} failed: ${(err as Error).message}`, { cause: err })
    }
  }
}
