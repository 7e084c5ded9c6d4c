// The shared store on PostgreSQL (`pg`), for more than one process or host. Every process
// sees one truth: tenant changes take row locks (SELECT … FOR UPDATE), jobs are claimed with
// FOR UPDATE SKIP LOCKED, audit appends queue on a transaction-scoped advisory lock, and an
// event id is deduplicated by its primary key inside the effect's own transaction. The
// statements are in postgres-ops.ts; this module owns the pool, migrations and transactions.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import {
  StoreError,
  type AuditEntry, type AuditInput, type AuditSeal, type Job, type JobKind, type JobPatch,
  type Store, type StoreOps, type StripeEventRecord, type Tenant, type TenantPatch
} from './store.ts'
import { migrationFiles, refuseOtherApplication, schemaStatusOf, type SchemaStatus } from './migrations.ts'
import { PgOps, nowIso, sqlState, toStoreError, type Queryable, type Row } from './postgres-ops.ts'
import { WRITABLE_SQL, writeRefusal } from './postgres-readonly.ts'

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations', 'postgres')
/**
 * The tables (and views) of the schema CTFHive's unqualified names resolve to, and so create
 * its tables in: the first of search_path that exists (typically public). An extension's own
 * (pg_stat_statements, which some hosts install in every database) are nobody's application.
 */
export const SCHEMA_TABLES_SQL = "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f') " +
  "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1"
/** Advisory lock key (arbitrary, fixed) that serialises migrations across processes. */
export const MIGRATION_LOCK = 4_711_001
/** How often a transaction is run again after a serialization failure, deadlock or unique race. */
const MAX_ATTEMPTS = 5
/**
 * 40001 serialization failure, 40P01 deadlock: PostgreSQL asks for a rerun. 23505: a
 * concurrent transaction inserted the same row first; a rerun sees it and takes the other path.
 */
const RETRYABLE = new Set(['40001', '40P01', '23505'])
/**
 * 0A000 "cached plan must not change result type": another process migrated the schema under
 * this connection's prepared statements (a rolling upgrade). The statement fails so on every
 * later use on that connection, as node-postgres keeps its named statements: the connection is
 * dropped and the rerun takes another. Each pooled connection fails so once, so the reruns are
 * bounded by the pool's size and not counted as attempts.
 */
const STALE_PLAN = '0A000'
/**
 * How far this host's wall clock may move against the steady one between two syncs before the
 * database's clock is measured again at once: more is a suspend (which the steady clock misses)
 * or a step of the wall clock, not NTP's slewing (at most 0.5 ms a second, 0.3 s a sync).
 */
const CLOCK_JUMP_MS = 1000
/** How soon such a measurement is tried again after it failed (the database unreachable). */
const RESYNC_RETRY_MS = 5000
/**
 * How much longer than the statement timeout this process waits for an answer: the server
 * cancels a slow statement itself and says so, which takes a round trip; past this, the server
 * is not answering at all (its backend stopped, the host paused, a stuck pooler).
 */
const QUERY_TIMEOUT_MARGIN_MS = 5000
/** What pg's client-side query_timeout rejects with (a plain Error: no code to go by). */
const READ_TIMEOUT_MESSAGE = 'Query read timeout'
/** How often a start waiting for another instance's migration says so again. */
const MIGRATION_NOTICE_MS = 30_000

/** Where the store says what it is waiting for; a pino logger fits. */
export interface PostgresStoreLog {
  info? (obj: object, msg: string): void
}

