// Picks the store adapter from DATABASE_URL.
import type { Config } from '../config.ts'
import type { Store } from './store.ts'
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
  let store: Store
  if (config.databaseUrl.startsWith('sqlite:')) {
    store = new SqliteStore({ path: sqlitePathFromUrl(config.databaseUrl), migrate })
  } else {
    // Loaded lazily so the embedded default never needs the pg driver at start-up.
    const { PostgresStore } = await import('./postgres.ts')
    const pg = new PostgresStore({ url: config.databaseUrl, poolSize: config.pg.poolSize, statementTimeoutMs: config.pg.statementTimeoutMs })
    store = pg
    if (migrate) await pg.migrate().catch(async (err: unknown) => { await pg.close(); throw err })
  }
  if (migrate) return store
  try {
    // SQLite has checked already, before its pragmas; this is PostgreSQL's check.
    refuseUnlessCurrent(await store.schema())
  } catch (err) {
    await store.close()
    throw err
  }
  return store
}
