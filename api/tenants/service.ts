// The tenant service owns the rules that touch the store: creating pending tenants,
// applying Stripe events exactly once, starting provisioning and teardown, reporting status.
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { getPlan } from '../plans.ts'
import { intentForEvent, isSupportedEvent, storablePayload, storedEvent, type EventIntent, type PriceToPlan, type StripeEvent } from '../billing/events.ts'
import { appendAudit } from '../provisioning/audit.ts'
import type { JobRunner } from '../provisioning/jobs.ts'
import { AWAITING_PLAN } from '../provisioning/provision.ts'
import type { StoreOps, Store, Tenant, TenantPatch } from '../store/store.ts'
import { addressUnder, tenantFqdn } from './address.ts'
import { initialBillingState } from './billing-state.ts'
import { applyBillingChange, deriveTenantState, type TenantState } from './lifecycle.ts'

export type ServiceConfig = Pick<Config, 'auditSecret' | 'baseDomain' | 'deprovisionGraceHours' | 'webhookWaitMs' | 'stripe'>

export interface TenantStatus {
  tenant_id: string
  name: string
  plan: string
  state: TenantState
  billing: Tenant['billing']
  infra: Tenant['infra']
  subscription_id: string | null
  fqdn: string
  url: string
  error: string | null
  created_at: string
  updated_at: string
  paid_at: string | null
  ready_at: string | null
  canceled_at: string | null
}

export type WebhookResult =
  | { status: 'ok' | 'stale' | 'ignored_terminal', type: string, tenant_id: string, tenant_state: TenantState }
  | { status: 'unmatched' | 'ignored', type: string }
  | { status: 'duplicate' }

/** `provision`: a provisioning to wait for; `kick`: a job queued for the runner to start now. */
type Applied =
  | { outcome: 'ok' | 'stale' | 'ignored_terminal', tenant: Tenant, provision: boolean, kick?: boolean }
  | { outcome: 'unmatched', tenant: undefined, provision: false }

/**
 * Another copy of the event committed while this one was being applied (PostgreSQL, several
 * processes): this copy's effect rolls back and the delivery answers `duplicate`.
 */
class DuplicateDelivery extends Error {}

export function newTenantId (): string {
  return randomBytes(16).toString('hex')
}

/** Tenant-id characters a slug ends with: short and readable first, longer on a collision. */
const SLUG_SUFFIXES = [6, 10, 16, 32] as const

/**
 * Latin letters with no decomposition to fold an accent from (NFKD leaves them whole), spelt as
 * their languages spell them in ASCII: without this, "Straße" would become "stra-e".
 */
const UNDECOMPOSED_LATIN: Readonly<Record<string, string>> = {
  ß: 'ss', ẞ: 'SS', ı: 'i', ł: 'l', Ł: 'L', ø: 'o', Ø: 'O', æ: 'ae', Æ: 'AE', œ: 'oe', Œ: 'OE',
  þ: 'th', Þ: 'Th', đ: 'd', Đ: 'D', ð: 'd', Ð: 'D', ħ: 'h', Ħ: 'H', ŧ: 't', Ŧ: 'T', ŋ: 'ng', Ŋ: 'Ng'
}
const UNDECOMPOSED = new RegExp(`[${Object.keys(UNDECOMPOSED_LATIN).join('')}]`, 'g')

/**
 * A DNS label from the event name: readable, unique by a piece of the tenant id. The suffix
 * contains no '-', so two slugs are equal only if both their base and their id piece are;
 * with the whole id (32) it is unique. At most 63 characters (a DNS label).
 */
export function slugFor (name: string, tenantId: string, suffix: number = SLUG_SUFFIXES[0]): string {
  const room = Math.min(40, 62 - suffix)
  let base = name.replace(UNDECOMPOSED, (c) => UNDECOMPOSED_LATIN[c]!).normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase()
    .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, room).replace(/-+$/, '')
  if (!/^[a-z]/.test(base)) base = `ctf${base === '' ? '' : '-'}${base}`.slice(0, room).replace(/-+$/, '')
  return `${base}-${tenantId.slice(0, suffix)}`
}

/** The shortest slug of the tenant no other tenant holds (many events share a name). */
async function freeSlug (tx: StoreOps, tenant: Tenant): Promise<string> {
  for (const n of SLUG_SUFFIXES) {
    const slug = slugFor(tenant.name, tenant.id, n)
    if ((await tx.getTenantBySlug(slug)) === undefined) return slug
  }
  return slugFor(tenant.name, tenant.id, 32)
}

