import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { main, formatTable } from '../../bootstrap/live-smoke.ts'
import { main as bootstrap } from '../../bootstrap/stripe-bootstrap.ts'
import { capture } from '../helpers/cli-io.ts'
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe.ts'

interface Run { code: number, stdout: string, stderr: string }

async function smoke (argv: string[], env: Record<string, string | undefined>): Promise<Run> {
  const { out, io } = capture()
  const code = await main(argv, env, io)
  return { code, ...out }
}

/** Prices made the way an operator makes them: by running the bootstrap against the fake. */
async function prices (fake: FakeStripe, key: string): Promise<Record<string, string>> {
  const { out, io } = capture()
  const live = key.startsWith('sk_live_') ? ['--live'] : []
  const code = await bootstrap(['--no-webhook', ...live], { STRIPE_SECRET_KEY: key, STRIPE_API_BASE: fake.url }, io, { client: { maxRetries: 0 } })
  if (code !== 0) throw new Error(out.stderr)
  return Object.fromEntries(out.stdout.split('\n').filter((l) => l.startsWith('STRIPE_')).map((l) => l.split('=') as [string, string]))
}

function rows (stdout: string): string[][] {
  return stdout.split('\n').slice(2).filter((l) => /^\d+ {2,}/.test(l)).map((l) => l.split(/ {2,}/))
}

