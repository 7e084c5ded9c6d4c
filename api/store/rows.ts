// Row ↔ record mapping shared by the SQL adapters: one table of column names, so the
// SQLite and PostgreSQL adapters cannot disagree about what a column means.
import type { AuditEntry, Job, StripeEventRecord, Tenant, TenantPatch, JobPatch } from './store.ts'

type Row = Record<string, unknown>

/** Tenant field → column. Order is the INSERT column order. */
export const TENANT_COLUMNS = {
  id: 'id',
  name: 'name',
  email: 'email',
  plan: 'plan',
  slug: 'slug',
  fqdn: 'fqdn',
  billing: 'billing',
  infra: 'infra',
  subscriptionId: 'subscription_id',
  customerId: 'customer_id',
  billingAt: 'billing_at',
  planAt: 'plan_at',
  error: 'error',
  serverId: 'server_id',
  ipv4: 'ipv4',
  dnsRecordId: 'dns_record_id',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  paidAt: 'paid_at',
  readyAt: 'ready_at',
  canceledAt: 'canceled_at',
  softCancelFrom: 'soft_cancel_from',
  billingState: 'billing_state',
  adminEmail: 'admin_email'
} as const satisfies Record<keyof Tenant, string>

export const JOB_COLUMNS = {
  status: 'status',
  step: 'step',
  stepAt: 'step_at',
  attempts: 'attempts',
  runAfter: 'run_after',
  leaseUntil: 'lease_until',
  leaseOwner: 'lease_owner',
  lastError: 'last_error'
} as const satisfies Record<keyof JobPatch, string>

export function tenantFromRow (row: Row): Tenant {
  const t: Record<string, unknown> = {}
  for (const [field, column] of Object.entries(TENANT_COLUMNS)) t[field] = row[column] ?? null
  t.email = t.email ?? ''
  t.billingAt = Number(t.billingAt)
  t.planAt = Number(t.planAt)
  t.billingState = typeof t.billingState === 'string' ? JSON.parse(t.billingState) : null
  return t as unknown as Tenant
}

/** Fields as their columns hold them: the billing state is JSON text in both stores. */
function encoded<T extends TenantPatch> (t: T): T {
  return t.billingState == null ? t : { ...t, billingState: JSON.stringify(t.billingState) }
}

export function tenantValues (tenant: Tenant): unknown[] {
  const row = encoded(tenant)
  return Object.keys(TENANT_COLUMNS).map((field) => row[field as keyof Tenant])
}

/** `[columns, values]` of a patch, skipping undefined fields. */
export function patchColumns<P extends object> (patch: P, columns: Record<string, string>): [string[], unknown[]] {
  const cols: string[] = []
  const values: unknown[] = []
  for (const [field, value] of Object.entries(patch)) {
    if (value === undefined) continue
    const column = columns[field]
    if (column === undefined) throw new Error(`unknown field ${field}`)
    cols.push(column)
    values.push(value)
  }
  return [cols, values]
}

export function tenantPatchColumns (patch: TenantPatch): [string[], unknown[]] {
  return patchColumns(encoded(patch), TENANT_COLUMNS)
}

export function eventFromRow (row: Row): StripeEventRecord {
  return {
    id: String(row.id),
    type: String(row.type),
    created: Number(row.created),
    received: String(row.received),
    outcome: row.outcome as StripeEventRecord['outcome'],
    tenant: (row.tenant as string | null) ?? null,
    payload: String(row.payload),
    unmatchedSubscription: (row.unmatched_subscription as string | null) ?? null
  }
}

export function jobFromRow (row: Row): Job {
  return {
    id: Number(row.id),
    kind: row.kind as Job['kind'],
    tenant: String(row.tenant),
    status: row.status as Job['status'],
    step: String(row.step ?? ''),
    stepAt: Number(row.step_at),
    attempts: Number(row.attempts),
    runAfter: Number(row.run_after),
    leaseUntil: Number(row.lease_until),
    leaseOwner: (row.lease_owner as string | null) ?? null,
    lastError: (row.last_error as string | null) ?? null,
    createdAt: String(row.created_at),
    updatedAt: String(row.updated_at)
  }
}

export function auditFromRow (row: Row): AuditEntry {
  const entry: AuditEntry = {
    seq: Number(row.seq),
    at: String(row.at),
    tenant: String(row.tenant),
    action: String(row.action),
    detail: {},
    prevMac: String(row.prev_mac),
    mac: String(row.mac)
  }
  // Only an edited row holds other text: it is read, so the verifier can name its seq (and
  // the tenant view show it) instead of every reader of the chain failing on it.
  const text = String(row.detail)
  try {
    entry.detail = JSON.parse(text) as Record<string, unknown>
  } catch {
    entry.detail = { unreadable_detail: text }
    entry.unreadable = true
  }
  return entry
}

/**
 * SET clauses of a claim (both stores): taking over a lapsed lease means the worker holding
 * it died mid-attempt (a lease given back at shutdown has no owner), so that attempt counts,
 * or a job that kills its worker would be retried forever.
 */
export const RECLAIM_COUNTS = `attempts = attempts + CASE WHEN status = 'running' AND lease_owner IS NOT NULL THEN 1 ELSE 0 END,
  last_error = CASE WHEN status = 'running' AND lease_owner IS NOT NULL THEN 'the worker running the previous attempt stopped without a result' ELSE last_error END`

/** The condition (both stores) for tenants that may have a server or a DNS record. */
export const WITH_SERVER = " AND infra NOT IN ('none', 'deprovisioned')"

/** Ended rate-limit windows deleted when a new one begins, at most. */
export const PRUNE_BATCH = 16

export const GENESIS_MAC = '0'.repeat(64)
