import t from 'tap'
import fc from 'fast-check'
import {
  BILLING, INFRA, applyBillingChange, billingFromSubscriptionStatus, deriveTenantState,
  type BillingChange, type BillingFacts
} from '../../api/tenants/lifecycle.ts'

const NOW = '2026-01-01T00:00:00.000Z'

function facts (over: Partial<BillingFacts> = {}): BillingFacts {
  return { billing: 'pending', infra: 'none', billingAt: 0, planAt: 0, plan: 'standard', subscriptionId: null, customerId: null, paidAt: null, softCancelFrom: null, ...over }
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
  t.equal(billingFromSubscriptionStatus('paused'), undefined)
})

t.test('the first paid starts provisioning, later ones do not', async (t) => {
  const first = applyBillingChange(facts(), { at: 10, billing: 'paid' }, NOW)
  t.equal(first.outcome, 'ok')
  t.ok(first.startProvisioning)
  t.same(first.patch, { billing: 'paid', billingAt: 10, paidAt: NOW })
  const again = applyBillingChange(facts({ billing: 'past_due', infra: 'ready', billingAt: 10, paidAt: NOW }), { at: 20, billing: 'paid' }, NOW)
  t.notOk(again.startProvisioning)
  t.same(again.patch, { billing: 'paid', billingAt: 20 })
})

t.test('an older billing change is stale and changes nothing', async (t) => {
  const r = applyBillingChange(facts({ billing: 'past_due', billingAt: 50, paidAt: NOW, infra: 'ready' }), { at: 40, billing: 'paid' }, NOW)
  t.equal(r.outcome, 'stale')
  t.same(r.patch, {})
  t.notOk(r.startProvisioning)
  const old = applyBillingChange(facts({ billing: 'paid', billingAt: 50, paidAt: NOW }), { at: 40, billing: 'past_due' }, NOW)
  t.equal(old.outcome, 'stale')
  t.same(old.patch, {})
  const same = applyBillingChange(facts({ billing: 'past_due', billingAt: 50, paidAt: NOW }), { at: 50, billing: 'paid' }, NOW)
  t.equal(same.outcome, 'ok', 'an equal timestamp is not older')
})

t.test('events of the same second are settled by rank, not by arrival', async (t) => {
  const paidThenFailed = applyBillingChange(facts({ billing: 'paid', billingAt: 50, paidAt: NOW }), { at: 50, billing: 'past_due' }, NOW)
  t.equal(paidThenFailed.outcome, 'stale', 'a failure in the same second as a payment does not undo it')
  t.same(paidThenFailed.patch, {})
  const failedThenPaid = applyBillingChange(facts({ billing: 'past_due', billingAt: 50, paidAt: NOW }), { at: 50, billing: 'paid' }, NOW)
  t.same(failedThenPaid.patch, { billingAt: 50, billing: 'paid' }, 'either order ends paid')
  const down = applyBillingChange(facts({ plan: 'pro', planAt: 50 }), { at: 50, plan: 'solo' }, NOW)
  t.equal(down.outcome, 'stale', 'the lower tier of the same second does not win')
  const up = applyBillingChange(facts({ plan: 'solo', planAt: 50 }), { at: 50, plan: 'pro' }, NOW)
  t.same(up.patch, { planAt: 50, plan: 'pro' }, 'the higher tier does, in either order')
  t.same(applyBillingChange(facts({ plan: 'pro', planAt: 50 }), { at: 51, plan: 'solo' }, NOW).patch, { planAt: 51, plan: 'solo' }, 'a later downgrade applies')
})

t.test('an old paid still proves payment and starts provisioning once', async (t) => {
  const r = applyBillingChange(facts({ billing: 'past_due', billingAt: 50 }), { at: 40, billing: 'paid' }, NOW)
  t.equal(r.outcome, 'ok')
  t.ok(r.startProvisioning)
  t.same(r.patch, { paidAt: NOW }, 'the billing status itself stays with the newer event')
})

t.test('plan and billing are ordered separately', async (t) => {
  const r = applyBillingChange(facts({ billing: 'paid', billingAt: 50, planAt: 10, paidAt: NOW }), { at: 40, billing: 'paid', plan: 'pro' }, NOW)
  t.equal(r.outcome, 'ok', 'the plan part still applies')
  t.same(r.patch, { planAt: 40, plan: 'pro' })
  const stale = applyBillingChange(facts({ planAt: 50 }), { at: 40, plan: 'pro' }, NOW)
  t.equal(stale.outcome, 'stale')
})

