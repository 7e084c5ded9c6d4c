// Strict request bodies: bytes that are not UTF-8, escapes that do not decode and prototype
// keys are 400s that say so and store nothing; a miss is a 404 whatever its body.
import t from 'tap'
import { buildTestApp } from './helpers/build-app.ts'
import { MAX_FORM_FIELDS, parseForm } from '../api/request-bodies.ts'

t.test('parseForm: + is a space, repeats are arrays, no prototype, strict decoding', async (t) => {
  const f = parseForm('plan=solo&name=Caf%C3%A9+Night&x=1&x=2&x=3&empty=&flag&__proto__=p')
  t.equal(Object.getPrototypeOf(f), null)
  t.equal(f.plan, 'solo')
  t.equal(f.name, 'Café Night')
  t.same(f.x, ['1', '2', '3'])
  t.equal(f.empty, '')
  t.equal(f.flag, '')
  t.equal(f.__proto__, 'p', 'a plain field, not a prototype')
  t.same(Object.keys(parseForm('')), [])
  t.equal(parseForm('name=Caf\u00e9').name, 'Café', 'raw UTF-8 (curl -d) is taken as it is')
  for (const bad of ['name=%FF%FE', 'name=%E0%A4%A', 'name=%', 'name=%zz', '%FF=x', 'name=\uFFFD']) {
    t.throws(() => parseForm(bad), { code: 'invalid_request', statusCode: 400 }, bad)
  }
  t.equal(Object.keys(parseForm(Array.from({ length: MAX_FORM_FIELDS }, (_, i) => `f${i}=v`).join('&'))).length, MAX_FORM_FIELDS, 'up to the limit: taken')
  t.same(parseForm(Array(MAX_FORM_FIELDS).fill('a=1').join('&')).a, Array(MAX_FORM_FIELDS).fill('1'), 'a name repeated up to the limit: every value, in order')
  t.throws(() => parseForm(Array(MAX_FORM_FIELDS + 1).fill('a').join('&')), { code: 'invalid_request', message: `The form body has more than ${MAX_FORM_FIELDS} fields.` })
})

t.test('a form body of tens of thousands of fields (a 64 KiB `a&a&…`) is refused before any work on them', async (t) => {
  const { app, store } = await buildTestApp(t)
  const bomb = Array(32_000).fill('a').join('&')
  for (let i = 0; i < 3; i++) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: bomb })
    t.equal(r.statusCode, 400)
    t.match(r.json(), { error: 'invalid_request', message: /more than 100 fields/ })
  }
  t.equal(await store.countTenants(), 0)
})

t.test('checkout refuses what does not decode, and creates nothing', async (t) => {
  const { app, store } = await buildTestApp(t)
  const cases: Array<{ type: string, body: string | Buffer, error: string, message: RegExp }> = [
    { type: 'application/x-www-form-urlencoded', body: 'plan=solo&name=%FF%FE', error: 'invalid_request', message: /percent-escape that is not valid UTF-8/ },
    { type: 'application/x-www-form-urlencoded', body: 'plan=solo&name=%E0%A4%A', error: 'invalid_request', message: /percent-escape/ },
    { type: 'application/x-www-form-urlencoded', body: Buffer.from([...Buffer.from('plan=solo&name='), 0xff, 0xfe]), error: 'invalid_request', message: /not valid UTF-8/ },
    { type: 'application/json', body: Buffer.from([...Buffer.from('{"plan":"solo","name":"'), 0xff, 0xfe, ...Buffer.from('"}')]), error: 'invalid_json', message: /not valid UTF-8/ },
    { type: 'application/json', body: '{"plan":"solo","__proto__":{"x":1}}', error: 'invalid_request', message: /__proto__/ },
    { type: 'application/json', body: '{"plan":"solo","constructor":{"prototype":{"x":1}}}', error: 'invalid_request', message: /constructor/ },
    { type: 'application/json', body: '{"plan":', error: 'invalid_json', message: /not valid JSON/ },
    { type: 'application/json', body: '', error: 'invalid_json', message: /not valid JSON/ }
  ]
  for (const c of cases) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': c.type }, payload: c.body })
    t.equal(r.statusCode, 400, `${c.type} ${String(c.body)}`)
    t.match(r.json(), { error: c.error, message: c.message })
  }
  t.equal(await store.countTenants(), 0, 'no tenant')

  // The same bytes, well formed, are taken.
  const ok = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'plan=solo&name=Caf%C3%A9+Night' })
  t.equal(ok.statusCode, 200)
  t.equal((await store.getTenant(ok.json().tenant_id))?.name, 'Café Night')
  const json = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'application/json; charset=utf-8' }, payload: Buffer.from('\uFEFF{"plan":"solo","name":"Ünïcødé"}') })
  t.equal(json.statusCode, 200, 'a leading BOM is allowed')
  t.equal((await store.getTenant(json.json().tenant_id))?.name, 'Ünïcødé')
})

