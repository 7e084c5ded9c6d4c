// The store interface: one async surface, two adapters (SQLite embedded, PostgreSQL shared).
// Everything that must be atomic goes through `transaction()`; code inside a transaction does
// store operations only (no network I/O), so a unit can be retried or batched freely.
import type { BillingState } from '../tenants/billing-state.ts'
import type { Billing, Infra } from '../tenants/lifecycle.ts'
import type { SchemaStatus } from './migrations.ts'

export interface Tenant {
  id: string
  name: string
  email: string
  plan: string
  /** DNS label, unique per tenant: the first label of its address. */
  slug: string
  /**
   * `<slug>.<BASE_DOMAIN>` as it was when the tenant's first server was queued (until then, when
   * it was made), kept through later changes of BASE_DOMAIN. Null only for a row an older
   * release wrote (see `tenantFqdn`).
   */
  fqdn: string | null
  billing: Billing
  infra: Infra
  subscriptionId: string | null
  customerId: string | null
  /** Stripe `created` (unix s) of the billing status in force; 0 when none. */
  billingAt: number
  /** Stripe `created` of the plan in force; 0 when none. */
  planAt: number
  error: string | null
  /** Executor's handle of the tenant's server and DNS record, once made. */
  serverId: string | null
  ipv4: string | null
  dnsRecordId: string | null
  createdAt: string
  updatedAt: string
  paidAt: string | null
  readyAt: string | null
  canceledAt: string | null
  /**
   * Set while billing is `canceled` by a failed or expired checkout of a never-paid tenant:
   * the billing status underneath, which a later payment restores (lifecycle.ts).
   */
  softCancelFrom: Billing | null
  /**
   * What each of its subscriptions' events said (billing-state.ts); `billing`, `billingAt`,
   * `plan`, `planAt`, `subscriptionId` and `softCancelFrom` are its summary. Null for a row
   * written before migration 007, rebuilt from those columns when next needed.
   */
  billingState: BillingState | null
  /**
   * The address the CTF's first administrator was set up with, stored when its server is made
   * (the tenant's own may come later). Null before that, and for a server made before migration 013.
   */
  adminEmail: string | null
}

export type TenantPatch = Partial<Omit<Tenant, 'id' | 'createdAt'>>

/** What the webhook made of an event; 'ok' (renewals among them) is by far the most common. */
// An ignored event (an unsupported type, or the other Stripe mode) is answered, not stored.
/**
 * How far apart the clocks of instances on one database may read, for rate-limit windows: a
 * window ending more than a window and this from now began before the clock was stepped back.
 */
export const RATE_CLOCK_SLACK_MS = 1000

export const EVENT_OUTCOMES = ['ok', 'stale', 'ignored_terminal', 'unmatched'] as const
export type EventOutcome = typeof EVENT_OUTCOMES[number]

export interface StripeEventRecord {
  id: string
  type: string
  /** Stripe's `created`, unix seconds. */
  created: number
  /** When we received it, ISO UTC. */
  received: string
  outcome: EventOutcome
  tenant: string | null
  payload: string
  /** An unmatched event's subscription, kept until a tenant takes it on (then null). */
  unmatchedSubscription?: string | null
}

/** `resize`: brings a live tenant's server to its plan's server type (provisioning/resize.ts). */
export type JobKind = 'provision' | 'deprovision' | 'resize'
export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'canceled'

export interface Job {
  id: number
  kind: JobKind
  tenant: string
  status: JobStatus
  /**
   * Last finished step; the next attempt resumes after it. Empty before the first. A teardown
   * enters `dns_removing` as its first removal may begin (provisioning/teardown.ts); a resize's
   * steps name the server type they await (`resizing:<type>`, provisioning/resize.ts).
   */
  step: string
  /** Epoch ms at which the job entered `step` (for `''`, when it was queued). */
  stepAt: number
  attempts: number
  /** Epoch ms before which the job is not run. */
  runAfter: number
  /** Epoch ms at which a running job's lease lapses and another worker may take it. */
  leaseUntil: number
  leaseOwner: string | null
  lastError: string | null
  createdAt: string
  updatedAt: string
}

