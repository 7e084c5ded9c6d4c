// `kill -9` of a real server process under webhook load: every event answered 2xx before the
// kill must have its effect in the database afterwards (WAL, synchronous=FULL, group commit).
import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { TEST_WEBHOOK_SECRET, tempDbPath } from '../helpers/build-app.ts'
import { invoice, makeEvent, type StripeTestEvent } from '../helpers/stripe-events.ts'
import { deliverTo, getJson, postJson, startServer } from '../helpers/server-process.ts'

const TENANTS = 32
const EVENTS_PER_TENANT = 12
/** The server is killed once this many events have been acknowledged. */
const KILL_AFTER = 150

interface Sent {
  event: StripeTestEvent
  tenant: string
  billing: 'paid' | 'past_due'
}

t.test('every event acknowledged before a SIGKILL is in the store with its effect', async (t) => {
  const dbPath = tempDbPath(t)
  // WEBHOOK_WAIT_MS=0: answer without waiting for provisioning, so the load stays on the store.
  const env = { DATABASE_URL: `sqlite:${dbPath}`, STRIPE_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET, WEBHOOK_WAIT_MS: '0' }
  const server = await startServer({ env })
  t.teardown(() => server.kill())

  const tenants: string[] = []
  for (let i = 0; i < TENANTS; i++) {
    const r = await postJson(`${server.url}/billing/checkout`, { plan: 'standard', name: `Kill Nine ${i}` })
    t.equal(r.status, 200, `checkout ${i}`)
    tenants.push(r.json.tenant_id)
  }

  // One chain per tenant, sent in order (paid, failed, paid, …, `created` rising), the chains
  // running side by side: 32 requests in flight, and every applied event is `ok`.
  const base = Math.floor(Date.now() / 1000) - 1000
  const acked: Sent[] = []
  let killed = false
  let inFlightAtKill = 0
  let inFlight = 0
  let failedAfterKill = 0
  await Promise.all(tenants.map(async (tenant, k) => {
    for (let j = 0; j < EVENTS_PER_TENANT && !killed; j++) {
      const billing = j % 2 === 0 ? 'paid' : 'past_due'
      const type = billing === 'paid' ? 'invoice.paid' : 'invoice.payment_failed'
      const event = makeEvent(type, invoice({ subscription: `sub_kill9_${k}`, tenantId: tenant }), { created: base + j })
      inFlight++
      let status = 0
      try {
        status = (await deliverTo(server.url, TEST_WEBHOOK_SECRET, event)).status
      } catch {
        status = 0
      } finally {
        inFlight--
      }
      if (status < 200 || status >= 300) {
        if (killed) failedAfterKill++
        else t.fail(`event ${event.id} answered ${status} before the kill`)
        return
      }
      // A 2xx that arrives while the kill is under way is an acknowledgement like any other.
      acked.push({ event, tenant, billing })
      if (acked.length === KILL_AFTER) {
        killed = true
        inFlightAtKill = inFlight
        await server.kill()
      }
    }
  }))

  if (!killed) {
    // A delivery failed before the kill (already a failure above): end here, not on an exit
    // that never comes.
    await server.kill()
    t.fail(`the server was not killed: only ${acked.length} events were acknowledged`)
    return
  }
  t.equal((await server.exited).signal, 'SIGKILL', 'it died of SIGKILL (no shutdown code ran)')
  t.ok(inFlightAtKill > 0, `requests were in flight at the kill (${inFlightAtKill}; ${failedAfterKill} failed)`)
  t.ok(acked.length >= KILL_AFTER, `${acked.length} events acknowledged in all`)

  // Straight from the file, as the next process would find it after a crash.
  const db = new DatabaseSync(dbPath)
  try {
    const events = new Map((db.prepare('SELECT id, type, created, outcome, tenant FROM stripe_events').all() as Array<Record<string, any>>).map((r) => [r.id, r]))
    let missing = 0
    for (const a of acked) {
      const row = events.get(a.event.id)
      if (row === undefined || row.outcome !== 'ok' || row.tenant !== a.tenant || row.type !== a.event.type) {
        missing++
        t.fail(`acked event ${a.event.id} is ${row === undefined ? 'missing' : `stored as ${row.outcome}/${row.type} for ${row.tenant}`}`)
      }
    }
    t.equal(missing, 0, `all ${acked.length} acknowledged events stored with outcome ok and their tenant`)

    // Each tenant's billing is the one stated by its newest stored event — at least as new
    // as its newest acknowledged one (an unanswered event may also have committed).
    for (const tenant of tenants) {
      const row = db.prepare('SELECT billing, billing_at FROM tenants WHERE id = ?').get(tenant) as { billing: string, billing_at: number }
      const mine = acked.filter((a) => a.tenant === tenant)
      const newestAcked = Math.max(0, ...mine.map((a) => a.event.created))
      const newestStored = db.prepare("SELECT type, created FROM stripe_events WHERE tenant = ? AND outcome = 'ok' ORDER BY created DESC LIMIT 1").get(tenant) as { type: string, created: number } | undefined
      // The same three checks for every tenant, touched or not, so the assertion count does not
      // depend on where the kill landed.
      const expected = newestStored === undefined ? 'pending' : newestStored.type === 'invoice.paid' ? 'paid' : 'past_due'
      t.ok(row.billing_at >= newestAcked, `tenant ${tenant.slice(0, 8)}: billing_at ${row.billing_at} ≥ newest acked ${newestAcked}`)
      t.equal(row.billing_at, newestStored?.created ?? 0, `tenant ${tenant.slice(0, 8)}: billing_at is its newest stored event's (0 if none)`)
      t.equal(row.billing, expected, `tenant ${tenant.slice(0, 8)}: billing follows that event (pending if none)`)
    }
  } finally {
    db.close()
  }

  // A new process on the same file sees the same, and a redelivery is still a duplicate.
  const again = await startServer({ env })
  t.teardown(() => again.stop())
  const sample = acked[acked.length - 1]!
  const status = await getJson(`${again.url}/tenants/${sample.tenant}/status`)
  t.equal(status.status, 200)
  t.ok(['paid', 'past_due'].includes(status.json.billing), 'the restarted server reads the tenant')
  const redelivered = await deliverTo(again.url, TEST_WEBHOOK_SECRET, acked[0]!.event)
  t.same([redelivered.status, redelivered.json], [200, { status: 'duplicate' }], 'an acked event redelivered after the crash has no second effect')
  await again.stop()
})
