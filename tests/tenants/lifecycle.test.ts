import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import fc from 'fast-check'
import {
  BILLING, INFRA, applyBillingChange, billingFromSubscriptionStatus, deriveTenantState,
  type BillingChange, type BillingFacts, type ChangeResult
} from '../../api/tenants/lifecycle.ts'

const NOW = '2026-01-01T00:00:00.000Z'

function facts (over: Partial<BillingFacts> = {}): BillingFacts {
  return { billing: 'pending', infra: 'none', billingAt: 0, planAt: 0, plan: 'standard', subscriptionId: null, customerId: null, paidAt: null, softCancelFrom: null, error: null, billingState: null, ...over }
}

/** A patch's columns besides the facts underneath (tested on their own in billing-state.test.ts). */
function cols (patch: ChangeResult['patch']): Omit<ChangeResult['patch'], 'billingState'> {
  const { billingState: _facts, ...rest } = patch
  return rest
}

t.test('state is derived from billing × infra, every combination', async (t) => {
  const expected: Record<string, Record<string, string>> = {
    pending: { none: 'provisioning', provisioning: 'provisioning', ready: 'provisioning', failed: 'failed', deprovisioned: 'provisioning' },
    paid: { none: 'provisioning', provisioning: 'provisioning', ready: 'active', failed: 'failed', deprovisioned: 'provisioning' },
    past_due: { none: 'past_due', provisioning: 'past_due', ready: 'past_due', failed: 'failed', deprovisioned: 'past_due' },
    canceled: { none: 'canceled', provisioning: 'canceled', ready: 'canceled', failed: 'canceled', deprovisioned: 'canceled' }
  }
  for (const b of BILLING) for (const i of INFRA) t.equal(deriveTenantState(b, i), expected[b]![i], `${b} × ${i}`)
})

t.test('subscription status map', async (t) => {
  t.equal(billingFromSubscriptionStatus('active'), 'paid')
  t.equal(billingFromSubscriptionStatus('trialing'), 'paid')
  t.equal(billingFromSubscriptionStatus('past_due'), 'past_due')
  t.equal(billingFromSubscriptionStatus('unpaid'), 'past_due')
  t.equal(billingFromSubscriptionStatus('canceled'), 'canceled')
  t.equal(billingFromSubscriptionStatus('incomplete_expired'), 'canceled')
  t.equal(billingFromSubscriptionStatus('incomplete'), undefined)
  t.equal(billingFromSubscriptionStatus('paused'), 'past_due', 'a trial ended without a payment method')
})

t.test('the first paid starts provisioning, later ones do not', async (t) => {
  const first = applyBillingChange(facts(), { at: 10, billing: 'paid' }, NOW)
  t.equal(first.outcome, 'ok')
  t.ok(first.startProvisioning)
  t.same(cols(first.patch), { billing: 'paid', billingAt: 10, paidAt: NOW })
  const again = applyBillingChange(facts({ billing: 'past_due', infra: 'ready', billingAt: 10, paidAt: NOW }), { at: 20, billing: 'paid' }, NOW)
  t.notOk(again.startProvisioning)
  t.same(cols(again.patch), { billing: 'paid', billingAt: 20 })
})

t.test('an older billing change is stale and changes nothing', async (t) => {
  const r = applyBillingChange(facts({ billing: 'past_due', billingAt: 50, paidAt: NOW, infra: 'ready' }), { at: 40, billing: 'paid' }, NOW)
  t.equal(r.outcome, 'stale')
  t.same(cols(r.patch), {})
  t.notOk(r.startProvisioning)
  const old = applyBillingChange(facts({ billing: 'paid', billingAt: 50, paidAt: NOW }), { at: 40, billing: 'past_due' }, NOW)
  t.equal(old.outcome, 'stale')
  t.same(cols(old.patch), {})
  const same = applyBillingChange(facts({ billing: 'past_due', billingAt: 50, paidAt: NOW }), { at: 50, billing: 'paid' }, NOW)
  t.equal(same.outcome, 'ok', 'an equal timestamp is not older')
})

