// The shared store on PostgreSQL (`pg`), for more than one process or host. Every process
// sees one truth: tenant changes take row locks (SELECT … FOR UPDATE), jobs are claimed with
// FOR UPDATE SKIP LOCKED, audit appends queue on a transaction-scoped advisory lock, and an
// event id is deduplicated by its primary key inside the effect's own transaction.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import {
  StoreError,
  type AuditEntry, type AuditInput, type AuditSeal, type Job, type JobKind, type JobPatch,
  type JobStatus, type Store, type StoreOps, type StripeEventRecord, type Tenant, type TenantFilter, type TenantPatch
} from './store.ts'
import {
  GENESIS_MAC, JOB_COLUMNS, TENANT_COLUMNS, auditFromRow, eventFromRow, jobFromRow, patchColumns, tenantFromRow,
  tenantPatchColumns, tenantValues
} from './rows.ts'

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations', 'postgres')
/** Advisory lock keys (arbitrary, fixed): one serialises migrations, one the audit chain. */
const MIGRATION_LOCK = 4_711_001
const AUDIT_LOCK = 4_711_002
/** How often a transaction is run again after a serialization failure, deadlock or unique race. */
const MAX_ATTEMPTS = 5
/**
 * 40001 serialization failure, 40P01 deadlock: PostgreSQL asks for a rerun. 23505: a
 * concurrent transaction inserted the same row first; a rerun sees it and takes the other path.
 */
const RETRYABLE = new Set(['40001', '40P01', '23505'])

type Row = Record<string, unknown>

interface Queryable {
  query (config: pg.QueryConfig): Promise<pg.QueryResult<Row>>
}

function nowIso (): string {
  return new Date().toISOString()
}

/** The SQLSTATE of a PostgreSQL error, also when wrapped in a StoreError. */
export function sqlState (err: unknown): string | undefined {
  const e = err instanceof StoreError ? err.cause : err
  return e instanceof pg.DatabaseError ? e.code : undefined
}

function toStoreError (err: unknown, what = 'postgres'): StoreError {
  if (err instanceof StoreError) return err
  const e = err as { message?: string, code?: string }
  return new StoreError(`${what}: ${e.message ?? String(err)}${e.code !== undefined ? ` (${e.code})` : ''}`, { cause: err })
}

// Named statements are prepared once per connection and reused: preparing per call costs
// as much as the round trip it saves.
const names = new Map<string, string>()
function statementName (text: string): string {
  let name = names.get(text)
  if (name === undefined) {
    name = `s_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`
    names.set(text, name)
  }
  return name
}

/** `$1, $2, …` from `start`. */
function placeholders (n: number, start = 1): string {
  return Array.from({ length: n }, (_, i) => `$${start + i}`).join(', ')
}

function tenantWhere (filter: TenantFilter): [string, unknown[]] {
  const clauses: string[] = []
  const params: unknown[] = []
  if (filter.billing !== undefined) { params.push(filter.billing); clauses.push(`billing = $${params.length}`) }
  if (filter.infra !== undefined) { params.push(filter.infra); clauses.push(`infra = $${params.length}`) }
  return [clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '', params]
}

/** Store operations on a pool (autocommit reads) or on one client inside BEGIN … COMMIT. */
class PgOps implements StoreOps {
  protected readonly db: Queryable

  constructor (db: Queryable) {
    this.db = db
  }

  protected async q (text: string, ...values: unknown[]): Promise<Row[]> {
    try {
      return (await this.db.query({ name: statementName(text), text, values })).rows
    } catch (err) {
      throw toStoreError(err)
    }
  }

  protected async one (text: string, ...values: unknown[]): Promise<Row | undefined> {
    return (await this.q(text, ...values))[0]
  }

  async getTenant (id: string): Promise<Tenant | undefined> {
    const row = await this.one('SELECT * FROM tenants WHERE id = $1', id)
    return row === undefined ? undefined : tenantFromRow(row)
  }

  async getTenantForUpdate (id: string): Promise<Tenant | undefined> {
    const row = await this.one('SELECT * FROM tenants WHERE id = $1 FOR UPDATE', id)
    return row === undefined ? undefined : tenantFromRow(row)
  }

