// Tenants that exist before the measurement: each made by a real checkout, then paid and
// provisioned by one signed `invoice.paid`, so the measured deliveries are renewals of live
// subscriptions (correlated by the subscription's metadata on the invoice).
import { signPayload } from '../api/billing/signature.ts'
import { postJson } from '../tests/helpers/server-process.ts'
import { eventJson, renewalInvoice, type BenchTenant } from './stripe-bodies.ts'

/** Runs `fn` over 0…n-1 with at most `width` in flight. */
async function pool (n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) await fn(next++)
  }))
}

export async function createPaidTenants (opts: { baseUrl: string, secret: string, count: number, runTag: string }): Promise<BenchTenant[]> {
  const tenants: BenchTenant[] = new Array(opts.count)
  // Older than the measured events, so those are never stale.
  const created = Math.floor(Date.now() / 1000) - 3600
  await pool(opts.count, 8, async (i) => {
    const checkout = await postJson(`${opts.baseUrl}/billing/checkout`, { plan: 'standard', name: `Bench CTF ${i}` })
    if (checkout.status !== 200) throw new Error(`checkout ${i}: ${checkout.status} ${JSON.stringify(checkout.json)}`)
    const tenant = { tenantId: String(checkout.json.tenant_id), subscriptionId: `sub_bench_${opts.runTag}_${i}` }
    const body = eventJson(`evt_setup_${opts.runTag}_${i}`, 'invoice.paid', created, renewalInvoice(tenant, 0))
    const paid = await postJson(`${opts.baseUrl}/billing/webhook`, body, { 'content-type': 'application/json', 'stripe-signature': signPayload(opts.secret, body) })
    if (paid.status !== 200 || paid.json.status !== 'ok') throw new Error(`activation ${i}: ${paid.status} ${JSON.stringify(paid.json)}`)
    tenants[i] = tenant
  })
  return tenants
}