export interface PostgresStoreOptions {
  /** `postgres://user:pass@host:port/db` (or `postgresql://…`; `?host=/socket/dir` works). */
  url: string
  poolSize?: number
  /** Per-connection statement_timeout; 0 leaves the server's default. */
  statementTimeoutMs?: number
  /**
   * How long this process waits for any answer to a statement before it drops the connection
   * (pg's query_timeout): statement_timeout is enforced by the server, and a server that stops
   * answering (a stopped backend, a paused host) enforces nothing. Default: statementTimeoutMs
   * + 5 s; none when statementTimeoutMs is 0 or unset (who turns that off runs statements of any
   * length, the SQLite copy's). Migrations are never bounded by it.
   */
  queryTimeoutMs?: number
  /** How long to wait for a connection (a new one, or a free one of the pool); default 10 s. */
  connectTimeoutMs?: number
  /**
   * How long PostgreSQL lets a session sit idle inside a transaction before ending it; default
   * 30 s. A paused instance (a frozen VM, a stopped process) holding the audit chain's lock
   * would otherwise stall every other instance's audited writes until its TCP connection dies
   * (hours). No transaction of ours waits on anything but its own statements.
   */
  idleInTransactionTimeoutMs?: number
  /** This host's wall clock, which syncClock's answer is measured from; tests set one off. */
  hostClock?: () => number
  /** A clock no step of the wall clock moves; default: this process's monotonic clock. */
  steadyClock?: () => number
  /** Hears of a start waiting for another instance's migration (advisory lock). */
  log?: PostgresStoreLog
  /** How often that wait is logged again; default 30 s (tests shorten it). */
  migrationNoticeMs?: number
}

const monotonic = (): number => performance.timeOrigin + performance.now()

export class PostgresStore extends PgOps implements Store {
  readonly kind = 'postgres' as const
  private readonly pool: pg.Pool
  /** What every connection is opened with, the migration's too (without the pool's timeouts). */
  private readonly connection: pg.ClientConfig
  private readonly poolSize: number
  private readonly log: PostgresStoreLog | undefined
  private readonly migrationNoticeMs: number
  private readonly hostClock: () => number
  private readonly steadyClock: () => number
  /**
   * The database's clock less the steady one, as last measured (syncClock). Kept against the
   * steady clock so that NTP stepping this host's clock between syncs moves no lease or due time.
   */
  private steadyOffset: number
  /** The database's clock less this host's wall clock, as last measured. */
  private wallOffset = 0
  /** This host's wall clock less the steady one at the last measurement: it moves when either jumps. */
  private wallLessSteady: number
  private resyncing = false
  /** Steady time before which a failed measurement is not tried again. */
  private resyncAfter = -Infinity
  private closed = false

  constructor (opts: PostgresStoreOptions) {
    const poolSize = opts.poolSize ?? 10
    const statementTimeout = opts.statementTimeoutMs !== undefined && opts.statementTimeoutMs > 0 ? opts.statementTimeoutMs : undefined
    const queryTimeout = opts.queryTimeoutMs ?? (statementTimeout === undefined ? 0 : statementTimeout + QUERY_TIMEOUT_MARGIN_MS)
    const connection: pg.ClientConfig = {
      connectionString: opts.url,
      application_name: 'ctfhive',
      idle_in_transaction_session_timeout: opts.idleInTransactionTimeoutMs ?? 30_000,
      // A server that vanished (a failover, a dropped route) is noticed on an idle connection.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // pg waits for ever by default: a host that accepts TCP and never answers (a stuck
      // pooler, a half-dead VM) would hang the start, and every request after it.
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000
    }
    const pool = new pg.Pool({
      ...connection,
      max: poolSize,
      // Sent at connection start-up, so it holds for every statement on every connection.
      statement_timeout: statementTimeout,
      // pg waits for an answer for ever by default, whatever statement_timeout says.
      query_timeout: queryTimeout > 0 ? queryTimeout : undefined
    })
    super(pool as unknown as Queryable)
    this.pool = pool
    this.connection = connection
    this.poolSize = poolSize
    this.log = opts.log
    this.migrationNoticeMs = opts.migrationNoticeMs ?? MIGRATION_NOTICE_MS
    this.hostClock = opts.hostClock ?? Date.now
    this.steadyClock = opts.steadyClock ?? monotonic
    this.steadyOffset = this.hostClock() - this.steadyClock()
    this.wallLessSteady = this.steadyOffset
    // An idle client losing its server must not crash the process; the next query reports it.
    pool.on('error', () => {})
  }

