import t, { type Test } from 'tap'
import { pino } from 'pino'
import { SqliteStore } from '../../api/store/sqlite.ts'
import type { StoreOps, Tenant } from '../../api/store/store.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { JobRunner } from '../../api/provisioning/jobs.ts'
import { TenantService } from '../../api/tenants/service.ts'
import { TenantAdmin, eventCursor, filtersForState, parseEventCursor, parseTenantCursor, tenantCursor } from '../../api/tenants/admin.ts'
import { appendAudit } from '../../api/provisioning/audit.ts'
import { BILLING, INFRA, STATES, deriveTenantState } from '../../api/tenants/lifecycle.ts'
import { testConfig, tempDbPath } from '../helpers/build-app.ts'

/** A TenantAdmin over a fresh SQLite store, closed with the test. */
function adminOnNewStore (t: Test) {
  const store = new SqliteStore({ path: tempDbPath(t) })
  t.teardown(() => store.close())
  const config = testConfig({}, t)
  const jobs = new JobRunner({ store, executor: new FakeExecutor(), config, log: pino({ level: 'silent' }) })
  return { store, config, admin: new TenantAdmin({ store, tenants: new TenantService({ store, config, jobs }), auditSecret: config.auditSecret, stripeSecretKey: config.stripe.secretKey }) }
}

t.test('filtersForState covers exactly the tenants of each state', async (t) => {
  for (const state of STATES) {
    const filters = filtersForState(state)
    for (const billing of BILLING) {
      for (const infra of INFRA) {
        const hits = filters.filter((f) => (f.billing === undefined || f.billing === billing) && (f.infra === undefined || f.infra === infra)).length
        t.equal(hits, deriveTenantState(billing, infra) === state ? 1 : 0, `${state}: ${billing}/${infra}`)
      }
    }
  }
  t.same(filtersForState('canceled'), [{ billing: 'canceled' }], 'a whole billing column is one filter')
})

t.test('paging by state matches a full in-memory listing, ties included', async (t) => {
  const { store, admin } = adminOnNewStore(t)

  const tenants: Tenant[] = []
  let n = 0
  for (const billing of BILLING) {
    for (const infra of INFRA) {
      for (let copy = 0; copy < 3; copy++) {
        n++
        const id = n.toString(16).padStart(32, '0')
        // Every third tenant shares a timestamp with another: the id breaks the tie.
        const createdAt = new Date(Date.UTC(2026, 0, 1, 0, 0, Math.floor(n / 3) * 3)).toISOString()
        tenants.push({
          id, name: `T${n}`, email: '', plan: 'solo', slug: `t-${n}`, fqdn: `t-${n}.ctfhive.test`, billing, infra, subscriptionId: null, customerId: null,
          billingAt: 0, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null,
          createdAt, updatedAt: createdAt, paidAt: null, readyAt: null, canceledAt: null, softCancelFrom: null, billingState: null, adminEmail: null
        })
      }
    }
  }
  await store.transaction(async (tx) => { for (const x of tenants) await tx.insertTenant(x) })
  const ordered = [...tenants].sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? -1 : 1) : a.createdAt < b.createdAt ? 1 : -1))

  for (const state of [undefined, ...STATES]) {
    const expected = ordered.filter((x) => state === undefined || deriveTenantState(x.billing, x.infra) === state).map((x) => x.id)
    for (const limit of [1, 4, 7, 500]) {
      const seen: string[] = []
      for (let offset = 0; offset < expected.length + limit; offset += limit) {
        const page = await admin.listTenants({ state, limit, offset })
        t.equal(page.total, expected.length)
        seen.push(...page.tenants.map((x) => x.tenant_id))
        if (page.tenants.length > 0) t.ok(page.tenants.every((x) => state === undefined || x.state === state))
      }
      t.same(seen, expected, `${state ?? 'all'} in pages of ${limit}`)

      // The same by cursor: each page's `next` leads to the following one; the last has none.
      const byCursor: string[] = []
      let after: string | undefined
      let pages = 0
      for (;;) {
        const page = await admin.listTenants({ state, limit, after })
        byCursor.push(...page.tenants.map((x) => x.tenant_id))
        pages++
        if (page.next === null) break
        t.equal(page.tenants.length, limit, 'a page with a next is full')
        after = page.next
      }
      t.same(byCursor, expected, `${state ?? 'all'} by cursor in pages of ${limit}`)
      t.equal(pages, Math.max(Math.ceil(expected.length / limit), 1), 'no empty page at the end')
    }
  }

  for (const state of [undefined, 'active', 'provisioning'] as const) {
    const far = await admin.listTenants({ state, limit: 500, offset: Number.MAX_SAFE_INTEGER })
    t.same(far.tenants, [], `${state ?? 'all'}: an offset past the end is an empty page`)
    t.equal(far.offset, Number.MAX_SAFE_INTEGER)
    t.ok(far.total > 0)
  }

  const exported = await admin.exportTenants()
  t.equal(exported.length, tenants.length)
  t.same(exported.map((x) => x.tenant_id), [...ordered].reverse().map((x) => x.id), 'export is oldest first')
})

