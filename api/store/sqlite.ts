// The embedded store on node:sqlite. One writer connection runs every transaction of this
// process through group commit (group-commit.ts): the transactions that arrive while a commit
// is being made share the next BEGIN IMMEDIATE … COMMIT and one fsync. A second connection
// serves plain reads, so they only ever see committed data. WAL with synchronous=FULL: an
// acknowledged commit survives power loss.
import { DatabaseSync } from 'node:sqlite'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import {
  StoreError,
  type AuditEntry, type AuditInput, type AuditSeal, type EventOutcome, type Job, type JobKind, type JobPatch,
  type RateCount, type Store, type StoreOps, type StripeEventRecord, type Tenant, type TenantPatch
} from './store.ts'
import { Connection, SqliteOps, configure, migrate, schemaStatus, setBusyTimeout, tableNames } from './sqlite-ops.ts'
import { refuseOtherApplication, refuseUnlessCurrent, type SchemaStatus } from './migrations.ts'
import { GroupCommit } from './group-commit.ts'
import { DamageWatch, FileWatch, WriteWatch, type StoreLog } from './sqlite-health.ts'

export type { StoreLog }

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. */
  path: string
  /** Milliseconds to wait for another process's write lock. */
  busyTimeoutMs?: number
  /**
   * Apply pending migrations on open (default). False (the operator CLI): a database that is
   * not CTFHive's, or not migrated to this release, is refused before anything touches it.
   */
  migrate?: boolean
  /**
   * Opens the file read-only, as it is (no migration, no switch to WAL): for the operator's
   * reading commands, which must not change a backup they check. Every write fails.
   */
  readOnly?: boolean
  /**
   * Told at error level when an operation finds the file damaged (once), when writes start
   * failing, and when the file is replaced or removed under the store.
   */
  log?: StoreLog
}

export class SqliteStore extends SqliteOps implements Store {
  readonly kind = 'sqlite' as const
  private readonly writer: Connection
  private readonly commits: GroupCommit
  private readonly damage: DamageWatch
  private readonly writes: WriteWatch
  private readonly file: FileWatch | null
  private closed = false

  constructor (opts: SqliteStoreOptions) {
    // A directory opened read-only fails later as a disk I/O error; opened for writing, it
    // fails at once as SQLITE_CANTOPEN, which names the setting (and changes nothing).
    const readOnly = opts.readOnly === true && statSync(opts.path, { throwIfNoEntry: false })?.isDirectory() !== true
    if (opts.path !== ':memory:' && !readOnly) makeDirectory(dirname(opts.path))
    const busyTimeoutMs = opts.busyTimeoutMs ?? 5000
    const writerDb = new DatabaseSync(opts.path, { readOnly })
    try {
      // The check reads sqlite_master, which another process creating the file holds locked.
      setBusyTimeout(writerDb, busyTimeoutMs)
      // Before the other pragmas: journal_mode=WAL would already change a file that is not ours.
      if (opts.migrate === false || readOnly) refuseUnlessCurrent(schemaStatus(writerDb))
      else refuseOtherApplication(tableNames(writerDb))
      if (!readOnly) configure(writerDb, busyTimeoutMs)
      if ((opts.migrate ?? true) && !readOnly) {
        migrate(writerDb)
        refuseReadOnly(writerDb)
      }
    } catch (err) {
      writerDb.close()
      throw err
    }
    const damage = new DamageWatch(opts.log)
    const writer = new Connection(writerDb, { writesInTransaction: true, onError: damage.note })
    let reader = writer
    let file = null
    if (opts.path !== ':memory:' && !readOnly) {
      const readerDb = new DatabaseSync(opts.path)
      configure(readerDb, busyTimeoutMs)
      reader = new Connection(readerDb, { readOnly: true, onError: damage.note })
      file = new FileWatch(opts.path, opts.log)
    }
    super(reader)
    this.writer = writer
    this.damage = damage
    this.writes = new WriteWatch(opts.log)
    this.file = file
    this.commits = new GroupCommit(writerDb, new SqliteOps(writer))
  }

