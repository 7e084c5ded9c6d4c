// Operator operations on tenants, shared by the /admin API and the `ctfhive` CLI so the two
// cannot drift: list by derived state, inspect, retry provisioning, verify the audit chain,
// replay a stored event, export. Reads and writes go through the store and the tenant service.
import { setImmediate as nextTurn } from 'node:timers/promises'
import { AppError } from '../errors.ts'
import { otherModeThanKey, storedEvent, stripeKeyMode } from '../billing/events.ts'
import { auditKeyFits, verifyStoredChain, type AuditAnchor, type AuditVerdict } from '../provisioning/audit.ts'
import type { AuditEntry, EventOutcome, EventPosition, Job, StoreOps, StripeEventRecord, Tenant, TenantFilter } from '../store/store.ts'
import { billingStateOf, type SubscriptionFacts } from './billing-state.ts'
import { BILLING, INFRA, deriveTenantState, type TenantState } from './lifecycle.ts'
import type { TenantService, TenantStatus, WebhookResult } from './service.ts'
import { welcomePath } from './welcome-token.ts'

export const MAX_PAGE = 500

/** What an operator sees of a tenant: its public status plus contact and server details. */
export interface TenantRecord extends TenantStatus {
  email: string
  slug: string
  customer_id: string | null
  server_id: string | null
  ipv4: string | null
  dns_record_id: string | null
}

export interface EventSummary {
  id: string
  type: string
  created: number
  received: string
  outcome: StripeEventRecord['outcome']
  tenant: string | null
}

export interface AuditView {
  seq: number
  at: string
  action: string
  detail: Record<string, unknown>
}

export interface JobView {
  id: number
  kind: Job['kind']
  status: Job['status']
  step: string
  /** When the job entered `step` (ISO 8601): how long it has waited there. Null: not recorded (a release before migration 003). */
  step_at: string | null
  attempts: number
  last_error: string | null
  created_at: string
  updated_at: string
}

export interface TenantPage {
  total: number
  limit: number
  offset: number
  tenants: TenantRecord[]
  /** The cursor of the page after this one (pass it as `after`); null on the last page. */
  next: string | null
}

export interface EventPage {
  events: EventSummary[]
  /** The cursor of the page after this one (pass it as `after`); null on the last page. */
  next: string | null
}

/** A page cursor: where a page ends in the list's order (newest first, then id), opaque to clients. */
export function tenantCursor (t: { createdAt: string, id: string }): string {
  return Buffer.from(JSON.stringify([t.createdAt, t.id])).toString('base64url')
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/

/** A cursor's JSON array; undefined for text that is not one. */
function cursorArray (cursor: string): unknown[] | undefined {
  const bytes = Buffer.from(cursor, 'base64url')
  // Node's decoder skips what is not base64url: `<cursor>x` would read as the cursor.
  if (bytes.toString('base64url') !== cursor) return undefined
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  return Array.isArray(value) ? value : undefined
}

/** The position a cursor names; undefined for one this server did not give out. */
export function parseTenantCursor (cursor: string): { createdAt: string, id: string } | undefined {
  const value = cursorArray(cursor)
  if (value === undefined || value.length !== 2) return undefined
  const [createdAt, id] = value
  if (typeof createdAt !== 'string' || !ISO_INSTANT.test(createdAt) || typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id)) return undefined
  return { createdAt, id }
}

// Marked, so that a tenant page's cursor given to the events listing is refused, not read as a time.
const EVENTS_CURSOR = 'events'
/** A Stripe id (printable ASCII, as the webhook takes them: PostgreSQL's text refuses a NUL) with a replay's suffix. */
const EVENT_ID = /^[\x21-\x7e]{1,300}$/
/** Room for the longest: a replay's id, each character escaped in the JSON, in base64url. */
export const MAX_EVENT_CURSOR = 1024

/** Where an events page ends in the listing's order (the last received first, then id), opaque to clients. */
export function eventCursor (e: EventPosition): string {
  return Buffer.from(JSON.stringify([EVENTS_CURSOR, e.received, e.id])).toString('base64url')
}

/** The position an events cursor names; undefined for one this server did not give out. */
export function parseEventCursor (cursor: string): EventPosition | undefined {
  const value = cursorArray(cursor)
  if (value === undefined || value.length !== 3) return undefined
  const [kind, received, id] = value
  if (kind !== EVENTS_CURSOR || typeof received !== 'string' || !ISO_INSTANT.test(received) || typeof id !== 'string' || !EVENT_ID.test(id)) return undefined
  return { received, id }
}