t.test("a tenant's detail shows its newest audit entries when there are more than it shows", async (t) => {
  const { store, config, admin } = adminOnNewStore(t)
  const at = new Date().toISOString()
  const id = 'f'.repeat(32)
  await store.insertTenant({
    id, name: 'Long CTF', email: '', plan: 'solo', slug: 'long-ffffff', fqdn: 'long-ffffff.ctfhive.test', billing: 'canceled', infra: 'failed', subscriptionId: null, customerId: null,
    billingAt: 0, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null, createdAt: at, updatedAt: at, paidAt: null, readyAt: null, canceledAt: at, softCancelFrom: null, billingState: null, adminEmail: null
  })
  // A teardown failing for weeks: one entry per attempt, the last one saying why now.
  await store.transaction(async (tx) => {
    for (let i = 1; i <= 5001; i++) await appendAudit(tx, config.auditSecret, id, 'deprovision.attempt_failed', { attempts: i })
  })
  const { audit } = await admin.showTenant(id)
  t.equal(audit.length, 5000)
  t.same([audit[0]?.detail, audit.at(-1)?.detail], [{ attempts: 2 }, { attempts: 5001 }], 'the newest 5000, oldest first')
})

t.test('export reads every tenant once while tenants are removed and added between its pages', async (t) => {
  for (const change of ['a pending tenant removed', 'a tenant added', 'one removed and one added'] as const) {
    await t.test(change, async (t) => {
      const { store, config } = adminOnNewStore(t)
      const jobs = new JobRunner({ store, executor: new FakeExecutor(), config, log: pino({ level: 'silent' }) })
      const tenants = new TenantService({ store, config, jobs })
      // Two pages and more; every fourth shares its timestamp with the one before.
      const kept: Array<{ id: string, createdAt: string }> = []
      await store.transaction(async (tx) => {
        for (let n = 0; n < 1001; n++) {
          const id = n.toString(16).padStart(32, '0')
          const createdAt = new Date(Date.UTC(2026, 0, 1) + (n - (n % 4 === 3 ? 1 : 0)) * 1000).toISOString()
          await tx.insertTenant({
            id, name: `T${n}`, email: '', plan: 'solo', slug: `t-${n}`, fqdn: `t-${n}.ctfhive.test`, billing: 'paid', infra: 'ready', subscriptionId: null, customerId: null,
            billingAt: 0, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null,
            createdAt, updatedAt: createdAt, paidAt: null, readyAt: null, canceledAt: null, softCancelFrom: null, billingState: null, adminEmail: null
          })
          kept.push({ id, createdAt })
        }
      })
      // The reverse of the listing's order (newest first, then id).
      const oldestFirst = kept.sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? -1 : 1)).map((x) => x.id)
      // A checkout in flight: its pending tenant is the newest, on the first page.
      const inFlight = await tenants.createPendingTenant({ name: 'In Flight', email: '', plan: 'solo' })
      let added: string | undefined
      let pages = 0
      const watched: StoreOps = Object.create(store)
      watched.listTenants = async (f) => {
        const page = await store.listTenants(f)
        if (++pages === 1) {
          // Stripe refused the checkout; another buyer's checkout began.
          if (change !== 'a tenant added') await tenants.removePendingTenant(inFlight.id, 'stripe_checkout_failed')
          if (change !== 'a pending tenant removed') added = (await tenants.createPendingTenant({ name: 'Newer', email: '', plan: 'solo' })).id
        }
        return page
      }
      const admin = new TenantAdmin({ store: watched, tenants, auditSecret: config.auditSecret, stripeSecretKey: config.stripe.secretKey })
      const exported = (await admin.exportTenants()).map((x) => x.tenant_id)
      t.ok(pages >= 3, `read in pages (${pages})`)
      t.same(exported.filter((id) => id !== inFlight.id && id !== added), oldestFirst, 'every tenant there throughout, once each, oldest first')
      t.equal(new Set(exported).size, exported.length, 'no tenant twice')
    })
  }
})

