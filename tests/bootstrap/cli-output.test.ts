import t from 'tap'
import { fileURLToPath } from 'node:url'
import { buildTestApp } from '../helpers/build-app.ts'
import { runWithClosedStdout } from '../helpers/cli-io.ts'
import { deliver, invoice, makeEvent } from '../helpers/stripe-events.ts'

const AUDIT = 'audit-secret-for-cli-output-tests-0123456789'
const script = (name: string): string => fileURLToPath(new URL(`../../bootstrap/${name}.ts`, import.meta.url))

t.test('ctfhive: a reader gone before the output (`| head`) ends the run quietly, with its own status', async (t) => {
  const { app, config } = await buildTestApp(t, { env: { PROVISION_AUDIT_SECRET: AUDIT } })
  for (let i = 0; i < 3; i++) await deliver(app, makeEvent('invoice.paid', invoice({ subscription: `sub_epipe_${i}` })))
  const env = { DATABASE_URL: config.databaseUrl, PROVISION_AUDIT_SECRET: AUDIT }
  for (const argv of [['events', '--limit', '500'], ['events', '--json'], ['export']]) {
    const r = await runWithClosedStdout(script('ctfhive'), argv, env)
    t.same(r, { code: 0, signal: null, stderr: '' }, `ctfhive ${argv.join(' ')}: no stack trace, exit 0`)
  }
  // A failure keeps its status and its error line; only the JSON body on stdout is lost.
  const missing = await runWithClosedStdout(script('ctfhive'), ['tenant', 'f'.repeat(32), '--json'], env)
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^error: .*\n$/)
  t.notMatch(missing.stderr, /EPIPE/)
})

t.test('every operator CLI takes a closed stdout calmly', async (t) => {
  for (const name of ['stripe-bootstrap', 'live-smoke', 'linode-check', 'migrate-sqlite-to-postgres']) {
    const r = await runWithClosedStdout(script(name), ['--help'], {})
    t.same(r, { code: 0, signal: null, stderr: '' }, `${name} --help`)
  }
})
