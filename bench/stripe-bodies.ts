// Signed webhook bodies for the benchmark: `invoice.paid` renewals shaped like Stripe's
// (built from tests/fixtures/stripe/invoice.json, about 3 KB), one unique event id each,
// correlated to an existing tenant by the subscription's metadata on the invoice.
import { readFileSync } from 'node:fs'
import { signPayload } from '../api/billing/signature.ts'

const INVOICE = JSON.parse(readFileSync(new URL('../tests/fixtures/stripe/invoice.json', import.meta.url), 'utf8')) as Record<string, any>
const ID_SLOT = 'EVENT_ID_SLOT_7f3a9c'

export interface BenchTenant {
  tenantId: string
  subscriptionId: string
}

export interface SignedBody {
  id: string
  body: string
  headers: Record<string, string>
}

/** A paid renewal invoice of `tenant`'s subscription, in the 2025-03-31 ("basil") shape. */
export function renewalInvoice (tenant: BenchTenant, n: number): Record<string, any> {
  const line = INVOICE.lines.data[0]
  const periodStart = 1_767_225_600 + n * 2_592_000
  return {
    ...INVOICE,
    id: `in_bench_${tenant.tenantId.slice(0, 12)}_${n}`,
    amount_due: 6500,
    amount_paid: 6500,
    amount_remaining: 0,
    attempt_count: 1,
    attempted: true,
    auto_advance: false,
    billing_reason: 'subscription_cycle',
    customer: `cus_bench_${tenant.tenantId.slice(0, 14)}`,
    customer_email: `ops+${tenant.tenantId.slice(0, 8)}@example.test`,
    customer_name: 'Bench CTF',
    from_invoice: null,
    last_finalization_error: null,
    number: `BENCH-${String(n).padStart(4, '0')}`,
    lines: {
      ...INVOICE.lines,
      data: [{
        ...line,
        id: `il_bench_${n}`,
        invoice: `in_bench_${tenant.tenantId.slice(0, 12)}_${n}`,
        amount: 6500,
        description: '1 × CTFHive Standard (at $65.00 / month)',
        period: { start: periodStart, end: periodStart + 2_592_000 },
        parent: {
          subscription_item_details: { invoice_item: null, proration: false, proration_details: { credited_items: null }, subscription: tenant.subscriptionId, subscription_item: 'si_bench' },
          type: 'subscription_item_details'
        },
        subtotal: 6500
      }]
    },
    payment_settings: { default_mandate: null, payment_method_options: { card: { request_three_d_secure: 'automatic' } }, payment_method_types: null },
    period_start: periodStart,
    period_end: periodStart + 2_592_000,
    shipping_cost: null,
    status: 'paid',
    status_transitions: { finalized_at: periodStart, marked_uncollectible_at: null, paid_at: periodStart + 5, voided_at: null },
    subtotal: 6500,
    subtotal_excluding_tax: 6500,
    total: 6500,
    total_excluding_tax: 6500,
    amount_overpaid: 0,
    subscription: undefined,
    parent: {
      quote_details: null,
      subscription_details: { metadata: { tenant_id: tenant.tenantId }, subscription: tenant.subscriptionId },
      type: 'subscription_details'
    }
  }
}

export function eventJson (id: string, type: string, created: number, object: Record<string, any>): string {
  return JSON.stringify({
    id,
    object: 'event',
    api_version: '2025-03-31.basil',
    created,
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type
  })
}

/**
 * Endless signed deliveries spread over `tenants`. The JSON of each tenant's event is made once
 * with a hole for the id, so making a body costs a string concatenation and one HMAC (the same
 * client cost for every scenario, the bare route included).
 */
export function webhookBodies (opts: { secret: string, tenants: BenchTenant[], runTag: string, type?: string, created?: number }): () => SignedBody {
  const created = opts.created ?? Math.floor(Date.now() / 1000)
  const templates = opts.tenants.map((t, i) => {
    const [head, tail] = eventJson(ID_SLOT, opts.type ?? 'invoice.paid', created, renewalInvoice(t, i + 1)).split(ID_SLOT) as [string, string]
    return { head, tail }
  })
  let counter = 0
  return () => {
    counter++
    const id = `evt_bench_${opts.runTag}_${counter.toString(36).padStart(7, '0')}`
    const tpl = templates[counter % templates.length]!
    const body = tpl.head + id + tpl.tail
    return { id, body, headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signPayload(opts.secret, body) } }
  }
}
