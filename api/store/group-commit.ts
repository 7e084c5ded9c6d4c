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
      while (this.queue.length > 0) await this.runBatch(this.queue.splice(0, MAX_BATCH))
    } finally {
      this.flushing = null
    }
  }

  private async runBatch (batch: Pending[]): Promise<void> {
    const db = this.db
    try {
      db.exec('BEGIN IMMEDIATE')
    } catch (err) {
      for (const p of batch) p.reject(new StoreError(`could not begin a transaction: ${(err as Error).message}`, { cause: err }))
      return
    }
    const results: Array<{ ok: true, value: unknown } | { ok: false, error: unknown }> = []
    for (const p of batch) {
      db.exec('SAVEPOINT unit')
      try {
        const value = await p.fn(this.ops)
        db.exec('RELEASE unit')
        results.push({ ok: true, value })
      } catch (error) {
        db.exec('ROLLBACK TO unit')
        db.exec('RELEASE unit')
        results.push({ ok: false, error })
      }
    }
    try {
      db.exec('COMMIT')
    } catch (err) {
      try { db.exec('ROLLBACK') } catch { /* already rolled back */ }
      for (const p of batch) p.reject(new StoreError(`commit failed: ${(err as Error).message}`, { cause: err }))
      return
    }
    batch.forEach((p, i) => {
      const r = results[i]!
      if (r.ok) p.resolve(r.value)
      else p.reject(r.error)
    })
  }
}