/** What one subscription's events said (billing-state.ts); the tenant's billing sums them up. */
export interface SubscriptionView {
  /** Null: events that named no subscription (and the checkout's plan). */
  id: string | null
  status: string
  status_at: number
  plan: string | null
  plan_at: number
  ended: boolean
  ended_at: number
  end_reason: string | null
  paid: boolean
}

export interface TenantDetail {
  tenant: TenantRecord
  subscriptions: SubscriptionView[]
  /** A failed or expired checkout, which cancels the tenant while nothing was paid. */
  checkout_failed: { at: number, reason: string } | null
  events: EventSummary[]
  audit: AuditView[]
  jobs: JobView[]
}

/** A buyer's welcome link, made again for support to send them. */
export interface WelcomeLink {
  tenant_id: string
  /** Where to send it: the address the buyer gave (empty when they gave none). */
  email: string
  welcome_url: string
}

export interface ReplayResult {
  event_id: string
  replay_id: string
  original_outcome: StripeEventRecord['outcome']
  result: WebhookResult
}

/**
 * The (billing, infra) store filters whose union is exactly the tenants in `state`. A whole
 * billing column collapses to one filter (e.g. canceled = billing canceled, any infra).
 */
export function filtersForState (state: TenantState): TenantFilter[] {
  const filters: TenantFilter[] = []
  for (const billing of BILLING) {
    const infras = INFRA.filter((infra) => deriveTenantState(billing, infra) === state)
    if (infras.length === INFRA.length) filters.push({ billing })
    else for (const infra of infras) filters.push({ billing, infra })
  }
  return filters
}

// The store's own order (newest first, then id), so merged pages match single-filter pages.
function newestFirst (a: Tenant, b: Tenant): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

function subscriptionView (key: string, s: SubscriptionFacts): SubscriptionView {
  return { id: key === '' ? null : key, status: s.status, status_at: s.statusAt, plan: s.plan, plan_at: s.planAt, ended: s.ended, ended_at: s.endedAt, end_reason: s.endReason, paid: s.paid }
}

function summary (e: StripeEventRecord): EventSummary {
  return { id: e.id, type: e.type, created: e.created, received: e.received, outcome: e.outcome, tenant: e.tenant }
}

function auditView (e: AuditEntry): AuditView {
  return { seq: e.seq, at: e.at, action: e.action, detail: e.detail }
}

function jobView (j: Job): JobView {
  return { id: j.id, kind: j.kind, status: j.status, step: j.step, step_at: j.stepAt > 0 ? new Date(j.stepAt).toISOString() : null, attempts: j.attempts, last_error: j.lastError, created_at: j.createdAt, updated_at: j.updatedAt }
}

const REPLAY_MARK = ':replay:'

export class TenantAdmin {
  private readonly store: StoreOps
  private readonly tenants: TenantService
  private readonly auditSecret: string
  private readonly keyMode: 'live' | 'test' | undefined

  /** `stripeSecretKey` decides which mode's events a replay may run, as the webhook does. */
  constructor (opts: { store: StoreOps, tenants: TenantService, auditSecret: string, stripeSecretKey: string }) {
    this.store = opts.store
    this.tenants = opts.tenants
    this.auditSecret = opts.auditSecret
    this.keyMode = stripeKeyMode(opts.stripeSecretKey)
  }

  record (t: Tenant): TenantRecord {
    return {
      ...this.tenants.statusOf(t),
      email: t.email,
      slug: t.slug,
      customer_id: t.customerId,
      server_id: t.serverId,
      ipv4: t.ipv4,
      dns_record_id: t.dnsRecordId
    }
  }

