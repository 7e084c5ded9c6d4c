// A real HTTP server playing the slice of Stripe CTFHive uses, so Stripe code is tested on the
// wire: form bodies, bearer auth, idempotency replays, list paging, Stripe-shaped errors, and
// scripted faults (one-off replies, lost requests and replies, slow replies).
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

type Obj = Record<string, any>

export interface RecordedRequest {
  method: string
  path: string
  /** The raw query string, without the `?`. */
  rawQuery: string
  /** The query string, decoded into a nested object. */
  query: Obj
  headers: IncomingHttpHeaders
  /** The raw request body. */
  body: string
  /** The body, decoded from Stripe's form encoding into a nested object. */
  form: Obj
  /** The status sent back; null while pending or when the connection was dropped. */
  status: number | null
  /** True when the reply was a saved idempotent response. */
  replayed: boolean
}

export interface FakeReply { status: number, body?: unknown, headers?: Record<string, string | string[]> }
/** 'POST /v1/checkout/sessions', 'GET /v1/prices*' (prefix), '* /v1/events', or an object. */
export type RequestMatch = string | { method?: string, path?: string | RegExp }
export interface FakeStripeOptions {
  /** Accept only these keys (default: any key shaped like sk_test_…, rk_test_…, sk_live_…, rk_live_…). */
  apiKeys?: string[]
  /** Stripe-Version assumed when a request sends none. */
  apiVersion?: string
}
export interface FakeStripeState {
  checkoutSessions: Map<string, Obj>
  products: Map<string, Obj>
  prices: Map<string, Obj>
  webhookEndpoints: Map<string, Obj>
  subscriptions: Map<string, Obj>
  events: Obj[]
}

export interface FakeStripe {
  url: string
  requests: RecordedRequest[]
  state: FakeStripeState
  /** Recorded requests that match, in arrival order. */
  requestsTo (match: RequestMatch): RecordedRequest[]
  /** Answer the next `times` matching requests with this reply instead of Stripe's (nothing is created or saved). */
  queueReply (match: RequestMatch, reply: FakeReply, opts?: { times?: number }): void
  /** Destroy the socket of the next matching requests, by default after the effect ("reply lost"). */
  dropConnection (match: RequestMatch, opts?: { afterEffect?: boolean, times?: number }): void
  /** Perform the next matching requests at once but hold their replies for `ms`. */
  delayReply (match: RequestMatch, ms: number, opts?: { times?: number }): void
  /** What the buyer paying does: the session completes (and a subscription starts in subscription mode). */
  completeSession (id: string, opts?: { subscriptionId?: string, paymentStatus?: string, customerId?: string }): Obj
  /** Seed objects without going through HTTP; same params as the API, plus `id` for prices. */
  addProduct (params: Obj): Obj
  addPrice (params: Obj): Obj
  addEvent (type: string, object: Obj): Obj
  close (): Promise<void>
}

/** Decodes Stripe's form encoding (`a[b][0][c]=v`, `a[]=v`) into nested objects and arrays. */
export function decodeForm (raw: string): Obj {
  const root: Obj = {}
  for (const pair of raw.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const key = decodePart(eq === -1 ? pair : pair.slice(0, eq))
    const value = eq === -1 ? '' : decodePart(pair.slice(eq + 1))
    const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key)
    if (m === null) throw fault(400, `Invalid parameter name: ${key}`, { param: key })
    const path = [m[1] as string, ...[...(m[2] as string).matchAll(/\[([^[\]]*)\]/g)].map((s) => s[1] as string)]
    if (path.some((p) => p === '__proto__' || p === 'constructor' || p === 'prototype')) throw fault(400, `Received unknown parameter: ${key}`, { param: key })
    let node: any = root
    path.forEach((seg, i) => {
      const next = path[i + 1]
      const slot = seg === '' && Array.isArray(node) ? node.length : seg
      if (next === undefined) {
        node[slot] = value
        return
      }
      // `a=1&a[b]=2` cannot be both a value and an object.
      if (node[slot] !== undefined && typeof node[slot] !== 'object') throw fault(400, `Invalid parameter: ${key} conflicts with another parameter`, { param: key })
      node = node[slot] ??= (next === '' || /^\d+$/.test(next) ? [] : {})
    })
  }
  return root
}

function decodePart (s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    throw fault(400, `Invalid URL encoding: ${s}`)
  }
}

class Fault extends Error {
  readonly status: number
  readonly error: Obj
  constructor (status: number, error: Obj) {
    super(error.message)
    this.status = status
    this.error = error
  }
}

function fault (status: number, message: string, extra: { type?: string, code?: string, param?: string } = {}): Fault {
  const error: Obj = { type: extra.type ?? 'invalid_request_error', message }
  if (extra.code !== undefined) {
    error.code = extra.code
    error.doc_url = `https://stripe.com/docs/error-codes/${extra.code.replace(/_/g, '-')}`
  }
  if (extra.param !== undefined) error.param = extra.param
  return new Fault(status, error)
}

