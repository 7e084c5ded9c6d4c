// The store contract: what every adapter (SQLite, PostgreSQL) must do, run unchanged on each.
// `makeStore` gives a store on a fresh, empty database; `reopen` opens a second store on
// that same database (a restart, or another process); `cleanup` removes the database.
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { auditMac, verifyStoredChain } from '../../api/provisioning/audit.ts'
import { GENESIS_MAC } from '../../api/store/rows.ts'
import type { AuditEntry, Store, StoreOps, StripeEventRecord, Tenant } from '../../api/store/store.ts'
import { initialBillingState, withStatement } from '../../api/tenants/billing-state.ts'

export interface ContractStore {
  store: Store
  /** Another store on the same database. */
  reopen: () => Promise<Store>
  cleanup?: () => Promise<void>
}

export type MakeStore = () => Promise<ContractStore>

const SECRET = 'contract-audit-secret'

export function tenantId (): string {
  return randomBytes(16).toString('hex')
}

let slugCounter = 0
/** A tenant in the exact shape the service stores. */
export function makeTenant (over: Partial<Tenant> = {}): Tenant {
  const id = over.id ?? tenantId()
  slugCounter++
  return {
    id,
    name: `Contract CTF ${slugCounter}`,
    email: `owner${slugCounter}@example.test`,
    plan: 'standard',
    slug: `contract-ctf-${slugCounter}-${id.slice(0, 6)}`,
    fqdn: `contract-ctf-${slugCounter}-${id.slice(0, 6)}.ctfhive.test`,
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
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    paidAt: null,
    readyAt: null,
    canceledAt: null,
    softCancelFrom: null,
    billingState: null,
    adminEmail: null,
    ...over
  }
}

export function makeEventRecord (over: Partial<StripeEventRecord> = {}): StripeEventRecord {
  return {
    id: `evt_${randomBytes(8).toString('hex')}`,
    type: 'invoice.paid',
    created: 1_767_225_600,
    received: new Date().toISOString(),
    outcome: 'ok',
    tenant: null,
    payload: JSON.stringify({ object: 'event', data: { object: { id: 'in_1', amount_paid: 6500 } } }),
    unmatchedSubscription: null,
    ...over
  }
}

/** Appends through the store (or a transaction) with the real HMAC seal. */
export function audit (ops: StoreOps, tenant: string, action: string, detail: Record<string, unknown> = {}): Promise<AuditEntry> {
  const at = new Date().toISOString()
  return ops.appendAudit({ at, tenant, action, detail }, (prevMac, seq) => auditMac(SECRET, prevMac, { seq, at, tenant, action, detail }))
}

class Boom extends Error {}

