// Picks the store adapter from DATABASE_URL.
import { existsSync } from 'node:fs'
import { ConfigError, type Config } from '../config.ts'
import { StoreError, type Store } from './store.ts'
import { NotCtfhiveDatabase, refuseUnlessCurrent } from './migrations.ts'
import { SqliteStore, sqlitePathFromUrl, type StoreLog } from './sqlite.ts'
import { SQLITE, sqliteCode } from './sqlite-ops.ts'

/**
 * `migrate: false` (the operator CLI): the schema is left as it is, and a database CTFHive did
 * not set up, or that this release's migrations have not all reached, is refused before
 * anything reads or writes it. Only the server migrates, so a tool of a newer release never
 * changes the schema under an older server. `log` hears of a damaged SQLite file (once), of
 * writes that fail, and of the file replaced or removed under the server.
 */
/** `readOnly`: SQLite opens the file as it is, for reading only (PostgreSQL: no effect). */
export async function openStore (config: Pick<Config, 'databaseUrl' | 'pg'>, opts: { migrate?: boolean, readOnly?: boolean, log?: StoreLog } = {}): Promise<Store> {
  const migrate = opts.migrate ?? true
  // SQLite refuses in its constructor, before its pragmas touch the file.
  if (config.databaseUrl.startsWith('sqlite:')) {
    const path = sqlitePathFromUrl(config.databaseUrl)
    try {
      return new SqliteStore({ path, migrate, readOnly: opts.readOnly, log: opts.log })
    } catch (err) {
      // Our refusals (not CTFHive's, behind this release) go on as they are; SQLite's own words
      // ("unable to open database file") do not say which file.
      if (err instanceof StoreError && err.cause === undefined) throw err
      const why = sqliteSettingProblem(err)
      const message = `${path}: ${(err as Error).message}`
      if (why !== null) throw new SqliteSettingError(`${message} (${why})`, { cause: err })
      throw new Error(message, { cause: err })
    }
  }
  // Loaded lazily so the embedded default never needs the pg driver at start-up.
  const { PostgresStore } = await import('./postgres.ts')
  const store = new PostgresStore({ url: config.databaseUrl, poolSize: config.pg.poolSize, statementTimeoutMs: config.pg.statementTimeoutMs, log: opts.log })
  try {
    if (migrate) await store.migrate()
    else refuseUnlessCurrent(await store.schema())
  } catch (err) {
    await store.close()
    throw err
  }
  return store
}

/**
 * The SQLite file DATABASE_URL names, when there is none (null otherwise, and for PostgreSQL or
 * `:memory:`). Opening it would create an empty database, so a tool that only reads checks first.
 */
export function absentSqliteFile (config: Pick<Config, 'databaseUrl'>): string | null {
  if (!config.databaseUrl.startsWith('sqlite:')) return null
  const path = sqlitePathFromUrl(config.databaseUrl)
  return path !== ':memory:' && !existsSync(path) ? path : null
}

/** PostgreSQL's refusals that only a change of DATABASE_URL (or of the server's roles) can fix. */
const SETTING_STATES: Record<string, string> = {
  '28000': 'PostgreSQL refused the connection for this user (no pg_hba.conf entry allows it)',
  '28P01': 'PostgreSQL refused the user name or password',
  '3D000': 'the database it names does not exist on that server',
  '42501': 'its user may not create or change this database\'s tables (CTFHive migrates its schema on start)'
}

/**
 * SQLite's refusals (primary result codes) that only a change of DATABASE_URL, or of the file,
 * can fix. A file damaged at open is one: restarting reads the same damage.
 */
const SQLITE_SETTING_CODES: Record<number, string> = {
  [SQLITE.READONLY]: 'SQLITE_READONLY: this user may not write the file, or its directory, where SQLite keeps the -wal and -shm files beside it',
  [SQLITE.CORRUPT]: 'SQLITE_CORRUPT: the file is damaged; restore it from a backup, see Backups in the docs',
  [SQLITE.CANTOPEN]: 'SQLITE_CANTOPEN: it names a directory, or a file this user may not create or open',
  [SQLITE.NOTADB]: 'SQLITE_NOTADB: the file is not an SQLite database'
}
/** What creating the file's directory answers when the path cannot work (not a passing I/O error). */
const PATH_CODES = new Set(['EACCES', 'EPERM', 'ENOTDIR', 'EISDIR', 'EEXIST', 'EROFS'])
const PATH_PROBLEM = 'its directory cannot be created: a part of the path is a file, or this user may not create it there'
const READ_ONLY_PATH = 'its directory cannot be created: the file system is read-only there; under the systemd unit (ProtectSystem=strict) keep the database under /var/lib/ctfhive'

/** Why a SQLite file would not open because of its path or permissions; null for anything else. */
export function sqliteSettingProblem (err: unknown): string | null {
  const code = sqliteCode(err)
  if (code !== undefined) return SQLITE_SETTING_CODES[code] ?? null
  const fsCode = (err as { code?: unknown } | null)?.code
  if (fsCode === 'EROFS') return READ_ONLY_PATH
  return typeof fsCode === 'string' && PATH_CODES.has(fsCode) ? PATH_PROBLEM : null
}

/**
 * The start's first reads (the audit chain's last entry) finding the SQLite file damaged
 * after it opened: a setting as at open (exit 78, restore the file), not a restart loop; null
 * for anything else.
 */
export function damageRefusal (config: Pick<Config, 'databaseUrl'>, err: unknown): ConfigError | null {
  if (!config.databaseUrl.startsWith('sqlite:') || sqliteCode(err) !== SQLITE.CORRUPT) return null
  return new ConfigError('DATABASE_URL', `${sqlitePathFromUrl(config.databaseUrl)}: ${(err as Error).message} (${SQLITE_SETTING_CODES[SQLITE.CORRUPT]})`)
}

/** A SQLite file that DATABASE_URL names but that cannot be used: a directory, another user's, not a database, damaged. */
class SqliteSettingError extends Error {}

/**
 * A store that would not open because of what DATABASE_URL says, as a setting's refusal (the
 * server exits 78: restarting cannot fix it); null for anything else (a server not up yet, a
 * passing I/O error).
 */
export function settingRefusal (err: unknown): ConfigError | null {
  if (err instanceof SqliteSettingError || err instanceof NotCtfhiveDatabase) return new ConfigError('DATABASE_URL', err.message)
  const cause = err instanceof Error ? err.cause : undefined
  const code = (cause as { code?: unknown } | undefined)?.code
  const why = typeof code === 'string' ? SETTING_STATES[code] : undefined
  return why === undefined ? null : new ConfigError('DATABASE_URL', `${why} (SQLSTATE ${code})`)
}