  /**
   * One page of tenants, newest first, optionally only those in a derived state: at an offset,
   * or after a cursor (`next` of the page before), which tenants added or removed meanwhile do
   * not shift as they shift an offset.
   */
  async listTenants (query: { state?: TenantState, limit?: number, offset?: number, after?: string } = {}): Promise<TenantPage> {
    const limit = Math.min(Math.max(query.limit ?? 50, 1), MAX_PAGE)
    const offset = Math.max(query.offset ?? 0, 0)
    const after = query.after === undefined ? undefined : parseTenantCursor(query.after)
    if (query.after !== undefined && after === undefined) throw new AppError('invalid_request', 'after is not a cursor this server gave out: pass the next of an earlier page.', { field: 'after' })
    if (after !== undefined && query.offset !== undefined) throw new AppError('invalid_request', 'Give offset or after, not both.', { field: 'offset' })
    const filters = query.state === undefined ? [{}] : filtersForState(query.state)
    let total = 0
    for (const f of filters) total += await this.store.countTenants(f)
    // One row more than the page: whether another page follows.
    let rows: Tenant[]
    if (offset >= total) {
      // Past the end (the CLI takes any safe integer): nothing to read, and offset + limit
      // below never has to hold a number that large.
      rows = []
    } else if (filters.length === 1) {
      rows = await this.store.listTenants({ ...filters[0], limit: limit + 1, offset, after })
    } else {
      // Each filter's first offset+limit+1 rows hold every row of the merged page.
      const parts = await Promise.all(filters.map((f) => this.store.listTenants({ ...f, limit: offset + limit + 1, offset: 0, after })))
      rows = parts.flat().sort(newestFirst).slice(offset, offset + limit + 1)
    }
    const page = rows.slice(0, limit)
    const next = rows.length > limit ? tenantCursor(page[page.length - 1]!) : null
    return { total, limit, offset, tenants: page.map((t) => this.record(t)), next }
  }

  private async mustGet (id: string): Promise<Tenant> {
    const t = await this.store.getTenant(id)
    if (t === undefined) throw new AppError('tenant_not_found', `No tenant has the id ${id}.`)
    return t
  }

  async tenantRecord (id: string): Promise<TenantRecord> {
    return this.record(await this.mustGet(id))
  }

  /**
   * The welcome link of a tenant, signed as /billing/success signs it (`secretKey` must be the
   * server's): a bearer link to the order and the CTF administrator's password, for a buyer who
   * lost theirs (links back from Checkout expire after two days).
   */
  async welcomeLink (id: string, secretKey: string, publicBaseUrl: string): Promise<WelcomeLink> {
    const t = await this.mustGet(id)
    return { tenant_id: t.id, email: t.email, welcome_url: new URL(welcomePath(secretKey, t.id), publicBaseUrl).href }
  }

  async showTenant (id: string): Promise<TenantDetail> {
    const t = await this.mustGet(id)
    const [events, audit, jobs] = await Promise.all([
      this.store.listEvents({ tenant: id, limit: 1000 }),
      // The newest: a teardown failing for weeks adds an entry per attempt, and the last says why.
      this.store.listAudit({ tenant: id, limit: 5000, newest: true }),
      this.store.listJobs({ tenant: id })
    ])
    const billing = billingStateOf(t)
    return {
      tenant: this.record(t),
      subscriptions: Object.entries(billing.subscriptions).map(([key, s]) => subscriptionView(key, s)),
      checkout_failed: billing.checkoutFailed,
      events: events.map(summary),
      audit: audit.map(auditView),
      jobs: jobs.map(jobView)
    }
  }

  /**
   * Re-queues what failed for good: the provisioning of a tenant whose infra failed (which also
   * brings its server to the plan's type), the teardown of a canceled tenant whose last teardown
   * failed (its server still runs), or the resize of a live tenant whose last resize failed.
   * Anything else is a conflict.
   */
  async retry (id: string): Promise<TenantRecord> {
    const t = await this.mustGet(id)
    // Each retry checks again under the tenant's lock: a webhook landing since this read (a
    // cancel, say) leaves nothing queued, and the answer is then a conflict, never a 200.
    const queued = t.billing === 'canceled'
      ? await this.tenants.retryTeardown(id)
      : t.infra === 'failed' ? await this.tenants.retryProvisioning(id) : await this.tenants.retryResize(id)
    const now = await this.mustGet(id)
    if (queued) return this.record(now)
    const state = deriveTenantState(now.billing, now.infra)
    throw new AppError('conflict',
      `Only a failed provisioning, resize or teardown can be retried; this tenant is ${state}${now.billing === 'canceled' ? ' and has no failed teardown' : now.infra === 'failed' ? '' : ' and has no failed resize'}.`, { tenant_id: id, state })
  }

  /**
   * Whether this process holds the key the chain was written with, checked on one entry: by
   * default the last, which the next append chains to (a tool run with the wrong
   * PROVISION_AUDIT_SECRET must not append to it); `first`, to tell a wrong key from a break.
   */
  async auditKeyMatches (entry: 'first' | 'last' = 'last'): Promise<boolean> {
    return auditKeyFits(this.store, this.auditSecret, entry)
  }