export type JobPatch = Partial<Pick<Job, 'status' | 'step' | 'stepAt' | 'attempts' | 'runAfter' | 'leaseUntil' | 'leaseOwner' | 'lastError'>>

export interface AuditEntry {
  seq: number
  at: string
  tenant: string
  action: string
  detail: Record<string, unknown>
  prevMac: string
  mac: string
  /** Set when the stored detail is not JSON (an edited row): `detail` then holds its text. */
  unreadable?: true
}

export interface AuditInput {
  at: string
  tenant: string
  action: string
  detail: Record<string, unknown>
}

/**
 * Computes an entry's MAC from the previous entry's MAC and the entry's own seq. `prev` is the
 * entry it chains to (undefined on an empty chain), so a seal can refuse, by throwing, to chain
 * to an entry its key did not write.
 */
export type AuditSeal = (prevMac: string, seq: number, prev: AuditEntry | undefined) => string

export interface TenantFilter {
  billing?: Billing
  infra?: Infra
  limit?: number
  offset?: number
  /**
   * Only the tenants listed after this one (newest first, then id): a keyset page, which rows
   * inserted or deleted meanwhile do not shift as they shift an offset.
   */
  after?: { createdAt: string, id: string }
}

/** Where an event stands in the listing of all events: the last received first, then by id, descending. */
export interface EventPosition {
  received: string
  id: string
}

/**
 * What listEvents lists: a tenant's events, or all of them, optionally of one outcome and only
 * those listed after `after` (received before it, or as late with a smaller id): a keyset
 * page, exact across events received in the same millisecond.
 */
export type EventFilter =
  | { tenant: string, limit?: number }
  | { tenant?: undefined, limit?: number, outcome?: EventOutcome, after?: EventPosition }

export interface RateCount {
  /** Hits in the current window, this one included. */
  count: number
  /** Epoch ms at which the window ends. */
  resetAt: number
}

/** Operations available both on the store and inside a transaction. */
export interface StoreOps {
  /**
   * The store's clock, in ms since the epoch. Every time the app stores or compares with a
   * stored one (job leases and due times, step times, cancellations, rate-limit windows) is
   * read from it, so instances on one database agree whatever their own clocks say.
   */
  now (): number
  getTenant (id: string): Promise<Tenant | undefined>
  /** Locks the tenant row for the rest of the transaction where the adapter can (PostgreSQL). */
  getTenantForUpdate (id: string): Promise<Tenant | undefined>
  findTenantIdBySubscription (subscriptionId: string): Promise<string | undefined>
  /** The tenant holding this slug, if any (the column is unique). */
  getTenantBySlug (slug: string): Promise<Tenant | undefined>
  insertTenant (tenant: Tenant): Promise<void>
  /**
   * Gives every tenant without an address (written by a release before migration 006)
   * `<slug>.<baseDomain>`; returns how many it gave one.
   */
  assignFqdns (baseDomain: string): Promise<number>
  /**
   * The domains tenant addresses are under (each address less its first label), sorted.
   * `withServer`: only of tenants that may have a server or DNS record (infra neither `none`
   * nor `deprovisioned`).
   */
  tenantDomains (opts?: { withServer?: boolean }): Promise<string[]>
  updateTenant (id: string, patch: TenantPatch): Promise<void>
  deleteTenant (id: string): Promise<void>
  listTenants (filter?: TenantFilter): Promise<Tenant[]>
  countTenants (filter?: TenantFilter): Promise<number>
  /** Records subscription → tenant in the durable index; the first link of a subscription wins. */
  linkSubscription (subscriptionId: string, tenantId: string): Promise<void>
  /**
   * Holds this subscription until the transaction ends, so two transactions that may each adopt
   * it (make a tenant for it) run one after the other. PostgreSQL: an advisory lock; SQLite:
   * nothing to do, its write transactions already run one at a time.
   */
  lockSubscription (subscriptionId: string): Promise<void>

