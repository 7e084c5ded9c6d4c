// /openapi.json against the routes it describes: what a client generator reads (operation ids,
// which parameters are required, the response headers) and real answers checked against it.
import t, { type Test } from 'tap'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import { buildTestApp } from './helpers/build-app.ts'

const ADMIN_TOKEN = 'admin-token-for-the-openapi-test-0123456789'
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

interface Reply { description: string, headers?: Record<string, { schema: unknown }>, content?: Record<string, { schema: unknown }> }
interface Operation { operationId?: string, parameters?: Array<{ in: string, name: string, required?: boolean, schema: { pattern?: string } }>, responses: Record<string, Reply> }
interface Doc { info: { description: string }, paths: Record<string, Record<string, Operation>> }

function operations (doc: Doc): Array<{ label: string, path: string, op: Operation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item)
    .filter(([method]) => METHODS.includes(method))
    .map(([method, op]) => ({ label: `${method.toUpperCase()} ${path}`, path, op })))
}

/** OpenAPI 3.0's schema dialect as JSON Schema: `nullable` widens the type. */
function jsonSchema (s: unknown): unknown {
  if (Array.isArray(s)) return s.map(jsonSchema)
  if (s === null || typeof s !== 'object') return s
  const o = s as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (k !== 'nullable') out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, jsonSchema(ps)])) : jsonSchema(v)
  if (o.nullable === true) {
    if (out.type !== undefined) out.type = [out.type, 'null'].flat()
    if (Array.isArray(out.enum)) out.enum = [...out.enum, null]
  }
  return out
}

const ajv = new Ajv({ strict: false, allErrors: true })
// A CommonJS module: its function is `default` to TypeScript and to Node alike.
addFormats.default(ajv)

/**
 * A real answer against the document: its status is declared (exactly or by range), a JSON
 * body fits the declared schema, and every header a client acts on is declared.
 */
function conforms (t: Test, doc: Doc, op: string, res: { statusCode: number, headers: Record<string, unknown>, body: string }): void {
  const [method, path] = op.split(' ') as [string, string]
  const responses = doc.paths[path]![method.toLowerCase()]!.responses
  const status = String(res.statusCode)
  const reply = responses[status] ?? responses[`${status[0]}XX`]
  if (reply === undefined) {
    t.fail(`${op} ${status}: not declared`)
    return
  }
  const type = String(res.headers['content-type'] ?? '').split(';')[0]!
  if (type === 'application/json') {
    const validate: ValidateFunction = ajv.compile(jsonSchema(reply.content?.['application/json']?.schema ?? false) as object)
    t.ok(validate(JSON.parse(res.body)), `${op} ${status}: the body fits (${ajv.errorsText(validate.errors)})`)
  }
  const declared = Object.keys(reply.headers ?? {})
  for (const header of ['x-request-id', 'retry-after', 'www-authenticate', 'location']) {
    if (res.headers[header] !== undefined) t.ok(declared.includes(header), `${op} ${status}: ${header} declared`)
  }
}