const missing = (param: string): Fault => fault(400, `Missing required param: ${param}.`, { code: 'parameter_missing', param })
// 404 for the object named in the URL, 400 for one named in a parameter (as Stripe does).
const noSuch = (what: string, id: string, param = 'id'): Fault => fault(param === 'id' ? 404 : 400, `No such ${what}: '${id}'`, { code: 'resource_missing', param })

function token (n: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  return [...randomBytes(n)].map((b) => alphabet[b % alphabet.length]).join('')
}

const now = (): number => Math.floor(Date.now() / 1000)
const clone = <T>(v: T): T => structuredClone(v)

function str (v: unknown, param: string, max = 5000): string {
  if (typeof v !== 'string' && typeof v !== 'number') throw fault(400, `Invalid string: ${JSON.stringify(v)}`, { param })
  const s = String(v)
  if (s.length > max) throw fault(400, `Invalid string: ${s.slice(0, 20)}...; must be at most ${max} characters`, { code: 'string_too_long', param })
  return s
}

function int (v: unknown, param: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v)
  throw fault(400, `Invalid integer: ${String(v)}`, { code: 'parameter_invalid_integer', param })
}

function bool (v: unknown, param: string): boolean {
  if (v === true || v === 'true') return true
  if (v === false || v === 'false') return false
  throw fault(400, `Invalid boolean: ${String(v)}`, { param })
}

function optStr (v: unknown, param: string, max?: number): string | null {
  return v === undefined || v === '' ? null : str(v, param, max)
}

function obj (v: unknown, param: string): Obj {
  if (v === '') return {}
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw fault(400, `Invalid object`, { param })
  return v as Obj
}

function list (v: unknown, param: string): unknown[] {
  if (v === '') return []
  if (!Array.isArray(v)) throw fault(400, `Invalid array`, { param })
  return v.filter((x) => x !== undefined)
}

// Updates merge metadata; an empty value unsets a key (Stripe's rule).
function metadata (v: unknown, param = 'metadata', base: Obj = {}): Obj {
  if (v === undefined) return base
  const out: Obj = { ...base }
  for (const [k, val] of Object.entries(obj(v, param))) {
    if (k.length > 40) throw fault(400, `Metadata keys can be at most 40 characters long (${k})`, { param: `${param}[${k}]` })
    if (val === '' || val === null) delete out[k]
    else out[k] = str(val, `${param}[${k}]`, 500)
  }
  if (Object.keys(out).length > 50) throw fault(400, 'Metadata can have at most 50 keys', { param })
  return out
}

function checkParams (p: Obj, allowed: string[]): void {
  for (const k of Object.keys(p)) {
    if (!allowed.includes(k) && k !== 'expand') throw fault(400, `Received unknown parameter: ${k}`, { param: k })
  }
}

function expands (p: Obj): string[] {
  return p.expand === undefined ? [] : list(p.expand, 'expand').map(String)
}

// Stripe lists are newest first; starting_after walks towards older objects.
function page (items: Obj[], p: Obj, url: string): Obj {
  const limit = p.limit === undefined ? 10 : int(p.limit, 'limit')
  if (limit < 1 || limit > 100) throw fault(400, 'This value must be between 1 and 100.', { param: 'limit' })
  let ordered = [...items].reverse()
  for (const [param, after] of [['starting_after', true], ['ending_before', false]] as const) {
    if (p[param] === undefined) continue
    const i = ordered.findIndex((o) => o.id === p[param])
    if (i === -1) throw noSuch('object', String(p[param]), param)
    ordered = after ? ordered.slice(i + 1) : ordered.slice(Math.max(0, i - limit), i)
  }
  return { object: 'list', data: ordered.slice(0, limit), has_more: ordered.length > limit, url }
}

const LIST_PARAMS = ['limit', 'starting_after', 'ending_before']
const CHECKOUT_PARAMS = [
  'mode', 'line_items', 'success_url', 'cancel_url', 'return_url', 'client_reference_id', 'customer', 'customer_email',
  'customer_creation', 'metadata', 'subscription_data', 'payment_intent_data', 'payment_method_types', 'allow_promotion_codes',
  'billing_address_collection', 'locale', 'ui_mode', 'expires_at', 'automatic_tax', 'tax_id_collection', 'consent_collection',
  'custom_text', 'custom_fields', 'payment_method_collection', 'discounts', 'phone_number_collection', 'invoice_creation',
  'currency', 'submit_type', 'saved_payment_method_options', 'customer_update', 'shipping_address_collection', 'redirect_on_completion'
]

