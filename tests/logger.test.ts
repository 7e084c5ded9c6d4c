import t from 'tap'
import { buildTestApp } from './helpers/build-app.ts'
import { deliver, invoice, makeEvent } from './helpers/stripe-events.ts'

t.test('logs carry request ids and never secrets', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const secrets = { SECRET_KEY: 'secret-key-value-0123456789abcdef', PROVISION_AUDIT_SECRET: 'audit-secret-value-0123456789', ADMIN_TOKEN: 'admin-token-value-42' }
  const { app } = await buildTestApp(t, { logLines: lines, env: secrets })
  const r = await app.inject({
    method: 'POST',
    url: '/billing/checkout',
    headers: { authorization: 'Bearer very-private-token', cookie: 'session=abc123secret', 'x-request-id': 'req-from-proxy-1' },
    payload: { plan: 'solo', name: `Leak ${secrets.SECRET_KEY}` }
  })
  t.equal(r.headers['x-request-id'], 'req-from-proxy-1', 'the proxy’s request id is kept and echoed')
  const w = await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_log' })), { secret: 'whsec_wrong' })
  t.equal(w.statusCode, 400)
  app.log.info({ config: app.config }, 'a careless line logging the whole config')
  const text = lines.map((l) => JSON.stringify(l)).join('\n')
  t.ok(lines.some((l) => l.reqId === 'req-from-proxy-1'), 'request lines carry the id')
  for (const needle of ['very-private-token', 'abc123secret', 'whsec_test_secret_for_ctfhive_tests', ...Object.values(secrets)]) {
    t.notOk(text.includes(needle), `no ${needle.slice(0, 12)}… in the logs`)
  }
  t.ok(text.includes('[Redacted]'), 'redaction happened')
  const generated = await app.inject('/healthz')
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'a generated id otherwise')
})