  async findTenantIdBySubscription (subscriptionId: string): Promise<string | undefined> {
    const row = await this.one('SELECT tenant_id FROM subscriptions WHERE subscription_id = $1', subscriptionId)
    return row === undefined ? undefined : String(row.tenant_id)
  }

  async insertTenant (tenant: Tenant): Promise<void> {
    const columns = Object.values(TENANT_COLUMNS)
    await this.q(`INSERT INTO tenants (${columns.join(', ')}) VALUES (${placeholders(columns.length)})`, ...tenantValues(tenant))
  }

  async updateTenant (id: string, patch: TenantPatch): Promise<void> {
    const [columns, values] = tenantPatchColumns({ ...patch, updatedAt: patch.updatedAt ?? nowIso() })
    const set = columns.map((c, i) => `${c} = $${i + 2}`).join(', ')
    await this.q(`UPDATE tenants SET ${set} WHERE id = $1`, id, ...values)
  }

  async deleteTenant (id: string): Promise<void> {
    await this.q('DELETE FROM tenants WHERE id = $1', id)
  }

  async listTenants (filter: TenantFilter = {}): Promise<Tenant[]> {
    const [where, params] = tenantWhere(filter)
    const n = params.length
    const rows = await this.q(`SELECT * FROM tenants ${where} ORDER BY created_at DESC, id LIMIT $${n + 1} OFFSET $${n + 2}`,
      ...params, filter.limit ?? 100, filter.offset ?? 0)
    return rows.map(tenantFromRow)
  }

  async countTenants (filter: TenantFilter = {}): Promise<number> {
    const [where, params] = tenantWhere(filter)
    return Number((await this.one(`SELECT count(*) AS n FROM tenants ${where}`, ...params))?.n ?? 0)
  }

  async linkSubscription (subscriptionId: string, tenantId: string): Promise<void> {
    await this.q('INSERT INTO subscriptions (subscription_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', subscriptionId, tenantId)
  }

  // A concurrent insert of the same id waits for the first transaction, then finds the
  // conflict: exactly one of them gets its row back.
  async recordEvent (e: StripeEventRecord): Promise<boolean> {
    const rows = await this.q(
      'INSERT INTO stripe_events (id, type, created, received, outcome, tenant, payload) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING id',
      e.id, e.type, e.created, e.received, e.outcome, e.tenant, e.payload)
    return rows.length === 1
  }

  async getEvent (id: string): Promise<StripeEventRecord | undefined> {
    const row = await this.one('SELECT * FROM stripe_events WHERE id = $1', id)
    return row === undefined ? undefined : eventFromRow(row)
  }

  async listEvents (filter: { tenant?: string, limit?: number }): Promise<StripeEventRecord[]> {
    const limit = filter.limit ?? 100
    const rows = filter.tenant === undefined
      ? await this.q('SELECT * FROM stripe_events ORDER BY received DESC, id LIMIT $1', limit)
      : await this.q('SELECT * FROM stripe_events WHERE tenant = $1 ORDER BY created, received, id LIMIT $2', filter.tenant, limit)
    return rows.map(eventFromRow)
  }

  async enqueueJob (job: { kind: JobKind, tenant: string, runAfter: number }): Promise<Job> {
    // The partial unique index jobs_live admits one live job per tenant and kind; a live job
    // that ends between the failed insert and the look-up lets the next round insert.
    for (let round = 0; round < 3; round++) {
      const at = nowIso()
      const inserted = await this.one(
        `INSERT INTO jobs (kind, tenant, status, step, attempts, run_after, lease_until, created_at, updated_at)
         VALUES ($1, $2, 'queued', '', 0, $3, 0, $4, $4)
         ON CONFLICT (tenant, kind) WHERE status IN ('queued', 'running') DO NOTHING RETURNING *`,
        job.kind, job.tenant, job.runAfter, at)
      if (inserted !== undefined) return jobFromRow(inserted)
      const live = await this.one("SELECT * FROM jobs WHERE tenant = $1 AND kind = $2 AND status IN ('queued', 'running')", job.tenant, job.kind)
      if (live !== undefined) return jobFromRow(live)
    }
    throw new StoreError(`could not enqueue a ${job.kind} job for tenant ${job.tenant}`)
  }