function parseMatch (m: RequestMatch): (method: string, path: string) => boolean {
  let method: string | undefined
  let path: string | RegExp | undefined
  if (typeof m === 'string') {
    const [a, b] = m.trim().split(/\s+/)
    if (b === undefined) path = a
    else [method, path] = [a, b]
  } else {
    ({ method, path } = m)
  }
  return (reqMethod, reqPath) => {
    if (method !== undefined && method !== '*' && method.toUpperCase() !== reqMethod) return false
    if (path === undefined) return true
    if (path instanceof RegExp) return path.test(reqPath)
    return path.endsWith('*') ? reqPath.startsWith(path.slice(0, -1)) : reqPath === path
  }
}

// Parameters compare as a set: the same params in another order are the same request.
function canonical (v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Obj)[k])}`).join(',')}}`
  return JSON.stringify(v) ?? 'null'
}

type Script = { matches: (method: string, path: string) => boolean, remaining: number } & (
  { kind: 'reply', reply: FakeReply } | { kind: 'drop', afterEffect: boolean } | { kind: 'delay', ms: number })
type Reply = { status: number, body: unknown, headers: Record<string, string | string[]> }
type Handler = (p: Obj, id: string, ctx: { live: boolean, path: string }) => unknown

export async function startFakeStripe (t?: { teardown: (fn: () => unknown) => void }, opts: FakeStripeOptions = {}): Promise<FakeStripe> {
  const defaultVersion = opts.apiVersion ?? '2025-09-30.clover'
  const state: FakeStripeState = {
    checkoutSessions: new Map(),
    products: new Map(),
    prices: new Map(),
    webhookEndpoints: new Map(),
    subscriptions: new Map(),
    events: []
  }
  const internal = new Map<string, { lineItems: Obj[], subscriptionData: Obj }>()
  const idempotent = new Map<string, { endpoint: string, fingerprint: string, reply: Reply }>()
  const requests: RecordedRequest[] = []
  const scripts: Script[] = []
  const timers = new Set<NodeJS.Timeout>()

  const product = (id: string, param = 'product'): Obj => {
    const found = state.products.get(id)
    if (found === undefined) throw noSuch('product', id, param)
    return found
  }

  const priceView = (price: Obj, expand: string[], prefix: string): Obj => {
    const out = clone(price)
    if (expand.includes(`${prefix}product`)) out.product = clone(product(price.product))
    return out
  }

  const createProduct = (p: Obj, live: boolean): Obj => {
    checkParams(p, ['id', 'name', 'description', 'active', 'metadata', 'tax_code', 'unit_label', 'url', 'images', 'marketing_features', 'statement_descriptor', 'default_price_data'])
    if (p.name === undefined || p.name === '') throw missing('name')
    const id = p.id === undefined ? `prod_${token(14)}` : str(p.id, 'id', 255)
    if (state.products.has(id)) throw fault(400, 'Product already exists.', { code: 'resource_already_exists', param: 'id' })
    const created = now()
    const prod = {
      id,
      object: 'product',
      active: p.active === undefined ? true : bool(p.active, 'active'),
      created,
      default_price: null,
      description: optStr(p.description, 'description'),
      images: [],
      livemode: live,
      marketing_features: [],
      metadata: metadata(p.metadata),
      name: str(p.name, 'name', 250),
      package_dimensions: null,
      shippable: null,
      statement_descriptor: null,
      tax_code: optStr(p.tax_code, 'tax_code'),
      unit_label: null,
      updated: created,
      url: null
    }
    state.products.set(id, prod)
    return prod
  }

  const updateProduct = (p: Obj, id: string): Obj => {
    checkParams(p, ['name', 'description', 'active', 'metadata', 'default_price', 'tax_code'])
    const prod = product(id, 'id')
    if (p.name !== undefined) prod.name = str(p.name, 'name', 250)
    if (p.description !== undefined) prod.description = optStr(p.description, 'description')
    if (p.active !== undefined) prod.active = bool(p.active, 'active')
    if (p.tax_code !== undefined) prod.tax_code = optStr(p.tax_code, 'tax_code')
    if (p.default_price !== undefined) {
      const priceId = optStr(p.default_price, 'default_price')
      if (priceId !== null && state.prices.get(priceId)?.product !== id) throw noSuch('price', priceId, 'default_price')
      prod.default_price = priceId
    }
    prod.metadata = metadata(p.metadata, 'metadata', prod.metadata)
    prod.updated = now()
    return prod
  }

  // transfer_lookup_key moves the key off its current holder atomically, as on Stripe.
  const claimLookupKey = (p: Obj, self: string | null): string | null | undefined => {
    if (p.lookup_key === undefined) return undefined
    const key = optStr(p.lookup_key, 'lookup_key', 200)
    const transfer = p.transfer_lookup_key !== undefined && bool(p.transfer_lookup_key, 'transfer_lookup_key')
    const holder = key === null ? undefined : [...state.prices.values()].find((x) => x.lookup_key === key && x.id !== self)
    if (holder !== undefined) {
      if (!transfer) throw fault(400, `A price (\`${holder.id}\`) already uses that lookup key.`, { param: 'lookup_key' })
      holder.lookup_key = null
    }
    return key
  }

  const createPrice = (p: Obj, live: boolean, seedId?: string): Obj => {
    checkParams(p, ['currency', 'product', 'product_data', 'unit_amount', 'unit_amount_decimal', 'recurring', 'lookup_key', 'transfer_lookup_key', 'nickname', 'metadata', 'active', 'tax_behavior', 'billing_scheme'])
    if (p.currency === undefined) throw missing('currency')
    const currency = str(p.currency, 'currency').toLowerCase()
    if (!/^[a-z]{3}$/.test(currency)) throw fault(400, `Invalid currency: ${currency}`, { code: 'parameter_invalid_string', param: 'currency' })
    let productId: string
    if (p.product !== undefined) productId = product(str(p.product, 'product')).id
    else if (p.product_data !== undefined) productId = createProduct(obj(p.product_data, 'product_data'), live).id
    else throw missing('product')
    if (p.unit_amount === undefined && p.unit_amount_decimal === undefined) throw missing('unit_amount')
    const unitAmount = p.unit_amount === undefined ? Math.round(Number(p.unit_amount_decimal)) : int(p.unit_amount, 'unit_amount')
    if (!(unitAmount >= 0)) throw fault(400, 'This value must be greater than or equal to 0.', { param: 'unit_amount' })
    let recurring: Obj | null = null
    if (p.recurring !== undefined) {
      const r = obj(p.recurring, 'recurring')
      if (!['day', 'week', 'month', 'year'].includes(r.interval)) throw fault(400, `Invalid recurring[interval]: must be one of day, week, month, or year`, { param: 'recurring[interval]' })
      recurring = { interval: r.interval, interval_count: r.interval_count === undefined ? 1 : int(r.interval_count, 'recurring[interval_count]'), meter: null, trial_period_days: null, usage_type: 'licensed' }
    }
    const lookupKey = claimLookupKey(p, null) ?? null
    const price = {
      id: seedId ?? `price_${token(24)}`,
      object: 'price',
      active: p.active === undefined ? true : bool(p.active, 'active'),
      billing_scheme: 'per_unit',
      created: now(),
      currency,
      custom_unit_amount: null,
      livemode: live,
      lookup_key: lookupKey,
      metadata: metadata(p.metadata),
      nickname: optStr(p.nickname, 'nickname'),
      product: productId,
      recurring,
      tax_behavior: p.tax_behavior ?? 'unspecified',
      tiers_mode: null,
      transform_quantity: null,
      type: recurring === null ? 'one_time' : 'recurring',
      unit_amount: unitAmount,
      unit_amount_decimal: String(unitAmount)
    }
    state.prices.set(price.id, price)
    return price
  }

  const price = (id: string, param = 'id'): Obj => {
    const found = state.prices.get(id)
    if (found === undefined) throw noSuch('price', id, param)
    return found
  }

  const sessionView = (s: Obj, expand: string[]): Obj => {
    const out = clone(s)
    if (expand.includes('line_items')) out.line_items = lineItems(s.id)
    if (expand.includes('subscription') && s.subscription !== null) out.subscription = clone(state.subscriptions.get(s.subscription))
    return out
  }

  const lineItems = (id: string): Obj => ({
    object: 'list',
    data: clone(internal.get(id)?.lineItems ?? []),
    has_more: false,
    url: `/v1/checkout/sessions/${id}/line_items`
  })

  const createSession = (p: Obj, live: boolean): Obj => {
    checkParams(p, CHECKOUT_PARAMS)
    if (p.mode === undefined) throw missing('mode')
    if (!['payment', 'subscription', 'setup'].includes(p.mode)) throw fault(400, 'Invalid mode: must be one of payment, setup, or subscription', { code: 'parameter_invalid_string', param: 'mode' })
    const items = p.line_items === undefined ? [] : list(p.line_items, 'line_items')
    if (p.mode !== 'setup' && items.length === 0) throw missing('line_items')
    const lines = items.map((raw, i) => {
      const item = obj(raw, `line_items[${i}]`)
      if (item.price === undefined) throw fault(400, `You must specify either \`price\` or \`price_data\` in \`line_items[${i}]\`.`, { param: `line_items[${i}]` })
      const pr = price(str(item.price, `line_items[${i}][price]`), `line_items[${i}][price]`)
      if (!pr.active) throw fault(400, `The price specified is inactive. This field only accepts active prices.`, { param: `line_items[${i}][price]` })
      if (item.quantity === undefined) throw fault(400, `Quantity is required. Add \`quantity\` to \`line_items[${i}]\``, { param: `line_items[${i}][quantity]` })
      const quantity = int(item.quantity, `line_items[${i}][quantity]`)
      if (quantity < 1) throw fault(400, 'This value must be greater than or equal to 1.', { param: `line_items[${i}][quantity]` })
      return { id: `li_${token(24)}`, object: 'item', amount_subtotal: pr.unit_amount * quantity, amount_total: pr.unit_amount * quantity, currency: pr.currency, description: product(pr.product).name, price: clone(pr), quantity }
    })
    const recurring = lines.some((l) => l.price.recurring !== null)
    if (p.mode === 'subscription' && !recurring) throw fault(400, 'You must provide at least one recurring price in `subscription` mode when using prices.', { param: 'line_items' })
    if (p.mode === 'payment' && recurring) throw fault(400, 'You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.', { param: 'line_items' })
    const email = optStr(p.customer_email, 'customer_email', 800)
    if (email !== null && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) throw fault(400, `Invalid email address: ${email}`, { code: 'email_invalid', param: 'customer_email' })
    const subscriptionData = p.subscription_data === undefined ? {} : obj(p.subscription_data, 'subscription_data')
    if (p.mode !== 'subscription' && p.subscription_data !== undefined) throw fault(400, 'You can not pass `subscription_data` in `payment` mode.', { param: 'subscription_data' })
    const id = `cs_${live ? 'live' : 'test'}_${token(58)}`
    const created = now()
    const total = lines.reduce((sum, l) => sum + l.amount_total, 0)
    const session = {
      id,
      object: 'checkout.session',
      amount_subtotal: total,
      amount_total: total,
      cancel_url: optStr(p.cancel_url, 'cancel_url'),
      client_reference_id: optStr(p.client_reference_id, 'client_reference_id', 200),
      created,
      currency: lines[0]?.currency ?? null,
      customer: optStr(p.customer, 'customer'),
      customer_details: null,
      customer_email: email,
      expires_at: created + 86_400,
      invoice: null,
      livemode: live,
      locale: optStr(p.locale, 'locale'),
      metadata: metadata(p.metadata),
      mode: p.mode,
      payment_intent: null,
      payment_status: p.mode === 'setup' ? 'no_payment_required' : 'unpaid',
      status: 'open',
      subscription: null,
      success_url: optStr(p.success_url, 'success_url'),
      ui_mode: 'hosted',
      url: `https://checkout.stripe.com/c/pay/${id}`
    }
    state.checkoutSessions.set(id, session)
    internal.set(id, { lineItems: lines, subscriptionData: { metadata: metadata(subscriptionData.metadata, 'subscription_data[metadata]') } })
    return sessionView(session, expands(p))
  }

  const session = (id: string): Obj => {
    const found = state.checkoutSessions.get(id)
    if (found === undefined) throw noSuch('checkout.session', id)
    return found
  }

  const endpointView = (e: Obj): Obj => {
    const { secret: _secret, ...rest } = clone(e)
    return rest
  }

  const enabledEvents = (v: unknown): string[] => {
    const events = list(v, 'enabled_events').map((e, i) => str(e, `enabled_events[${i}]`))
    if (events.length === 0) throw missing('enabled_events')
    events.forEach((e, i) => {
      if (!/^(\*|[a-z_]+(\.[a-z_]+)+)$/.test(e)) throw fault(400, `Invalid enabled_events[${i}]: ${e}`, { param: `enabled_events[${i}]` })
    })
    return events
  }

  const endpoint = (id: string): Obj => {
    const found = state.webhookEndpoints.get(id)
    if (found === undefined) throw noSuch('webhook_endpoint', id)
    return found
  }

  const validUrl = (v: unknown, param: string): string => {
    const url = str(v, param)
    if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw fault(400, `Invalid URL: ${url}`, { code: 'url_invalid', param })
    return url
  }

  const addEvent = (type: string, object: Obj, live = false): Obj => {
    const event = {
      id: `evt_${token(24)}`,
      object: 'event',
      api_version: defaultVersion,
      created: now(),
      data: { object: clone(object) },
      livemode: live,
      pending_webhooks: state.webhookEndpoints.size,
      request: { id: null, idempotency_key: null },
      type
    }
    state.events.push(event)
    return event
  }

  const byId = <T>(map: Map<string, T>): T[] => [...map.values()]

  const routes: Array<[string, RegExp, Handler]> = [
    ['POST', /^\/v1\/checkout\/sessions$/, (p, _, c) => createSession(p, c.live)],
    ['GET', /^\/v1\/checkout\/sessions$/, (p, _, c) => {
      checkParams(p, [...LIST_PARAMS, 'status', 'customer', 'subscription'])
      const filtered = byId(state.checkoutSessions).filter((s) => ['status', 'customer', 'subscription'].every((f) => p[f] === undefined || s[f] === p[f]))
      return page(filtered, p, c.path)
    }],
    ['GET', /^\/v1\/checkout\/sessions\/([^/]+)$/, (p, id) => {
      checkParams(p, [])
      return sessionView(session(id), expands(p))
    }],
    ['GET', /^\/v1\/checkout\/sessions\/([^/]+)\/line_items$/, (p, id) => {
      checkParams(p, LIST_PARAMS)
      session(id)
      return page([...lineItems(id).data].reverse(), p, lineItems(id).url)
    }],
    ['POST', /^\/v1\/products$/, (p, _, c) => clone(createProduct(p, c.live))],
    ['GET', /^\/v1\/products$/, (p, _, c) => {
      checkParams(p, [...LIST_PARAMS, 'active', 'ids'])
      const ids = p.ids === undefined ? null : list(p.ids, 'ids')
      const filtered = byId(state.products).filter((x) => (p.active === undefined || x.active === bool(p.active, 'active')) && (ids === null || ids.includes(x.id)))
      return clone(page(filtered, p, c.path))
    }],
    ['GET', /^\/v1\/products\/([^/]+)$/, (p, id) => {
      checkParams(p, [])
      return clone(product(id, 'id'))
    }],
    ['POST', /^\/v1\/products\/([^/]+)$/, (p, id) => clone(updateProduct(p, id))],
    ['POST', /^\/v1\/prices$/, (p, _, c) => priceView(createPrice(p, c.live), expands(p), '')],
    ['GET', /^\/v1\/prices$/, (p, _, c) => {
      checkParams(p, [...LIST_PARAMS, 'active', 'product', 'lookup_keys', 'type', 'currency'])
      const keys = p.lookup_keys === undefined ? null : list(p.lookup_keys, 'lookup_keys')
      if (keys !== null && keys.length > 10) throw fault(400, 'You can specify at most 10 lookup keys.', { param: 'lookup_keys' })
      const filtered = byId(state.prices).filter((x) =>
        (p.active === undefined || x.active === bool(p.active, 'active')) &&
        (keys === null || keys.includes(x.lookup_key)) &&
        ['product', 'type', 'currency'].every((f) => p[f] === undefined || x[f] === p[f]))
      const out = page(filtered, p, c.path)
      out.data = out.data.map((x: Obj) => priceView(x, expands(p), 'data.'))
      return out
    }],
    ['GET', /^\/v1\/prices\/([^/]+)$/, (p, id) => {
      checkParams(p, [])
      return priceView(price(id), expands(p), '')
    }],
    ['POST', /^\/v1\/prices\/([^/]+)$/, (p, id) => {
      checkParams(p, ['active', 'nickname', 'metadata', 'lookup_key', 'transfer_lookup_key', 'tax_behavior'])
      const pr = price(id)
      const key = claimLookupKey(p, id)
      if (key !== undefined) pr.lookup_key = key
      if (p.active !== undefined) pr.active = bool(p.active, 'active')
      if (p.nickname !== undefined) pr.nickname = optStr(p.nickname, 'nickname')
      pr.metadata = metadata(p.metadata, 'metadata', pr.metadata)
      return priceView(pr, expands(p), '')
    }],
    ['POST', /^\/v1\/webhook_endpoints$/, (p, _, c) => {
      checkParams(p, ['url', 'enabled_events', 'api_version', 'description', 'metadata', 'connect'])
      if (p.url === undefined) throw missing('url')
      if (p.enabled_events === undefined) throw missing('enabled_events')
      const apiVersion = p.api_version === undefined ? null : str(p.api_version, 'api_version')
      if (apiVersion !== null && !/^\d{4}-\d{2}-\d{2}(\.\w+)?$/.test(apiVersion)) throw fault(400, `Invalid api_version: ${apiVersion}`, { param: 'api_version' })
      const e = {
        id: `we_${token(24)}`,
        object: 'webhook_endpoint',
        api_version: apiVersion,
        application: null,
        created: now(),
        description: optStr(p.description, 'description'),
        enabled_events: enabledEvents(p.enabled_events),
        livemode: c.live,
        metadata: metadata(p.metadata),
        secret: `whsec_${token(32)}`,
        status: 'enabled',
        url: validUrl(p.url, 'url')
      }
      state.webhookEndpoints.set(e.id, e)
      return clone(e)
    }],
    ['GET', /^\/v1\/webhook_endpoints$/, (p, _, c) => {
      checkParams(p, LIST_PARAMS)
      const out = page(byId(state.webhookEndpoints), p, c.path)
      out.data = out.data.map(endpointView)
      return out
    }],
    ['GET', /^\/v1\/webhook_endpoints\/([^/]+)$/, (p, id) => {
      checkParams(p, [])
      return endpointView(endpoint(id))
    }],
    ['POST', /^\/v1\/webhook_endpoints\/([^/]+)$/, (p, id) => {
      checkParams(p, ['url', 'enabled_events', 'description', 'metadata', 'disabled'])
      const e = endpoint(id)
      if (p.url !== undefined) e.url = validUrl(p.url, 'url')
      if (p.enabled_events !== undefined) e.enabled_events = enabledEvents(p.enabled_events)
      if (p.description !== undefined) e.description = optStr(p.description, 'description')
      if (p.disabled !== undefined) e.status = bool(p.disabled, 'disabled') ? 'disabled' : 'enabled'
      e.metadata = metadata(p.metadata, 'metadata', e.metadata)
      return endpointView(e)
    }],
    ['DELETE', /^\/v1\/webhook_endpoints\/([^/]+)$/, (p, id) => {
      checkParams(p, [])
      endpoint(id)
      state.webhookEndpoints.delete(id)
      return { id, object: 'webhook_endpoint', deleted: true }
    }],
    ['GET', /^\/v1\/events$/, (p, _, c) => {
      checkParams(p, [...LIST_PARAMS, 'type', 'types', 'delivery_success', 'created'])
      const types = p.types === undefined ? null : list(p.types, 'types').map(String)
      const typeMatches = (pattern: string, type: string): boolean => pattern.endsWith('.*') ? type.startsWith(pattern.slice(0, -1)) : pattern === type
      const filtered = state.events.filter((e) => (p.type === undefined || typeMatches(String(p.type), e.type)) && (types === null || types.some((x) => typeMatches(x, e.type))))
      return clone(page(filtered, p, c.path))
    }],
    ['GET', /^\/v1\/events\/([^/]+)$/, (p, id) => {
      checkParams(p, [])
      const e = state.events.find((x) => x.id === id)
      if (e === undefined) throw noSuch('event', id)
      return clone(e)
    }],
    ['GET', /^\/v1\/subscriptions\/([^/]+)$/, (p, id) => {
      checkParams(p, [])
      const s = state.subscriptions.get(id)
      if (s === undefined) throw noSuch('subscription', id)
      return clone(s)
    }]
  ]

  const errorReply = (f: Fault): Reply => ({ status: f.status, body: { error: f.error }, headers: {} })

  const keyAccepted = (key: string): boolean =>
    opts.apiKeys === undefined ? /^(sk|rk)_(test|live)_[A-Za-z0-9]+$/.test(key) : opts.apiKeys.includes(key)

  // Auth, then idempotency, then the route: the order Stripe applies them.
  const respond = (rec: RecordedRequest): Reply => {
    const auth = /^Bearer (\S+)$/.exec(rec.headers.authorization ?? '')
    if (auth === null) {
      return { status: 401, headers: {}, body: { error: { type: 'invalid_request_error', message: "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')." } } }
    }
    const key = auth[1] as string
    if (!keyAccepted(key)) {
      return { status: 401, headers: {}, body: { error: { type: 'invalid_request_error', code: 'api_key_invalid', message: `Invalid API Key provided: ${key.slice(0, 8)}${'*'.repeat(Math.max(0, key.length - 12))}${key.slice(-4)}` } } }
    }
    const version = rec.headers['stripe-version']
    if (version !== undefined && !/^\d{4}-\d{2}-\d{2}(\.\w+)?$/.test(String(version))) {
      return errorReply(fault(400, `Invalid Stripe API version: ${String(version)}`, { type: 'invalid_request_error' }))
    }
    const idemKey = rec.headers['idempotency-key']
    const endpoint = `${rec.method} ${rec.path}`
    const saveAs = rec.method === 'POST' && typeof idemKey === 'string' ? `${key}\n${idemKey}` : null
    let fingerprint = ''
    if (saveAs !== null) {
      if ((idemKey as string).length > 255) return errorReply(fault(400, 'Idempotency-Key must be at most 255 characters long.', { type: 'idempotency_error' }))
      fingerprint = canonical(rec.form)
      const saved = idempotent.get(saveAs)
      if (saved !== undefined) {
        if (saved.endpoint !== endpoint) {
          return errorReply(fault(400, `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${endpoint}' vs '${saved.endpoint}'). Try using a key other than '${idemKey as string}' if you meant to execute a different request.`, { type: 'idempotency_error' }))
        }
        if (saved.fingerprint !== fingerprint) {
          return errorReply(fault(400, `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idemKey as string}' if you meant to execute a different request.`, { type: 'idempotency_error' }))
        }
        rec.replayed = true
        return { ...saved.reply, headers: { ...saved.reply.headers, 'idempotent-replayed': 'true' } }
      }
    }
    let reply: Reply
    const route = routes.find(([m, re]) => m === rec.method && re.test(rec.path))
    if (route === undefined) {
      reply = errorReply(fault(404, `Unrecognized request URL (${rec.method}: ${rec.path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`))
    } else {
      const [, re, handler] = route
      try {
        const id = decodePart(re.exec(rec.path)?.[1] ?? '')
        reply = { status: 200, headers: {}, body: handler(rec.method === 'POST' ? rec.form : rec.query, id, { live: key.includes('_live_'), path: rec.path }) }
      } catch (err) {
        if (!(err instanceof Fault)) throw err
        reply = errorReply(err)
      }
    }
    reply.headers['request-id'] = `req_${token(14)}`
    // Stripe saves the outcome once the endpoint ran; a request that failed validation is not saved.
    if (saveAs !== null && (reply.status < 400 || reply.status >= 500)) {
      reply.headers['idempotency-key'] = idemKey as string
      idempotent.set(saveAs, { endpoint, fingerprint, reply })
    }
    return reply
  }

  const send = (res: ServerResponse, rec: RecordedRequest, reply: Reply, version: string): void => {
    const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {})
    const type = typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json'
    rec.status = reply.status
    res.writeHead(reply.status, { 'content-type': type, 'stripe-version': version, ...reply.headers })
    res.end(text)
  }

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string): void => {
    const url = new URL(req.url ?? '/', 'http://fake-stripe')
    const rec: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname, rawQuery: url.search.slice(1), query: {}, headers: req.headers, body: raw, form: {}, status: null, replayed: false }
    requests.push(rec)
    let invalid: Fault | undefined
    try {
      rec.query = decodeForm(url.search.slice(1))
      if (rec.method === 'POST' && raw !== '' && !String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
        throw fault(400, `Invalid request: expected a form-encoded body, got content-type ${String(req.headers['content-type'])}`)
      }
      rec.form = decodeForm(raw)
    } catch (err) {
      if (!(err instanceof Fault)) throw err
      invalid = err
    }
    const version = String(req.headers['stripe-version'] ?? defaultVersion)
    const i = scripts.findIndex((s) => s.matches(rec.method, rec.path))
    const script = i === -1 ? undefined : scripts[i]
    if (script !== undefined && --script.remaining === 0) scripts.splice(i, 1)
    if (script?.kind === 'reply') return send(res, rec, { status: script.reply.status, body: script.reply.body, headers: { ...script.reply.headers } }, version)
    if (script?.kind === 'drop' && !script.afterEffect) return void res.socket?.destroy()
    const reply = invalid === undefined ? respond(rec) : errorReply(invalid)
    if (script?.kind === 'drop') return void res.socket?.destroy()
    if (script?.kind === 'delay') {
      const timer = setTimeout(() => {
        timers.delete(timer)
        if (!res.destroyed) send(res, rec, reply, version)
      }, script.ms)
      timers.add(timer)
      return
    }
    send(res, rec, reply, version)
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks).toString('utf8'))
      } catch (err) {
        // A bug in the fake must be loud, not a hung request.
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`fake-stripe crashed: ${(err as Error).stack}`)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      server.close(() => resolve())
      server.closeAllConnections()
    })
    return closing
  }
  t?.teardown(close)

  const script = (match: RequestMatch, times: number, rest: { kind: 'reply', reply: FakeReply } | { kind: 'drop', afterEffect: boolean } | { kind: 'delay', ms: number }): void => {
    scripts.push({ matches: parseMatch(match), remaining: Math.max(1, times), ...rest })
  }

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    state,
    requestsTo: (match) => {
      const matches = parseMatch(match)
      return requests.filter((r) => matches(r.method, r.path))
    },
    queueReply: (match, reply, o = {}) => script(match, o.times ?? 1, { kind: 'reply', reply }),
    dropConnection: (match, o = {}) => script(match, o.times ?? 1, { kind: 'drop', afterEffect: o.afterEffect ?? true }),
    delayReply: (match, ms, o = {}) => script(match, o.times ?? 1, { kind: 'delay', ms }),
    completeSession: (id, o = {}) => {
      const s = session(id)
      const customer = s.customer ?? o.customerId ?? `cus_${token(14)}`
      s.status = 'complete'
      s.payment_status = o.paymentStatus ?? (s.mode === 'setup' ? 'no_payment_required' : 'paid')
      s.customer = customer
      s.customer_details = { address: null, email: s.customer_email, name: null, phone: null, tax_exempt: 'none', tax_ids: [] }
      if (s.mode === 'subscription') {
        const extra = internal.get(id) as { lineItems: Obj[], subscriptionData: Obj }
        const subId = o.subscriptionId ?? `sub_${token(24)}`
        const start = now()
        state.subscriptions.set(subId, {
          id: subId,
          object: 'subscription',
          cancel_at_period_end: false,
          canceled_at: null,
          created: start,
          customer,
          items: {
            object: 'list',
            data: extra.lineItems.map((l) => ({ id: `si_${token(14)}`, object: 'subscription_item', price: clone(l.price), quantity: l.quantity, current_period_start: start, current_period_end: start + 30 * 86_400 })),
            has_more: false,
            url: `/v1/subscription_items?subscription=${subId}`
          },
          latest_invoice: `in_${token(24)}`,
          livemode: s.livemode,
          metadata: clone(extra.subscriptionData.metadata),
          status: 'active'
        })
        s.subscription = subId
      }
      addEvent('checkout.session.completed', s, s.livemode)
      return clone(s)
    },
    addProduct: (params) => clone(createProduct(clone(params), false)),
    addPrice: (params) => {
      const { id, ...rest } = clone(params)
      const p = rest.product === undefined && rest.product_data === undefined ? { ...rest, product_data: { name: 'Seeded product' } } : rest
      return clone(createPrice(p, false, id))
    },
    addEvent: (type, object) => clone(addEvent(type, object)),
    close
  }
}