t.test('events of the same second are settled by rank, not by arrival', async (t) => {
  const paidThenFailed = applyBillingChange(facts({ billing: 'paid', billingAt: 50, paidAt: NOW }), { at: 50, billing: 'past_due' }, NOW)
  t.equal(paidThenFailed.outcome, 'stale', 'a failure in the same second as a payment does not undo it')
  t.same(cols(paidThenFailed.patch), {})
  const failedThenPaid = applyBillingChange(facts({ billing: 'past_due', billingAt: 50, paidAt: NOW }), { at: 50, billing: 'paid' }, NOW)
  t.same(cols(failedThenPaid.patch), { billing: 'paid' }, 'either order ends paid')
  const down = applyBillingChange(facts({ plan: 'pro', planAt: 50 }), { at: 50, plan: 'solo' }, NOW)
  t.equal(down.outcome, 'stale', 'the lower tier of the same second does not win')
  const up = applyBillingChange(facts({ plan: 'solo', planAt: 50 }), { at: 50, plan: 'pro' }, NOW)
  t.same(cols(up.patch), { plan: 'pro' }, 'the higher tier does, in either order')
  t.same(cols(applyBillingChange(facts({ plan: 'pro', planAt: 50 }), { at: 51, plan: 'solo' }, NOW).patch), { planAt: 51, plan: 'solo' }, 'a later downgrade applies')
})

t.test('an old paid still proves payment and starts provisioning once', async (t) => {
  const r = applyBillingChange(facts({ billing: 'past_due', billingAt: 50 }), { at: 40, billing: 'paid' }, NOW)
  t.equal(r.outcome, 'ok')
  t.ok(r.startProvisioning)
  t.same(cols(r.patch), { paidAt: NOW }, 'the billing status itself stays with the newer event')
})

t.test('plan and billing are ordered separately', async (t) => {
  const r = applyBillingChange(facts({ billing: 'paid', billingAt: 50, planAt: 10, paidAt: NOW }), { at: 40, billing: 'paid', plan: 'pro' }, NOW)
  t.equal(r.outcome, 'ok', 'the plan part still applies')
  t.same(cols(r.patch), { planAt: 40, plan: 'pro' })
  const stale = applyBillingChange(facts({ planAt: 50 }), { at: 40, plan: 'pro' }, NOW)
  t.equal(stale.outcome, 'stale')
})

t.test('canceled is absorbing and applies whatever its age', async (t) => {
  const r = applyBillingChange(facts({ billing: 'paid', billingAt: 90, infra: 'ready', paidAt: NOW }), { at: 10, billing: 'canceled', reason: 'gone' }, NOW)
  t.equal(r.outcome, 'ok')
  t.ok(r.scheduleTeardown)
  t.same(cols(r.patch), { billing: 'canceled', billingAt: 10, canceledAt: NOW, error: 'gone' }, 'its time is the end\'s')
  const after = applyBillingChange(facts({ billing: 'canceled', paidAt: NOW }), { at: 100, billing: 'paid' }, NOW)
  t.equal(after.outcome, 'ignored_terminal')
  t.same(cols(after.patch), {})
  t.notOk(after.startProvisioning || after.scheduleTeardown)
  const plan = applyBillingChange(facts({ billing: 'canceled', paidAt: NOW }), { at: 100, plan: 'pro' }, NOW)
  t.same([plan.outcome, cols(plan.patch)], ['ignored_terminal', { plan: 'pro', planAt: 100 }], 'the facts underneath still follow, so the end does not depend on order')
})

t.test('expired/failed checkouts cancel only a tenant never paid', async (t) => {
  const change: BillingChange = { at: 5, billing: 'canceled', onlyIfNeverPaid: true, reason: 'expired' }
  t.equal(applyBillingChange(facts(), change, NOW).patch.billing, 'canceled')
  const paid = applyBillingChange(facts({ billing: 'paid', paidAt: NOW, billingAt: 3 }), change, NOW)
  t.equal(paid.outcome, 'ok')
  t.same(cols(paid.patch), {}, 'a paid tenant is untouched')
  t.notOk(paid.scheduleTeardown)
  const failedFirstInvoice = applyBillingChange(facts({ billing: 'past_due', billingAt: 3 }), change, NOW)
  t.equal(failedFirstInvoice.patch.billing, 'canceled', 'past due but never paid (its first invoice failed) counts as never paid')
  t.ok(failedFirstInvoice.scheduleTeardown)
  // A delayed payment method failing: the invoice's failure and the session's, in either order.
  const invoiceFailed: BillingChange = { at: 7, billing: 'past_due' }
  t.equal(fold([invoiceFailed, change]).billing, 'canceled')
  t.equal(fold([change, invoiceFailed]).billing, 'canceled')
})