/** Gives the tenant its free slug and its address under `baseDomain`, and stores it. */
async function insertNewTenant (tx: StoreOps, tenant: Tenant, baseDomain: string, auditSecret: string, source: string): Promise<void> {
  tenant.slug = await freeSlug(tx, tenant)
  tenant.fqdn = addressUnder(tenant.slug, baseDomain)
  await tx.insertTenant(tenant)
  await appendAudit(tx, auditSecret, tenant.id, 'tenant.created', { plan: tenant.plan, slug: tenant.slug, fqdn: tenant.fqdn, source })
}

export class TenantService {
  private readonly store: Store
  private readonly config: ServiceConfig
  private readonly jobs: JobRunner
  private readonly priceToPlan: PriceToPlan
  private readonly log: Logger | undefined

  constructor (opts: { store: Store, config: ServiceConfig, jobs: JobRunner, log?: Logger }) {
    this.store = opts.store
    this.config = opts.config
    this.jobs = opts.jobs
    this.log = opts.log
    const byPrice = new Map<string, string>()
    for (const [env, priceId] of Object.entries(opts.config.stripe.prices)) {
      if (priceId !== '') byPrice.set(priceId, env.replace(/^STRIPE_PRICE_/, '').toLowerCase())
    }
    this.priceToPlan = (id) => byPrice.get(id)
  }

  private buildTenant (hint: { name: string, email: string, plan: string }, id = newTenantId()): Tenant {
    const now = new Date(this.store.now()).toISOString()
    return {
      id,
      name: hint.name,
      email: hint.email,
      plan: hint.plan,
      slug: slugFor(hint.name, id),
      fqdn: null,
      billing: 'pending',
      infra: 'none',
      subscriptionId: null,
      customerId: null,
      billingAt: 0,
      planAt: 0,
      error: null,
      serverId: null,
      ipv4: null,
      dnsRecordId: null,
      createdAt: now,
      updatedAt: now,
      paidAt: null,
      readyAt: null,
      canceledAt: null,
      softCancelFrom: null,
      billingState: initialBillingState(hint.plan),
      adminEmail: null
    }
  }

  async createPendingTenant (hint: { name: string, email: string, plan: string }): Promise<Tenant> {
    const tenant = this.buildTenant(hint)
    await this.store.transaction(async (tx) => {
      await insertNewTenant(tx, tenant, this.config.baseDomain, this.config.auditSecret, 'checkout')
    })
    return tenant
  }

