// Picks the store adapter from DATABASE_URL.
import type { Config } from '../config.ts'
import type { Store } from './store.ts'
import { SqliteStore, sqlitePathFromUrl } from './sqlite.ts'

export async function openStore (config: Pick<Config, 'databaseUrl' | 'pg'>): Promise<Store> {
  if (config.databaseUrl.startsWith('sqlite:')) {
    return new SqliteStore({ path: sqlitePathFromUrl(config.databaseUrl) })
  }
  // Loaded lazily so the embedded default never needs the pg driver at start-up.
  const { PostgresStore } = await import('./postgres.ts')
  const store = new PostgresStore({ url: config.databaseUrl, poolSize: config.pg.poolSize, statementTimeoutMs: config.pg.statementTimeoutMs })
  await store.migrate()
  return store
}