  async claimNextJob (owner: string, now: number, leaseMs: number): Promise<Job | undefined> {
    const row = await this.one(
      `UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2, updated_at = $3
       WHERE id = (
         SELECT id FROM jobs
         WHERE (status = 'queued' AND run_after <= $4) OR (status = 'running' AND lease_until <= $4)
         ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      owner, now + leaseMs, nowIso(), now)
    return row === undefined ? undefined : jobFromRow(row)
  }

  async updateJob (id: number, patch: JobPatch): Promise<void> {
    const [columns, values] = patchColumns(patch, JOB_COLUMNS)
    const set = [...columns, 'updated_at'].map((c, i) => `${c} = $${i + 2}`).join(', ')
    await this.q(`UPDATE jobs SET ${set} WHERE id = $1`, id, ...values, nowIso())
  }

  async getJob (id: number): Promise<Job | undefined> {
    const row = await this.one('SELECT * FROM jobs WHERE id = $1', id)
    return row === undefined ? undefined : jobFromRow(row)
  }

  async listJobs (filter: { tenant?: string, status?: JobStatus }): Promise<Job[]> {
    const rows = await this.q('SELECT * FROM jobs WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR status = $2) ORDER BY id',
      filter.tenant ?? null, filter.status ?? null)
    return rows.map(jobFromRow)
  }

  async nextJobDueAt (): Promise<number | undefined> {
    const row = await this.one(
      "SELECT min(CASE WHEN status = 'queued' THEN run_after ELSE lease_until END) AS due FROM jobs WHERE status IN ('queued', 'running')")
    return row?.due === null || row?.due === undefined ? undefined : Number(row.due)
  }

  async releaseLeases (owner: string): Promise<number> {
    const rows = await this.q("UPDATE jobs SET lease_until = 0, lease_owner = NULL, updated_at = $2 WHERE status = 'running' AND lease_owner = $1 RETURNING id",
      owner, nowIso())
    return rows.length
  }

  // The advisory lock is held until this transaction ends, so every process appends behind
  // the last committed entry: one chain, no gaps, no forks.
  async appendAudit (input: AuditInput, seal: AuditSeal): Promise<AuditEntry> {
    await this.q('SELECT pg_advisory_xact_lock($1)', AUDIT_LOCK)
    const last = await this.one('SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1')
    const seq = last === undefined ? 1 : Number(last.seq) + 1
    const prevMac = last === undefined ? GENESIS_MAC : String(last.mac)
    const mac = seal(prevMac, seq)
    await this.q('INSERT INTO audit_log (seq, at, tenant, action, detail, prev_mac, mac) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      seq, input.at, input.tenant, input.action, JSON.stringify(input.detail), prevMac, mac)
    return { seq, ...input, prevMac, mac }
  }

  async listAudit (filter: { tenant?: string, afterSeq?: number, limit?: number }): Promise<AuditEntry[]> {
    const rows = await this.q('SELECT * FROM audit_log WHERE ($1::text IS NULL OR tenant = $1) AND seq > $2 ORDER BY seq LIMIT $3',
      filter.tenant ?? null, filter.afterSeq ?? 0, filter.limit ?? 1000)
    return rows.map(auditFromRow)
  }
}

export interface PostgresStoreOptions {
  /** `postgres://user:pass@host:port/db` (or `postgresql://…`; `?host=/socket/dir` works). */
  url: string
  poolSize?: number
  /** Per-connection statement_timeout; 0 leaves the server's default. */
  statementTimeoutMs?: number
}

export class PostgresStore extends PgOps implements Store {
  readonly kind = 'postgres' as const
  private readonly pool: pg.Pool
  private closed = false

  constructor (opts: PostgresStoreOptions) {
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      // Sent at connection start-up, so it holds for every statement on every connection.
      statement_timeout: opts.statementTimeoutMs !== undefined && opts.statementTimeoutMs > 0 ? opts.statementTimeoutMs : undefined,
      application_name: 'ctfhive'
    })
    super(pool as unknown as Queryable)
    this.pool = pool
    // An idle client losing its server must not crash the process; the next query reports it.
    pool.on('error', () => {})
  }