t.test('export gives the event loop a turn between its pages: a large one does not hold the server until it ends', async (t) => {
  const { store, admin } = adminOnNewStore(t)
  // Two pages and a bit (MAX_PAGE is 500).
  await store.transaction(async (tx) => {
    for (let n = 0; n < 1001; n++) {
      const id = n.toString(16).padStart(32, '0')
      const createdAt = new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString()
      await tx.insertTenant({
        id, name: `T${n}`, email: '', plan: 'solo', slug: `t-${n}`, fqdn: `t-${n}.ctfhive.test`, billing: 'paid', infra: 'ready', subscriptionId: null, customerId: null,
        billingAt: 0, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null,
        createdAt, updatedAt: createdAt, paidAt: null, readyAt: null, canceledAt: null, softCancelFrom: null, billingState: null, adminEmail: null
      })
    }
  })
  // SQLite reads synchronously: what else the server has to do (a health check, a webhook)
  // gets its turn only if the export leaves the event loop between pages.
  const seen: string[] = []
  const read = store.listTenants.bind(store)
  store.listTenants = async (f) => {
    seen.push('page')
    return read(f)
  }
  setImmediate(() => seen.push('another callback'))
  const exported = await admin.exportTenants()
  t.equal(exported.length, 1001)
  t.same(seen, ['page', 'another callback', 'page', 'page'], 'the callback waiting runs after the first page, not after the whole export')
})

t.test('a cursor page is not shifted by tenants added or removed before it; bad cursors are refused', async (t) => {
  const { store, admin } = adminOnNewStore(t)
  const insert = async (n: number, createdAt: string) => {
    const id = n.toString(16).padStart(32, '0')
    await store.transaction(async (tx) => tx.insertTenant({
      id, name: `T${n}`, email: '', plan: 'solo', slug: `t-${n}`, fqdn: `t-${n}.ctfhive.test`, billing: 'paid', infra: 'ready', subscriptionId: null, customerId: null,
      billingAt: 0, planAt: 0, error: null, serverId: null, ipv4: null, dnsRecordId: null,
      createdAt, updatedAt: createdAt, paidAt: null, readyAt: null, canceledAt: null, softCancelFrom: null, billingState: null, adminEmail: null
    }))
    return id
  }
  const ids: string[] = []
  for (let n = 1; n <= 6; n++) ids.push(await insert(n, new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString()))
  const first = await admin.listTenants({ state: 'active', limit: 2 })
  t.same(first.tenants.map((x) => x.tenant_id), [ids[5], ids[4]])
  // Meanwhile a new tenant, listed first: the second page by offset shows one of the first again.
  await insert(7, new Date(Date.UTC(2026, 0, 1, 0, 0, 7)).toISOString())
  const byOffset = await admin.listTenants({ state: 'active', limit: 2, offset: 2 })
  t.same(byOffset.tenants.map((x) => x.tenant_id), [ids[4], ids[3]], 'by offset, one shown twice')
  t.same((await admin.listTenants({ state: 'active', limit: 2, after: first.next! })).tenants.map((x) => x.tenant_id), [ids[3], ids[2]], 'by cursor, the page after the first')
  // And the first page's tenants gone: still the same page.
  await store.deleteTenant(ids[5]!)
  await store.deleteTenant(ids[4]!)
  const second = await admin.listTenants({ state: 'active', limit: 2, after: first.next! })
  t.same(second.tenants.map((x) => x.tenant_id), [ids[3], ids[2]], 'the page after the first, as it was')
  t.equal(second.total, 5)

  t.same(parseTenantCursor(tenantCursor({ createdAt: '2026-01-01T00:00:01.000Z', id: ids[0]! })), { createdAt: '2026-01-01T00:00:01.000Z', id: ids[0] })
  const forged = [
    'not-a-cursor', Buffer.from('[1,2]').toString('base64url'), Buffer.from('{"a":1}').toString('base64url'),
    Buffer.from(JSON.stringify(['2026-01-01', ids[0]])).toString('base64url'),
    Buffer.from(JSON.stringify(['2026-01-01T00:00:01.000Z', 'x'.repeat(32)])).toString('base64url'),
    Buffer.from(JSON.stringify(['2026-01-01T00:00:01.000Z', ids[0], 3])).toString('base64url'),
    // Node's decoder would skip what follows or pads a real cursor.
    `${first.next!}x`, `${first.next!}=`, `${first.next!}.`, ` ${first.next!}`
  ]
  for (const after of forged) {
    t.equal(parseTenantCursor(after), undefined, after)
    await t.rejects(admin.listTenants({ after }), { code: 'invalid_request', extra: { field: 'after' }, message: /not a cursor this server gave out/ })
  }
  for (const offset of [2, 0]) {
    await t.rejects(admin.listTenants({ after: first.next!, offset }), { code: 'invalid_request', extra: { field: 'offset' }, message: 'Give offset or after, not both.' }, `offset ${offset} with after`)
  }
})