t.test('the document says what a client generator needs', async (t) => {
  const { app } = await buildTestApp(t, { env: { ADMIN_TOKEN } })
  const doc = (await app.inject('/openapi.json')).json() as Doc
  const all = operations(doc)
  t.equal(all.length, 15, 'every API operation, the operator API included')

  const ids = all.map(({ op }) => op.operationId)
  for (const [i, { label }] of all.entries()) t.match(ids[i], /^[a-z][A-Za-z]+$/, `${label}: a camelCase operationId`)
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  t.equal(doc.paths['/admin/events']?.get?.operationId, 'adminListEvents')

  // Optional with a default: a generated client must not have to send them.
  for (const path of ['/admin/tenants', '/admin/events']) {
    const limit = doc.paths[path]!.get!.parameters!.find((p) => p.in === 'query' && p.name === 'limit')
    t.match(limit, { schema: { default: 50 } }, `${path}: limit defaults to 50`)
    t.not(limit?.required, true, `${path}: limit is optional`)
  }
  // Only what the route refuses without is required.
  for (const { label, op } of all) {
    const required = (op.parameters ?? []).filter((p) => p.in === 'query' && p.required === true).map((p) => p.name)
    t.same(required, { 'GET /billing/success': ['session_id'], 'GET /tenants/{id}/credentials': ['token'] }[label] ?? [], `${label}: required query parameters`)
  }

  // The headers the app sends are declared: the request id on every reply, the challenge on
  // the admin 401s, Retry-After where a client is told to wait.
  for (const { label, op } of all) {
    for (const [status, reply] of Object.entries(op.responses)) {
      t.ok(reply.headers?.['x-request-id'], `${label} ${status}: x-request-id declared`)
      if (status === '503' || status === '5XX') t.ok(reply.headers?.['retry-after'], `${label} ${status}: Retry-After (the drain)`)
    }
    if (label.includes('/admin/')) t.match(op.responses['401'], { headers: { 'www-authenticate': { schema: { type: 'string' } } } }, `${label}: 401 declares WWW-Authenticate`)
  }
  for (const label of ['POST /billing/checkout', 'GET /billing/success']) {
    const { path, op } = all.find((o) => o.label === label)!
    t.match(op.responses['429'], { headers: { 'retry-after': { schema: { type: 'integer' } } } }, `${path}: 429 declares Retry-After`)
  }

  // An id copied in uppercase finds its tenant, so the published pattern takes it.
  const upper = 'ABCDEF0123456789ABCDEF0123456789'
  for (const { label, op } of all) {
    const id = op.parameters?.find((p) => p.in === 'path' && p.name === 'id')
    if (id === undefined || label.includes('/admin/events/')) continue
    t.ok(new RegExp(id.schema.pattern!).test(upper), `${label}: an uppercase id fits the pattern`)
    t.notOk(new RegExp(id.schema.pattern!).test(upper.slice(1)), `${label}: 31 characters do not`)
  }

  // Every code the app answers is named somewhere.
  const anyRoute = doc.paths['/tenants/{id}/status']!.get!.responses['4XX']!.description
  t.match(anyRoute, /expectation_failed/, 'any route: 417 expectation_failed named')
  t.match(anyRoute, /bad_url/, 'any route: 400 bad_url named')
  for (const label of ['POST /admin/tenants/{id}/retry', 'POST /admin/events/{id}/replay']) {
    const { op } = all.find((o) => o.label === label)!
    t.match(op.responses['400']?.description, /invalid_json/, `${label}: 400 names invalid_json`)
    t.match(op.responses['415']?.description, /unsupported_media_type/, `${label}: 415 declared`)
  }
  t.match(doc.info.description, /HEAD/, 'HEAD is said to mirror GET')
})

t.test('real answers fit the document', async (t) => {
  const { app } = await buildTestApp(t, { env: { ADMIN_TOKEN, CHECKOUT_RATE_LIMIT: '1' } })
  const doc = (await app.inject('/openapi.json')).json() as Doc
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` }

  const created = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })
  conforms(t, doc, 'POST /billing/checkout', created)
  const limited = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' } })
  t.equal(limited.statusCode, 429)
  conforms(t, doc, 'POST /billing/checkout', limited)

  const id = created.json().tenant_id as string
  const status = await app.inject(`/tenants/${id.toUpperCase()}/status`)
  t.equal(status.statusCode, 200, 'an uppercase id finds its tenant')
  t.equal(status.json().tenant_id, id)
  conforms(t, doc, 'GET /tenants/{id}/status', status)
  // HEAD mirrors GET (info.description), and is not a second operation.
  const head = await app.inject({ method: 'HEAD', url: `/tenants/${id}/status` })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '', 'HEAD: no body')
  t.ok(head.headers['x-request-id'], 'HEAD: the same headers')

  const unauthorized = await app.inject('/admin/tenants')
  t.equal(unauthorized.statusCode, 401)
  conforms(t, doc, 'GET /admin/tenants', unauthorized)

  // Without limit: the default applies.
  const tenants = await app.inject({ url: '/admin/tenants', headers: auth })
  t.equal(tenants.json().limit, 50, 'limit defaults to 50')
  conforms(t, doc, 'GET /admin/tenants', tenants)
  const events = await app.inject({ url: '/admin/events', headers: auth })
  t.equal(events.statusCode, 200)
  conforms(t, doc, 'GET /admin/events', events)
  const shown = await app.inject({ url: `/admin/tenants/${id.toUpperCase()}`, headers: auth })
  t.equal(shown.json().tenant.tenant_id, id)
  conforms(t, doc, 'GET /admin/tenants/{id}', shown)

  const text = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: { ...auth, 'content-type': 'text/plain' }, payload: 'x' })
  t.equal(text.statusCode, 415)
  conforms(t, doc, 'POST /admin/tenants/{id}/retry', text)
  const badJson = await app.inject({ method: 'POST', url: `/admin/tenants/${id}/retry`, headers: { ...auth, 'content-type': 'application/json' }, payload: '{' })
  t.equal(badJson.json().error, 'invalid_json')
  conforms(t, doc, 'POST /admin/tenants/{id}/retry', badJson)

  conforms(t, doc, 'GET /healthz', await app.inject('/healthz'))
})
