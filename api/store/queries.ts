// The listing queries both adapters run, written once with `?` placeholders; PostgreSQL's
// adapter numbers them (`numbered`). Each is a statement of its own per shape of filter, with no
// `? IS NULL OR …` term: such a term leaves SQLite, and a prepared statement's generic plan on
// PostgreSQL, no index to use.
import type { EventFilter, EventPosition, JobStatus } from './store.ts'

/** `?` placeholders as PostgreSQL's `$1`, `$2`, …; the queries here hold no `?` of their own. */
export function numbered ([sql, params]: [string, unknown[]]): [string, unknown[]] {
  let n = 0
  return [sql.replace(/\?/g, () => `$${++n}`), params]
}

/** listJobs: with a tenant, its jobs along jobs_tenant (migration 012), already in id order. */
export function jobsQuery (filter: { tenant?: string, status?: JobStatus }): [string, unknown[]] {
  const clauses: string[] = []
  const params: unknown[] = []
  if (filter.tenant !== undefined) { clauses.push('tenant = ?'); params.push(filter.tenant) }
  if (filter.status !== undefined) { clauses.push('status = ?'); params.push(filter.status) }
  return [`SELECT * FROM jobs ${clauses.length > 0 ? `WHERE ${clauses.join(' AND ')} ` : ''}ORDER BY id`, params]
}

/**
 * listAudit: a tenant's entries along audit_log_tenant, all of them along seq. One statement for
 * both would walk the chain from its start for a tenant.
 */
export function auditQuery (filter: { tenant?: string, afterSeq?: number, limit?: number, newest?: boolean }): [string, unknown[]] {
  const where = filter.tenant !== undefined ? 'WHERE tenant = ? AND seq > ?' : 'WHERE seq > ?'
  // No afterSeq: from the first row, whatever its seq (a row put below 1 by hand included).
  const params = [...(filter.tenant !== undefined ? [filter.tenant] : []), filter.afterSeq ?? Number.MIN_SAFE_INTEGER, filter.limit ?? 1000]
  const sql = filter.newest === true
    ? `SELECT * FROM (SELECT * FROM audit_log ${where} ORDER BY seq DESC LIMIT ?) AS recent ORDER BY seq`
    : `SELECT * FROM audit_log ${where} ORDER BY seq LIMIT ?`
  return [sql, params]
}

/**
 * All events, the last received first, optionally of one outcome and after a position: read
 * backwards along stripe_events_received (migration 002), or for an outcome other than 'ok'
 * along the partial stripe_events_not_ok (011). Its term `outcome <> 'ok'` is in the query word
 * for word: SQLite takes a partial index only for a query that holds its term, and a generic
 * plan on PostgreSQL cannot tell that the outcome it is given is not 'ok'. The row comparison
 * reads as a range on the index (on PostgreSQL both columns are COLLATE "C", as the index is).
 */
export function recentEventsQuery (filter: Extract<EventFilter, { tenant?: undefined }>): [string, unknown[]] {
  const clauses: string[] = []
  const params: unknown[] = []
  if (filter.outcome !== undefined) {
    clauses.push(filter.outcome === 'ok' ? 'outcome = ?' : "outcome = ? AND outcome <> 'ok'")
    params.push(filter.outcome)
  }
  if (filter.after !== undefined) { clauses.push('(received, id) < (?, ?)'); params.push(filter.after.received, filter.after.id) }
  const where = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')} ` : ''
  return [`SELECT * FROM stripe_events ${where}ORDER BY received DESC, id DESC LIMIT ?`, [...params, filter.limit ?? 100]]
}

/**
 * listPayloadsBefore: along stripe_events_received (002) from the oldest, so a run's batches
 * each begin where the last ended. Blank payloads are passed over, not returned: a batch holds
 * only events there is still something to do for.
 */
export function payloadsBeforeQuery (before: string, after: EventPosition | undefined, limit: number): [string, unknown[]] {
  const from = after === undefined ? '' : 'AND (received, id) > (?, ?) '
  return [
    `SELECT received, id FROM stripe_events WHERE received < ? ${from}AND payload <> '' AND unmatched_subscription IS NULL ORDER BY received, id LIMIT ?`,
    [before, ...(after === undefined ? [] : [after.received, after.id]), limit]
  ]
}
