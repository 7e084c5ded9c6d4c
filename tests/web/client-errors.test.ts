// Client mistakes on the public site are 4xx with a stable code or a normal page, never a 500:
// query values naming Object.prototype members, static-file conditions and ranges, and paths
// the static server refuses.
import { statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { load } from 'cheerio'
import { REGISTER_ERRORS } from '../../api/web/buyer-text.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { buildTestSite } from '../helpers/site-build.ts'

const site = buildTestSite(t)
const PROTOTYPE_KEYS = ['__proto__', 'toString', 'constructor', 'hasOwnProperty', 'valueOf', 'isPrototypeOf']

t.test('error codes naming Object.prototype members render the page, not a 500', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { env: site.env, logLines: lines })
  for (const key of PROTOTYPE_KEYS) {
    const register = await app.inject(`/register?error=${key}`)
    t.equal(register.statusCode, 200, `/register?error=${key}`)
    t.equal(load(register.body)('#form-alert').text(), REGISTER_ERRORS.internal_error!.message, `${key}: the generic message`)

    const field = await app.inject(`/register?error=invalid_request&field=${key}`)
    t.equal(load(field.body)('#form-alert').text(), REGISTER_ERRORS.invalid_request!.message, `field=${key}: a form-wide message`)

    const login = await app.inject(`/login?error=${key}`)
    t.equal(login.statusCode, 200, `/login?error=${key}`)
    t.ok(load(login.body)('#address-error').is('[hidden]'), `${key}: no message on the sign-in page`)
  }
  t.same(lines.filter((l) => Number(l.level) >= 50), [], 'nothing logged at error level')
})

t.test('static-file conditions and ranges carry their own codes; refused paths are misses', async (t) => {
  const { app } = await buildTestApp(t, { env: site.env })
  const size = statSync(join(site.dir, 'favicon.ico')).size

  const range = await app.inject({ url: '/favicon.ico', headers: { range: `bytes=${size + 10}-` } })
  t.equal(range.statusCode, 416)
  t.same(range.json(), { error: 'range_not_satisfiable', message: 'The requested range lies outside the file.' })
  t.equal(range.headers['content-range'], `bytes */${size}`, 'the size the client may ask within')

  const precondition = await app.inject({ url: '/favicon.ico', headers: { 'if-match': '"not-this-etag"' } })
  t.equal(precondition.statusCode, 412)
  t.equal(precondition.json().error, 'precondition_failed')

  // A path @fastify/static refuses (here a NUL byte) names no file: the site's 404, like any miss.
  const nul = await app.inject('/favicon%00.ico')
  t.equal(nul.statusCode, 404)
  t.match(nul.headers['content-type'], /^text\/html/)
  t.equal(load(nul.body)('h1').text(), 'Page not found')
})