t.test('a browser form that does not decode goes back to the form', async (t) => {
  const { app, store } = await buildTestApp(t)
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, payload: 'plan=solo&name=%FF' })
  t.equal(r.statusCode, 303)
  t.match(r.headers.location, /^\/register\?plan=&error=invalid_request$|^\/register\?error=invalid_request$/)
  t.equal(await store.countTenants(), 0)
})

t.test('a route that does not exist is a 404, a wrong method a 405, whatever the body', async (t) => {
  const { app } = await buildTestApp(t)
  for (const [method, url, status] of [['PUT', '/billing/checkout', 405], ['POST', '/nonexistent', 404], ['DELETE', `/tenants/${'a'.repeat(32)}/status`, 405], ['PATCH', '/admin/x', 404]] as const) {
    for (const [type, body] of [['application/json', '{'], ['application/json', '{"__proto__":{}}'], ['application/json', Buffer.from([0xff])], ['text/xml', '<x/>'], ['application/x-www-form-urlencoded', 'a=%FF']] as const) {
      const r = await app.inject({ method, url, headers: { 'content-type': type }, payload: body })
      t.equal(r.statusCode, status, `${method} ${url} ${type}`)
      t.equal(r.json().error, status === 404 ? 'not_found' : 'method_not_allowed')
    }
  }
})

t.test('415 names what the route takes', async (t) => {
  const { app } = await buildTestApp(t, { env: { ADMIN_TOKEN: 'admin-token-for-body-tests-0123456789' } })
  const checkout = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'text/xml' }, payload: '<plan/>' })
  t.equal(checkout.statusCode, 415)
  t.same(checkout.json(), { error: 'unsupported_media_type', message: 'Send application/json or application/x-www-form-urlencoded.' })
  const admin = await app.inject({
    method: 'POST',
    url: `/admin/tenants/${'a'.repeat(32)}/retry`,
    headers: { authorization: 'Bearer admin-token-for-body-tests-0123456789', 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'a=b'
  })
  t.equal(admin.statusCode, 415)
  t.same(admin.json(), { error: 'unsupported_media_type', message: 'Send application/json.' })
})

t.test('an empty name: "not given" in a form, a mistake in JSON', async (t) => {
  const { app, store } = await buildTestApp(t)
  const form = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'plan=solo&name=+++&email=' })
  t.equal(form.statusCode, 200, 'a form sends every input, empty or not')
  t.match(await store.getTenant(form.json().tenant_id), { name: 'ctfhive-event', email: '' })
  for (const body of [{ plan: 'solo', name: '' }, { plan: 'solo', name: '   ' }, { plan: 'solo', email: '' }]) {
    const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: body })
    t.equal(r.statusCode, 400, JSON.stringify(body))
    t.match(r.json(), { error: 'invalid_request', field: 'name' in body ? 'name' : 'email' })
  }
  t.equal(await store.countTenants(), 1, 'nothing more stored')
  const trimmed = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: '  Spaced CTF  ' } })
  t.equal((await store.getTenant(trimmed.json().tenant_id))?.name, 'Spaced CTF', 'JSON values are trimmed too')
})

t.test('no route takes text/plain', async (t) => {
  const token = 'admin-token-for-body-tests-0123456789'
  const { app } = await buildTestApp(t, { env: { ADMIN_TOKEN: token } })
  const admin = await app.inject({ method: 'POST', url: `/admin/tenants/${'a'.repeat(32)}/retry`, headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, payload: 'x' })
  t.equal(admin.statusCode, 415)
  t.equal(admin.json().message, 'Send application/json.')
  const checkout = await app.inject({ method: 'POST', url: '/billing/checkout', headers: { 'content-type': 'text/plain' }, payload: 'plan=solo' })
  t.equal(checkout.statusCode, 415)
  const none = await app.inject({ method: 'POST', url: `/admin/tenants/${'a'.repeat(32)}/retry`, headers: { authorization: `Bearer ${token}` } })
  t.equal(none.statusCode, 404, 'no body at all is fine')
  t.equal(none.json().error, 'tenant_not_found')
})
