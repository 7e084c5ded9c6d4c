// The PostgreSQL statements: the store operations on a pool (autocommit reads) or on one
// client inside a transaction (postgres.ts runs those). Row locks for tenant changes, FOR
// UPDATE SKIP LOCKED for jobs, an advisory lock for the audit chain.
import { createHash } from 'node:crypto'
import pg from 'pg'
import {
  RATE_CLOCK_SLACK_MS, StoreError,
  type AuditEntry, type AuditInput, type AuditSeal, type EventFilter, type EventOutcome, type EventPosition, type Job, type JobKind, type JobPatch,
  type JobStatus, type RateCount, type StoreOps, type StripeEventRecord, type Tenant, type TenantFilter, type TenantPatch
} from './store.ts'
import * as shared from './queries.ts'
import {
  GENESIS_MAC, JOB_COLUMNS, PRUNE_BATCH, RECLAIM_COUNTS, TENANT_COLUMNS, WITH_SERVER, auditFromRow, eventFromRow, jobFromRow, patchColumns, tenantFromRow,
  tenantPatchColumns, tenantValues
} from './rows.ts'

/** Advisory lock key (arbitrary, fixed) that serialises appends to the audit chain. */
const AUDIT_LOCK = 4_711_002
/**
 * A window ends at its reset_at, or once it ends more than a window (and a second's slack for
 * the clocks of instances) from now: the clock was stepped back after it began, and would
 * otherwise keep the client refused for the step's size.
 */
const RATE_ENDED = `rate_limits.reset_at <= $3 OR rate_limits.reset_at > excluded.reset_at + ${RATE_CLOCK_SLACK_MS}`

export type Row = Record<string, unknown>

export interface Queryable {
  query (config: pg.QueryConfig): Promise<pg.QueryResult<Row>>
}

export function nowIso (): string {
  return new Date().toISOString()
}

/** The SQLSTATE of a PostgreSQL error, also when wrapped in a StoreError. */
export function sqlState (err: unknown): string | undefined {
  const e = err instanceof StoreError ? err.cause : err
  return e instanceof pg.DatabaseError ? e.code : undefined
}

export function toStoreError (err: unknown, what = 'postgres'): StoreError {
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
  // Past `after` in listTenants' order: older, or as old with a greater id (both COLLATE "C").
  // The first term is a range on tenants_created (migration 012), or after a (billing, infra)
  // pair on tenants_state (015), so a page starts where the one before ended instead of reading
  // it again.
  if (filter.after !== undefined) {
    params.push(filter.after.createdAt, filter.after.id)
    clauses.push(`created_at <= $${params.length - 1} AND (created_at < $${params.length - 1} OR id > $${params.length})`)
  }
  return [clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '', params]
}

/**
 * A page of listTenants: newest first, then by id, as tenants_created (012) holds them, and
 * tenants_state (015) those of each (billing, infra) pair, the admin's state listing. With a
 * billing or infra alone the planner weighs tenants_created against a sort of the few that match.
 */
export function tenantsQuery (filter: TenantFilter): [string, unknown[]] {
  const [where, params] = tenantWhere(filter)
  const n = params.length
  return [`SELECT * FROM tenants ${where} ORDER BY created_at DESC, id LIMIT $${n + 1} OFFSET $${n + 2}`, [...params, filter.limit ?? 100, filter.offset ?? 0]]
}

/** countTenants' query: a (billing, infra) pair counts along tenants_state (015). */
export function tenantCountQuery (filter: TenantFilter): [string, unknown[]] {
  const [where, params] = tenantWhere(filter)
  return [`SELECT count(*) AS n FROM tenants ${where}`, params]
}