t.test('canceled is absorbing and applies whatever its age', async (t) => {
  const r = applyBillingChange(facts({ billing: 'paid', billingAt: 90, infra: 'ready', paidAt: NOW }), { at: 10, billing: 'canceled', reason: 'gone' }, NOW)
  t.equal(r.outcome, 'ok')
  t.ok(r.scheduleTeardown)
  t.same(r.patch, { billing: 'canceled', billingAt: 90, canceledAt: NOW, error: 'gone' })
  const after = applyBillingChange(facts({ billing: 'canceled' }), { at: 100, billing: 'paid', plan: 'pro' }, NOW)
  t.equal(after.outcome, 'ignored_terminal')
  t.same(after.patch, {})
})

t.test('expired/failed checkouts cancel only a tenant never paid', async (t) => {
  const change: BillingChange = { at: 5, billing: 'canceled', onlyIfNeverPaid: true, reason: 'expired' }
  t.equal(applyBillingChange(facts(), change, NOW).patch.billing, 'canceled')
  const paid = applyBillingChange(facts({ billing: 'paid', paidAt: NOW, billingAt: 3 }), change, NOW)
  t.equal(paid.outcome, 'ok')
  t.same(paid.patch, {}, 'a paid tenant is untouched')
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
  t.same(soft.patch, { billing: 'canceled', softCancelFrom: 'past_due', canceledAt: NOW, error: failed.reason }, 'the billing underneath is kept; its time is not moved')
  const canceled = facts({ billing: 'canceled', softCancelFrom: 'pending', subscriptionId: 'sub_1' })

  const paid = applyBillingChange(canceled, { at: 20, billing: 'paid', subscriptionId: 'sub_1' }, NOW)
  t.same([paid.outcome, paid.startProvisioning, paid.scheduleTeardown], ['ok', true, false])
  t.same(paid.patch, { billing: 'paid', billingAt: 20, paidAt: NOW, softCancelFrom: null, canceledAt: null, error: null })
  const oldPaid = applyBillingChange({ ...canceled, softCancelFrom: 'past_due', billingAt: 30 }, { at: 20, billing: 'paid' }, NOW)
  t.same(oldPaid.patch, { billing: 'past_due', paidAt: NOW, softCancelFrom: null, canceledAt: null, error: null }, 'an older payment restores what is underneath, as it would have without the failure')
  t.ok(oldPaid.startProvisioning)

  const moved = applyBillingChange(canceled, { at: 30, billing: 'past_due', plan: 'pro' }, NOW)
  t.same([moved.outcome, moved.patch], ['ok', { billingAt: 30, softCancelFrom: 'past_due', planAt: 30, plan: 'pro' }], 'other changes move what is underneath; still canceled')
  t.equal(applyBillingChange(canceled, failed, NOW).outcome, 'ignored_terminal', 'a second failure adds nothing')

  const deleted = applyBillingChange(canceled, { at: 40, billing: 'canceled', subscriptionId: 'sub_1', reason: 'gone' }, NOW)
  t.same(deleted.patch, { billing: 'canceled', billingAt: 40, error: 'gone', softCancelFrom: null }, 'a real cancellation makes it final (first cancellation time kept)')
  t.equal(applyBillingChange({ ...canceled, ...deleted.patch }, { at: 50, billing: 'paid', subscriptionId: 'sub_1' }, NOW).outcome, 'ignored_terminal')
  t.equal(applyBillingChange(canceled, { at: 40, billing: 'canceled', subscriptionId: 'sub_0' }, NOW).outcome, 'stale', 'one from a subscription it moved on from changes nothing')

  // The review's case, folded like the service does: completed unpaid, async failure, then the invoice paid.
  const events: BillingChange[] = [{ at: 1, subscriptionId: 'sub_1' }, { ...failed, subscriptionId: 'sub_1' }, { at: 20, billing: 'paid', subscriptionId: 'sub_1' }]
  for (const order of [[0, 1, 2], [0, 2, 1], [2, 1, 0], [1, 2, 0]]) {
    const end = fold(order.map((i) => events[i]!))
    t.same([end.billing, end.softCancelFrom, end.infra], ['paid', null, 'provisioning'], `order ${order.join(',')}`)
  }
})

t.test('identity links: the first subscription and customer seen are kept', async (t) => {
  const r = applyBillingChange(facts(), { at: 1, subscriptionId: 'sub_1', customerId: 'cus_1' }, NOW)
  t.same(r.patch, { subscriptionId: 'sub_1', customerId: 'cus_1' })
  const r2 = applyBillingChange(facts({ subscriptionId: 'sub_1', customerId: 'cus_1' }), { at: 2, subscriptionId: 'sub_2' }, NOW)
  t.same(r2.patch, {})
})

