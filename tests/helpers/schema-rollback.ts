// SQL that takes a migrated database back to an older release's schema, on SQLite or
// PostgreSQL: what tests use to play a database an older release left behind. Every migration
// after the first needs its undo here; one without it fails the test that asks for it.
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'
import { migrationFiles } from '../../api/store/migrations.ts'

const UNDO: Record<number, string> = {
  2: 'DROP INDEX stripe_events_received',
  3: 'ALTER TABLE jobs DROP COLUMN step_at',
  4: 'DROP TABLE rate_limits',
  5: 'ALTER TABLE tenants DROP COLUMN soft_cancel_from',
  6: 'DROP INDEX tenants_fqdn; ALTER TABLE tenants DROP COLUMN fqdn',
  7: 'ALTER TABLE tenants DROP COLUMN billing_state',
  // Data only: the names it changed stay changed.
  8: 'SELECT 1',
  9: 'DROP INDEX stripe_events_unmatched; ALTER TABLE stripe_events DROP COLUMN unmatched_subscription',
  // Data only: the names it cleaned stay clean.
  10: 'SELECT 1',
  11: 'DROP INDEX stripe_events_not_ok',
  12: 'DROP INDEX tenants_created; DROP INDEX jobs_tenant',
  13: 'ALTER TABLE tenants DROP COLUMN admin_email',
  // Data only: the causes it hid stay hidden.
  14: 'SELECT 1',
  15: 'DROP INDEX tenants_state'
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

/**
 * Names older releases gave tenants, and what migration 008 makes of them: a Payment Link's
 * tenant was named after its whole session id; anything else is kept.
 */
export const SESSION_NAMES: Array<[before: string, after: string]> = [
  ['cs_live_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ012345', 'Checkout …012345'],
  ['cs_test_b1XyZ_0123456789abcdefQRSTU', 'Checkout …fQRSTU'],
  ['Spring CTF', 'Spring CTF'],
  ['cs_live_ but a sentence after all', 'cs_live_ but a sentence after all'],
  ['cs_live_short', 'cs_live_short'],
  ['cs_other_a1B2c3D4e5F6g7H8i9J0', 'cs_other_a1B2c3D4e5F6g7H8i9J0']
]

/**
 * Names with control characters an older release's checkout took, and what migration 010 makes
 * of them (the rule of tenants/name.ts); a name without one is kept as it is. PostgreSQL never
 * held those with NUL.
 */
export const CONTROL_NAMES: Array<[before: string, after: string]> = [
  ['Spring\u0000CTF', 'Spring CTF'],
  [' Tabs\t\t\nand\u007fDEL\r\n', 'Tabs and DEL'],
  ['Café \u0000 Ünïcode\u001b[31m', 'Café   Ünïcode [31m'],
  ['\u0000\u0001\u001f\u007f', 'ctfhive-event'],
  ['\u0001\u0002 \u0003', 'ctfhive-event'],
  ['  no control, spaces kept  ', '  no control, spaces kept  ']
]

/**
 * Makes a stored event look as a release before 009 left it unmatched: not waiting for its
 * subscription, so only the operator's replay applies it (SQLite test databases).
 */
export function asLeftByOlderRelease (databaseUrl: string, eventId: string): void {
  const db = new DatabaseSync(databaseUrl.replace(/^sqlite:/, ''))
  try {
    db.prepare('UPDATE stripe_events SET unmatched_subscription = NULL WHERE id = ?').run(eventId)
  } finally {
    db.close()
  }
}

/**
 * Public errors older releases stored, and what migration 014 makes of them: a failed
 * provisioning's raw cause becomes the public sentence; anything else is kept.
 */
export const PUBLIC_ERRORS: Array<[before: string | null, after: string | null]> = [
  ['Provisioning failed: Linode API 400: region: Region us-east is unavailable for account acct-88123 (internal ticket OPS-4471)', 'Provisioning failed; our team has the details and can retry it.'],
  ['Provisioning failed: fetch failed', 'Provisioning failed; our team has the details and can retry it.'],
  ['Provisioning failed after 3 attempts; our team has the details and can retry it.', 'Provisioning failed after 3 attempts; our team has the details and can retry it.'],
  ['The checkout expired before payment.', 'The checkout expired before payment.'],
  [null, null]
]