t.test('a failed checkout\'s cancellation is voided by a payment made after all, in either order', async (t) => {
  const failed: BillingChange = { at: 10, billing: 'canceled', onlyIfNeverPaid: true, reason: 'The payment for the checkout failed.' }
  const soft = applyBillingChange(facts({ billing: 'past_due', billingAt: 5 }), failed, NOW)
  t.same(cols(soft.patch), { billing: 'canceled', softCancelFrom: 'past_due', canceledAt: NOW, error: failed.reason }, 'the billing underneath is kept; its time is not moved')
  const canceled = facts({ billing: 'canceled', softCancelFrom: 'pending', subscriptionId: 'sub_1', error: failed.reason! })

  const paid = applyBillingChange(canceled, { at: 20, billing: 'paid', subscriptionId: 'sub_1' }, NOW)
  t.same([paid.outcome, paid.startProvisioning, paid.scheduleTeardown], ['ok', true, false])
  t.same(cols(paid.patch), { billing: 'paid', billingAt: 20, paidAt: NOW, softCancelFrom: null, canceledAt: null, error: null })
  const oldPaid = applyBillingChange({ ...canceled, softCancelFrom: 'past_due', billingAt: 30 }, { at: 20, billing: 'paid', subscriptionId: 'sub_1' }, NOW)
  t.same(cols(oldPaid.patch), { billing: 'past_due', paidAt: NOW, softCancelFrom: null, canceledAt: null, error: null }, 'an older payment restores what is underneath, as it would have without the failure')
  t.ok(oldPaid.startProvisioning)

  const moved = applyBillingChange(canceled, { at: 30, billing: 'past_due', plan: 'pro', subscriptionId: 'sub_1' }, NOW)
  t.same([moved.outcome, cols(moved.patch)], ['ok', { billingAt: 30, softCancelFrom: 'past_due', planAt: 30, plan: 'pro' }], 'other changes move what is underneath; still canceled')
  t.equal(applyBillingChange(canceled, failed, NOW).outcome, 'ignored_terminal', 'a second failure adds nothing')

  const deleted = applyBillingChange(canceled, { at: 40, billing: 'canceled', subscriptionId: 'sub_1', reason: 'gone' }, NOW)
  t.same(cols(deleted.patch), { billingAt: 40, error: 'gone', softCancelFrom: null }, 'a real cancellation makes it final (first cancellation time kept)')
  t.equal(applyBillingChange({ ...canceled, ...deleted.patch }, { at: 50, billing: 'paid', subscriptionId: 'sub_1' }, NOW).outcome, 'ignored_terminal')

  // The review's case, folded like the service does: completed unpaid, async failure, then the invoice paid.
  const events: BillingChange[] = [{ at: 1, subscriptionId: 'sub_1' }, { ...failed, subscriptionId: 'sub_1' }, { at: 20, billing: 'paid', subscriptionId: 'sub_1' }]
  for (const order of [[0, 1, 2], [0, 2, 1], [2, 1, 0], [1, 2, 0]]) {
    const end = fold(order.map((i) => events[i]!))
    t.same([end.billing, end.softCancelFrom, end.infra], ['paid', null, 'provisioning'], `order ${order.join(',')}`)
  }
})

