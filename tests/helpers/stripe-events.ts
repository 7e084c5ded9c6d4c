// Stripe events for tests, built from Stripe's own example objects (tests/fixtures/stripe),
// and a helper that signs and delivers them to the app.
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { signPayload } from '../../api/billing/signature.ts'
import { TEST_WEBHOOK_SECRET } from './build-app.ts'

function fixture (name: string): Record<string, any> {
  return JSON.parse(readFileSync(new URL(`../fixtures/stripe/${name}.json`, import.meta.url), 'utf8'))
}

const SESSION = fixture('checkout_session')
const SUBSCRIPTION = fixture('subscription')
const INVOICE = fixture('invoice')

let counter = 0
export function eventId (): string {
  counter++
  return `evt_test_${process.pid}_${Date.now().toString(36)}_${counter}`
}

export interface StripeTestEvent {
  id: string
  object: 'event'
  type: string
  created: number
  api_version: string
  livemode: false
  data: { object: Record<string, any> }
}

export function makeEvent (type: string, object: Record<string, any>, opts: { id?: string, created?: number } = {}): StripeTestEvent {
  return {
    id: opts.id ?? eventId(),
    object: 'event',
    type,
    created: opts.created ?? Math.floor(Date.now() / 1000),
    api_version: '2024-06-20',
    livemode: false,
    data: { object }
  }
}

export function checkoutSession (o: { tenantId?: string | null, plan?: string, name?: string, email?: string, subscription?: string | null, paymentStatus?: string, status?: string, id?: string, created?: number }): Record<string, any> {
  const metadata: Record<string, string> = {}
  if (o.plan !== undefined) metadata.plan = o.plan
  if (o.tenantId) metadata.tenant_id = o.tenantId
  if (o.name !== undefined) metadata.name = o.name
  return {
    ...SESSION,
    id: o.id ?? `cs_test_${eventId().slice(9)}`,
    mode: 'subscription',
    status: o.status ?? 'complete',
    payment_status: o.paymentStatus ?? 'paid',
    client_reference_id: o.tenantId ?? null,
    customer: 'cus_test_1',
    customer_email: o.email ?? null,
    metadata,
    subscription: o.subscription === undefined ? 'sub_test_1' : o.subscription,
    created: o.created ?? Math.floor(Date.now() / 1000)
  }
}

/** A subscription on `plan`'s price (standard unless said): keep it the tenant's plan, or an event a second later changes it. */
export function subscription (o: { id?: string, tenantId?: string | null, status: string, plan?: string, lookupKey?: string | null, priceId?: string }): Record<string, any> {
  const plan = o.plan ?? 'standard'
  const item = SUBSCRIPTION.items.data[0]
  return {
    ...SUBSCRIPTION,
    id: o.id ?? 'sub_test_1',
    status: o.status,
    customer: 'cus_test_1',
    metadata: o.tenantId ? { tenant_id: o.tenantId } : {},
    items: {
      ...SUBSCRIPTION.items,
      data: [{ ...item, price: { ...item.price, id: o.priceId ?? `price_test_${plan}`, lookup_key: o.lookupKey === undefined ? `ctfhive_${plan}_monthly` : o.lookupKey } }]
    }
  }
}

/**
 * An invoice in either API shape: `basil` (2025-03-31+: parent.subscription_details) or
 * `legacy` (invoice.subscription and invoice.subscription_details).
 */
export function invoice (o: { subscription: string, tenantId?: string | null, shape?: 'basil' | 'legacy', id?: string }): Record<string, any> {
  const metadata = o.tenantId ? { tenant_id: o.tenantId } : {}
  const base = { ...INVOICE, id: o.id ?? `in_test_${eventId().slice(9)}`, customer: 'cus_test_1' }
  if ((o.shape ?? 'basil') === 'basil') {
    return { ...base, subscription: undefined, parent: { type: 'subscription_details', quote_details: null, subscription_details: { metadata, subscription: o.subscription } } }
  }
  return { ...base, parent: undefined, subscription: o.subscription, subscription_details: { metadata } }
}

export interface DeliverOptions {
  secret?: string
  timestamp?: number
  header?: string | null
  contentType?: string
}

/** Signs `event` (or a raw body) like Stripe and POSTs it to the webhook. */
export async function deliver (app: FastifyInstance, event: unknown, opts: DeliverOptions = {}) {
  const body = typeof event === 'string' ? event : JSON.stringify(event)
  const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json; charset=utf-8' }
  if (opts.header !== null) headers['stripe-signature'] = opts.header ?? signPayload(opts.secret ?? TEST_WEBHOOK_SECRET, body, opts.timestamp)
  return app.inject({ method: 'POST', url: '/billing/webhook', headers, payload: body })
}