  transaction<T> (fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('store is closed'))
    const moved = this.file?.checkThisTurn() ?? null
    if (moved !== null) return Promise.reject(moved)
    // The statements' errors are seen by the connection; this sees BEGIN's and COMMIT's.
    return this.commits.submit(fn).catch((err: unknown) => {
      this.damage.note(err)
      this.writes.note(err)
      throw err
    })
  }

  // Writes reached on the store itself each run as their own (group-committed) transaction.
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
  override countHit (k: string, w: number, n: number): Promise<RateCount> { return this.transaction((tx) => tx.countHit(k, w, n)) }
  override settleEvent (id: string, o: EventOutcome, t: string | null): Promise<void> { return this.transaction((tx) => tx.settleEvent(id, o, t)) }
  override blankPayloads (w: { ids: readonly string[] } | { tenant: string }): Promise<number> { return this.transaction((tx) => tx.blankPayloads(w)) }

  async schema (): Promise<SchemaStatus> {
    if (this.closed) throw new StoreError('store is closed')
    return schemaStatus(this.conn.db)
  }

  async syncClock (): Promise<number> {
    return 0
  }

  async ping (): Promise<void> {
    // `SELECT 1` reads no page: a damaged file answered it. schema_version reads the header
    // (page 1), and a page the connection has cached is not read again while the WAL index is
    // unchanged, so the cache's clean pages are let go first (shrink_memory; pages a batch has
    // written stay). On both connections: each has a cache of its own, and a damaged file
    // may fail only the writes while reads still come from the reader's cache.
    if (this.closed) throw new StoreError('store is closed')
    const damage = this.damage.failure
    if (damage !== null) throw new StoreError(`the database file is damaged (an operation failed: ${damage.message}): restore it from a backup`, { cause: damage })
    const moved = this.file?.check() ?? null
    if (moved !== null) throw moved
    if (this.writes.failure !== null) await this.tryWrite()
    for (const conn of new Set([this.conn, this.writer])) {
      try {
        conn.db.exec('PRAGMA shrink_memory')
        conn.get('PRAGMA schema_version')
      } catch (err) {
        if (err instanceof StoreError) throw err
        throw new StoreError(`the database file cannot be read: ${(err as Error).message}`, { cause: err })
      }
    }
  }

  /** A write of its own, committed, after writes failed: until one succeeds the store is not ready. */
  private async tryWrite (): Promise<void> {
    try {
      await this.transaction(async () => { rewriteUserVersion(this.writer.db) })
    } catch (err) {
      throw new StoreError(`writes to the database file fail: ${(err as Error).message}`, { cause: err })
    }
    this.writes.recovered()
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commits.drain()
    if (this.conn !== this.writer) this.conn.close()
    this.writer.close()
  }
}

/** Sets the header's user_version (which nothing reads) to what it is: a write of one page. */
function rewriteUserVersion (db: DatabaseSync): void {
  const version = Number(db.prepare('PRAGMA user_version').get()?.user_version ?? 0)
  db.exec(`PRAGMA user_version = ${version}`)
}

/**
 * SQLite opens a file this user may not write (a restore copied in as root) read-only, and
 * says so only at the first write: the server would start, answer ready, and fail every write.
 * A write refused here fails with SQLITE_READONLY, a setting; the rollback leaves the file as it was.
 */
function refuseReadOnly (db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE')
  try {
    rewriteUserVersion(db)
  } finally {
    if (db.isTransaction) db.exec('ROLLBACK')
  }
}

/**
 * mkdir -p. Node's recursive mkdir answers ENOENT where a part of the path cannot be created
 * (a read-only file system: systemd's ProtectSystem=strict), which reads as a passing error;
 * plain mkdir of each missing part, from the top, answers why (EROFS, EACCES).
 */
function makeDirectory (dir: string): void {
  try {
    mkdirSync(dir, { recursive: true })
    return
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const missing: string[] = []
  for (let d = resolve(dir); !existsSync(d) && dirname(d) !== d; d = dirname(d)) missing.unshift(d)
  for (const d of missing) {
    try {
      mkdirSync(d)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
}

/** `sqlite:./data/x.db`, `sqlite:///abs/x.db`, `sqlite::memory:` → a path for DatabaseSync. */
export function sqlitePathFromUrl (url: string): string {
  const rest = url.replace(/^sqlite:/, '')
  if (rest === ':memory:') return ':memory:'
  if (rest.startsWith('//')) return rest.slice(2)
  return rest
}