  /** Inserts the event unless its id is known; false means a duplicate (nothing written). */
  recordEvent (event: StripeEventRecord): Promise<boolean>
  getEvent (id: string): Promise<StripeEventRecord | undefined>
  /** The events still unmatched that name this subscription, in Stripe's order. */
  listUnmatchedEvents (subscriptionId: string): Promise<StripeEventRecord[]>
  /** An unmatched event applied at last: its outcome and tenant, and no longer waiting. */
  settleEvent (id: string, outcome: EventOutcome, tenant: string | null): Promise<void>
  /**
   * Without a tenant: the last received first (ties by id, descending), optionally of one
   * outcome and after a position. For a tenant: its most recent `limit` events (by Stripe's
   * `created`), listed in Stripe's order, oldest first. `limit` defaults to 100.
   */
  listEvents (filter: EventFilter): Promise<StripeEventRecord[]>
  /**
   * Retention's next batch: up to `limit` events received before `before` (and after `after`,
   * in the order received, then id) whose payload is not yet blank and which wait for no
   * tenant. A run walks the range with the last position each batch returns.
   */
  listPayloadsBefore (before: string, after: EventPosition | undefined, limit: number): Promise<EventPosition[]>
  /**
   * Blanks the payloads (to '') of these events, or of all of one tenant's events; never of
   * one still waiting for its subscription's tenant. Returns how many it blanked.
   */
  blankPayloads (which: { ids: readonly string[] } | { tenant: string }): Promise<number>

  /** Adds a queued job unless one of that kind is already queued or running for the tenant. */
  enqueueJob (job: { kind: JobKind, tenant: string, runAfter: number }): Promise<Job>
  /** Takes the next due job (queued and due, or running with a lapsed lease) and leases it. */
  claimNextJob (owner: string, now: number, leaseMs: number): Promise<Job | undefined>
  updateJob (id: number, patch: JobPatch): Promise<void>
  getJob (id: number): Promise<Job | undefined>
  /** Locks the job row for the rest of the transaction where the adapter can (PostgreSQL): a claim waits for it. */
  getJobForUpdate (id: number): Promise<Job | undefined>
  listJobs (filter: { tenant?: string, status?: JobStatus }): Promise<Job[]>
  /** Earliest runAfter of a queued job, or leaseUntil of a running one; for the worker's timer. */
  nextJobDueAt (): Promise<number | undefined>
  /** Gives up the leases a worker holds so another can take the jobs at once (shutdown). */
  releaseLeases (owner: string): Promise<number>

  /**
   * Counts one hit on `key` (a rate limit's client): its window began with its first hit and
   * lasts `windowMs`; a hit after `resetAt` begins a new one, and clears a few windows that ended.
   */
  countHit (key: string, windowMs: number, now: number): Promise<RateCount>

  /** Appends one entry at the end of the chain, serialised against every other append. */
  appendAudit (input: AuditInput, seal: AuditSeal): Promise<AuditEntry>
  /** In `seq` order: the first `limit` (default 1000) after `afterSeq`, or with `newest` the last `limit`. */
  listAudit (filter: { tenant?: string, afterSeq?: number, limit?: number, newest?: boolean }): Promise<AuditEntry[]>
}

export interface Store extends StoreOps {
  readonly kind: 'sqlite' | 'postgres'
  /** Runs `fn` atomically: all its writes commit together, or none (it rethrows). */
  transaction<T> (fn: (tx: StoreOps) => Promise<T>): Promise<T>
  /** Which of this release's migrations the database lacks, and which of its versions this release does not know. */
  schema (): Promise<SchemaStatus>
  /** Cheap liveness query, for /readyz. */
  ping (): Promise<void>
  /**
   * Measures how far the database's clock runs ahead of this host's wall clock, in ms, and sets
   * `now()` by it from then on (0 for the embedded store, which has no other clock).
   */
  syncClock (): Promise<number>
  close (): Promise<void>
}

/** A store failure (as opposed to a client mistake): routes answer 500 so Stripe retries. */
export class StoreError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreError'
  }
}

/** A store that answers but refuses every write (PostgreSQL read-only, or a standby): not ready. */
export class StoreRefusesWrites extends StoreError {
  /** Why, in a few words, for the 503 and the log: no host, user or setting value. */
  readonly why: string

  constructor (why: string) {
    super(`PostgreSQL refuses writes: ${why}`)
    this.name = 'StoreRefusesWrites'
    this.why = why
  }
}