  /** Applies pending migrations; processes starting together queue on an advisory lock. */
  async migrate (): Promise<void> {
    const client = await this.connect()
    try {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
      try {
        await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)')
        const files = readdirSync(MIGRATIONS_DIR).filter((f) => /^\d+_.+\.sql$/.test(f)).sort()
        for (const file of files) {
          const version = Number.parseInt(file, 10)
          const done = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [version])
          if (done.rowCount !== 0) continue
          await client.query('BEGIN')
          try {
            await client.query(readFileSync(join(MIGRATIONS_DIR, file), 'utf8'))
            await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [version, file, nowIso()])
            await client.query('COMMIT')
          } catch (err) {
            await client.query('ROLLBACK').catch(() => {})
            throw toStoreError(err, `migration ${file} failed`)
          }
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK])
      }
    } catch (err) {
      throw toStoreError(err, 'migration failed')
    } finally {
      client.release()
    }
  }

  private async connect (): Promise<pg.PoolClient> {
    if (this.closed) throw new StoreError('store is closed')
    try {
      return await this.pool.connect()
    } catch (err) {
      throw toStoreError(err, 'could not connect to PostgreSQL')
    }
  }

  async transaction<T> (fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.connect()
      let broken: Error | undefined
      try {
        await control(client, 'BEGIN')
        const value = await fn(new PgOps(client as unknown as Queryable))
        await control(client, 'COMMIT')
        return value
      } catch (err) {
        try {
          await client.query('ROLLBACK')
        } catch (rollbackErr) {
          // The connection is unusable: the pool must drop it, not hand it out again.
          broken = rollbackErr as Error
        }
        if (attempt < MAX_ATTEMPTS && RETRYABLE.has(sqlState(err) ?? '') && broken === undefined) {
          await sleep(Math.floor(Math.random() * 10 * attempt))
          continue
        }
        // The function's own errors pass through unchanged; the store's are StoreErrors already.
        throw err
      } finally {
        client.release(broken)
      }
    }
  }

  // Writes reached on the store itself each run as their own transaction.
  override insertTenant (t: Tenant): Promise<void> { return this.transaction((tx) => tx.insertTenant(t)) }
  override updateTenant (id: string, p: TenantPatch): Promise<void> { return this.transaction((tx) => tx.updateTenant(id, p)) }
  override deleteTenant (id: string): Promise<void> { return this.transaction((tx) => tx.deleteTenant(id)) }
  override linkSubscription (s: string, t: string): Promise<void> { return this.transaction((tx) => tx.linkSubscription(s, t)) }
  override recordEvent (e: StripeEventRecord): Promise<boolean> { return this.transaction((tx) => tx.recordEvent(e)) }
  override enqueueJob (j: { kind: JobKind, tenant: string, runAfter: number }): Promise<Job> { return this.transaction((tx) => tx.enqueueJob(j)) }
  override claimNextJob (o: string, n: number, l: number): Promise<Job | undefined> { return this.transaction((tx) => tx.claimNextJob(o, n, l)) }
  override updateJob (id: number, p: JobPatch): Promise<void> { return this.transaction((tx) => tx.updateJob(id, p)) }
  override releaseLeases (o: string): Promise<number> { return this.transaction((tx) => tx.releaseLeases(o)) }
  override appendAudit (i: AuditInput, s: AuditSeal): Promise<AuditEntry> { return this.transaction((tx) => tx.appendAudit(i, s)) }
  // Outside a transaction a row lock would end with its own statement: a plain read says the same.
  override getTenantForUpdate (id: string): Promise<Tenant | undefined> { return this.getTenant(id) }

  override async q (text: string, ...values: unknown[]): Promise<Row[]> {
    if (this.closed) throw new StoreError('store is closed')
    return super.q(text, ...values)
  }

  async ping (): Promise<void> {
    await this.q('SELECT 1 AS ok')
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.end()
  }
}

async function control (client: pg.PoolClient, statement: 'BEGIN' | 'COMMIT'): Promise<void> {
  try {
    await client.query(statement)
  } catch (err) {
    throw toStoreError(err, `${statement} failed`)
  }
}
