// SQL that takes a migrated database back to an older release's schema, on SQLite or
// PostgreSQL: what tests use to play a database an older release left behind. Every migration
// after the first needs its undo here; one without it fails the test that asks for it.
import { fileURLToPath } from 'node:url'
import { migrationFiles } from '../../api/store/migrations.ts'

const UNDO: Record<number, string> = {
  2: 'DROP INDEX stripe_events_received',
  3: 'ALTER TABLE jobs DROP COLUMN step_at',
  4: 'DROP TABLE rate_limits',
  5: 'ALTER TABLE tenants DROP COLUMN soft_cancel_from',
  6: 'DROP INDEX tenants_fqdn; ALTER TABLE tenants DROP COLUMN fqdn',
  7: 'ALTER TABLE tenants DROP COLUMN billing_state'
}

const SHIPPED = migrationFiles(fileURLToPath(new URL('../../api/store/migrations/sqlite', import.meta.url))).map((f) => Number.parseInt(f, 10))

/** Statements (one string, for `exec` or a simple query) that leave the schema at `version`. */
export function rollbackSql (version: number): string {
  const undo = SHIPPED.filter((v) => v > version).sort((a, b) => b - a).map((v) => {
    if (UNDO[v] === undefined) throw new Error(`no undo for migration ${v} in tests/helpers/schema-rollback.ts`)
    return UNDO[v]
  })
  return [...undo, `DELETE FROM schema_migrations WHERE version > ${version}`].join('; ')
}
