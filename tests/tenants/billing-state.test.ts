import t from 'tap'
import {
  billingStateOf, factsOf, initialBillingState, outdated, summarize, withStatement,
  type BillingColumns, type BillingState, type Statement
} from '../../api/tenants/billing-state.ts'

function fold (statements: Statement[], from: BillingState = initialBillingState('standard')): BillingState {
  return statements.reduce(withStatement, from)
}

function columns (over: Partial<BillingColumns> = {}): BillingColumns {
  return { billing: 'pending', billingAt: 0, plan: 'standard', planAt: 0, subscriptionId: null, softCancelFrom: null, paidAt: null, error: null, billingState: null, ...over }
}

t.test('a new tenant: pending, no subscription, the plan its checkout chose', async (t) => {
  const s = initialBillingState('pro')
  t.same(summarize(s, 'solo'), { billing: 'pending', billingAt: 0, plan: 'pro', planAt: 0, subscriptionId: null, softCancelFrom: null, everPaid: false, cancelReason: null })
  t.same(Object.keys(s.subscriptions), [''])
})

t.test('a statement leaves its input unchanged', async (t) => {
  const s = initialBillingState('standard')
  const copy = structuredClone(s)
  withStatement(s, { at: 5, billing: 'paid', subscriptionId: 'sub_1' })
  t.same(s, copy)
})

t.test('the tenant stands on its highest subscription', async (t) => {
  const paidOne = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_1', plan: 'standard' }, { at: 2, subscriptionId: 'sub_2', plan: 'pro' }])
  t.match(summarize(paidOne, 'x'), { billing: 'paid', subscriptionId: 'sub_1', plan: 'standard', billingAt: 1 }, 'a paid subscription over one never paid')
  const ended = fold([{ at: 3, billing: 'canceled', subscriptionId: 'sub_1' }], paidOne)
  t.match(summarize(ended, 'x'), { billing: 'canceled', subscriptionId: 'sub_1', billingAt: 3 }, 'an ended one over one never paid')
  const revived = fold([{ at: 2, billing: 'paid', subscriptionId: 'sub_2' }], ended)
  t.match(summarize(revived, 'x'), { billing: 'paid', subscriptionId: 'sub_2', plan: 'pro', billingAt: 2 }, 'a paid one over an ended one, however old its payment')
  const pastDue = fold([{ at: 9, billing: 'past_due', subscriptionId: 'sub_2' }], revived)
  t.match(summarize(pastDue, 'x'), { billing: 'past_due', subscriptionId: 'sub_2' }, 'past due but paid before: still over an ended one')
  const endedHigher = fold([
    { at: 10, billing: 'paid', subscriptionId: 'sub_old', plan: 'pro' },
    { at: 20, billing: 'paid', subscriptionId: 'sub_new', plan: 'standard' },
    { at: 30, billing: 'past_due', subscriptionId: 'sub_new' },
    { at: 40, billing: 'canceled', subscriptionId: 'sub_old' }
  ])
  t.match(summarize(endedHigher, 'x'), { billing: 'past_due', subscriptionId: 'sub_new', plan: 'standard' }, 'and over one of a higher plan that ended later')
  const twoPaid = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_b' }, { at: 1, billing: 'paid', subscriptionId: 'sub_a' }])
  t.equal(summarize(twoPaid, 'x').subscriptionId, 'sub_b', 'a tie of standing and time: settled by id, whatever came first')
  t.equal(summarize(fold([{ at: 2, billing: 'paid', subscriptionId: 'sub_a' }], twoPaid), 'x').subscriptionId, 'sub_a', 'else the newer statement')
  const plans = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_a', plan: 'pro' }, { at: 1, billing: 'paid', subscriptionId: 'sub_b', plan: 'solo' }])
  for (const [at, sub] of [[2, 'sub_b'], [3, 'sub_a'], [4, 'sub_b']] as const) {
    t.match(summarize(fold([{ at, billing: 'paid', subscriptionId: sub }], plans), 'x'), { subscriptionId: 'sub_a', plan: 'pro' }, `two paid: the higher plan, whichever renewed last (${sub})`)
  }
})

t.test('events naming no subscription count only while the tenant has none', async (t) => {
  const oneOff = fold([{ at: 1, billing: 'paid' }])
  t.match(summarize(oneOff, 'x'), { billing: 'paid', subscriptionId: null, everPaid: true }, 'alone, a payment naming none makes the tenant paid')
  const ended = fold([{ at: 2, billing: 'paid', subscriptionId: 'sub_1' }, { at: 3, billing: 'canceled', subscriptionId: 'sub_1' }], oneOff)
  t.match(summarize(ended, 'x'), { billing: 'canceled', subscriptionId: 'sub_1' }, 'it does not outlast the subscription')
  const unpaid = fold([{ at: 2, billing: 'past_due', subscriptionId: 'sub_1' }], oneOff)
  t.match(summarize(unpaid, 'x'), { billing: 'past_due', subscriptionId: 'sub_1', everPaid: true }, 'once one is named, it decides the billing; the payment still counts as one')
  const endedNone = fold([{ at: 1, billing: 'canceled' }, { at: 2, subscriptionId: 'sub_1' }])
  t.match(summarize(endedNone, 'x'), { billing: 'canceled' }, 'an end naming none still counts: a subscription not yet paid does not revive the tenant')
})