export function storeContract (t: Test, makeStore: MakeStore): void {
  /** A fresh store for one subtest, closed and removed in its teardown. */
  async function fresh (t: Test): Promise<ContractStore> {
    const made = await makeStore()
    const extra: Store[] = []
    const reopen = async (): Promise<Store> => {
      const s = await made.reopen()
      extra.push(s)
      return s
    }
    t.teardown(async () => {
      for (const s of extra) await s.close()
      await made.store.close()
      await made.cleanup?.()
    })
    return { ...made, reopen }
  }

  t.test('tenants: insert, read back exactly, patch, delete', async (t) => {
    const { store } = await fresh(t)
    const a = makeTenant({ subscriptionId: 'sub_1', customerId: 'cus_1', billingAt: 1_767_225_600, planAt: 1_767_225_601, email: '' })
    await store.insertTenant(a)
    t.same(await store.getTenant(a.id), a, 'every field round-trips, nulls and numbers included')
    t.equal(typeof (await store.getTenant(a.id))!.billingAt, 'number')
    t.equal(await store.getTenant(tenantId()), undefined, 'an unknown id is undefined')

    await store.updateTenant(a.id, { billing: 'paid', infra: 'provisioning', paidAt: '2026-01-02T00:00:00.000Z', error: 'x', softCancelFrom: 'past_due' })
    const patched = (await store.getTenant(a.id))!
    t.same({ ...patched, updatedAt: a.updatedAt }, { ...a, billing: 'paid', infra: 'provisioning', paidAt: '2026-01-02T00:00:00.000Z', error: 'x', softCancelFrom: 'past_due' },
      'only the patched fields change')
    t.not(patched.updatedAt, a.updatedAt, 'updatedAt moves when the patch leaves it out')
    t.ok(Date.parse(patched.updatedAt) > Date.parse(a.updatedAt))

    // The billing facts are a JSON document in a text column: written and read back whole.
    const facts = withStatement(initialBillingState('standard'), { at: 1_767_225_602, billing: 'paid', plan: 'pro', subscriptionId: 'sub_1' })
    await store.updateTenant(a.id, { billingState: facts })
    t.same((await store.getTenant(a.id))!.billingState, facts, 'the billing facts round-trip')
    const withFacts = makeTenant({ billingState: facts })
    await store.insertTenant(withFacts)
    t.same((await store.getTenant(withFacts.id))!.billingState, facts, 'also when inserted')
    await store.deleteTenant(withFacts.id)
    await store.updateTenant(a.id, { billingState: null })
    t.equal((await store.getTenant(a.id))!.billingState, null)

    await store.updateTenant(a.id, { error: null, updatedAt: '2026-02-01T00:00:00.000Z', serverId: '42', ipv4: '192.0.2.7', dnsRecordId: 'rec-1' })
    const again = (await store.getTenant(a.id))!
    t.equal(again.updatedAt, '2026-02-01T00:00:00.000Z', 'an explicit updatedAt is kept')
    t.equal(again.error, null, 'a field can be set back to null')
    t.match(again, { serverId: '42', ipv4: '192.0.2.7', dnsRecordId: 'rec-1' })

    await t.rejects(store.insertTenant(makeTenant({ id: a.id })), 'a second tenant with the same id is refused')
    await t.rejects(store.insertTenant(makeTenant({ slug: a.slug })), 'a second tenant with the same slug is refused')
    await t.rejects(store.insertTenant(makeTenant({ fqdn: a.fqdn })), 'a second tenant with the same address is refused')
    t.equal(await store.countTenants(), 1, 'the refused inserts left nothing')

    await store.deleteTenant(a.id)
    t.equal(await store.getTenant(a.id), undefined)
    await store.deleteTenant(a.id)
    t.equal(await store.countTenants(), 0, 'deleting an absent tenant is a no-op')
  })

  t.test('addresses: tenants an older release wrote get theirs under the domain given, once', async (t) => {
    const { store } = await fresh(t)
    t.same(await store.tenantDomains(), [], 'no tenant, no domain')
    const old1 = makeTenant({ fqdn: null })
    const old2 = makeTenant({ fqdn: null })
    const placed = makeTenant({ fqdn: 'kept.earlier-hive.test' })
    for (const x of [old1, old2, placed]) await store.insertTenant(x)
    t.equal(await store.assignFqdns('ctfhive.test'), 2, 'the two without one')
    t.equal((await store.getTenant(old1.id))!.fqdn, `${old1.slug}.ctfhive.test`)
    t.equal((await store.getTenant(old2.id))!.fqdn, `${old2.slug}.ctfhive.test`)
    t.equal((await store.getTenant(placed.id))!.fqdn, 'kept.earlier-hive.test', 'a stored address is never moved')
    t.equal(await store.assignFqdns('other-hive.test'), 0, 'a later BASE_DOMAIN moves nobody')
    t.equal((await store.getTenant(old1.id))!.fqdn, `${old1.slug}.ctfhive.test`)
    t.same(await store.tenantDomains(), ['ctfhive.test', 'earlier-hive.test'], 'each domain once, sorted')
    t.same(await store.tenantDomains({ withServer: true }), [], 'none of them has a server')
    for (const [infra, domain] of [['ready', 'a-hive.test'], ['failed', 'b-hive.test'], ['provisioning', 'c-hive.test'], ['deprovisioned', 'd-hive.test']] as const) {
      await store.insertTenant(makeTenant({ infra, fqdn: `x.${domain}` }))
    }
    t.same(await store.tenantDomains({ withServer: true }), ['a-hive.test', 'b-hive.test', 'c-hive.test'], 'only those that may have a server or a record')
  })

  t.test('tenants: list newest first, filter, count, page', async (t) => {
    const { store } = await fresh(t)
    const made: Tenant[] = []
    for (let i = 0; i < 7; i++) {
      const tn = makeTenant({
        createdAt: `2026-01-0${i + 1}T00:00:00.000Z`,
        billing: i % 2 === 0 ? 'paid' : 'pending',
        infra: i < 3 ? 'ready' : 'none'
      })
      made.push(tn)
      await store.insertTenant(tn)
    }
    const newestFirst = [...made].reverse().map((x) => x.id)
    t.same((await store.listTenants()).map((x) => x.id), newestFirst, 'ordered by createdAt descending')
    t.same((await store.listTenants({ limit: 3 })).map((x) => x.id), newestFirst.slice(0, 3), 'limit')
    t.same((await store.listTenants({ limit: 3, offset: 3 })).map((x) => x.id), newestFirst.slice(3, 6), 'offset')
    t.same((await store.listTenants({ limit: 3, offset: 6 })).map((x) => x.id), newestFirst.slice(6), 'last page')
    t.same(await store.listTenants({ offset: 7 }), [], 'past the end')

    const paid = made.filter((x) => x.billing === 'paid').reverse().map((x) => x.id)
    t.same((await store.listTenants({ billing: 'paid' })).map((x) => x.id), paid, 'filter by billing')
    const paidReady = made.filter((x) => x.billing === 'paid' && x.infra === 'ready').reverse().map((x) => x.id)
    t.same((await store.listTenants({ billing: 'paid', infra: 'ready' })).map((x) => x.id), paidReady, 'filters combine')
    t.same((await store.listTenants({ infra: 'ready', limit: 1, offset: 1 })).map((x) => x.id), [made[1]!.id], 'filter with a page')

    t.equal(await store.countTenants(), 7)
    t.equal(await store.countTenants({ billing: 'paid' }), 4)
    t.equal(await store.countTenants({ billing: 'pending', infra: 'ready' }), 1)
    t.equal(await store.countTenants({ billing: 'canceled' }), 0)
    t.same((await store.listTenants({ billing: 'paid' }))[0], made[6], 'listed tenants are whole records')
  })

  t.test('tenants: keyset pages after a tenant, ties by id, unmoved by rows deleted or added meanwhile', async (t) => {
    const { store } = await fresh(t)
    const made: Tenant[] = []
    for (let i = 0; i < 9; i++) {
      // Three tenants to a timestamp: the id orders them.
      const tn = makeTenant({ id: `${String(i).padStart(2, '0')}`.padEnd(32, 'a'), createdAt: `2026-01-0${Math.floor(i / 3) + 1}T00:00:00.000Z`, billing: i % 2 === 0 ? 'paid' : 'pending' })
      made.push(tn)
      await store.insertTenant(tn)
    }
    const order = [...made].sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? -1 : 1) : a.createdAt < b.createdAt ? 1 : -1))
    const key = (x: Tenant): { createdAt: string, id: string } => ({ createdAt: x.createdAt, id: x.id })
    t.same((await store.listTenants()).map((x) => x.id), order.map((x) => x.id), 'newest first, then id')
    for (let i = 0; i < order.length; i++) {
      t.same((await store.listTenants({ after: key(order[i]!) })).map((x) => x.id), order.slice(i + 1).map((x) => x.id), `after #${i}`)
    }
    t.same((await store.listTenants({ after: key(order[1]!), limit: 2 })).map((x) => x.id), order.slice(2, 4).map((x) => x.id), 'after, with a limit')
    const paid = order.filter((x) => x.billing === 'paid')
    t.same((await store.listTenants({ billing: 'paid', after: key(paid[1]!) })).map((x) => x.id), paid.slice(2).map((x) => x.id), 'after, with a filter')
    t.same((await store.listTenants({ billing: 'paid', infra: paid[0]!.infra, after: key(paid[1]!), limit: 2 })).map((x) => x.id),
      paid.filter((x) => x.infra === paid[0]!.infra).slice(2, 4).map((x) => x.id), 'after, with both filters and a limit')
    t.same((await store.listTenants({ after: { createdAt: order[4]!.createdAt, id: '' } })).map((x) => x.id), order.slice(3).map((x) => x.id),
      'after a position no tenant holds: the first of its timestamp too')
    t.same(await store.listTenants({ after: key(order[order.length - 1]!) }), [], 'after the last: none')

    // Page 1 read; then the last tenant it holds is deleted and a newer one added.
    const page1 = await store.listTenants({ limit: 4 })
    await store.deleteTenant(page1[3]!.id)
    await store.insertTenant(makeTenant({ createdAt: '2026-02-01T00:00:00.000Z' }))
    const page2 = await store.listTenants({ limit: 4, after: key(page1[3]!) })
    t.same(page2.map((x) => x.id), order.slice(4, 8).map((x) => x.id), 'the next page starts where the first ended, though its last row is gone')
  })

  t.test('slugs: a taken one names its tenant, inside a transaction too', async (t) => {
    const { store } = await fresh(t)
    const a = makeTenant()
    const b = makeTenant()
    t.equal(await store.getTenantBySlug(a.slug), undefined)
    await store.insertTenant(a)
    await store.insertTenant(b)
    t.same(await store.getTenantBySlug(a.slug), a, 'the whole record')
    t.equal((await store.getTenantBySlug(b.slug))?.id, b.id)
    t.equal((await store.transaction((tx) => tx.getTenantBySlug(a.slug)))?.id, a.id, 'inside a transaction')
    t.equal(await store.getTenantBySlug(`${a.slug}x`), undefined, 'an exact match only')
  })

  t.test('subscription index: first link wins, survives a reopen, goes with its tenant', async (t) => {
    const { store, reopen } = await fresh(t)
    const a = makeTenant()
    const b = makeTenant()
    await store.insertTenant(a)
    await store.insertTenant(b)
    t.equal(await store.findTenantIdBySubscription('sub_x'), undefined)
    await store.linkSubscription('sub_x', a.id)
    await store.linkSubscription('sub_x', b.id)
    await store.transaction((tx) => tx.linkSubscription('sub_x', b.id))
    t.equal(await store.findTenantIdBySubscription('sub_x'), a.id, 'the first link wins')
    await store.linkSubscription('sub_y', b.id)
    t.equal(await store.findTenantIdBySubscription('sub_y'), b.id)
    t.equal(await store.transaction((tx) => tx.findTenantIdBySubscription('sub_y')), b.id, 'readable inside a transaction')

    const other = await reopen()
    t.equal(await other.findTenantIdBySubscription('sub_x'), a.id, 'another store on the database sees the index')
    t.equal(await other.findTenantIdBySubscription('sub_y'), b.id)
    await store.close()
    const restarted = await reopen()
    t.equal(await restarted.findTenantIdBySubscription('sub_x'), a.id, 'it survives a restart')

    await restarted.deleteTenant(a.id)
    t.equal(await restarted.findTenantIdBySubscription('sub_x'), undefined, 'a deleted tenant takes its links along')
    t.equal(await restarted.findTenantIdBySubscription('sub_y'), b.id)
  })

  t.test('subscription lock: two transactions holding one subscription run one after the other', async (t) => {
    const { store } = await fresh(t)
    const order: string[] = []
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    let held!: () => void
    const aHolds = new Promise<void>((resolve) => { held = resolve })
    const a = store.transaction(async (tx) => {
      await tx.lockSubscription('sub_lock')
      order.push('a locked')
      held()
      await gate
      order.push('a done')
    })
    await aHolds
    const b = store.transaction(async (tx) => {
      await tx.lockSubscription('sub_lock')
      order.push('b locked')
    })
    // Not a speed check: b must not get the lock while a holds it, however long it is given.
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.same(order, ['a locked'], 'b waits while a holds the subscription')
    release()
    await Promise.all([a, b])
    t.same(order, ['a locked', 'a done', 'b locked'], 'then b runs')
  })

  t.test('events: recorded once, read back, listed', async (t) => {
    const { store } = await fresh(t)
    const tn = makeTenant()
    await store.insertTenant(tn)
    const e1 = makeEventRecord({ created: 300, received: '2026-01-01T00:00:03.000Z', tenant: tn.id, outcome: 'stale' })
    t.equal(await store.recordEvent(e1), true, 'a new id is recorded')
    t.equal(await store.recordEvent({ ...e1, type: 'other', payload: '{}' }), false, 'the same id again is a duplicate')
    t.equal(await store.transaction((tx) => tx.recordEvent(e1)), false, 'also inside a transaction')
    t.same(await store.getEvent(e1.id), e1, 'the first record stands, unchanged')
    t.equal(await store.getEvent('evt_missing'), undefined)

    const e2 = makeEventRecord({ created: 100, received: '2026-01-01T00:00:05.000Z', tenant: tn.id })
    const e3 = makeEventRecord({ created: 200, received: '2026-01-01T00:00:04.000Z', tenant: tn.id, outcome: 'ignored_terminal' })
    const e4 = makeEventRecord({ created: 50, received: '2026-01-01T00:00:01.000Z', outcome: 'unmatched' })
    for (const e of [e2, e3, e4]) t.equal(await store.recordEvent(e), true)
    t.same((await store.listEvents({ tenant: tn.id })).map((e) => e.id), [e2.id, e3.id, e1.id], "a tenant's events in Stripe's order")
    t.same((await store.listEvents({})).map((e) => e.id), [e2.id, e3.id, e1.id, e4.id], 'all events, last received first')
    t.same((await store.listEvents({ limit: 2 })).map((e) => e.id), [e2.id, e3.id], 'limit')
    t.same(await store.listEvents({ tenant: tn.id, limit: 1 }), [e1], "a tenant's most recent event, whole")
    t.same((await store.listEvents({ tenant: tn.id, limit: 2 })).map((e) => e.id), [e3.id, e1.id], 'the most recent two, in order')
    t.same(await store.listEvents({ tenant: tenantId() }), [])
  })

  t.test('events: all of them by outcome, a page at a time, exact across events received in the same millisecond', async (t) => {
    const { store } = await fresh(t)
    const tn = makeTenant()
    await store.insertTenant(tn)
    const outcomes = ['ok', 'unmatched', 'ok', 'stale', 'ok', 'unmatched', 'stale', 'unmatched', 'ok', 'ignored_terminal'] as const
    const events: StripeEventRecord[] = []
    // Three to a millisecond (the last alone), ids out of step with the order of recording.
    for (const [i, outcome] of outcomes.entries()) {
      events.push(makeEventRecord({ id: `evt_${'dgajcibfhe'[i]}${i}`, received: `2026-01-01T00:00:0${Math.floor(i / 3)}.000Z`, outcome, tenant: outcome === 'unmatched' ? null : tn.id }))
    }
    await store.transaction(async (tx) => { for (const e of events) await tx.recordEvent(e) })
    // The last received first; among those received together, the greater id first.
    const ordered = [...events].sort((a, b) => (a.received === b.received ? (a.id < b.id ? 1 : -1) : a.received < b.received ? 1 : -1))
    const ids = (list: StripeEventRecord[]): string[] => list.map((e) => e.id)
    // Page by page, each after the last of the one before, as the admin's cursor does; never
    // more pages than events (a listing that ignored `after` would go round forever).
    const pageThrough = async (filter: { outcome?: StripeEventRecord['outcome'] }, limit: number): Promise<StripeEventRecord[][]> => {
      const pages: StripeEventRecord[][] = []
      for (let page = await store.listEvents({ ...filter, limit }); page.length > 0 && pages.length <= events.length; page = await store.listEvents({ ...filter, limit, after: page[page.length - 1]! })) pages.push(page)
      return pages
    }

    t.same(await store.listEvents({}), ordered, 'all, whole, in order')
    for (const outcome of ['ok', 'unmatched', 'stale', 'ignored_terminal'] as const) {
      const expected = ordered.filter((e) => e.outcome === outcome)
      t.same(ids(await store.listEvents({ outcome })), ids(expected), `only the ${outcome} ones`)
      for (const limit of [1, 2, 3]) {
        const pages = await pageThrough({ outcome }, limit)
        t.ok(pages.every((page) => page.length <= limit), `${outcome}: at most ${limit} a page`)
        t.same(ids(pages.flat()), ids(expected), `${outcome}, ${limit} a page: each once, in order`)
      }
    }
    for (const limit of [1, 2, 3, 4]) t.same(ids((await pageThrough({}, limit)).flat()), ids(ordered), `all, ${limit} a page: each once, in order`)
    // A position inside a millisecond: strictly after it, whether or not an event stands there.
    const tie = ordered[2]!
    t.equal(tie.received, ordered[1]!.received, 'between two of its millisecond')
    t.equal(tie.received, ordered[3]!.received)
    t.same(ids(await store.listEvents({ after: tie })), ids(ordered.slice(3)), 'after an event: the ones listed after it')
    t.same(ids(await store.listEvents({ after: { received: tie.received, id: `${tie.id}0` } })), ids(ordered.slice(2)), 'after a position no event holds')
    t.same(ids(await store.listEvents({ outcome: 'unmatched', after: { received: '2026-01-01T00:00:02.000Z', id: 'evt_' } })), ids(ordered.filter((e) => e.outcome === 'unmatched' && e.received < '2026-01-01T00:00:02.000Z')), 'after a millisecond: only older ones')
    t.same(await store.listEvents({ outcome: 'unmatched', after: ordered[ordered.length - 1]! }), [], 'after the last: none')

    // Settled to 'ok' (its tenant appeared), an unmatched event leaves the unmatched listing.
    const settled = ordered.find((e) => e.outcome === 'unmatched')!
    await store.transaction((tx) => tx.settleEvent(settled.id, 'ok', tn.id))
    t.notOk(ids(await store.listEvents({ outcome: 'unmatched' })).includes(settled.id), 'no longer unmatched')
    t.ok(ids(await store.listEvents({ outcome: 'ok' })).includes(settled.id), 'now among the ok ones')
    const ofTenant = [...events.filter((e) => e.tenant === tn.id), { ...settled, outcome: 'ok' as const, tenant: tn.id }]
      .sort((a, b) => (a.received === b.received ? (a.id < b.id ? -1 : 1) : a.received < b.received ? -1 : 1))
    t.same(ids(await store.listEvents({ tenant: tn.id })), ids(ofTenant), "a tenant's listing is as it was: in Stripe's order, then as received")
  })

  t.test('events: unmatched ones wait under their subscription until settled', async (t) => {
    const { store } = await fresh(t)
    const tn = makeTenant()
    await store.insertTenant(tn)
    const later = makeEventRecord({ created: 300, outcome: 'unmatched', unmatchedSubscription: 'sub_wait' })
    const earlier = makeEventRecord({ created: 100, outcome: 'unmatched', unmatchedSubscription: 'sub_wait' })
    const elsewhere = makeEventRecord({ created: 200, outcome: 'unmatched', unmatchedSubscription: 'sub_other' })
    const matched = makeEventRecord({ created: 150, tenant: tn.id })
    for (const e of [later, earlier, elsewhere, matched]) await store.recordEvent(e)
    t.same(await store.listUnmatchedEvents('sub_wait'), [earlier, later], "the subscription's, whole, in Stripe's order")
    t.same(await store.listUnmatchedEvents('sub_none'), [])
    await store.transaction((tx) => tx.settleEvent(earlier.id, 'stale', tn.id))
    t.same(await store.getEvent(earlier.id), { ...earlier, outcome: 'stale', tenant: tn.id, unmatchedSubscription: null }, 'settled: applied to the tenant, no longer waiting')
    t.same(await store.listUnmatchedEvents('sub_wait'), [later])
    t.same(await store.listUnmatchedEvents('sub_other'), [elsewhere], 'others untouched')
    t.same((await store.listEvents({ tenant: tn.id })).map((e) => e.id), [earlier.id, matched.id], "now among the tenant's events")
  })

  t.test('events: retention walks the payloads received before a time, oldest first, and blanks them; never one waiting for its tenant', async (t) => {
    const { store } = await fresh(t)
    const tn = makeTenant()
    await store.insertTenant(tn)
    const at = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString()
    const a = makeEventRecord({ id: 'evt_a', received: at(1) })
    const b = makeEventRecord({ id: 'evt_b', received: at(2), tenant: tn.id })
    const c = makeEventRecord({ id: 'evt_c', received: at(2) })
    const waiting = makeEventRecord({ id: 'evt_w', received: at(3), outcome: 'unmatched', unmatchedSubscription: 'sub_wait' })
    const blank = makeEventRecord({ id: 'evt_0', received: at(3), payload: '' })
    const late = makeEventRecord({ id: 'evt_l', received: at(9), tenant: tn.id })
    for (const e of [late, c, waiting, b, blank, a]) await store.recordEvent(e)
    const before = at(5)
    t.same(await store.listPayloadsBefore(before, undefined, 10), [{ received: at(1), id: 'evt_a' }, { received: at(2), id: 'evt_b' }, { received: at(2), id: 'evt_c' }],
      'received before the time, in order; blank and waiting ones passed over')
    t.same(await store.listPayloadsBefore(before, undefined, 2), [{ received: at(1), id: 'evt_a' }, { received: at(2), id: 'evt_b' }], 'a batch')
    t.same(await store.listPayloadsBefore(before, { received: at(2), id: 'evt_b' }, 2), [{ received: at(2), id: 'evt_c' }], 'the next one, after a position in the same millisecond')
    t.equal(await store.transaction((tx) => tx.blankPayloads({ ids: ['evt_a', 'evt_w', 'evt_0', 'evt_none'] })), 1, 'only the full, settled one counts')
    t.equal((await store.getEvent('evt_a'))!.payload, '')
    t.same(await store.getEvent('evt_w'), waiting, 'a waiting event keeps its payload: its tenant will need it')
    t.same(await store.getEvent('evt_a'), { ...a, payload: '' }, 'the rest of the row is kept')
    t.equal(await store.blankPayloads({ tenant: tn.id }), 2, "a tenant's, whatever their age (on the store itself, too)")
    t.equal((await store.getEvent('evt_l'))!.payload, '')
    t.equal((await store.getEvent('evt_c'))!.payload, c.payload, "another's untouched")
    t.same(await store.listPayloadsBefore(before, undefined, 10), [{ received: at(2), id: 'evt_c' }], 'what is left to do')
  })

  t.test('events: concurrent transactions recording one id → exactly one records it and has its effect', async (t) => {
    const { store } = await fresh(t)
    const tn = makeTenant()
    await store.insertTenant(tn)
    const event = makeEventRecord({ tenant: tn.id })
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => store.transaction(async (tx) => {
      const first = await tx.recordEvent({ ...event, payload: `{"copy":${i}}` })
      if (first) {
        const current = (await tx.getTenantForUpdate(tn.id))!
        await tx.updateTenant(tn.id, { billingAt: current.billingAt + 1 })
        await audit(tx, tn.id, 'event.applied', { copy: i })
      }
      return first
    })))
    t.equal(results.filter(Boolean).length, 1, 'exactly one transaction saw the id as new')
    t.equal((await store.getTenant(tn.id))!.billingAt, 1, 'the effect happened once')
    t.equal((await store.listAudit({})).length, 1)
    const winner = results.indexOf(true)
    t.equal((await store.getEvent(event.id))!.payload, `{"copy":${winner}}`, 'the stored copy is the winner’s')
  })

  t.test('transactions: all or nothing, errors rethrown, others unaffected', async (t) => {
    const { store } = await fresh(t)
    const kept = makeTenant()
    const value = await store.transaction(async (tx) => {
      await tx.insertTenant(kept)
      t.same(await tx.getTenant(kept.id), kept, 'a transaction reads its own writes')
      return { answer: 42 }
    })
    t.same(value, { answer: 42 }, "the function's value is returned")

    const lost = makeTenant()
    const event = makeEventRecord()
    const boom = new Boom('boom')
    const rejected = await store.transaction(async (tx) => {
      await tx.insertTenant(lost)
      await tx.updateTenant(kept.id, { billing: 'paid' })
      await tx.recordEvent(event)
      await tx.linkSubscription('sub_lost', lost.id)
      await tx.enqueueJob({ kind: 'provision', tenant: lost.id, runAfter: 0 })
      await audit(tx, lost.id, 'never.committed')
      throw boom
    }).then(() => undefined, (err: unknown) => err)
    t.equal(rejected, boom, 'the very error the function threw is rethrown')
    t.equal(await store.getTenant(lost.id), undefined, 'no insert')
    t.equal((await store.getTenant(kept.id))!.billing, 'pending', 'no update')
    t.equal(await store.getEvent(event.id), undefined, 'no event')
    t.equal(await store.findTenantIdBySubscription('sub_lost'), undefined, 'no link')
    t.same(await store.listJobs({}), [], 'no job')
    t.same(await store.listAudit({}), [], 'no audit entry')
    t.equal(await store.recordEvent(event), true, 'the rolled-back event id is still new')

    const failedOp = await store.transaction(async (tx) => {
      await tx.updateTenant(kept.id, { billing: 'past_due' })
      await tx.insertTenant(makeTenant({ id: kept.id }))
    }).then(() => 'resolved', () => 'rejected')
    t.equal(failedOp, 'rejected', 'a failing store operation fails the transaction')
    t.equal((await store.getTenant(kept.id))!.billing, 'pending', '… and undoes its earlier writes')

    const tenants = Array.from({ length: 8 }, () => makeTenant())
    const outcomes = await Promise.allSettled(tenants.map((tn, i) => store.transaction(async (tx) => {
      await tx.insertTenant(tn)
      await audit(tx, tn.id, 'tenant.created', { i })
      if (i % 3 === 1) throw new Boom(`unit ${i}`)
      return i
    })))
    outcomes.forEach((o, i) => {
      if (i % 3 === 1) t.match(o, { status: 'rejected', reason: { message: `unit ${i}` } }, `unit ${i} failed alone`)
      else t.same(o, { status: 'fulfilled', value: i }, `unit ${i} committed`)
    })
    for (const [i, tn] of tenants.entries()) {
      t.equal((await store.getTenant(tn.id)) !== undefined, i % 3 !== 1, `tenant ${i} ${i % 3 === 1 ? 'absent' : 'present'}`)
    }
    const chain = await verifyStoredChain(store, SECRET)
    t.match(chain, { ok: true, entries: 5, lastSeq: 5 }, 'rolled-back appends leave no gap in the chain')
  })

  t.test('jobs: enqueue dedupes live jobs per tenant and kind', async (t) => {
    const { store } = await fresh(t)
    const a = tenantId()
    const b = tenantId()
    const before = Date.now()
    const job = await store.enqueueJob({ kind: 'provision', tenant: a, runAfter: 1000 })
    t.match(job, { kind: 'provision', tenant: a, status: 'queued', step: '', attempts: 0, runAfter: 1000, leaseUntil: 0, leaseOwner: null, lastError: null })
    t.type(job.id, 'number')
    t.match(job.createdAt, /^\d{4}-\d\d-\d\dT/)
    t.equal(job.stepAt, Date.parse(job.createdAt), 'its first step (none yet) began when it was queued')
    t.ok(job.stepAt >= before && job.stepAt <= Date.now(), 'now, as epoch ms')
    t.same(await store.getJob(job.id), job, 'getJob returns what enqueue returned')
    t.same(await store.transaction((tx) => tx.getJobForUpdate(job.id)), job, 'and getJobForUpdate in a transaction')
    t.equal(await store.transaction((tx) => tx.getJobForUpdate(job.id + 1000)), undefined)

    const again = await store.enqueueJob({ kind: 'provision', tenant: a, runAfter: 5 })
    t.equal(again.id, job.id, 'a queued job of the same kind is returned, not duplicated')
    t.equal(again.runAfter, 1000, 'and left as it was')
    const inTx = await store.transaction((tx) => tx.enqueueJob({ kind: 'provision', tenant: a, runAfter: 5 }))
    t.equal(inTx.id, job.id, 'also inside a transaction')
    const concurrent = await Promise.all(Array.from({ length: 5 }, () => store.enqueueJob({ kind: 'deprovision', tenant: a, runAfter: 0 })))
    t.equal(new Set(concurrent.map((j) => j.id)).size, 1, 'concurrent enqueues of one kind make one job')
    t.not(concurrent[0]!.id, job.id, 'another kind is another job')
    const forB = await store.enqueueJob({ kind: 'provision', tenant: b, runAfter: 0 })
    t.not(forB.id, job.id, 'another tenant is another job')

    const claimed = await Promise.all([1, 2, 3].map(() => store.claimNextJob('w1', 2000, 100)))
    t.ok(claimed.some((j) => j?.id === job.id), 'the provision job is running now')
    const whileRunning = await store.enqueueJob({ kind: 'provision', tenant: a, runAfter: 0 })
    t.equal(whileRunning.id, job.id, 'a running job also counts as live')
    await store.updateJob(job.id, { step: 'dns', stepAt: 1_795_514_400_123 })
    t.match(await store.getJob(job.id), { step: 'dns', stepAt: 1_795_514_400_123 }, 'a step and when it began, to the millisecond')
    await store.updateJob(job.id, { status: 'done' })
    const afterDone = await store.enqueueJob({ kind: 'provision', tenant: a, runAfter: 0 })
    t.not(afterDone.id, job.id, 'once done, a new job can be queued')
    await store.updateJob(afterDone.id, { status: 'failed' })
    const afterFailed = await store.enqueueJob({ kind: 'provision', tenant: a, runAfter: 0 })
    t.not(afterFailed.id, afterDone.id, 'also after a failed one')
    t.same((await store.listJobs({ tenant: a, status: 'queued' })).map((j) => j.id), [afterFailed.id], 'one live provision job')
    t.same((await store.listJobs({ tenant: a })).map((j) => j.status), ['done', 'running', 'failed', 'queued'])
  })

  t.test('jobs: a resize is a kind of its own, live beside a provision and a deprovision job of its tenant', async (t) => {
    const { store } = await fresh(t)
    const a = tenantId()
    const live = await Promise.all((['provision', 'deprovision', 'resize'] as const).map((kind) => store.enqueueJob({ kind, tenant: a, runAfter: 0 })))
    t.same(live.map((j) => j.kind), ['provision', 'deprovision', 'resize'])
    t.equal(new Set(live.map((j) => j.id)).size, 3, 'three jobs')
    const again = await store.transaction((tx) => tx.enqueueJob({ kind: 'resize', tenant: a, runAfter: 5 }))
    t.equal(again.id, live[2]!.id, 'one live resize per tenant')
    t.match(await store.getJob(live[2]!.id), { kind: 'resize', status: 'queued', step: '' }, 'read back as a resize')
    await store.updateJob(live[2]!.id, { step: 'resizing:g6-standard-4' })
    t.equal((await store.getJob(live[2]!.id))?.step, 'resizing:g6-standard-4', 'a step naming the type it awaits')
  })

  t.test('jobs: claimed by due time, leased, reclaimed after the lease lapses, released', async (t) => {
    const { store } = await fresh(t)
    const ta = tenantId()
    const tb = tenantId()
    const tc = tenantId()
    const late = await store.enqueueJob({ kind: 'provision', tenant: ta, runAfter: 300 })
    const early = await store.enqueueJob({ kind: 'provision', tenant: tb, runAfter: 100 })
    const middle = await store.enqueueJob({ kind: 'deprovision', tenant: tc, runAfter: 200 })
    t.equal(await store.nextJobDueAt(), 100, 'the earliest queued run time')

    t.equal(await store.claimNextJob('w1', 99, 1000), undefined, 'nothing is due before its time')
    const first = await store.claimNextJob('w1', 250, 1000)
    t.match(first, { id: early.id, status: 'running', leaseOwner: 'w1', leaseUntil: 1250 }, 'the earliest due job first, leased')
    t.same(await store.getJob(early.id), first, 'the lease is stored')
    const second = await store.claimNextJob('w2', 250, 1000)
    t.equal(second?.id, middle.id, 'then the next due one')
    t.equal(await store.claimNextJob('w2', 250, 1000), undefined, 'the third is not due yet; leased ones are not handed out')
    t.equal(await store.nextJobDueAt(), 300, 'min of queued run times and running leases')
    const third = await store.transaction((tx) => tx.claimNextJob('w3', 300, 10_000))
    t.equal(third?.id, late.id, 'claimable inside a transaction')
    t.equal(await store.nextJobDueAt(), 1250, 'now the earliest lease lapse')

    t.equal(await store.claimNextJob('w4', 1249, 1000), undefined, 'a live lease holds')
    const reclaimed = await store.claimNextJob('w4', 1250, 1000)
    t.match(reclaimed, { id: early.id, leaseOwner: 'w4', leaseUntil: 2250, status: 'running' }, 'a lapsed lease is taken over')
    t.match(reclaimed, { attempts: 1, lastError: /stopped without a result/ }, 'and the attempt that died with its worker counts')
    t.match(first, { attempts: 0, lastError: null }, 'a first claim counts nothing')

    t.equal(await store.releaseLeases('w2'), 1, 'releases what the worker holds')
    t.match(await store.getJob(middle.id), { status: 'running', leaseUntil: 0, leaseOwner: null })
    t.equal(await store.releaseLeases('w2'), 0)
    t.equal(await store.nextJobDueAt(), 0, 'a released job is due at once')
    const taken = await store.claimNextJob('w5', 1, 50)
    t.match(taken, { id: middle.id, leaseOwner: 'w5', attempts: 0 }, 'and another worker takes it at once; a released lease counts no attempt')

    await store.updateJob(early.id, { status: 'queued', step: 'created', attempts: 2, runAfter: 5000, leaseUntil: 0, leaseOwner: null, lastError: 'boom' })
    t.match(await store.getJob(early.id), { status: 'queued', step: 'created', attempts: 2, runAfter: 5000, leaseUntil: 0, leaseOwner: null, lastError: 'boom' }, 'updateJob patches')
    const before = (await store.getJob(late.id))!
    await store.updateJob(late.id, { step: 'dns' })
    t.match(await store.getJob(late.id), { ...before, step: 'dns', updatedAt: String }, 'a patch touches only its fields')
    await store.updateJob(late.id, { status: 'done', leaseOwner: null, leaseUntil: 0, lastError: null })
    await store.updateJob(middle.id, { status: 'canceled' })
    t.equal(await store.nextJobDueAt(), 5000, 'done and canceled jobs do not count')
    t.equal(await store.claimNextJob('w6', 4999, 10), undefined)
    t.equal(await store.getJob(99_999), undefined)
    t.same((await store.listJobs({ status: 'queued' })).map((j) => j.id), [early.id], 'listJobs by status')
    t.same((await store.listJobs({ tenant: ta })).map((j) => j.id), [late.id], 'listJobs by tenant')
    t.same((await store.listJobs({})).map((j) => j.id), [late.id, early.id, middle.id], 'all jobs in id order')
    await store.updateJob(early.id, { status: 'done' })
    t.equal(await store.nextJobDueAt(), undefined, 'nothing live → undefined')
  })

  t.test('jobs: a due provision job is claimed before teardowns and resizes that came due earlier: a buyer who just paid waits for none of them', async (t) => {
    const { store } = await fresh(t)
    const teardowns = []
    for (let i = 0; i < 4; i++) teardowns.push(await store.enqueueJob({ kind: 'deprovision', tenant: tenantId(), runAfter: 100 + i }))
    const resize = await store.enqueueJob({ kind: 'resize', tenant: tenantId(), runAfter: 150 })
    const provision = await store.enqueueJob({ kind: 'provision', tenant: tenantId(), runAfter: 1000 })
    t.equal(await store.claimNextJob('w1', 999, 1000).then((j) => j?.id), teardowns[0]!.id, 'before it is due, the earliest due job')
    t.equal(await store.claimNextJob('w1', 1000, 1000).then((j) => j?.id), provision.id, 'once due, the provision job first')
    const rest = []
    for (let j = await store.claimNextJob('w1', 1000, 1000); j !== undefined; j = await store.claimNextJob('w1', 1000, 1000)) rest.push(j.id)
    t.same(rest, [teardowns[1]!.id, teardowns[2]!.id, teardowns[3]!.id, resize.id], 'then the others in due order')
    // Provision jobs whose worker died are taken over first too, the earliest due of them.
    const later = await store.enqueueJob({ kind: 'provision', tenant: tenantId(), runAfter: 1500 })
    t.equal(await store.claimNextJob('w2', 1500, 1000).then((j) => j?.id), later.id)
    const lapsed = [await store.claimNextJob('w3', 2500, 1000), await store.claimNextJob('w3', 2500, 1000), await store.claimNextJob('w3', 2500, 1000)]
    t.same(lapsed.map((j) => j?.id), [provision.id, later.id, teardowns[0]!.id], 'every lease lapsed: the provision jobs first, then the earliest due teardown')
  })

  t.test('jobs: a provision job under way (past its first step) is claimed before new ones: its buyer paid first', async (t) => {
    const { store } = await fresh(t)
    const teardown = await store.enqueueJob({ kind: 'deprovision', tenant: tenantId(), runAfter: 100 })
    const fresh1 = await store.enqueueJob({ kind: 'provision', tenant: tenantId(), runAfter: 150 })
    // Handed back at a worker's stop after its server was made (its lease released).
    const handedBack = await store.enqueueJob({ kind: 'provision', tenant: tenantId(), runAfter: 200 })
    await store.updateJob(handedBack.id, { step: 'created', status: 'running', leaseUntil: 0 })
    const order = []
    for (let j = await store.claimNextJob('w1', 300, 1000); j !== undefined; j = await store.claimNextJob('w1', 300, 1000)) order.push(j.id)
    t.same(order, [handedBack.id, fresh1.id, teardown.id], 'the one under way, then the new one, then the teardown')
  })

  t.test('jobs: a provision job waiting for its health check is claimed before new ones: it gives its creation slot back at once', async (t) => {
    const { store } = await fresh(t)
    const teardown = await store.enqueueJob({ kind: 'deprovision', tenant: tenantId(), runAfter: 100 })
    const news = [await store.enqueueJob({ kind: 'provision', tenant: tenantId(), runAfter: 150 }), await store.enqueueJob({ kind: 'provision', tenant: tenantId(), runAfter: 160 })]
    const health = []
    for (const at of [300, 200]) {
      const j = await store.enqueueJob({ kind: 'provision', tenant: tenantId(), runAfter: at })
      await store.updateJob(j.id, { step: 'dns' })
      health.push(j)
    }
    const order = []
    for (let j = await store.claimNextJob('w1', 300, 1000); j !== undefined; j = await store.claimNextJob('w1', 300, 1000)) order.push(j.id)
    t.same(order, [health[1]!.id, health[0]!.id, news[0]!.id, news[1]!.id, teardown.id], 'the health waits by due time, then the new ones, then the rest')
  })

  t.test('jobs: concurrent claims hand each job to one worker', async (t) => {
    const { store } = await fresh(t)
    const ids = []
    for (let i = 0; i < 4; i++) ids.push((await store.enqueueJob({ kind: 'provision', tenant: tenantId(), runAfter: i })).id)
    const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => store.claimNextJob(`w${i}`, 100, 1000)))
    const got = claims.filter((j) => j !== undefined).map((j) => j.id)
    t.same([...got].sort((x, y) => x - y), ids, 'every job claimed exactly once')
    t.equal(claims.filter((j) => j === undefined).length, 6, 'the rest found nothing')
  })

  t.test('rate counts: a fixed window per key, atomic under concurrency, shared by a second store', async (t) => {
    const { store, reopen } = await fresh(t)
    t.same(await store.countHit('k1', 60_000, 1_000), { count: 1, resetAt: 61_000 }, 'the first hit opens a window')
    t.same(await store.countHit('k1', 60_000, 30_000), { count: 2, resetAt: 61_000 }, 'later hits count in it, its end unchanged')
    t.same(await store.countHit('k2', 60_000, 30_000), { count: 1, resetAt: 90_000 }, 'another key counts alone')
    const other = await reopen()
    t.same(await other.countHit('k1', 60_000, 60_999), { count: 3, resetAt: 61_000 }, 'a second store counts the same hits')
    t.same(await store.countHit('k1', 60_000, 61_000), { count: 1, resetAt: 121_000 }, 'at its end a new window begins')
    const together = await Promise.all(Array.from({ length: 12 }, () => store.countHit('k3', 60_000, 5_000)))
    t.same(together.map((h) => h.count).sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i + 1), 'concurrent hits each get their own count')
    t.same(await store.transaction((tx) => tx.countHit('k3', 60_000, 5_001)), { count: 13, resetAt: 65_000 }, 'inside a transaction too')
  })

  t.test('rate counts: a window ending more than a window from now began before the clock was stepped back, and has ended', async (t) => {
    const { store } = await fresh(t)
    const HOUR = 3_600_000
    t.same(await store.countHit('k1', 60_000, HOUR + 1_000), { count: 1, resetAt: HOUR + 61_000 })
    t.same(await store.countHit('k1', 60_000, HOUR + 2_000), { count: 2, resetAt: HOUR + 61_000 })
    // NTP steps the clock back an hour: the window would otherwise refuse the client for it.
    t.same(await store.countHit('k1', 60_000, 2_000), { count: 1, resetAt: 62_000 }, 'a new window from the new time')
    t.same(await store.countHit('k1', 60_000, 3_000), { count: 2, resetAt: 62_000 }, 'which counts on')
    // Another instance's clock a little behind this one's is no step: the window holds.
    t.same(await store.countHit('k1', 60_000, 1_500), { count: 3, resetAt: 62_000 }, 'half a second behind the window\'s start')
  })

  t.test('audit: seq from 1, chained MACs, concurrent appends form one chain, filters', async (t) => {
    const { store, reopen } = await fresh(t)
    const a = tenantId()
    const b = tenantId()
    const seen: Array<[string, number, AuditEntry | undefined]> = []
    const first = await store.appendAudit({ at: '2026-01-01T00:00:00.000Z', tenant: a, action: 'tenant.created', detail: { plan: 'solo', nested: { list: [1, 'x', null] } } },
      (prevMac, seq, prev) => { seen.push([prevMac, seq, prev]); return `mac-${seq}`.padEnd(64, '0') })
    t.same(seen, [[GENESIS_MAC, 1, undefined]], 'the seal gets the genesis MAC, seq 1 and no entry')
    t.same(first, { seq: 1, at: '2026-01-01T00:00:00.000Z', tenant: a, action: 'tenant.created', detail: { plan: 'solo', nested: { list: [1, 'x', null] } }, prevMac: GENESIS_MAC, mac: 'mac-1'.padEnd(64, '0') })
    const second = await store.transaction((tx) => tx.appendAudit({ at: '2026-01-01T00:00:01.000Z', tenant: b, action: 'x', detail: {} },
      (prevMac, seq, prev) => { seen.push([prevMac, seq, prev]); return 'f'.repeat(64) }))
    t.same(seen[1], [first.mac, 2, first], 'then the previous MAC, the next seq and the whole entry it chains to')
    const refused = await store.appendAudit({ at: '2026-01-01T00:00:02.000Z', tenant: b, action: 'x', detail: {} }, () => { throw new Error('refused') })
      .then(() => undefined, (e: unknown) => e)
    t.match(refused, { message: 'refused' }, 'a seal that throws fails the append')
    t.equal((await store.listAudit({})).length, 2, 'and appends nothing')
    t.match(second, { seq: 2, prevMac: first.mac, mac: 'f'.repeat(64) })
    t.same((await store.listAudit({}))[0], first, 'entries read back whole')

    const other = await reopen()
    const appends = Array.from({ length: 24 }, (_, i) => {
      const ops = i % 3 === 0 ? other : store
      return i % 2 === 0 ? audit(ops, i % 4 === 0 ? a : b, 'parallel', { i }) : ops.transaction((tx) => audit(tx, b, 'parallel.tx', { i }))
    })
    await Promise.all(appends)
    const all = await store.listAudit({})
    t.same(all.map((e) => e.seq), Array.from({ length: 26 }, (_, i) => i + 1), 'seq 1..n with no gap or repeat')
    for (let i = 1; i < all.length; i++) {
      if (all[i]!.prevMac !== all[i - 1]!.mac) { t.fail(`seq ${all[i]!.seq} does not chain to seq ${all[i - 1]!.seq}`); break }
    }
    t.pass('every entry chains to the one before')
    t.same(await verifyStoredChain(store, SECRET), { ok: false, entries: 26, badSeq: 1, problem: 'modified', reason: 'content does not match its MAC' },
      'the verifier reads the stored chain (the first two entries carry fake MACs)')

    const forA = await store.listAudit({ tenant: a })
    t.ok(forA.length >= 2 && forA.every((e) => e.tenant === a), 'filter by tenant')
    t.same(forA.map((e) => e.seq), [...forA.map((e) => e.seq)].sort((x, y) => x - y), 'in seq order')
    t.same((await store.listAudit({ afterSeq: 20 })).map((e) => e.seq), [21, 22, 23, 24, 25, 26], 'afterSeq')
    t.same((await store.listAudit({ afterSeq: 3, limit: 2 })).map((e) => e.seq), [4, 5], 'afterSeq with limit')
    t.same((await store.listAudit({ tenant: b, limit: 1 }))[0]?.seq, 2, 'tenant with limit')
    t.same((await store.listAudit({ limit: 3, newest: true })).map((e) => e.seq), [24, 25, 26], 'the newest, in seq order')
    const newestOfA = (await store.listAudit({ tenant: a, limit: 2, newest: true })).map((e) => e.seq)
    t.same(newestOfA, forA.slice(-2).map((e) => e.seq), "a tenant's newest")
    const mid = forA[Math.floor(forA.length / 2)]!.seq
    t.same((await store.listAudit({ tenant: a, afterSeq: mid })).map((e) => e.seq), forA.filter((e) => e.seq > mid).map((e) => e.seq), "a tenant's, after a seq")
    t.same((await store.listAudit({ tenant: a, afterSeq: mid, limit: 1 })).map((e) => e.seq), forA.filter((e) => e.seq > mid).slice(0, 1).map((e) => e.seq), "a tenant's, after a seq, with a limit")
    t.same((await store.listAudit({ tenant: b, afterSeq: 2, limit: 2, newest: true })).map((e) => e.seq),
      all.filter((e) => e.tenant === b && e.seq > 2).slice(-2).map((e) => e.seq), "a tenant's newest after a seq")
    t.same(await store.listAudit({ tenant: tenantId() }), [], 'a tenant without entries: none')
  })

  t.test('audit: a real chain verifies across two stores on one database', async (t) => {
    const { store, reopen } = await fresh(t)
    const other = await reopen()
    await Promise.all(Array.from({ length: 30 }, (_, i) => audit(i % 2 === 0 ? store : other, tenantId(), 'step', { i })))
    t.match(await verifyStoredChain(store, SECRET), { ok: true, entries: 30, lastSeq: 30 })
  })

  t.test('ping and close', async (t) => {
    const { store } = await fresh(t)
    await t.resolves(store.ping(), 'ping answers while open')
    t.ok(store.kind === 'sqlite' || store.kind === 'postgres')
    await store.close()
    await t.resolves(store.close(), 'closing twice is harmless')
    await t.rejects(store.transaction(async () => 1), 'a closed store refuses transactions')
    await t.rejects(store.ping(), 'and pings')
    await t.rejects(store.getTenant(tenantId()), { name: 'StoreError', message: 'store is closed' }, 'and reads, saying so')
    await t.rejects(store.schema(), { name: 'StoreError', message: 'store is closed' }, 'and schema looks')
  })
}