t.test('identity: the first customer seen is kept; a new subscription is indexed, and does not displace a paid one', async (t) => {
  const r = applyBillingChange(facts(), { at: 1, subscriptionId: 'sub_1', customerId: 'cus_1' }, NOW)
  t.same(cols(r.patch), { subscriptionId: 'sub_1', customerId: 'cus_1' })
  t.ok(r.newSubscription, 'a subscription the tenant had not heard of is indexed')
  const paid = facts({ billing: 'paid', billingAt: 1, subscriptionId: 'sub_1', customerId: 'cus_1', paidAt: NOW })
  const r2 = applyBillingChange(paid, { at: 2, subscriptionId: 'sub_2', customerId: 'cus_2' }, NOW)
  t.same(cols(r2.patch), {}, 'the first customer is kept; a subscription not paid does not displace a paid one')
  t.ok(r2.newSubscription)
  t.notOk(applyBillingChange(paid, { at: 3, billing: 'paid', subscriptionId: 'sub_1' }, NOW).newSubscription, 'one it knows is not indexed again')
})

// Folds changes like the service does (patch and side effects whatever the outcome, infra
// moved to provisioning on start).
function fold (changes: BillingChange[]): BillingFacts {
  let f = facts()
  for (const c of changes) {
    const r = applyBillingChange(f, c, NOW)
    const { canceledAt: _c, ...patch } = r.patch
    f = { ...f, ...patch, ...(r.startProvisioning ? { infra: 'provisioning' as const } : {}) }
  }
  return f
}

const change = fc.record({
  // Few distinct seconds, so many events share one (Stripe's `created` is in seconds).
  at: fc.integer({ min: 1, max: 4 }),
  billing: fc.option(fc.constantFrom('paid', 'past_due', 'canceled'), { nil: undefined }),
  plan: fc.option(fc.constantFrom('solo', 'standard', 'pro'), { nil: undefined }),
  // Most events name one of two subscriptions; some (a one-off invoice, an expired checkout) none.
  subscriptionId: fc.constantFrom(undefined, 'sub_1', 'sub_1', 'sub_2', 'sub_2'),
  // An expired or failed checkout: cancels only while never paid.
  onlyIfNeverPaid: fc.option(fc.constant(true), { nil: undefined, freq: 3 }),
  // A deletion gives its reason; a status `canceled` gives none.
  reason: fc.option(fc.constant('The subscription was canceled.'), { nil: undefined })
}).map((c): BillingChange => c.onlyIfNeverPaid === true
  ? { at: c.at, billing: 'canceled', onlyIfNeverPaid: true, reason: `failed at ${c.at}`, ...(c.subscriptionId !== undefined ? { subscriptionId: c.subscriptionId } : {}) }
  : { at: c.at, billing: c.billing, plan: c.plan, ...(c.billing === 'canceled' && c.reason !== undefined ? { reason: c.reason } : {}), ...(c.subscriptionId !== undefined ? { subscriptionId: c.subscriptionId } : {}) })

/** Two shuffles of the same events. */
const twoOrders = fc.array(change, { minLength: 1, maxLength: 10 }).chain((cs) =>
  fc.tuple(fc.shuffledSubarray(cs, { minLength: cs.length }), fc.shuffledSubarray(cs, { minLength: cs.length })))

t.test('property: any order of the same events, of up to two subscriptions, ends in the same facts and state', async (t) => {
  fc.assert(fc.property(twoOrders, ([one, other]) => {
    const a = fold(one)
    const b = fold(other)
    if (!isDeepStrictEqual(a.billingState, b.billingState)) return false
    for (const f of ['billing', 'billingAt', 'plan', 'planAt', 'subscriptionId', 'softCancelFrom', 'error'] as const) if (a[f] !== b[f]) return false
    if ((a.paidAt === null) !== (b.paidAt === null)) return false
    // A server may or may not have been started before a cancellation arrived; teardown follows.
    return a.billing === 'canceled' || a.infra === b.infra
  }), { numRuns: 3000 })
  t.pass('3000 random event sets agree in every order')
})

t.test('property: an event applied twice adds nothing the second time', async (t) => {
  fc.assert(fc.property(fc.array(change, { minLength: 1, maxLength: 8 }), fc.nat(), (cs, i) => {
    const f = fold(cs)
    const again = applyBillingChange(f, cs[i % cs.length]!, NOW)
    return Object.keys(again.patch).length === 0 && !again.startProvisioning && !again.scheduleTeardown
  }), { numRuns: 2000 })
  t.pass('2000 replays changed nothing')
})