t.test('the plan: the highest subscription\'s, else the newest stated by any', async (t) => {
  const s = fold([{ at: 5, billing: 'paid', subscriptionId: 'sub_1' }, { at: 4, plan: 'pro' }])
  t.match(summarize(s, 'x'), { plan: 'pro', planAt: 4 }, 'the subscription states none')
  t.match(summarize(fold([{ at: 1, subscriptionId: 'sub_1', plan: 'solo' }], s), 'x'), { plan: 'solo', planAt: 1 }, 'its own, however old')
  t.equal(summarize({ subscriptions: {}, checkoutFailed: null }, 'fallback').plan, 'fallback', 'no statement at all')
})

t.test('a failed checkout cancels only while nothing was paid; the newest failure\'s reason is kept', async (t) => {
  const failed = fold([{ at: 3, billing: 'canceled', onlyIfNeverPaid: true, reason: 'b' }, { at: 3, billing: 'canceled', onlyIfNeverPaid: true, reason: 'a' }])
  const other = fold([{ at: 3, billing: 'canceled', onlyIfNeverPaid: true, reason: 'a' }, { at: 3, billing: 'canceled', onlyIfNeverPaid: true, reason: 'b' }])
  t.same(failed.checkoutFailed, other.checkoutFailed, 'two of one second settle the same in either order')
  t.same(fold([{ at: 2, billing: 'canceled', onlyIfNeverPaid: true, reason: 'z' }], failed).checkoutFailed, { at: 3, reason: 'b' }, 'an older one does not replace it')
  t.match(summarize(failed, 'x'), { billing: 'canceled', softCancelFrom: 'pending' })
  t.same(fold([{ at: 1, billing: 'canceled', onlyIfNeverPaid: true }]).checkoutFailed, { at: 1, reason: 'The checkout failed.' }, 'a failure without a reason gets one')
  t.match(summarize(fold([{ at: 1, billing: 'past_due', subscriptionId: 'sub_1' }], failed), 'x'), { billing: 'canceled', softCancelFrom: 'past_due' }, 'the billing underneath')
  t.match(summarize(fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_1' }], failed), 'x'), { billing: 'paid', softCancelFrom: null }, 'any payment outweighs it')
  t.match(summarize(fold([{ at: 1, billing: 'canceled', subscriptionId: 'sub_1' }], failed), 'x'), { billing: 'canceled', softCancelFrom: null }, 'a real end makes it final')
})

t.test('why it is canceled: the failed checkout\'s reason, or the reason the end of the subscription it stands on gave', async (t) => {
  const failed = fold([{ at: 1, billing: 'canceled', onlyIfNeverPaid: true, reason: 'expired' }])
  t.equal(summarize(failed, 'x').cancelReason, 'expired')
  const ended = fold([{ at: 2, billing: 'canceled', subscriptionId: 'sub_1' }], failed)
  t.equal(summarize(ended, 'x').cancelReason, 'expired', 'an end without a reason, never paid: the failed checkout\'s')
  t.equal(summarize(fold([{ at: 2, billing: 'canceled', subscriptionId: 'sub_1' }]), 'x').cancelReason, null, 'an end without a reason, and no failed checkout: none')
  t.equal(summarize(fold([{ at: 2, billing: 'canceled', subscriptionId: 'sub_1', reason: 'deleted' }], failed), 'x').cancelReason, 'deleted', 'an end\'s own reason comes first')
  const paidThenEnded = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_1' }, { at: 2, billing: 'canceled', subscriptionId: 'sub_1' }], failed)
  t.equal(summarize(paidThenEnded, 'x').cancelReason, null, 'once paid, the failed checkout is not why it ended')
  const reasons = [{ at: 3, billing: 'canceled', subscriptionId: 'sub_1', reason: 'a' }, { at: 2, billing: 'canceled', subscriptionId: 'sub_1', reason: 'b' }] as const
  t.equal(summarize(fold([...reasons]), 'x').cancelReason, 'b')
  t.equal(summarize(fold([reasons[1], reasons[0]]), 'x').cancelReason, 'b', 'two reasons: the same one in either order')
  t.equal(summarize(fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_2' }], ended), 'x').cancelReason, null, 'not canceled: none')
})

t.test('a failed first payment, then its subscription expiring: the checkout\'s reason in every order', async (t) => {
  // Stripe's sequence for a delayed payment method that fails: the session completes unpaid,
  // its payment fails, a day later the subscription becomes incomplete_expired (no reason).
  const events: Statement[] = [
    { at: 1, subscriptionId: 'sub_1', plan: 'solo' },
    { at: 2, billing: 'canceled', onlyIfNeverPaid: true, reason: 'The payment for the checkout failed.', subscriptionId: 'sub_1' },
    { at: 3, billing: 'canceled', subscriptionId: 'sub_1', plan: 'solo' }
  ]
  for (const order of [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]) {
    t.match(summarize(fold(order.map((i) => events[i]!)), 'x'), { billing: 'canceled', softCancelFrom: null, cancelReason: 'The payment for the checkout failed.' }, `order ${order.join(',')}`)
  }
})

t.test('outdated: all a statement says is older than what is kept', async (t) => {
  const s = fold([{ at: 5, billing: 'past_due', subscriptionId: 'sub_1', plan: 'pro' }]).subscriptions.sub_1!
  t.ok(outdated(s, { at: 4, billing: 'past_due' }))
  t.ok(outdated(s, { at: 5, billing: 'pending' }), 'the same second, a lower rank')
  t.notOk(outdated(s, { at: 5, billing: 'past_due' }), 'the same second and rank restates it')
  t.notOk(outdated(s, { at: 4, billing: 'paid' }), 'a first payment is never old')
  t.ok(outdated({ ...s, paid: true }, { at: 4, billing: 'paid' }), 'a later one is')
  t.ok(outdated(s, { at: 4, billing: 'past_due', plan: 'pro' }), 'both parts older')
  t.notOk(outdated(s, { at: 6, billing: 'past_due', plan: 'pro' }), 'both parts newer')
  t.notOk(outdated(s, { at: 6, plan: 'solo' }), 'a newer plan is not')
  t.ok(outdated(s, { at: 4, plan: 'solo' }))
  t.notOk(outdated(s, { at: 1, billing: 'canceled' }), 'an end is never old')
  t.notOk(outdated(s, { at: 1 }), 'saying nothing is not being old')
})

t.test('a row written before migration 007 gets its facts from its columns', async (t) => {
  const paid = columns({ billing: 'paid', billingAt: 10, plan: 'pro', planAt: 9, subscriptionId: 'sub_1', paidAt: '2026-01-01T00:00:00.000Z' })
  const facts = billingStateOf(paid)
  t.same(facts, { subscriptions: { sub_1: { status: 'paid', statusAt: 10, plan: 'pro', planAt: 9, ended: false, endedAt: 0, endReason: null, paid: true } }, checkoutFailed: null })
  const canceled = columns({ billing: 'canceled', billingAt: 12, subscriptionId: 'sub_1', paidAt: 'x', error: 'gone' })
  const soft = columns({ billing: 'canceled', softCancelFrom: 'past_due', billingAt: 3, error: 'The checkout expired before payment.' })
  for (const c of [paid, canceled, soft, columns(), columns({ plan: 'solo' })]) {
    const s = billingStateOf(c)
    const sum = summarize(s, 'other')
    t.same([sum.billing, sum.billingAt, sum.plan, sum.planAt, sum.subscriptionId, sum.softCancelFrom, sum.everPaid],
      [c.billing, c.billingAt, c.plan, c.planAt, c.subscriptionId, c.softCancelFrom, c.paidAt !== null], `the facts sum up to the columns (${c.billing})`)
  }
  t.same(billingStateOf(soft).checkoutFailed, { at: 0, reason: soft.error })
  t.match(billingStateOf(canceled).subscriptions.sub_1, { ended: true, endReason: 'gone' })
  t.equal(summarize(billingStateOf(canceled), 'x').cancelReason, 'gone', 'its error is why it is canceled')
})

t.test('facts the columns no longer agree with (an older release applied events since) are rebuilt from the columns', async (t) => {
  const facts = fold([{ at: 1, billing: 'paid', subscriptionId: 'sub_1' }])
  const agreeing = columns({ billing: 'paid', billingAt: 1, subscriptionId: 'sub_1', paidAt: 'x', billingState: facts })
  t.equal(billingStateOf(agreeing), facts, 'agreeing facts are used as they are')
  const moved = { ...agreeing, billing: 'past_due' as const, billingAt: 7 }
  t.same(summarize(billingStateOf(moved), 'x'), { billing: 'past_due', billingAt: 7, plan: 'standard', planAt: 0, subscriptionId: 'sub_1', softCancelFrom: null, everPaid: true, cancelReason: null })
  t.not(billingStateOf({ ...agreeing, paidAt: null }), facts, 'everPaid is part of the agreement')
})

t.test('a subscription id that names an object property is just an id', async (t) => {
  for (const id of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const s = fold([{ at: 1, billing: 'paid', subscriptionId: id, plan: 'pro' }])
    t.ok(Object.hasOwn(s.subscriptions, id), `${id}: its own entry`)
    t.match(s.subscriptions[id], { status: 'paid', paid: true, plan: 'pro' })
    t.match(summarize(s, 'x'), { billing: 'paid', subscriptionId: id, plan: 'pro' })
    const back = JSON.parse(JSON.stringify(s)) as BillingState
    t.same(summarize(back, 'x'), summarize(s, 'x'), `${id}: survives the JSON round trip`)
  }
  t.equal(factsOf(fold([{ at: 1, billing: 'paid', subscriptionId: 'x' }]), 'constructor'), undefined, 'no inherited property read as an entry')
})