// Folds changes like the service does (patch applied, infra moved to provisioning on start).
function fold (changes: BillingChange[]): BillingFacts {
  let f = facts()
  for (const c of changes) {
    const r = applyBillingChange(f, c, NOW)
    if (r.outcome !== 'ok') continue
    const { error: _e, canceledAt: _c, ...patch } = r.patch
    f = { ...f, ...patch, ...(r.startProvisioning ? { infra: 'provisioning' as const } : {}) }
  }
  return f
}

t.test('property: any order of the same events ends in the same state (and plan, unless canceled)', async (t) => {
  const change = fc.record({
    // Few distinct seconds, so many events share one (Stripe's `created` is in seconds).
    at: fc.integer({ min: 1, max: 4 }),
    billing: fc.option(fc.constantFrom('paid', 'past_due', 'canceled'), { nil: undefined }),
    plan: fc.option(fc.constantFrom('solo', 'standard', 'pro'), { nil: undefined }),
    // An expired or failed checkout: cancels only while never paid.
    onlyIfNeverPaid: fc.option(fc.constant(true), { nil: undefined, freq: 3 })
  }).map((c) => c.onlyIfNeverPaid === true ? { at: c.at, billing: 'canceled' as const, onlyIfNeverPaid: true } : { at: c.at, billing: c.billing, plan: c.plan })
  fc.assert(fc.property(
    fc.array(change, { minLength: 1, maxLength: 9 }).chain((cs) =>
      fc.tuple(fc.shuffledSubarray(cs, { minLength: cs.length }), fc.shuffledSubarray(cs, { minLength: cs.length }))),
    ([one, other]) => {
      const a = fold(one as BillingChange[])
      const b = fold(other as BillingChange[])
      if (a.billing !== b.billing) return false
      if (deriveTenantState(a.billing, a.infra) !== deriveTenantState(b.billing, b.infra)) return false
      // After a final cancellation later events are ignored (terminal), so only billing and
      // state must agree; under a failed checkout's, the rest carries on.
      if (a.billing === 'canceled' && a.softCancelFrom === null && b.softCancelFrom === null) return true
      return a.softCancelFrom === b.softCancelFrom && (a.paidAt === null) === (b.paidAt === null) && a.plan === b.plan && a.infra === b.infra
    }), { numRuns: 2000 })
  t.pass('2000 random event sets agree in every order')
})

t.test('reactivation: only a paid event of another subscription revives a canceled tenant', async (t) => {
  const canceled = facts({ billing: 'canceled', infra: 'ready', billingAt: 50, subscriptionId: 'sub_1', paidAt: NOW })
  t.equal(applyBillingChange(canceled, { at: 60, billing: 'paid', subscriptionId: 'sub_1' }, NOW).outcome, 'ignored_terminal')
  t.equal(applyBillingChange(canceled, { at: 60, billing: 'past_due', subscriptionId: 'sub_2' }, NOW).outcome, 'ignored_terminal')
  const back = applyBillingChange(canceled, { at: 40, billing: 'paid', subscriptionId: 'sub_2', plan: 'pro' }, NOW)
  t.equal(back.outcome, 'ok')
  t.same(back.patch, { billing: 'paid', billingAt: 50, subscriptionId: 'sub_2', plan: 'pro', planAt: 40, canceledAt: null, error: null })
  const neverPaid = applyBillingChange({ ...canceled, paidAt: null, infra: 'none' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW)
  t.equal(neverPaid.patch.paidAt, NOW, 'one canceled before it ever paid is paid now, so a failed checkout cannot cancel it again')
  t.notOk(back.startProvisioning, 'the kept server serves again')
  t.ok(applyBillingChange({ ...canceled, infra: 'deprovisioned' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW).startProvisioning, 'a torn-down tenant gets a new server')
  t.ok(applyBillingChange({ ...canceled, infra: 'failed' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW).startProvisioning, 'one whose server never came up is tried again')
  t.ok(applyBillingChange({ ...canceled, infra: 'provisioning' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW).startProvisioning, 'one canceled before its server was made gets one (a live job is reused)')
  t.ok(applyBillingChange({ ...canceled, infra: 'none' }, { at: 60, billing: 'paid', subscriptionId: 'sub_2' }, NOW).startProvisioning)
  const superseded = applyBillingChange(facts({ billing: 'paid', subscriptionId: 'sub_2', paidAt: NOW }), { at: 99, billing: 'canceled', subscriptionId: 'sub_1' }, NOW)
  t.equal(superseded.outcome, 'stale', 'an old subscription cannot cancel')
})