t.test('refuses any key that is not a test key unless ALLOW_LIVE=1', async (t) => {
  const fake = await startFakeStripe(t)
  for (const key of ['sk_live_abc123', 'rk_live_abc123', 'whsec_abc']) {
    const r = await smoke([], { STRIPE_SECRET_KEY: key, STRIPE_API_BASE: fake.url, STRIPE_PRICE_SOLO: 'price_x' })
    t.equal(r.code, 2, key)
    t.match(r.stderr, /^error: refusing to run: STRIPE_SECRET_KEY is not a test key/, key)
    t.match(r.stderr, /ALLOW_LIVE=1/)
    t.notMatch(r.stderr, key, 'the key is not echoed')
    t.equal(r.stdout, '')
  }
  for (const key of ['pk_test_abc123', 'pk_live_abc123']) {
    const r = await smoke([], { STRIPE_SECRET_KEY: key, STRIPE_API_BASE: fake.url, STRIPE_PRICE_SOLO: 'price_x' })
    t.equal(r.code, 2, key)
    t.equal(r.stderr, 'error: STRIPE_SECRET_KEY holds a publishable key (pk_…); the smoke test needs a secret key (sk_test_… or rk_test_…).\n', `${key}: says what the key is and what is needed`)
    t.notMatch(r.stderr, /ALLOW_LIVE/, 'no live-mode advice for a publishable key')
  }
  const none = await smoke([], { STRIPE_API_BASE: fake.url })
  t.equal(none.code, 2)
  t.match(none.stderr, /not set/)
  t.equal(fake.requests.length, 0, 'no Stripe call was made')

  const noPrice = await smoke(['--plan', 'pro'], { STRIPE_SECRET_KEY: 'sk_test_abc', STRIPE_API_BASE: fake.url })
  t.equal(noPrice.code, 2)
  t.match(noPrice.stderr, /STRIPE_PRICE_PRO is not set/)
  const badPlan = await smoke(['--plan', 'enterprise'], { STRIPE_SECRET_KEY: 'sk_test_abc' })
  t.equal(badPlan.code, 2)
  t.match(badPlan.stderr, /--plan must be one of solo, standard, pro/)
  const help = await smoke(['--help'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /ONE real Stripe call/)
  t.equal((await smoke(['--bogus'], {})).code, 2)
  const twice = await smoke(['--plan', 'solo', '--plan', 'pro'], { STRIPE_SECRET_KEY: 'sk_test_abc', STRIPE_API_BASE: fake.url })
  t.equal(twice.code, 2, 'a repeated --plan is refused, not the last one taken')
  t.match(twice.stderr, /^error: --plan given twice\n\nUsage: npm run smoke:live/)
  t.equal(fake.requests.length, 0)
})

t.test('a full run against the fake Stripe: one call, every row OK', async (t) => {
  const fake = await startFakeStripe(t)
  const key = 'sk_test_smokeKey123'
  const env: Record<string, string> = { STRIPE_SECRET_KEY: key, STRIPE_API_BASE: fake.url, STRIPE_WEBHOOK_SECRET: 'whsec_operator_secret_1,whsec_old', LINODE_API_TOKEN: 'must-not-be-used', ...(await prices(fake, key)) }
  const before = fake.requests.length
  const r = await smoke([], env)
  t.equal(r.code, 0, r.stdout + r.stderr)
  const made = fake.requests.slice(before)
  t.same(made.map((x) => `${x.method} ${x.path}`), ['POST /v1/checkout/sessions'], 'exactly one Stripe call')
  t.equal(made[0]?.form.client_reference_id, made[0]?.form.metadata?.tenant_id, 'made by the app\'s checkout route')
  t.equal(made[0]?.form.line_items?.[0]?.price, env.STRIPE_PRICE_SOLO)

  const table = rows(r.stdout)
  t.ok(table.length >= 19, `${table.length} rows`)
  t.ok(table.every((row) => row.at(-1) === 'OK'), 'every row OK')
  const steps = table.map((row) => row[1])
  for (const step of ['checkout session via POST /billing/checkout', 'invoice payment failed', 'subscription deleted → canceled', 'late invoice after cancel', 'redelivered event', 'async payment failed', 'checkout expired', 'invoice for an unknown subscription', 'unsupported event type', 'every supported event exercised', 'audit chain verifies']) {
    t.ok(steps.includes(step), step)
  }
  t.match(r.stdout, /ok \/ past_due/)
  t.match(r.stdout, /ignored_terminal \/ canceled/)
  t.match(r.stdout, /plan pro/)
  t.match(r.stdout, /all \d+ checks OK\n$/)
  t.notMatch(r.stdout + r.stderr, key)
  t.notMatch(r.stdout + r.stderr, 'whsec_operator_secret_1')
})

t.test('a throwaway secret when none is set; a failing checkout is a FAIL row and exit 1', async (t) => {
  const fake = await startFakeStripe(t)
  const key = 'sk_test_smokeKey456'
  const env: Record<string, string> = { STRIPE_SECRET_KEY: key, STRIPE_API_BASE: fake.url, ...(await prices(fake, key)) }
  const ok = await smoke(['--plan', 'pro'], env)
  t.equal(ok.code, 0, ok.stdout)
  t.match(ok.stderr, /throwaway secret/)
  t.match(ok.stdout, /plan standard/, 'the plan change goes to another plan')

  const broken = await smoke([], { ...env, STRIPE_PRICE_SOLO: 'price_does_not_exist' })
  t.equal(broken.code, 1)
  const table = rows(broken.stdout)
  t.equal(table.length, 1)
  t.equal(table[0]?.at(-1), 'FAIL')
  t.match(broken.stdout, /502 stripe_checkout_failed/)
  t.match(broken.stdout, /1 of 1 checks FAILED/)
  t.match(broken.stderr, /^ {2}Stripe: No such price: 'price_does_not_exist' \(resource_missing, HTTP 400\)$/m, "Stripe's own reason, on stderr")
  t.notMatch(broken.stdout + broken.stderr, key)

  // An archived price: the reason is Stripe's, not the app's generic 502.
  fake.state.prices.get(env.STRIPE_PRICE_SOLO!)!.active = false
  const inactive = await smoke([], env)
  t.equal(inactive.code, 1)
  t.match(inactive.stderr, /Stripe: The price specified is inactive\. This field only accepts active prices\./)
  t.notMatch(inactive.stdout + inactive.stderr, key)

  const live = await smoke([], { ...env, STRIPE_SECRET_KEY: 'sk_live_abc123', ALLOW_LIVE: '1', STRIPE_PRICE_SOLO: 'price_nope' })
  t.equal(live.code, 1, 'ALLOW_LIVE=1 lets a live key through (here to a failing checkout)')
  t.equal(fake.requestsTo('POST /v1/checkout/sessions').at(-1)?.headers.authorization, 'Bearer sk_live_abc123')
})

t.test('with a live key (ALLOW_LIVE=1) the events are live-mode ones, as Stripe sends them, and every row is OK', async (t) => {
  const fake = await startFakeStripe(t)
  const key = 'sk_live_smokeKey123'
  const env: Record<string, string> = { STRIPE_SECRET_KEY: key, ALLOW_LIVE: '1', STRIPE_API_BASE: fake.url, STRIPE_WEBHOOK_SECRET: 'whsec_operator_secret_1', ...(await prices(fake, key)) }
  const r = await smoke([], env)
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.ok(rows(r.stdout).every((row) => row.at(-1) === 'OK'), 'every row OK, none ignored as the other mode')
  t.notMatch(r.stdout, /ignored \/ undefined/)
  t.match(r.stdout, /all \d+ checks OK\n$/)
})

t.test('the table marks mismatches', async (t) => {
  const text = formatTable([{ step: 'a', expected: 'ok', got: 'ok', ok: true }, { step: 'longer step', expected: 'ok', got: 'stale', ok: false }])
  const lines = text.trimEnd().split('\n')
  t.equal(lines.length, 4)
  t.match(lines[2], /^1 +a +ok +ok +OK$/)
  t.match(lines[3], /^2 +longer step +ok +stale +FAIL$/)
})

const SCRIPT = fileURLToPath(new URL('../../bootstrap/live-smoke.ts', import.meta.url))

interface Exit { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** `node bootstrap/live-smoke.ts` as an operator runs it, with this environment only. */
function spawnSmoke (env: Record<string, string>) {
  const child = spawn(process.execPath, [SCRIPT], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  return { child, exited }
}

/** A Stripe that takes requests and never answers: a run waits on its one call until stopped. */
async function silentStripe (t: Test): Promise<{ url: string, called: Promise<void> }> {
  const held: ServerResponse[] = []
  let called: () => void = () => {}
  const server = createServer((_req, res) => {
    held.push(res)
    called()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const res of held) res.destroy()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, called: new Promise((resolve) => { called = resolve }) }
}

for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  t.test(`${signal} while Stripe does not answer: the temporary database is removed, exit ${status}`, async (t) => {
    const stripe = await silentStripe(t)
    // A TMPDIR of this test's own, to see what the run leaves in it.
    const temp = mkdtempSync(join(tmpdir(), 'ctfhive-smoke-signal-'))
    t.teardown(() => rmSync(temp, { recursive: true, force: true }))
    const { child, exited } = spawnSmoke({ TMPDIR: temp, STRIPE_SECRET_KEY: 'sk_test_signalKey123', STRIPE_PRICE_SOLO: 'price_signal', STRIPE_API_BASE: stripe.url })
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    await Promise.race([stripe.called, exited.then((r) => { throw new Error(`ended before calling Stripe: ${JSON.stringify(r)}`) })])
    t.match(readdirSync(temp), [/^ctfhive-smoke-/], 'the run made its temporary directory before calling Stripe')
    t.equal(readdirSync(temp).length, 1)
    child.kill(signal)
    const r = await exited
    t.same({ code: r.code, signal: r.signal }, { code: status, signal: null }, r.stderr)
    t.same(readdirSync(temp), [], 'nothing left behind')
    t.match(r.stderr, new RegExp(`interrupted \\(${signal}\\): the temporary database is removed\n$`))
    t.notMatch(r.stderr, /sk_test_signalKey123/)
    t.equal(r.stdout, '')
  })
}

t.test('a TMPDIR that cannot hold the temporary database: one line, exit 2, no stack trace', async (t) => {
  const { exited } = spawnSmoke({ TMPDIR: '/nonexistent', STRIPE_SECRET_KEY: 'sk_test_tmpKey123', STRIPE_PRICE_SOLO: 'price_tmp', STRIPE_API_BASE: 'http://127.0.0.1:9' })
  const r = await exited
  t.equal(r.code, 2)
  t.equal(r.stderr, 'error: cannot create a temporary directory in /nonexistent: ENOENT: no such file or directory\n')
  t.equal(r.stdout, '')
})