/** The shared listing queries (queries.ts), with PostgreSQL's numbered placeholders. */
export const jobsQuery = (filter: Parameters<typeof shared.jobsQuery>[0]): [string, unknown[]] => shared.numbered(shared.jobsQuery(filter))
export const auditQuery = (filter: Parameters<typeof shared.auditQuery>[0]): [string, unknown[]] => shared.numbered(shared.auditQuery(filter))
export const recentEventsQuery = (filter: Parameters<typeof shared.recentEventsQuery>[0]): [string, unknown[]] => shared.numbered(shared.recentEventsQuery(filter))
export const payloadsBeforeQuery = (...args: Parameters<typeof shared.payloadsBeforeQuery>): [string, unknown[]] => shared.numbered(shared.payloadsBeforeQuery(...args))

/** Store operations on a pool (autocommit reads) or on one client inside BEGIN … COMMIT. */
export class PgOps implements StoreOps {
  protected readonly db: Queryable
  private readonly clock: () => number

  /** `clock`: the store's (PostgresStore.now); a transaction's operations share it. */
  constructor (db: Queryable, clock: () => number = Date.now) {
    this.db = db
    this.clock = clock
  }

  now (): number {
    return this.clock()
  }

  private nowIso (): string {
    return new Date(this.now()).toISOString()
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

  async getTenantBySlug (slug: string): Promise<Tenant | undefined> {
    const row = await this.one('SELECT * FROM tenants WHERE slug = $1', slug)
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

  async assignFqdns (baseDomain: string): Promise<number> {
    return (await this.q("UPDATE tenants SET fqdn = slug || '.' || $1 WHERE fqdn IS NULL RETURNING id", baseDomain)).length
  }

  async tenantDomains (opts: { withServer?: boolean } = {}): Promise<string[]> {
    return (await this.q(`SELECT DISTINCT substr(fqdn, strpos(fqdn, '.') + 1) AS domain FROM tenants WHERE fqdn IS NOT NULL${opts.withServer === true ? WITH_SERVER : ''} ORDER BY domain`)).map((r) => String(r.domain))
  }

  async updateTenant (id: string, patch: TenantPatch): Promise<void> {
    const [columns, values] = tenantPatchColumns({ ...patch, updatedAt: patch.updatedAt ?? this.nowIso() })
    const set = columns.map((c, i) => `${c} = $${i + 2}`).join(', ')
    await this.q(`UPDATE tenants SET ${set} WHERE id = $1`, id, ...values)
  }

  async deleteTenant (id: string): Promise<void> {
    await this.q('DELETE FROM tenants WHERE id = $1', id)
  }

  async listTenants (filter: TenantFilter = {}): Promise<Tenant[]> {
    const [sql, params] = tenantsQuery(filter)
    return (await this.q(sql, ...params)).map(tenantFromRow)
  }

  async countTenants (filter: TenantFilter = {}): Promise<number> {
    const [sql, params] = tenantCountQuery(filter)
    return Number((await this.one(sql, ...params))?.n ?? 0)
  }

  async linkSubscription (subscriptionId: string, tenantId: string): Promise<void> {
    await this.q('INSERT INTO subscriptions (subscription_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', subscriptionId, tenantId)
  }

  async lockSubscription (subscriptionId: string): Promise<void> {
    // Prefixed so no other advisory lock of this database shares the key by accident.
    await this.q("SELECT pg_advisory_xact_lock(hashtextextended('ctfhive:subscription:' || $1, 0))", subscriptionId)
  }

  // A concurrent insert of the same id waits for the first transaction, then finds the
  // conflict: exactly one of them gets its row back.
  async recordEvent (e: StripeEventRecord): Promise<boolean> {
    const rows = await this.q(
      'INSERT INTO stripe_events (id, type, created, received, outcome, tenant, payload, unmatched_subscription) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING id',
      e.id, e.type, e.created, e.received, e.outcome, e.tenant, e.payload, e.unmatchedSubscription ?? null)
    return rows.length === 1
  }

  async listUnmatchedEvents (subscriptionId: string): Promise<StripeEventRecord[]> {
    return (await this.q('SELECT * FROM stripe_events WHERE unmatched_subscription = $1 ORDER BY created, received, id', subscriptionId)).map(eventFromRow)
  }

  async settleEvent (id: string, outcome: EventOutcome, tenant: string | null): Promise<void> {
    await this.q('UPDATE stripe_events SET outcome = $1, tenant = $2, unmatched_subscription = NULL WHERE id = $3', outcome, tenant, id)
  }

  async getEvent (id: string): Promise<StripeEventRecord | undefined> {
    const row = await this.one('SELECT * FROM stripe_events WHERE id = $1', id)
    return row === undefined ? undefined : eventFromRow(row)
  }

  async listEvents (filter: EventFilter): Promise<StripeEventRecord[]> {
    if (filter.tenant === undefined) {
      const [sql, params] = recentEventsQuery(filter)
      return (await this.q(sql, ...params)).map(eventFromRow)
    }
    const rows = await this.q(`SELECT * FROM (SELECT * FROM stripe_events WHERE tenant = $1 ORDER BY created DESC, received DESC, id DESC LIMIT $2) AS recent
          ORDER BY created, received, id`, filter.tenant, filter.limit ?? 100)
    return rows.map(eventFromRow)
  }

  async listPayloadsBefore (before: string, after: EventPosition | undefined, limit: number): Promise<EventPosition[]> {
    const [sql, params] = payloadsBeforeQuery(before, after, limit)
    return (await this.q(sql, ...params)).map((r) => ({ received: String(r.received), id: String(r.id) }))
  }

  async blankPayloads (which: { ids: readonly string[] } | { tenant: string }): Promise<number> {
    const rows = 'tenant' in which
      ? await this.q("UPDATE stripe_events SET payload = '' WHERE tenant = $1 AND payload <> '' AND unmatched_subscription IS NULL RETURNING id", which.tenant)
      : await this.q("UPDATE stripe_events SET payload = '' WHERE id = ANY($1::text[]) AND payload <> '' AND unmatched_subscription IS NULL RETURNING id", [...which.ids])
    return rows.length
  }

  async enqueueJob (job: { kind: JobKind, tenant: string, runAfter: number }): Promise<Job> {
    // The partial unique index jobs_live admits one live job per tenant and kind; a live job
    // that ends between the failed insert and the look-up lets the next round insert.
    for (let round = 0; round < 3; round++) {
      const at = this.nowIso()
      const inserted = await this.one(
        `INSERT INTO jobs (kind, tenant, status, step, step_at, attempts, run_after, lease_until, created_at, updated_at)
         VALUES ($1, $2, 'queued', '', $5, 0, $3, 0, $4, $4)
         ON CONFLICT (tenant, kind) WHERE status IN ('queued', 'running') DO NOTHING RETURNING *`,
        job.kind, job.tenant, job.runAfter, at, Date.parse(at))
      if (inserted !== undefined) return jobFromRow(inserted)
      const live = await this.one("SELECT * FROM jobs WHERE tenant = $1 AND kind = $2 AND status IN ('queued', 'running')", job.tenant, job.kind)
      if (live !== undefined) return jobFromRow(live)
    }
    throw new StoreError(`could not enqueue a ${job.kind} job for tenant ${job.tenant}`)
  }

  // A provisioning under way first among the due jobs: one handed back at a stop, taken over
  // from a dead worker, or waiting for its health check (which gives its creation slot back at
  // once, jobs.ts, so it delays no create). Its buyer paid before any whose provisioning has not
  // begun, and behind those it would wait for every new server before its own was found ready.
  // Then a provisioning not begun: a buyer who just paid waits for no teardown or resize that
  // came due earlier. jobs_due finds the due ones; only they are sorted.
  async claimNextJob (owner: string, now: number, leaseMs: number): Promise<Job | undefined> {
    const row = await this.one(
      `UPDATE jobs SET ${RECLAIM_COUNTS}, status = 'running', lease_owner = $1, lease_until = $2, updated_at = $3
       WHERE id = (
         SELECT id FROM jobs
         WHERE (status = 'queued' AND run_after <= $4) OR (status = 'running' AND lease_until <= $4)
         ORDER BY CASE WHEN kind <> 'provision' THEN 2 WHEN step <> '' THEN 0 ELSE 1 END, run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      owner, now + leaseMs, this.nowIso(), now)
    return row === undefined ? undefined : jobFromRow(row)
  }

  async updateJob (id: number, patch: JobPatch): Promise<void> {
    const [columns, values] = patchColumns(patch, JOB_COLUMNS)
    const set = [...columns, 'updated_at'].map((c, i) => `${c} = $${i + 2}`).join(', ')
    await this.q(`UPDATE jobs SET ${set} WHERE id = $1`, id, ...values, this.nowIso())
  }

  async getJob (id: number): Promise<Job | undefined> {
    const row = await this.one('SELECT * FROM jobs WHERE id = $1', id)
    return row === undefined ? undefined : jobFromRow(row)
  }

  async getJobForUpdate (id: number): Promise<Job | undefined> {
    const row = await this.one('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', id)
    return row === undefined ? undefined : jobFromRow(row)
  }

  async listJobs (filter: { tenant?: string, status?: JobStatus }): Promise<Job[]> {
    const [sql, params] = jobsQuery(filter)
    return (await this.q(sql, ...params)).map(jobFromRow)
  }

  async nextJobDueAt (): Promise<number | undefined> {
    const row = await this.one(
      "SELECT min(CASE WHEN status = 'queued' THEN run_after ELSE lease_until END) AS due FROM jobs WHERE status IN ('queued', 'running')")
    return row?.due === null || row?.due === undefined ? undefined : Number(row.due)
  }

  async releaseLeases (owner: string): Promise<number> {
    const rows = await this.q("UPDATE jobs SET lease_until = 0, lease_owner = NULL, updated_at = $2 WHERE status = 'running' AND lease_owner = $1 RETURNING id",
      owner, this.nowIso())
    return rows.length
  }

  async countHit (key: string, windowMs: number, now: number): Promise<RateCount> {
    const row = (await this.one(
      `INSERT INTO rate_limits (key, count, reset_at) VALUES ($1, 1, $2)
       ON CONFLICT (key) DO UPDATE SET
         count = CASE WHEN ${RATE_ENDED} THEN 1 ELSE rate_limits.count + 1 END,
         reset_at = CASE WHEN ${RATE_ENDED} THEN excluded.reset_at ELSE rate_limits.reset_at END
       RETURNING count, reset_at`, key, now + windowMs, now))!
    // A new window: clear some ended ones then (bounded; every key once began a window, so the
    // clearing keeps up). Rows another instance is clearing are skipped, not waited for.
    if (Number(row.count) === 1) {
      await this.q(`DELETE FROM rate_limits WHERE key IN (SELECT key FROM rate_limits WHERE reset_at <= $1 LIMIT ${PRUNE_BATCH} FOR UPDATE SKIP LOCKED)`, now)
    }
    return { count: Number(row.count), resetAt: Number(row.reset_at) }
  }

  // The advisory lock is held until this transaction ends, so every process appends behind
  // the last committed entry: one chain, no gaps, no forks.
  async appendAudit (input: AuditInput, seal: AuditSeal): Promise<AuditEntry> {
    await this.q('SELECT pg_advisory_xact_lock($1)', AUDIT_LOCK)
    const row = await this.one('SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1')
    const last = row === undefined ? undefined : auditFromRow(row)
    const seq = last === undefined ? 1 : last.seq + 1
    const prevMac = last === undefined ? GENESIS_MAC : last.mac
    const mac = seal(prevMac, seq, last)
    await this.q('INSERT INTO audit_log (seq, at, tenant, action, detail, prev_mac, mac) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      seq, input.at, input.tenant, input.action, JSON.stringify(input.detail), prevMac, mac)
    return { seq, ...input, prevMac, mac }
  }

  async listAudit (filter: { tenant?: string, afterSeq?: number, limit?: number, newest?: boolean }): Promise<AuditEntry[]> {
    const [sql, params] = auditQuery(filter)
    return (await this.q(sql, ...params)).map(auditFromRow)
  }
}