  /** The whole chain; with an anchor (a head recorded earlier), also that it still reaches it. */
  async verifyAudit (anchor?: AuditAnchor): Promise<AuditVerdict> {
    return verifyStoredChain(this.store, this.auditSecret, anchor)
  }

  /**
   * One page of events, the last received first (to find one to replay), optionally only those
   * of one outcome, and after a cursor (`next` of the page before).
   */
  async listEvents (query: { limit?: number, outcome?: EventOutcome, after?: string } = {}): Promise<EventPage> {
    const limit = Math.min(Math.max(query.limit ?? 50, 1), MAX_PAGE)
    const after = query.after === undefined ? undefined : parseEventCursor(query.after)
    if (query.after !== undefined && after === undefined) throw new AppError('invalid_request', 'after is not a cursor this server gave out: pass the next of an earlier page of events.', { field: 'after' })
    // One row more than the page: whether another page follows.
    const rows = await this.store.listEvents({ limit: limit + 1, outcome: query.outcome, after })
    const page = rows.slice(0, limit)
    const next = rows.length > limit ? eventCursor(page[page.length - 1]!) : null
    return { events: page.map(summary), next }
  }

  /**
   * Runs a stored event's payload through the webhook rules again, as a fresh delivery with
   * the id `<id>:replay:<n>`: the tenant is looked up now (so an event that was `unmatched`
   * can match a tenant that exists since), the event's own `created` still orders it (a
   * superseded change is `stale`) and `canceled` stays terminal. An event that already applied
   * to a tenant applies to that tenant again: a checkout that adopted (made) one must not make
   * a second, and a second server. The original row is kept as it was; the replay is recorded
   * beside it with its own outcome.
   */
  async replayEvent (id: string): Promise<ReplayResult> {
    const original = await this.store.getEvent(id)
    if (original === undefined) throw new AppError('event_not_found', `No stored event has the id ${id}.`)
    // Blanked by retention (retention.ts): the row says only what the event was.
    if (original.payload === '') throw new AppError('invalid_event', `The payload of ${id} was removed by retention (ctfhive prune): it cannot be replayed.`)
    const event = storedEvent(original.payload)
    if (event === undefined) throw new AppError('invalid_event', `The stored payload of ${id} is not a Stripe event.`)
    // Stored under an earlier key of the other mode (an account moved from test to live on the
    // same store): run now, a test event would provision and bill for real, or the reverse.
    if (otherModeThanKey(event, this.keyMode)) {
      throw new AppError('conflict', `Event ${id} is from Stripe's ${event.livemode === true ? 'live' : 'test'} mode and STRIPE_SECRET_KEY is a ${this.keyMode} key: it is not replayed.`)
    }
    const base = id.includes(REPLAY_MARK) ? id.slice(0, id.indexOf(REPLAY_MARK)) : id
    for (let n = 1; n <= 10_000; n++) {
      const replayId = `${base}${REPLAY_MARK}${n}`
      if (await this.store.getEvent(replayId) !== undefined) continue
      const result = await this.tenants.handleEvent({ ...event, id: replayId }, original.payload, original.tenant ?? undefined)
      // Another replay took this number at the same moment: take the next one.
      if (result.status === 'duplicate') continue
      return { event_id: id, replay_id: replayId, original_outcome: original.outcome, result }
    }
    throw new AppError('conflict', `Event ${id} has been replayed too many times.`)
  }

  /** Every tenant, oldest first, in pages (no secrets: tenants hold none; welcome tokens are not made). */
  async exportTenants (): Promise<TenantRecord[]> {
    // Each page starts after the last tenant read, not at an offset: a tenant deleted between
    // two reads (a checkout Stripe refused) would shift an offset past one that still exists.
    const all: TenantRecord[] = []
    let after: Tenant | undefined
    for (;;) {
      const page = await this.store.listTenants({ limit: MAX_PAGE, after: after === undefined ? undefined : { createdAt: after.createdAt, id: after.id } })
      for (const t of page) all.push(this.record(t))
      if (page.length < MAX_PAGE) break
      after = page[page.length - 1]
      // SQLite reads synchronously: without a turn between pages, a large export would hold
      // every request (health checks, webhooks) and timer of the server until it ends.
      await nextTurn()
    }
    return all.reverse()
  }
}
