// What makes the SQLite store unfit to serve although ping's read of page 1 succeeds: a damaged
// page elsewhere, writes that fail (a file system turned read-only, an I/O error), and a file
// replaced or removed under the open connections (writes would go to the old inode, lost at
// the next start).
import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { StoreError } from './store.ts'
import { SQLITE, sqliteCode } from './sqlite-ops.ts'

export interface StoreLog {
  error (obj: object, msg: string): void
  info? (obj: object, msg: string): void
}

/**
 * The first operation that failed with one of `codes`, told once at error level. Reading page 1
 * (ping) still works then: without it, readiness would answer 200 while requests fail.
 */
class FailureWatch {
  failure: Error | null = null
  private readonly log: StoreLog | undefined
  private readonly codes: ReadonlySet<number>
  private readonly message: string

  constructor (log: StoreLog | undefined, codes: number[], message: string) {
    this.log = log
    this.codes = new Set(codes)
    this.message = message
  }

  readonly note = (err: unknown): void => {
    if (this.failure !== null || !this.codes.has(sqliteCode(err) ?? -1)) return
    this.failure = err as Error
    this.log?.error({ err }, this.message)
  }
}

/** A damaged page (SQLITE_CORRUPT): not ready from then on; only a restore mends it. */
export class DamageWatch extends FailureWatch {
  constructor (log: StoreLog | undefined) {
    super(log, [SQLITE.CORRUPT], 'the database file is damaged (SQLITE_CORRUPT): readiness answers not ready from now on; restore the file from a backup')
  }
}

/**
 * A write that failed because the file cannot be written (SQLITE_READONLY: the file system was
 * remounted read-only; SQLITE_IOERR). Ping tries a write of its own while one is noted, and
 * forgets it once that commits.
 */
export class WriteWatch extends FailureWatch {
  private readonly info: StoreLog['info']

  constructor (log: StoreLog | undefined) {
    super(log, [SQLITE.READONLY, SQLITE.IOERR], 'writes to the database file fail: readiness answers not ready until a write succeeds again')
    this.info = log?.info?.bind(log)
  }

  recovered (): void {
    if (this.failure === null) return
    this.failure = null
    this.info?.({}, 'writes to the database file succeed again')
  }
}

/**
 * The database file's device and inode at open. A file renamed over it (a restore by `mv`) or
 * removed (its directory deleted) leaves the connections on the old inode: every write would be
 * acknowledged and then lost. Checked by ping and, at most once per turn of the event loop (a
 * group-commit batch forms in one), before a transaction.
 */
export class FileWatch {
  private readonly path: string
  private readonly dev: bigint
  private readonly ino: bigint
  private readonly log: StoreLog | undefined
  private moved = false
  private thisTurn: StoreError | null | undefined

  constructor (path: string, log: StoreLog | undefined) {
    this.path = resolve(path)
    const s = statSync(this.path, { bigint: true })
    this.dev = s.dev
    this.ino = s.ino
    this.log = log
  }

  /** The refusal while the path no longer names the opened file; null while it does. */
  check (): StoreError | null {
    let now: string
    try {
      const s = statSync(this.path, { bigint: true, throwIfNoEntry: false })
      if (s !== undefined && s.dev === this.dev && s.ino === this.ino) {
        this.moved = false
        return null
      }
      now = s === undefined ? 'no file is there now' : 'another file is there now'
    } catch (err) {
      now = `it cannot be looked up (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`
    }
    const message = `the database file ${this.path} was replaced or removed while the server runs (${now}): writes are refused, as they would be lost; restart the server to open the file at that path`
    if (!this.moved) this.log?.error({ path: this.path }, message)
    this.moved = true
    return new StoreError(message)
  }

  /** check(), once per turn of the event loop: the transactions of one batch share one stat. */
  checkThisTurn (): StoreError | null {
    if (this.thisTurn === undefined) {
      this.thisTurn = this.check()
      setImmediate(() => { this.thisTurn = undefined })
    }
    return this.thisTurn
  }
}
