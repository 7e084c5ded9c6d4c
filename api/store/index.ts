// Picks the store adapter from DATABASE_URL.
import { existsSync } from 'node:fs'
import type { Config } from '../config.ts'
import { StoreError, type Store } from './store.ts'
import { refuseUnlessCurrent } from './migrations.ts'
import { SqliteStore, sqlitePathFromUrl } from './sqlite.ts'

/**
 * `migrate: false` (the operator CLI): the schema is left as it is, and a database CTFHive did
 * not set up, or that this release's migrations have not all reached, is refused before
 * anything reads or writes it. Only the server migrates, so a tool of a newer release never
 * changes the schema under an older server.
 */
export async function openStore (config: Pick<Config, 'databaseUrl' | 'pg'>, opts: { migrate?: boolean } = {}): Promise<Store> {
  const migrate = opts.migrate ?? true
  // SQLite refuses in its constructor, before its pragmas touch the file.
  if (config.databaseUrl.startsWith('sqlite:')) {
    const path = sqlitePathFromUrl(config.databaseUrl)
    try {
      return new SqliteStore({ path, migrate })
    } catch (err) {
      // SQLite's own words ("unable to open database file") do not say which file; our
      // refusals (not CTFHive's, behind this release) go on as they are.
      if (err instanceof StoreError) throw err
      throw new Error(`${path}: ${(err as Error).message}`, { cause: err })
    }
  }
  // Loaded lazily so the embedded default never needs the pg driver at start-up.
  const { PostgresStore } = await import('./postgres.ts')
  const store = new PostgresStore({ url: config.databaseUrl, poolSize: config.pg.poolSize, statementTimeoutMs: config.pg.statementTimeoutMs })
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