t.test('events cursors: what eventCursor gives out reads back; anything else is refused, naming after', async (t) => {
  const { store, admin } = adminOnNewStore(t)
  const at = '2026-01-01T00:00:01.000Z'
  for (const id of ['evt_1', 'evt_1:replay:2', '"\\~!', 'e'.repeat(255) + ':replay:10000']) t.same(parseEventCursor(eventCursor({ received: at, id })), { received: at, id }, id)
  const forged = [
    'not-a-cursor', Buffer.from('[1,2,3]').toString('base64url'), Buffer.from('{"a":1}').toString('base64url'),
    tenantCursor({ createdAt: at, id: 'a'.repeat(32) }),
    Buffer.from(JSON.stringify(['tenants', at, 'evt_1'])).toString('base64url'),
    Buffer.from(JSON.stringify(['events', '2026-01-01', 'evt_1'])).toString('base64url'),
    Buffer.from(JSON.stringify(['events', at, ''])).toString('base64url'),
    Buffer.from(JSON.stringify(['events', at, 'evt\u0000'])).toString('base64url'),
    Buffer.from(JSON.stringify(['events', at, 'évt'])).toString('base64url'),
    Buffer.from(JSON.stringify(['events', at, 'e'.repeat(301)])).toString('base64url'),
    Buffer.from(JSON.stringify(['events', at, 'evt_1', 0])).toString('base64url'),
    `${eventCursor({ received: at, id: 'evt_1' })}x`
  ]
  for (const after of forged) {
    t.equal(parseEventCursor(after), undefined, after)
    await t.rejects(admin.listEvents({ after }), { code: 'invalid_request', extra: { field: 'after' }, message: /not a cursor this server gave out/ })
  }
  t.equal(parseTenantCursor(eventCursor({ received: at, id: 'a'.repeat(32) })), undefined, "and the tenants' listing refuses an events cursor")

  // A page's next continues after its last event; the last page has none.
  for (const [i, outcome] of (['unmatched', 'ok', 'unmatched', 'unmatched'] as const).entries()) {
    await store.recordEvent({ id: `evt_${i}`, type: 'invoice.paid', created: 1, received: at, outcome, tenant: null, payload: '{}' })
  }
  const first = await admin.listEvents({ outcome: 'unmatched', limit: 2 })
  t.same(first.events.map((e) => e.id), ['evt_3', 'evt_2'])
  t.same(parseEventCursor(first.next!), { received: at, id: 'evt_2' })
  const second = await admin.listEvents({ outcome: 'unmatched', limit: 2, after: first.next! })
  t.same(second, { events: [{ id: 'evt_0', type: 'invoice.paid', created: 1, received: at, outcome: 'unmatched', tenant: null }], next: null })
})
