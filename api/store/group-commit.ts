// Group commit on one SQLite connection: the transactions submitted while a commit is being
// made share the next BEGIN IMMEDIATE … COMMIT and its one fsync. Each runs in its own
// SAVEPOINT, so a failing one rolls back alone and gets its own error; every caller is
// answered only after the commit that holds its writes (DESIGN §14).
import type { DatabaseSync } from 'node:sqlite'
import { StoreError, type StoreOps } from './store.ts'

/** Upper bound on transactions per commit, so one batch never holds the write lock for long. */
const MAX_BATCH = 256

interface Pending {
  fn: (tx: StoreOps) => Promise<unknown>
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

export class GroupCommit {
  private readonly db: DatabaseSync
  private readonly ops: StoreOps
  private queue: Pending[] = []
  private flushing: Promise<void> | null = null

  constructor (db: DatabaseSync, ops: StoreOps) {
    this.db = db
    this.ops = ops
  }

  submit<T> (fn: (tx: StoreOps) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject })
      // setImmediate lets every request already read from the sockets join this batch.
      this.flushing ??= new Promise((resolve) => setImmediate(() => { this.flush().finally(resolve) }))
    })
  }

  /** Resolves once everything submitted so far has been committed or rejected. */
  async drain (): Promise<void> {
    while (this.flushing !== null) await this.flushing
  }

  private async flush (): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH)
        // runBatch answers every caller itself; this only keeps a surprise from stranding them.
        try { await this.runBatch(batch) } catch (err) { this.abandon(batch, err) }
      }
    } finally {
      this.flushing = null
    }
  }

  private async runBatch (batch: Pending[]): Promise<void> {
    const db = this.db
    try {
      db.exec('BEGIN IMMEDIATE')
    } catch (err) {
      this.rejectAll(batch, `could not begin a transaction: ${(err as Error).message}`, err)
      return
    }
    const results: Array<{ ok: true, value: unknown } | { ok: false, error: unknown }> = []
    for (const p of batch) {
      try {
        db.exec('SAVEPOINT unit')
        const value = await p.fn(this.ops)
        db.exec('RELEASE unit')
        results.push({ ok: true, value })
      } catch (error) {
        if (!this.rollBackUnit()) {
          this.abandon(batch, error)
          return
        }
        results.push({ ok: false, error })
      }
      // On a full disk or an I/O error SQLite may roll back the whole transaction itself;
      // whatever ran after that (even a unit that caught the error) was not in this batch.
      if (!db.isTransaction) {
        this.abandon(batch, new Error('SQLite rolled the transaction back'))
        return
      }
    }
    try {
      db.exec('COMMIT')
    } catch (err) {
      this.rollBack()
      this.rejectAll(batch, `commit failed: ${(err as Error).message}`, err)
      return
    }
    batch.forEach((p, i) => {
      const r = results[i]!
      if (r.ok) p.resolve(r.value)
      else p.reject(r.error)
    })
  }

  /** Undoes one failed unit; false when there is no transaction left to undo it in. */
  private rollBackUnit (): boolean {
    try {
      this.db.exec('ROLLBACK TO unit')
      this.db.exec('RELEASE unit')
      return true
    } catch {
      return false
    }
  }

  private rollBack (): void {
    try { this.db.exec('ROLLBACK') } catch { /* SQLite already rolled it back */ }
  }

  /** The batch's transaction is lost: nothing of it was written, so every caller gets an error. */
  private abandon (batch: Pending[], cause: unknown): void {
    if (this.db.isTransaction) this.rollBack()
    this.rejectAll(batch, `the transaction was rolled back: ${(cause as Error)?.message ?? String(cause)}`, cause)
  }

  private rejectAll (batch: Pending[], message: string, cause: unknown): void {
    for (const p of batch) p.reject(new StoreError(message, { cause }))
  }
}