  async schema (): Promise<SchemaStatus> {
    const table = await this.one("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
    const applied = table?.present === true ? (await this.q('SELECT version FROM schema_migrations')).map((r) => Number(r.version)) : undefined
    return schemaStatusOf(migrationFiles(MIGRATIONS_DIR), applied)
  }

  /** Applies pending migrations; processes starting together queue on an advisory lock. */
  async migrate (): Promise<void> {
    if (this.closed) throw new StoreError('store is closed')
    // A connection of its own, without the pool's statement and query timeouts: they bound
    // requests, not this. Another instance may hold the lock for as long as its migrations
    // take, and one may rebuild an index over every event.
    const client = new pg.Client(this.connection)
    // A server that ends the session fails the statement in flight; unheard, the event would
    // take the process down.
    client.on('error', () => {})
    try {
      await client.connect().catch((err: unknown) => { throw toStoreError(err, 'could not connect to PostgreSQL') })
      // Nor a role's or database's own statement_timeout.
      await client.query('SET statement_timeout = 0')
      await this.takeMigrationLock(client)
      try {
        // Under the lock: an instance migrating meanwhile has made schema_migrations first.
        refuseOtherApplication((await client.query(SCHEMA_TABLES_SQL)).rows.map((r) => String(r.name)))
        await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)')
        for (const file of migrationFiles(MIGRATIONS_DIR)) {
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
      await client.end().catch(() => {})
    }
  }

  /**
   * The migration lock, saying so (at once, then every 30 s) while another session holds it:
   * an instance migrating, or one stopped while it did, which only ending its session frees.
   */
  private async takeMigrationLock (client: pg.Client): Promise<void> {
    if ((await client.query('SELECT pg_try_advisory_lock($1) AS got', [MIGRATION_LOCK])).rows[0]?.got === true) return
    const holder = await client.query(
      "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = 0 AND objid = $1 AND objsubid = 1",
      [MIGRATION_LOCK]).then((r) => r.rows[0]?.pid as number | undefined, () => undefined)
    const since = Date.now()
    const notice = (): void => {
      this.log?.info?.({ lock: MIGRATION_LOCK, holder_pid: holder, waited_s: Math.round((Date.now() - since) / 1000) },
        `waiting for another instance's migration (advisory lock ${MIGRATION_LOCK})…`)
    }
    notice()
    const timer = setInterval(notice, this.migrationNoticeMs)
    try {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
    } finally {
      clearInterval(timer)
    }
  }

  /**
   * A pooled client, with a listener for its 'error' event while it is checked out: pg-pool
   * listens only while a client is idle, and an unheard 'error' (the server ended the backend:
   * restart, failover, pg_terminate_backend) would take the whole process down.
   */
  private async connect (): Promise<{ client: pg.PoolClient, lost: () => Error | undefined, release: (broken?: Error) => void }> {
    if (this.closed) throw new StoreError('store is closed')
    let client: pg.PoolClient
    try {
      client = await this.pool.connect()
    } catch (err) {
      throw toStoreError(err, 'could not connect to PostgreSQL')
    }
    let lost: Error | undefined
    const onError = (err: Error): void => { lost = err }
    client.on('error', onError)
    return {
      client,
      lost: () => lost,
      release: (broken) => {
        client.off('error', onError)
        client.release(broken ?? lost)
      }
    }
  }

  async transaction<T> (fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    let stalePlans = 0
    for (let attempt = 1; ; attempt++) {
      const { client, lost, release } = await this.connect()
      let broken: Error | undefined
      try {
        // Explicit: the audit append and the job queue read rows other transactions just
        // committed, which a server default of REPEATABLE READ would hide.
        await control(client, 'BEGIN ISOLATION LEVEL READ COMMITTED')
        const value = await fn(new PgOps(client as unknown as Queryable, () => this.now()))
        const done = await control(client, 'COMMIT')
        // A statement failed and the function went on: PostgreSQL answers COMMIT with ROLLBACK.
        if (done.command === 'ROLLBACK') throw new StoreError('the transaction was rolled back: a statement in it failed')
        return value
      } catch (err) {
        if (readTimedOut(err)) {
          // The server stopped answering: a ROLLBACK would queue behind the statement and wait
          // as long again. Dropping the connection ends the transaction just as surely.
          broken = err as Error
        } else {
          try {
            await client.query('ROLLBACK')
          } catch (rollbackErr) {
            // The connection is unusable: the pool must drop it, not hand it out again.
            broken = rollbackErr as Error
          }
        }
        broken ??= lost()
        if (sqlState(err) === STALE_PLAN && broken === undefined && stalePlans++ < this.poolSize) {
          broken = err as Error
          attempt--
          continue
        }
        if (attempt < MAX_ATTEMPTS && RETRYABLE.has(sqlState(err) ?? '') && broken === undefined) {
          await sleep(Math.floor(Math.random() * 10 * attempt))
          continue
        }
        // The function's own errors pass through unchanged; the store's are StoreErrors already.
        throw err
      } finally {
        release(broken)
      }
    }
  }

  // Writes reached on the store itself each run as their own transaction.
  override insertTenant (t: Tenant): Promise<void> { return this.transaction((tx) => tx.insertTenant(t)) }
  override assignFqdns (b: string): Promise<number> { return this.transaction((tx) => tx.assignFqdns(b)) }
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
    // A read outside a transaction: pg-pool drops the connection of a failed query, so a
    // rerun after a schema change takes another (see STALE_PLAN).
    for (let stalePlans = 0; ; stalePlans++) {
      try {
        return await super.q(text, ...values)
      } catch (err) {
        if (sqlState(err) !== STALE_PLAN || stalePlans >= this.poolSize) throw err
      }
    }
  }

  /** The database's clock, as this host last measured it: every instance's jobs keep to one clock. */
  override now (): number {
    const steady = this.steadyClock()
    const wall = this.hostClock()
    const moved = wall - steady - this.wallLessSteady
    if (Math.abs(moved) <= CLOCK_JUMP_MS) return Math.round(steady + this.steadyOffset)
    // Measured again at once, not at the next periodic sync (up to 10 min on).
    this.resync(steady)
    // Ahead: most likely the host was suspended (or its VM paused), which the steady clock
    // does not count: the wall clock has the time, until the measurement answers. Behind
    // can only be a step of the wall clock, which the steady clock ignores.
    return Math.round(moved > 0 ? wall + this.wallOffset : steady + this.steadyOffset)
  }

  /** One measurement at a time, started from now(): its caller cannot wait for it. */
  private resync (steady: number): void {
    if (this.resyncing || this.closed || steady < this.resyncAfter) return
    this.resyncing = true
    this.syncClock().then(
      () => { this.resyncing = false },
      () => {
        this.resyncing = false
        this.resyncAfter = this.steadyClock() + RESYNC_RETRY_MS
      })
  }

  async syncClock (): Promise<number> {
    const wallBefore = this.hostClock()
    const steadyBefore = this.steadyClock()
    const row = await this.one('SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint AS now')
    const steadyAfter = this.steadyClock()
    const wallAfter = this.hostClock()
    // Read halfway through the round trip, as near as this host can tell.
    const db = Number(row!.now)
    const steady = (steadyBefore + steadyAfter) / 2
    const wall = (wallBefore + wallAfter) / 2
    this.steadyOffset = db - steady
    this.wallOffset = db - wall
    this.wallLessSteady = wall - steady
    return this.wallOffset
  }

  /** Answers, and takes writes: a standby or a read-only database fails every request that writes. */
  async ping (): Promise<void> {
    const refusal = writeRefusal(await this.one(WRITABLE_SQL))
    if (refusal !== null) throw refusal
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.end()
  }
}

/** pg's query_timeout fired (the error itself, or its cause a few wrappings down). */
function readTimedOut (err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.message === READ_TIMEOUT_MESSAGE) return true
  }
  return false
}

async function control (client: pg.PoolClient, statement: string): Promise<pg.QueryResult> {
  try {
    return await client.query(statement)
  } catch (err) {
    throw toStoreError(err, `${statement} failed`)
  }
}