t.test('two subscriptions: the old one\'s end and the new one\'s payment settle the same in either order', async (t) => {
  const start = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_1', plan: 'standard' }])
  const newPaid: BillingChange = { at: 2, billing: 'paid', subscriptionId: 'sub_2', plan: 'pro' }
  const oldEnded: BillingChange = { at: 3, billing: 'canceled', subscriptionId: 'sub_1', reason: 'gone' }
  for (const order of [[newPaid, oldEnded], [oldEnded, newPaid]]) {
    let f = start
    const results = order.map((c) => {
      const r = applyBillingChange(f, c, NOW)
      f = { ...f, ...r.patch }
      return r
    })
    t.same([f.billing, f.subscriptionId, f.plan], ['paid', 'sub_2', 'pro'], 'the tenant stands on the paid subscription')
    t.equal(results.filter((r) => r.scheduleTeardown).length, order[0] === oldEnded ? 1 : 0, 'a teardown only while it had no paid subscription (and called off by the payment)')
  }
  const both = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_1' }, { at: 2, billing: 'paid', subscriptionId: 'sub_2' }, { at: 5, billing: 'past_due', subscriptionId: 'sub_2' }])
  t.same([both.billing, both.subscriptionId], ['paid', 'sub_1'], 'one paid subscription is enough; a paid one outranks one past due')
  const ended = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_1' }, { at: 2, billing: 'canceled', subscriptionId: 'sub_1' }, { at: 3, billing: 'past_due', subscriptionId: 'sub_2' }])
  t.equal(ended.billing, 'canceled', 'a new subscription whose first payment failed does not revive the tenant')
  const noneNamed = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_1' }, { at: 2, billing: 'canceled', subscriptionId: 'sub_1' }, { at: 3, billing: 'paid' }])
  t.equal(noneNamed.billing, 'canceled', 'a payment naming no subscription (a one-off invoice) does not revive it either')
})

t.test('reactivation: only a paid event of another subscription revives a canceled tenant', async (t) => {
  const canceled = facts({ billing: 'canceled', infra: 'ready', billingAt: 50, subscriptionId: 'sub_1', paidAt: NOW, error: 'gone' })
  t.equal(applyBillingChange(canceled, { at: 60, billing: 'paid', subscriptionId: 'sub_1' }, NOW).outcome, 'ignored_terminal')
  t.equal(applyBillingChange(canceled, { at: 60, billing: 'past_due', subscriptionId: 'sub_2' }, NOW).outcome, 'ignored_terminal')
  const back = applyBillingChange(canceled, { at: 40, billing: 'paid', subscriptionId: 'sub_2', plan: 'pro' }, NOW)
  t.equal(back.outcome, 'ok')
  t.same(cols(back.patch), { billing: 'paid', billingAt: 40, subscriptionId: 'sub_2', plan: 'pro', planAt: 40, canceledAt: null, error: null })
  const neverPaid = applyBillingChange({ ...canceled, paidAt: null, infra: 'none' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW)
  t.equal(neverPaid.patch.paidAt, NOW, 'one canceled before it ever paid is paid now, so a failed checkout cannot cancel it again')
  t.notOk(back.startProvisioning, 'the kept server serves again')
  t.ok(applyBillingChange({ ...canceled, infra: 'deprovisioned' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW).startProvisioning, 'a torn-down tenant gets a new server')
  t.ok(applyBillingChange({ ...canceled, infra: 'failed' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW).startProvisioning, 'one whose server never came up is tried again')
  t.ok(applyBillingChange({ ...canceled, infra: 'provisioning' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW).startProvisioning, 'one canceled before its server was made gets one (a live job is reused)')
  t.ok(applyBillingChange({ ...canceled, infra: 'none' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW).startProvisioning)
  const superseded = applyBillingChange(facts({ billing: 'paid', subscriptionId: 'sub_2', paidAt: NOW }), { at: 99, billing: 'canceled', subscriptionId: 'sub_1' }, NOW)
  t.same([superseded.outcome, cols(superseded.patch), superseded.scheduleTeardown], ['ok', {}, false], 'the end of another subscription does not cancel a tenant paid by this one')
})