  /** Undoes a pending tenant whose checkout never produced a payment URL. */
  async removePendingTenant (id: string, reason: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      const t = await tx.getTenantForUpdate(id)
      if (t === undefined || t.billing !== 'pending') return
      await tx.deleteTenant(id)
      await appendAudit(tx, this.config.auditSecret, id, 'tenant.removed', { reason })
    })
  }

  async getTenant (id: string): Promise<Tenant | undefined> {
    return this.store.getTenant(id)
  }

  /** The tenant whose address begins with this label, if any. */
  async getTenantBySlug (slug: string): Promise<Tenant | undefined> {
    return this.store.getTenantBySlug(slug)
  }

  statusOf (t: Tenant): TenantStatus {
    const fqdn = tenantFqdn(t, this.config.baseDomain)
    return {
      tenant_id: t.id,
      name: t.name,
      plan: t.plan,
      state: deriveTenantState(t.billing, t.infra),
      billing: t.billing,
      infra: t.infra,
      subscription_id: t.subscriptionId,
      fqdn,
      url: `https://${fqdn}/`,
      error: t.error,
      created_at: t.createdAt,
      updated_at: t.updatedAt,
      paid_at: t.paidAt,
      ready_at: t.readyAt,
      canceled_at: t.canceledAt
    }
  }

  /**
   * Applies a verified event exactly once: the event id is recorded in the effect's transaction.
   * `appliedTo`: the tenant an earlier delivery of this event applied to (an operator's replay);
   * the event applies to that tenant and never makes one, as the first delivery may have.
   */
  async handleEvent (event: StripeEvent, payload: string, appliedTo?: string): Promise<WebhookResult> {
    const type = event.type
    if (!isSupportedEvent(type)) return { status: 'ignored', type }
    const found = intentForEvent({ ...event, type }, this.priceToPlan)
    const stored = storablePayload(event, payload)
    const intent = appliedTo === undefined ? found : { ...found, tenantId: appliedTo, create: undefined }
    let applied: Applied
    try {
      applied = await this.store.transaction(async (tx) => {
        const result = await this.applyIntent(tx, intent, event.created, `event ${event.id}`)
        // Recorded once, with its outcome, in the effect's own transaction: both commit, or
        // neither. A known id makes the insert a no-op, and throwing rolls the effect back; no
        // lookup first, as redeliveries are rare and a lookup is a round trip on PostgreSQL.
        // An unmatched event keeps its subscription: the tenant that takes it on later applies it.
        const unmatchedSubscription = result.outcome === 'unmatched' ? intent.subscriptionId ?? null : null
        const record = { id: event.id, type, created: event.created, received: new Date(tx.now()).toISOString(), outcome: result.outcome, tenant: result.tenant?.id ?? null, payload: stored, unmatchedSubscription }
        if (!(await tx.recordEvent(record))) throw new DuplicateDelivery()
        return result
      })
    } catch (err) {
      if (err instanceof DuplicateDelivery) return { status: 'duplicate' }
      throw err
    }
    if (applied.outcome === 'unmatched') return { status: 'unmatched', type }
    if (intent.foreignPrices !== undefined && applied.outcome === 'ok') {
      // A price made by hand (a yearly one, say) would otherwise change nothing, silently.
      this.log?.warn({ event: event.id, tenant: applied.tenant.id, plan: applied.tenant.plan, prices: intent.foreignPrices },
        "the tenant's subscription names no price of the plan catalogue: its plan is unchanged; give the price a lookup key ctfhive_<plan>_monthly or set STRIPE_PRICE_<PLAN>")
    }
    const tenant = await this.afterCommit(applied)
    return { status: applied.outcome, type, tenant_id: tenant.id, tenant_state: deriveTenantState(tenant.billing, tenant.infra) }
  }

  /**
   * The success page's fulfilment: the same rules as `checkout.session.completed`, ordered by
   * the session's own `created` so it can never make a later real event look stale. An unknown
   * session is adopted only when a reload finds its tenant again: by our `metadata.tenant_id`,
   * or by its subscription (the index). Unlike an event, a page can be reloaded: otherwise every
   * visit would make a new tenant (and server). The webhook adopts the others, once per event.
   */
  async fulfilCheckoutSession (session: Record<string, any>): Promise<Tenant | undefined> {
    const event = { id: `session:${String(session.id)}`, type: 'checkout.session.completed' as const, created: Number(session.created) || 0, data: { object: session } }
    const found = intentForEvent(event, this.priceToPlan)
    // Adopted only when a reload will find it again: by our tenant id, or by the subscription index.
    const intent = found.subscriptionId === undefined && found.tenantId === undefined ? { ...found, create: undefined } : found
    // The audit names the page, not the session: its id earns the welcome link, and entries are forever.
    const applied = await this.store.transaction((tx) => this.applyIntent(tx, intent, Number(session.created) || 0, 'checkout return'))
    if (applied.outcome === 'unmatched') return undefined
    return this.afterCommit(applied)
  }

  /**
   * Re-queues provisioning for a tenant whose infra failed (operator action). False when, under
   * the tenant's lock, there is none to retry (canceled or paid meanwhile).
   */
  async retryProvisioning (id: string): Promise<boolean> {
    const queued = await this.store.transaction(async (tx) => {
      const t = await tx.getTenantForUpdate(id)
      if (t === undefined || t.infra !== 'failed' || t.billing === 'canceled') return false
      await tx.updateTenant(id, { infra: 'provisioning', error: null })
      await tx.enqueueJob({ kind: 'provision', tenant: id, runAfter: tx.now() })
      await appendAudit(tx, this.config.auditSecret, id, 'provision.retry_requested', {})
      return true
    })
    if (queued) this.jobs.kick()
    return queued
  }

  /**
   * Queues a new resize for a live tenant whose last one failed (Linode refused it, or the server
   * did not come back in time), once the operator has seen to the cause. False when there is none
   * to retry.
   */
  retryResize (id: string): Promise<boolean> {
    return this.retryFailedJob(id, 'resize', (t) => t.billing !== 'canceled' && t.infra === 'ready' && t.serverId !== null, 'resize.retry_requested', 'resize_job')
  }

  /**
   * Queues a new teardown for a canceled tenant whose last one failed for good (an error no
   * retry could fix, since fixed by the operator). False when there is none to retry.
   */
  retryTeardown (id: string): Promise<boolean> {
    return this.retryFailedJob(id, 'deprovision', (t) => t.billing === 'canceled' && t.infra !== 'deprovisioned', 'teardown.retry_requested', 'deprovision_job')
  }

  /** Queues `kind` again when the tenant's last job of that kind failed and `applies` to it. */
  private async retryFailedJob (id: string, kind: 'resize' | 'deprovision', applies: (t: Tenant) => boolean, action: string, jobKey: string): Promise<boolean> {
    const queued = await this.store.transaction(async (tx) => {
      const t = await tx.getTenantForUpdate(id)
      if (t === undefined || !applies(t)) return false
      const last = (await tx.listJobs({ tenant: id })).filter((j) => j.kind === kind).at(-1)
      if (last?.status !== 'failed') return false
      const job = await tx.enqueueJob({ kind, tenant: id, runAfter: tx.now() })
      await appendAudit(tx, this.config.auditSecret, id, action, { [jobKey]: job.id, failed_job: last.id })
      return true
    })
    if (queued) this.jobs.kick()
    return queued
  }

  private async afterCommit (applied: Applied & { tenant: Tenant }): Promise<Tenant> {
    const tenant = applied.tenant
    if (applied.kick === true && !applied.provision) this.jobs.kick()
    if (!applied.provision) return tenant
    // Bounded: the webhook answers with the state reached, never waits on servers for long.
    this.jobs.kick()
    await this.jobs.waitForTenant(tenant.id, this.config.webhookWaitMs)
    try {
      return (await this.store.getTenant(tenant.id)) ?? tenant
    } catch (err) {
      // The effect is committed: answer with the state it left rather than a 500 saying
      // nothing was written (Stripe would retry into a duplicate, its dashboard showing a failure).
      this.log?.warn({ err, tenant: tenant.id }, 'could not read the tenant back after its change committed; answering with the committed state')
      return tenant
    }
  }

  private async findTenant (tx: StoreOps, intent: EventIntent): Promise<Tenant | undefined> {
    if (intent.tenantId !== undefined) {
      const t = await tx.getTenantForUpdate(intent.tenantId)
      if (t !== undefined) return t
    }
    if (intent.subscriptionId !== undefined) {
      const id = await tx.findTenantIdBySubscription(intent.subscriptionId)
      if (id !== undefined) return tx.getTenantForUpdate(id)
    }
    return undefined
  }

  private async applyIntent (tx: StoreOps, intent: EventIntent, at: number, source: string): Promise<Applied> {
    const sub = intent.subscriptionId
    let tenant = await this.findTenant(tx, intent)
    let locked = false
    if (tenant === undefined && sub !== undefined) {
      // Again behind the subscription's lock: a tenant taking it on may not have committed yet
      // (invisible here on PostgreSQL). Then it has and is found, or its catch-up, which lists
      // under this lock, sees this event held; and two deliveries that may each adopt it (the
      // webhook, the success page) make one tenant. Taken holding no tenant's row, as the
      // linking below takes it holding one: never both ways round, so no deadlock.
      await tx.lockSubscription(sub)
      locked = true
      tenant = await this.findTenant(tx, intent)
    }
    if (tenant === undefined && intent.create !== undefined) {
      // A completed checkout nobody knew about (created elsewhere, or a replay): adopt it.
      const hint = { ...intent.create, plan: getPlan(intent.create.plan) !== undefined ? intent.create.plan : 'standard' }
      tenant = this.buildTenant(hint, intent.tenantId)
      await insertNewTenant(tx, tenant, this.config.baseDomain, this.config.auditSecret, source)
    }
    if (tenant === undefined) return { outcome: 'unmatched', tenant: undefined, provision: false }

    const nowIso = new Date(tx.now()).toISOString()
    const result = applyBillingChange(tenant, { ...intent.change, at }, nowIso)
    // The events held for a subscription are listed (catchUp, below) under its lock, whichever
    // event linked it (one that found its tenant at once took no lock above): one held
    // meanwhile was committed before, or waits for this transaction and then finds the tenant.
    // Taken before any audit entry (the chain's own lock): an adopter holds this lock when it
    // appends, so the two are always taken in this order.
    if (result.newSubscription && sub !== undefined) {
      if (!locked) await tx.lockSubscription(sub)
      // Indexed once, when the tenant first hears of it (same transaction), so the
      // subscription's later events find the tenant, ended or not.
      await tx.linkSubscription(sub, tenant.id)
    }
    // A stale or terminal event may still add to the facts underneath.
    const patch: TenantPatch = { ...result.patch }
    // Begun without an address (the API takes none): Checkout asked the buyer for one, and the
    // CTF's first administrator and support's welcome link need it. One already given stays.
    if (tenant.email === '' && intent.email !== undefined) patch.email = intent.email
    let provision = result.startProvisioning
    let kick = false
    if (tenant.billing === 'canceled' && patch.billing !== undefined && patch.billing !== 'canceled') {
      // Reactivated by a new subscription (or paid after a failed checkout): the scheduled
      // teardown no longer applies.
      const jobs = await tx.listJobs({ tenant: tenant.id })
      const teardowns = jobs.filter((j) => j.kind === 'deprovision')
      for (const job of teardowns) {
        if (job.status === 'queued') await tx.updateJob(job.id, { status: 'canceled' })
      }
      // One since the last provisioning, waiting to retry or failed for good, may already have
      // removed the DNS record (or the server): the tenant then needs provisioning to be whole
      // again; the provision job adopts a server still there. Not only the last: an operator's
      // retry of a failed one is a fresh job that has not started yet.
      const last = teardowns.at(-1)
      const lastProvision = jobs.findLast((j) => j.kind === 'provision')?.id ?? 0
      if (teardowns.some((j) => j.id > lastProvision && (j.status === 'queued' || j.status === 'failed') && j.step !== '')) provision = true
      // A running one past its first look (its step is committed under this row lock) may have
      // removed the record or be destroying the server: never `active` meanwhile. No job here,
      // as a provision job beside it would race its sweep: the teardown queues one when it
      // sees the tenant paid (teardown.ts), also when its attempt fails.
      const waitsForTeardown = last?.status === 'running' && last.step !== ''
      if (waitsForTeardown) {
        provision = false
        patch.infra = 'provisioning'
      }
      // Back on its kept server, whose type the plan it comes back on may not be (a resize the
      // cancellation called off): the resize job looks. A provisioning that has yet to make or
      // adopt its server looks itself then (provision.ts); one past that step does not look
      // again, and may have made it while the tenant was canceled, when no size is checked: the
      // resize waits for it to end, and looks.
      const provisioningPastItsServer = jobs.some((j) => j.kind === 'provision' && (j.status === 'queued' || j.status === 'running') && j.step !== '')
      const resize = (!provision || provisioningPastItsServer) && !waitsForTeardown && tenant.serverId !== null ? await tx.enqueueJob({ kind: 'resize', tenant: tenant.id, runAfter: tx.now() }) : undefined
      kick ||= resize !== undefined
      await appendAudit(tx, this.config.auditSecret, tenant.id, 'tenant.reactivated', {
        subscription: patch.subscriptionId ?? tenant.subscriptionId,
        source,
        ...(waitsForTeardown ? { running_teardown: last.id, teardown_step: last.step } : {}),
        ...(resize === undefined ? {} : { resize_job: resize.id })
      })
    }
    if (provision) {
      Object.assign(patch, { infra: 'provisioning' as const })
      // Its first server: the address is settled now, under today's BASE_DOMAIN (a checkout
      // begun before a change of it is paid after). From here on the address stays.
      const fqdn = addressUnder(tenant.slug, this.config.baseDomain)
      if (tenant.infra === 'none' && tenant.fqdn !== fqdn) patch.fqdn = fqdn
      await tx.enqueueJob({ kind: 'provision', tenant: tenant.id, runAfter: tx.now() })
      await appendAudit(tx, this.config.auditSecret, tenant.id, 'provision.queued', { plan: patch.plan ?? tenant.plan, fqdn: patch.fqdn ?? tenantFqdn(tenant, this.config.baseDomain), source })
    }
    // A first server waiting for Stripe to state its plan (jobs.ts, planWait): this event states
    // it, so the job runs now, and the answer waits for it as for a new one.
    if (!provision && tenant.planAt === 0 && (patch.planAt ?? 0) > 0 && tenant.infra === 'provisioning') {
      const waiting = (await tx.listJobs({ tenant: tenant.id })).find((j) => j.kind === 'provision' && j.status === 'queued' && j.lastError === AWAITING_PLAN)
      if (waiting !== undefined) {
        await tx.updateJob(waiting.id, { runAfter: tx.now() })
        provision = true
      }
    }
    if (result.scheduleTeardown && tenant.infra !== 'none' && tenant.infra !== 'deprovisioned') {
      const runAfter = tx.now() + this.config.deprovisionGraceHours * 3_600_000
      await tx.enqueueJob({ kind: 'deprovision', tenant: tenant.id, runAfter })
      await appendAudit(tx, this.config.auditSecret, tenant.id, 'teardown.scheduled', { run_after: new Date(runAfter).toISOString(), source })
    }
    // The teardown supersedes a resize not begun; one under way stops at its next look (resize.ts),
    // and the teardown ends any still live when it destroys the server (teardown.ts).
    if (result.scheduleTeardown) {
      for (const job of await tx.listJobs({ tenant: tenant.id })) {
        if (job.kind !== 'resize' || job.status !== 'queued') continue
        await tx.updateJob(job.id, { status: 'canceled' })
        await appendAudit(tx, this.config.auditSecret, tenant.id, 'resize.canceled', { resize_job: job.id, step: job.step, reason: 'tenant canceled', source })
      }
    }
    if (patch.plan !== undefined && patch.plan !== tenant.plan && await this.planChanged(tx, tenant, patch, source)) kick = true
    if (Object.keys(patch).length > 0) {
      await tx.updateTenant(tenant.id, patch)
      tenant = { ...tenant, ...patch, updatedAt: nowIso }
    }
    const applied = { outcome: result.outcome, tenant, provision, kick }
    return result.newSubscription && sub !== undefined ? this.catchUp(tx, applied, sub) : applied
  }

  /**
   * The plan of a tenant that has a server, or is getting one, changed: audited, and a resize is
   * queued when a server exists (it waits for a provisioning under way, and the last plan wins:
   * resize.ts). A provisioning not yet at its create makes the new plan's type; one past it
   * queues the resize itself (jobs.ts), as the row lock orders this against its step. True when
   * a resize was queued.
   */
  private async planChanged (tx: StoreOps, tenant: Tenant, patch: TenantPatch, source: string): Promise<boolean> {
    const billing = patch.billing ?? tenant.billing
    if (billing === 'canceled' || tenant.infra === 'none' || tenant.infra === 'deprovisioned') return false
    const resize = tenant.serverId !== null && tenant.infra !== 'failed' ? await tx.enqueueJob({ kind: 'resize', tenant: tenant.id, runAfter: tx.now() }) : undefined
    await appendAudit(tx, this.config.auditSecret, tenant.id, 'plan.changed', { from: tenant.plan, to: patch.plan, source, ...(resize === undefined ? {} : { resize_job: resize.id }) })
    return resize !== undefined
  }

  /**
   * Applies, now that a tenant holds the subscription, the events about it that came first and
   * found no tenant: a Payment Link's subscription and invoice events arrive before the checkout
   * that adopts it. Same transaction, same rules, so the tenant ends as in any other order.
   */
  private async catchUp (tx: StoreOps, applied: Applied & { tenant: Tenant }, subscriptionId: string): Promise<Applied> {
    let { tenant, provision, kick } = applied
    const waiting = await tx.listUnmatchedEvents(subscriptionId)
    // Off the waiting list before any is applied: one naming another tenant of ours may link
    // the subscription there, and that catch-up must not apply these a second time.
    for (const held of waiting) await tx.settleEvent(held.id, 'unmatched', null)
    for (const held of waiting) {
      const event = storedEvent(held.payload)
      // Stored only after these same checks passed; a payload that fails them now stays as it is.
      if (event === undefined || !isSupportedEvent(event.type)) continue
      const result = await this.applyIntent(tx, intentForEvent({ ...event, type: event.type }, this.priceToPlan), event.created, `event ${held.id}, held until its subscription had a tenant`)
      await tx.settleEvent(held.id, result.outcome, result.tenant?.id ?? null)
      // The answer stays about the adopting tenant; another one's jobs are kicked all the same.
      if (result.tenant?.id === tenant.id) tenant = result.tenant
      provision ||= result.provision
      kick ||= result.outcome !== 'unmatched' && result.kick === true
    }
    return { outcome: applied.outcome, tenant, provision, kick }
  }
}
