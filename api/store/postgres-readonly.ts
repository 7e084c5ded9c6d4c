// PostgreSQL that answers but refuses every write (a standby, a demoted primary, or
// default_transaction_read_only on): readiness must say not ready, not just "it answers".
import { StoreRefusesWrites } from './store.ts'

/**
 * One round trip, as readiness probes come often. An autocommit statement's transaction_read_only
 * is the session's default_transaction_read_only (a standby's is on too).
 */
export const WRITABLE_SQL = "SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') = 'on' AS read_only"

/** The refusal the answer to WRITABLE_SQL shows, if any. */
export function writeRefusal (row: Record<string, unknown> | undefined): StoreRefusesWrites | null {
  if (row?.recovery === true) return new StoreRefusesWrites('it is a standby (in recovery)')
  if (row?.read_only === true) return new StoreRefusesWrites('its sessions are read-only (default_transaction_read_only is on)')
  return null
}
