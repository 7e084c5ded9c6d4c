import t, { type Test } from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { forTerminal, main } from '../../bootstrap/ctfhive.ts'
import { displayWidth } from '../../bootstrap/table.ts'
import { makeTenant } from '../store/contract.ts'
import { auditMac } from '../../api/provisioning/audit.ts'
import { verifyWelcomeToken } from '../../api/tenants/welcome-token.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent } from '../helpers/stripe-events.ts'
import { nextMillisecond } from '../helpers/until.ts'
import { asLeftByOlderRelease, rollbackSql } from '../helpers/schema-rollback.ts'
import { refusedUrls, usePostgres } from '../helpers/postgres.ts'
import { runAll } from '../helpers/job-runner.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { ExecutorError } from '../../api/provisioning/executor.ts'
import { PostgresStore } from '../../api/store/postgres.ts'

const AUDIT = 'audit-secret-for-cli-tests-0123456789abcdef'

interface Run { code: number, stdout: string, stderr: string }

async function cli (argv: string[], env: Record<string, string>): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, env, { stdout: { write: (s: string) => { stdout += s } }, stderr: { write: (s: string) => { stderr += s } } })
  return { code, stdout, stderr }
}

async function pendingTenant (app: FastifyInstance, name: string): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name, email: 'ops@cli.test' } })
  await nextMillisecond() // the tests assert the listing order
  return r.json().tenant_id
}

async function setup (t: Test, env: Record<string, string> = {}) {
  const built = await buildTestApp(t, { env: { PROVISION_AUDIT_SECRET: AUDIT, ...env } })
  const cliEnv = { DATABASE_URL: built.config.databaseUrl, PROVISION_AUDIT_SECRET: AUDIT }
  return { ...built, cliEnv, run: (argv: string[], extra: Record<string, string> = {}) => cli(argv, { ...cliEnv, ...extra }) }
}

t.test('tables stay aligned with wide and escaped characters in a cell; an option given twice is bad usage', async (t) => {
  const { app, run } = await setup(t)
  await pendingTenant(app, '東京セキュリティ研究会')
  // A name an older release took (checkout refuses it now): shown escaped, as \u{202e}.
  await app.store.insertTenant(makeTenant({ name: 'Bidi\u202eCTF', slug: 'bidi-ctf', fqdn: 'bidi-ctf.ctfhive.us' }))
  const lines = (await run(['tenants'])).stdout.split('\n')
  const column = lines[0]!.indexOf('fqdn')
  const rows = lines.filter((l) => /\.ctfhive\.us/.test(l))
  t.equal(rows.length, 2)
  t.ok(rows.some((r) => r.includes('Bidi\\u{202e}CTF')), 'the escaped name')
  for (const row of rows) {
    const fqdn = /\S+\.ctfhive\.us/.exec(row)!
    t.equal(displayWidth(row.slice(0, fqdn.index)), column, `the fqdn column starts where its header does: ${JSON.stringify(row)}`)
  }
  const twice = await run(['tenants', '--limit', '1', '--limit', '2'])
  t.equal(twice.code, 2)
  t.match(twice.stderr, /^error: --limit given twice\n/)
})

t.test('tenants: a table by default, JSON with --json, filters and paging', async (t) => {
  const { app, run } = await setup(t)
  const a = await pendingTenant(app, 'Alpha CTF')
  const b = await pendingTenant(app, 'Bravo CTF')
  t.equal((await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: b, plan: 'solo', subscription: 'sub_b' })))).json().tenant_state, 'active')

  const human = await run(['tenants'])
  t.equal(human.code, 0, human.stderr)
  const lines = human.stdout.trimEnd().split('\n')
  t.match(lines[0], /^id +state +plan +name +fqdn +created$/)
  t.match(lines[2], new RegExp(`^${b} +active +solo +Bravo CTF`), 'newest first')
  t.match(lines[3], new RegExp(`^${a} +provisioning +solo +Alpha CTF`))
  t.equal(lines.at(-1), '1–2 of 2 tenants')

  const json = await run(['tenants', '--json', '--state', 'active'])
  t.equal(json.code, 0)
  const page = JSON.parse(json.stdout)
  t.equal(page.total, 1)
  t.same(page.tenants.map((x: { tenant_id: string }) => x.tenant_id), [b])

  const paged = JSON.parse((await run(['tenants', '--json', '--limit', '1', '--offset', '1'])).stdout)
  t.same(paged.tenants.map((x: { tenant_id: string }) => x.tenant_id), [a])
  t.equal(paged.total, 2)
  t.match((await run(['tenants', '--state', 'failed'])).stdout, /none of 0 failed tenants/)

  // By cursor: the first page prints the command for the next.
  const first = await run(['tenants', '--limit', '1'])
  const hint = first.stdout.trim().split('\n').at(-1)!
  t.match(hint, /^next page: ctfhive tenants --limit 1 --after [A-Za-z0-9_-]+$/)
  const cursor = hint.split(' ').at(-1)!
  const rest = await run(['tenants', '--limit', '1', '--after', cursor])
  t.equal(rest.code, 0, rest.stderr)
  t.match(rest.stdout, new RegExp(`^${a} +provisioning`, 'm'))
  t.equal(rest.stdout.trim().split('\n').at(-1), '1 more of 2 tenants', 'the last page names no next')
  t.equal(JSON.parse((await run(['tenants', '--json', '--limit', '1', '--after', cursor])).stdout).next, null)
  for (const [argv, message] of [[['tenants', '--after', 'nope'], /--after takes the cursor a page of tenants printed/], [['tenants', '--after', cursor, '--offset', '1'], /give --offset or --after, not both/]] as const) {
    const r = await run([...argv])
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.stderr, message)
  }

  for (const argv of [['tenants', '--state', 'asleep'], ['tenants', '--limit', '0'], ['tenants', '--limit', 'ten'], ['tenants', 'extra']]) {
    const r = await run(argv)
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.stderr, /^error: /)
  }
})

t.test('tenant <id>: details, events, audit, jobs; unknown ids fail', async (t) => {
  const { app, run } = await setup(t)
  const id = await pendingTenant(app, 'Show CTF')
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_show' })))
  const r = await run(['tenant', id])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, new RegExp(`tenant: +${id}`))
  t.match(r.stdout, /state: +active \(billing paid, infra ready\)/)
  t.match(r.stdout, /email: +ops@cli\.test/)
  t.match(r.stdout, /subscriptions \(2\)\nid +status +since +plan +ended +paid\n[- ]+\n\(none named\) +pending +- +\w+ +no +no\nsub_show +paid +\d{4}-\d\d-\d\dT[\d:.]+Z +solo +no +yes\n/)
  t.notMatch(r.stdout, /checkout failed/)
  t.match(r.stdout, /events \(1\)\n/)
  t.match(r.stdout, /checkout\.session\.completed +ok/)
  t.match(r.stdout, /tenant\.created/)
  t.match(r.stdout, /jobs \(1\)\n[\s\S]*provision +done +healthy +\d{4}-\d\d-\d\dT[\d:.]+Z +0 +-/)
  t.match(r.stdout, /step +since +attempts +last error/)
  const json = JSON.parse((await run(['tenant', id, '--json'])).stdout)
  t.equal(json.tenant.subscription_id, 'sub_show')
  t.equal(json.events.length, 1)
  t.match(json.subscriptions, [{ id: null, status: 'pending', paid: false }, { id: 'sub_show', status: 'paid', plan: 'solo', ended: false, paid: true }])
  t.equal(json.checkout_failed, null)

  const missing = await run(['tenant', '0123456789abcdef0123456789abcdef'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /No tenant has the id/)
  const missingJson = await run(['tenant', '0123456789abcdef0123456789abcdef', '--json'])
  t.equal(JSON.parse(missingJson.stdout).error, 'tenant_not_found')
  t.equal((await run(['tenant'])).code, 2)
})

t.test('retry: re-queues a failed provisioning for the server to run; refuses otherwise', async (t) => {
  const { app, executor, run, store } = await setup(t, { PROVISION_MAX_ATTEMPTS: '1' })
  executor.failNext('create', 1)
  const id = await pendingTenant(app, 'Retry CTF')
  t.equal((await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_r' })))).json().tenant_state, 'failed')

  const wrongKey = await run(['retry', id], { PROVISION_AUDIT_SECRET: 'not-the-servers-audit-secret' })
  t.equal(wrongKey.code, 2)
  t.match(wrongKey.stderr, /does not match the audit chain/)
  t.equal((await store.getTenant(id))?.infra, 'failed', 'nothing appended or changed')

  const r = await run(['retry', id])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, new RegExp(`retry queued for ${id} \\(Retry CTF\\): state provisioning`))
  // The app's own job runner (the "server") picks the job up.
  for (let i = 0; i < 400 && (await store.getTenant(id))?.infra !== 'ready'; i++) await sleep(25)
  t.equal((await store.getTenant(id))?.infra, 'ready')
  t.equal(executor.calls.create, 2)

  const again = await run(['retry', id])
  t.equal(again.code, 1)
  t.match(again.stderr, /^error: Only a failed provisioning, resize or teardown can be retried; this tenant is active and has no failed resize\./)
  t.equal((await run(['audit', 'verify'])).code, 0, 'the CLI\'s audit entries chain correctly')
})

t.test('welcome-link: the link support sends a buyer who lost theirs; it opens their order on the server', async (t) => {
  const SECRET = 'a-server-secret-key-of-at-least-32-characters'
  const { app, run } = await setup(t, { SECRET_KEY: SECRET, PUBLIC_BASE_URL: 'https://ctfhive.example' })
  const id = await pendingTenant(app, 'Lost Link CTF')
  const human = await run(['welcome-link', id], { SECRET_KEY: SECRET, PUBLIC_BASE_URL: 'https://ctfhive.example' })
  t.equal(human.code, 0, human.stderr)
  t.equal(human.stderr, '', 'no warning under the server\'s key')
  const url = new URL(human.stdout.split('\n')[0]!)
  t.equal(url.origin, 'https://ctfhive.example')
  t.equal(url.pathname, '/welcome')
  t.equal(url.searchParams.get('tenant'), id)
  t.match(human.stdout, 'send it only to the buyer (ops@cli.test)')
  t.ok(verifyWelcomeToken(SECRET, id, url.searchParams.get('token')!), 'signed as the server signs it')
  // The server takes it: a not-yet-live CTF's credentials are "not ready", not "forbidden".
  const page = await app.inject(`/tenants/${id}/credentials?token=${url.searchParams.get('token')}`)
  t.equal(page.json().error, 'tenant_not_ready', 'the server takes it')

  const json = await run(['welcome-link', id, '--json'], { SECRET_KEY: SECRET, PUBLIC_BASE_URL: 'https://ctfhive.example' })
  t.same(JSON.parse(json.stdout), { tenant_id: id, email: 'ops@cli.test', welcome_url: url.href })

  const dev = await run(['welcome-link', id])
  t.equal(dev.code, 0)
  t.match(dev.stderr, /^warning: SECRET_KEY is not set/, 'under the development key it says the link opens only on a server without one')
  t.notOk(verifyWelcomeToken(SECRET, id, new URL(dev.stdout.split('\n')[0]!).searchParams.get('token')!))

  const unknown = await run(['welcome-link', 'f'.repeat(32)])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /No tenant has the id/)
  t.equal((await run(['welcome-link'])).code, 2, 'the id is required')
})

t.test('welcome-link: a PUBLIC_BASE_URL unset or on loopback is warned of; the server\'s real one is not', async (t) => {
  const SECRET = 'a-server-secret-key-of-at-least-32-characters'
  const { app, run } = await setup(t)
  const id = await pendingTenant(app, 'Base URL CTF')
  const unset = await run(['welcome-link', id], { SECRET_KEY: SECRET })
  t.equal(unset.code, 0, unset.stderr)
  t.equal(unset.stderr, 'warning: PUBLIC_BASE_URL is not set (the development default, http://localhost:3000): this link opens only on that address, which the buyer cannot reach; set the server\'s PUBLIC_BASE_URL\n')
  t.match(unset.stdout, /^http:\/\/localhost:3000\/welcome\?/, 'the link is still printed')
  t.equal((await run(['welcome-link', id, '--json'], { SECRET_KEY: SECRET, PUBLIC_BASE_URL: ' ' })).stderr, unset.stderr, 'blank is unset, with --json too')
  for (const base of ['http://localhost:3000', 'http://127.0.0.1:8080', 'http://[::1]:3000', 'https://ctf.localhost']) {
    const r = await run(['welcome-link', id], { SECRET_KEY: SECRET, PUBLIC_BASE_URL: base })
    t.equal(r.code, 0, base)
    t.equal(r.stderr, `warning: PUBLIC_BASE_URL is ${new URL(base).origin}, a loopback address: this link opens only on that address, which the buyer cannot reach; set the server's PUBLIC_BASE_URL\n`, base)
    t.equal(new URL(r.stdout.split('\n')[0]!).origin, new URL(base).origin)
  }
  for (const base of ['https://ctfhive.example', 'http://203.0.113.7:3000', 'https://localhost.example']) {
    const r = await run(['welcome-link', id], { SECRET_KEY: SECRET, PUBLIC_BASE_URL: base })
    t.equal(r.code, 0, base)
    t.equal(r.stderr, '', `${base}: no warning`)
  }
  const both = await run(['welcome-link', id])
  t.match(both.stderr, /^warning: SECRET_KEY is not set[^\n]*\nwarning: PUBLIC_BASE_URL is not set[^\n]*\n$/, 'each problem on its own line')
})

t.test('a malformed tenant id is bad usage (exit 2) for tenant, retry and welcome-link, not "no such tenant"', async (t) => {
  const { app, run } = await setup(t)
  const id = await pendingTenant(app, 'Malformed Id CTF')
  const upper = 'ABCDEF0123456789ABCDEF0123456789'
  for (const command of ['tenant', 'retry', 'welcome-link']) {
    for (const json of [[], ['--json']]) {
      const bad = await run([command, 'nothex', ...json])
      t.equal(bad.code, 2, `${command} nothex`)
      t.equal(bad.stderr, 'error: a tenant id is 32 hex characters, got "nothex"\n', `${command} nothex`)
      t.equal(bad.stdout, '')
      // Upper case is the same id (as in the API): an unknown one is not found, not bad usage.
      const cased = await run([command, upper, ...json])
      t.equal(cased.code, 1, `${command} in upper case is looked up`)
    }
    const near = await run([command, `${id}0`])
    t.equal(near.code, 2, `${command}: 33 characters`)
    const control = await run([command, 'x\u009b31m'])
    t.equal(control.stderr, 'error: a tenant id is 32 hex characters, got "x\\u{9b}31m"\n', `${command}: a control character is shown as its code`)
    const unknown = await run([command, '0123456789abcdef0123456789abcdef'])
    t.equal(unknown.code, 1, `${command}: a well-formed id that names no tenant is still not found`)
    t.match(unknown.stderr, /No tenant has the id/)
  }
  const found = await run(['tenant', id.toUpperCase(), '--json'])
  t.equal(found.code, 0, 'a real id copied in upper case finds its tenant')
  t.equal(JSON.parse(found.stdout).tenant.tenant_id, id)
  // Event ids have no such shape: replay still looks them up.
  const replay = await run(['replay', 'NOTHEX'])
  t.equal(replay.code, 1)
  t.match(replay.stderr, /No stored event has the id NOTHEX/)
})

t.test('audit verify: OK, then the first bad seq with exit 1', async (t) => {
  const { app, run, config } = await setup(t)
  await pendingTenant(app, 'Audit One')
  await pendingTenant(app, 'Audit Two')
  const ok = await run(['audit', 'verify'])
  t.equal(ok.code, 0)
  const head = /^audit chain OK: 2 entries, last seq 2\nhead (2:[0-9a-f]{64}) \(keep it away from this database: --anchor with it later proves no entry was cut from the end\)\n$/.exec(ok.stdout)
  t.ok(head, ok.stdout)
  const anchored = await run(['audit', 'verify', '--anchor', head![1]!, '--json'])
  t.equal(anchored.code, 0, 'the chain reaches its own head')
  t.match(JSON.parse(anchored.stdout), { ok: true, lastSeq: 2, lastMac: head![1]!.slice(2) })
  const beyond = await run(['audit', 'verify', '--anchor', `3:${head![1]!.slice(2)}`])
  t.equal(beyond.code, 1, 'an anchor past the end: entries were cut off')
  t.equal(beyond.stdout, 'audit chain BROKEN at seq 3 (truncated): the chain ends at seq 2, before the anchor\'s seq 3: entries were removed from its end\n')
  const garbled = await run(['audit', 'verify', '--anchor', '2:xyz'])
  t.equal(garbled.code, 2)
  t.match(garbled.stderr, /--anchor takes a head as `audit verify` printed it/)

  const db = new DatabaseSync(config.databaseUrl.replace(/^sqlite:/, ''))
  t.teardown(() => db.close())
  db.prepare("UPDATE audit_log SET action = 'tenant.deleted' WHERE seq = 2").run()
  const bad = await run(['audit', 'verify'])
  t.equal(bad.code, 1)
  t.match(bad.stdout, /^audit chain BROKEN at seq 2 \(modified\)/)
  const json = JSON.parse((await run(['audit', 'verify', '--json'])).stdout)
  t.same([json.ok, json.badSeq, json.problem], [false, 2, 'modified'])
  t.equal((await run(['audit'])).code, 2)
  t.equal((await run(['audit', 'check'])).code, 2)
})

t.test('audit verify: a missing or wrong key is a key problem, not tampering', async (t) => {
  const { app, run, cliEnv } = await setup(t)
  await pendingTenant(app, 'Key One')
  await pendingTenant(app, 'Key Two')

  for (const [name, env] of [['unset', { DATABASE_URL: cliEnv.DATABASE_URL }], ['the dev default', { ...cliEnv, PROVISION_AUDIT_SECRET: 'audit-dev-secret' }]] as const) {
    const r = await cli(['audit', 'verify'], env)
    t.equal(r.code, 2, `${name}: a configuration error`)
    t.equal(r.stdout, '', `${name}: no verdict`)
    const lines = r.stderr.trimEnd().split('\n')
    t.equal(lines.length, 1, `${name}: one line`)
    t.match(lines[0], /^error: PROVISION_AUDIT_SECRET is not set \(or is the development default\)/)
    t.notMatch(r.stdout + r.stderr, /BROKEN|modified/, `${name}: no tampering alarm`)
  }

  const wrong = await run(['audit', 'verify'], { PROVISION_AUDIT_SECRET: 'not-the-servers-audit-secret' })
  t.equal(wrong.code, 1)
  t.equal(wrong.stdout, "audit chain NOT VERIFIED: PROVISION_AUDIT_SECRET does not match this chain's first entry: the wrong key (set the server's secret), or entry 1 was altered\n")
  t.notMatch(wrong.stdout, /BROKEN/)
  const json = JSON.parse((await run(['audit', 'verify', '--json'], { PROVISION_AUDIT_SECRET: 'not-the-servers-audit-secret' })).stdout)
  t.same([json.ok, json.badSeq, json.problem], [false, 1, 'key_mismatch'])

  // The server's key verifies the same chain.
  t.equal((await run(['audit', 'verify'])).code, 0)
})

t.test('audit verify: entries cut from the start and the rest renumbered are reported as removed, not as a wrong key', async (t) => {
  const { app, run, config } = await setup(t)
  for (const name of ['Cut One', 'Cut Two', 'Cut Three']) await pendingTenant(app, name)
  const db = new DatabaseSync(config.databaseUrl.replace(/^sqlite:/, ''))
  t.teardown(() => db.close())
  const total = (db.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n
  db.exec('DELETE FROM audit_log WHERE seq <= 2; UPDATE audit_log SET seq = seq + 1000; UPDATE audit_log SET seq = seq - 1002')
  const r = await run(['audit', 'verify', '--json'])
  t.equal(r.code, 1)
  t.match(JSON.parse(r.stdout), { ok: false, entries: total - 2, badSeq: 1, problem: 'removed', reason: /renumbered by 2/ })
  const text = await run(['audit', 'verify'])
  t.match(text.stdout, /^audit chain BROKEN at seq 1 \(removed\)/)
  t.notMatch(text.stdout, /PROVISION_AUDIT_SECRET/, 'no wrong-key advice: entries verify under this key')
})

t.test('a chain whose key changed midway: appends need the last entry\'s key; verify says the key changed', async (t) => {
  const { app, run, store } = await setup(t)
  await pendingTenant(app, 'Before The Change')
  // A server of an earlier release restarted under another key went on appending under it
  // (this release's appendAudit refuses to chain to an entry of another key).
  const changed = 'audit-secret-changed-midway-0123456789abcdef'
  const entry = { at: new Date().toISOString(), tenant: 'b'.repeat(32), action: 'step.after_change', detail: {} }
  await store.appendAudit(entry, (prevMac, seq) => auditMac(changed, prevMac, { seq, ...entry }))

  const underFirst = await run(['replay', 'evt_none'])
  t.equal(underFirst.code, 2, 'the first entry\'s key would append onto an entry written under another')
  t.match(underFirst.stderr, /^error: PROVISION_AUDIT_SECRET does not match the audit chain in this database \(its last entry/)
  const underLast = await run(['replay', 'evt_none'], { PROVISION_AUDIT_SECRET: changed })
  t.equal(underLast.code, 1, 'the last entry\'s key passes the check (the event is then not found)')
  t.match(underLast.stderr, /No stored event has the id evt_none/)

  const verifyLast = await run(['audit', 'verify', '--json'], { PROVISION_AUDIT_SECRET: changed })
  t.equal(verifyLast.code, 1)
  t.match(JSON.parse(verifyLast.stdout), { ok: false, badSeq: 1, problem: 'key_mismatch', reason: /matches its last: the key was changed/ })
  const verifyFirst = await run(['audit', 'verify'])
  t.equal(verifyFirst.code, 1)
  t.match(verifyFirst.stdout, /^audit chain BROKEN at seq 2 \(modified\)/, 'under the first key: the break where the other key began')
})

t.test('audit verify: an unset key on a chain written under the dev default is fine', async (t) => {
  const built = await buildTestApp(t, { env: {} })
  await pendingTenant(built.app, 'Dev One')
  const r = await cli(['audit', 'verify'], { DATABASE_URL: built.config.databaseUrl })
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^audit chain OK: 1 entries, last seq 1\nhead 1:/)
})

t.test('events and replay: an unmatched event replayed once its tenant exists', async (t) => {
  const { app, run, store, config } = await setup(t)
  const base = Math.floor(Date.now() / 1000)
  const failed = makeEvent('invoice.payment_failed', invoice({ subscription: 'sub_late' }), { created: base + 10 })
  t.equal((await deliver(app, failed)).json().status, 'unmatched')
  // This release applies it when the subscription's tenant appears; an older one did not.
  asLeftByOlderRelease(config.databaseUrl, failed.id)
  const id = await pendingTenant(app, 'Late CTF')
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_late' }), { created: base }))

  const events = await run(['events'])
  t.equal(events.code, 0)
  t.match(events.stdout, new RegExp(`${failed.id} +invoice\\.payment_failed +unmatched +-`))

  const r = await run(['replay', failed.id])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, `replayed ${failed.id} (was unmatched) as ${failed.id}:replay:1: ok (tenant ${id}, state past_due)\n`)
  t.equal(r.stderr, 'warning: BASE_DOMAIN and STRIPE_SECRET_KEY are not set: the replay uses their defaults, not the server\'s; run it with the server\'s whole environment (its env file)\n',
    'settings the replay acts on, left to their defaults, are named')
  t.equal((await store.getTenant(id))?.billing, 'past_due')
  const second = await run(['replay', failed.id, '--json'], { BASE_DOMAIN: 'ctfhive.test' })
  const json = JSON.parse(second.stdout)
  t.equal(json.replay_id, `${failed.id}:replay:2`)
  t.match(second.stderr, /^warning: STRIPE_SECRET_KEY is not set: the replay uses its default, not the server's/)
  const missing = await run(['replay', 'evt_missing'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /No stored event has the id evt_missing/)
  t.equal((await run(['replay'])).code, 2)
  // The webhook took it under a test key (none here says otherwise); a live key now refuses it.
  const live = await run(['replay', failed.id], { STRIPE_SECRET_KEY: 'sk_live_' + 'x'.repeat(24) })
  t.equal(live.code, 1)
  t.match(live.stderr, /is from Stripe's test mode and STRIPE_SECRET_KEY is a live key: it is not replayed/)
  t.notMatch(live.stderr, /STRIPE_SECRET_KEY is not set/)
  t.equal(await store.getEvent(`${failed.id}:replay:3`), undefined, 'nothing recorded')
})

t.test('events: of one outcome, a page at a time; each page prints the command for the next', async (t) => {
  const { run, store } = await setup(t)
  // Received in one millisecond, renewals among them: the id orders them, the last received first.
  const received = new Date().toISOString()
  for (const [id, outcome] of [['evt_a', 'unmatched'], ['evt_b', 'ok'], ['evt_c', 'unmatched'], ['evt_d', 'ok'], ['evt_e', 'unmatched']] as const) {
    await store.recordEvent({ id, type: 'invoice.paid', created: 1_900_000_000, received, outcome, tenant: null, payload: '{}' })
  }

  const first = await run(['events', '--outcome', 'unmatched', '--limit', '2'])
  t.equal(first.code, 0, first.stderr)
  const lines = first.stdout.trimEnd().split('\n')
  t.match(lines[0], /^id +type +outcome +tenant +received$/)
  t.same(lines.slice(2, 4).map((l) => l.split(/ +/)[0]), ['evt_e', 'evt_c'])
  const hint = lines.at(-1)!
  t.match(hint, /^next page: ctfhive events --outcome unmatched --limit 2 --after [A-Za-z0-9_-]+$/)
  const cursor = hint.split(' ').at(-1)!
  const rest = await run(hint.replace(/^next page: ctfhive /, '').split(' '))
  t.equal(rest.code, 0, rest.stderr)
  t.same(rest.stdout.trimEnd().split('\n').slice(2).map((l) => l.split(/ +/)[0]), ['evt_a'], 'the last page names no next')
  const json = JSON.parse((await run(['events', '--json', '--outcome', 'unmatched', '--limit', '2'])).stdout)
  t.same(json.events.map((e: { id: string }) => e.id), ['evt_e', 'evt_c'])
  t.equal(json.next, cursor, '--json carries next')
  t.same(JSON.parse((await run(['events', '--json', '--outcome', 'unmatched', '--limit', '2', '--after', cursor])).stdout), { events: [{ id: 'evt_a', type: 'invoice.paid', created: 1_900_000_000, received, outcome: 'unmatched', tenant: null }], next: null })
  t.match((await run(['events', '--limit', '4'])).stdout, /^next page: ctfhive events --limit 4 --after \S+\n$/m, 'without --outcome')
  t.equal((await run(['events', '--outcome', 'stale'])).stdout.trimEnd().split('\n').at(-1), 'no stale events')

  const tenantsCursor = Buffer.from(JSON.stringify([received, 'a'.repeat(32)])).toString('base64url')
  for (const [argv, message] of [
    [['events', '--outcome', 'lost'], /^error: --outcome must be one of ok, stale, ignored_terminal, unmatched\n$/],
    [['events', '--after', 'nope'], /^error: --after takes the cursor a page of events printed\n$/],
    [['events', '--after', tenantsCursor], /^error: --after takes the cursor a page of events printed\n$/],
    [['tenants', '--after', cursor], /^error: --after takes the cursor a page of tenants printed\n$/]
  ] as Array<[string[], RegExp]>) {
    const r = await run(argv)
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.stderr, message, argv.join(' '))
    t.equal(r.stdout, '')
  }
})

t.test('export: every tenant as JSON', async (t) => {
  const { app, run } = await setup(t)
  const a = await pendingTenant(app, 'Export One')
  const b = await pendingTenant(app, 'Export Two')
  const r = await run(['export'])
  t.equal(r.code, 0)
  const body = JSON.parse(r.stdout)
  t.equal(body.count, 2)
  t.same(body.tenants.map((x: { tenant_id: string }) => x.tenant_id), [a, b])
  t.notMatch(r.stdout, AUDIT)
  t.equal((await run(['export', 'now'])).code, 2)
})

t.test('prune: counts with --dry-run, then blanks old payloads and removes orders never paid; bad days and a wrong key are refused', async (t) => {
  const { app, store, run, config } = await setup(t)
  const DAY = 24 * 60 * 60 * 1000
  const order = await pendingTenant(app, 'Never Paid')
  const kept = await pendingTenant(app, 'Just Ordered')
  await store.transaction(async (tx) => {
    const tn = (await tx.getTenant(order))!
    await tx.deleteTenant(order)
    await tx.insertTenant({ ...tn, createdAt: new Date(store.now() - 40 * DAY).toISOString() })
  })
  const old = await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_nobody' })))
  t.equal(old.statusCode, 200)
  const oldId = (await store.listEvents({}))[0]!.id
  const db = new DatabaseSync(config.databaseUrl.replace(/^sqlite:/, ''))
  // Settled long ago (left unmatched, no longer waiting for its subscription's tenant).
  db.prepare('UPDATE stripe_events SET received = ?, unmatched_subscription = NULL WHERE id = ?').run(new Date(store.now() - 100 * DAY).toISOString(), oldId)
  db.close()

  const dry = await run(['prune', '--dry-run'])
  t.equal(dry.code, 0, dry.stderr)
  t.match(dry.stdout, /^would blank the payloads of 1 Stripe events received before \S+\nwould remove 1 orders never paid for, made before \S+:\n {2}[0-9a-f]{32}\n$/)
  t.ok(await store.getTenant(order), 'a dry run removes nothing')

  const wrongKey = await run(['prune'], { PROVISION_AUDIT_SECRET: 'another-key-0123456789abcdef0123456789' })
  t.equal(wrongKey.code, 2)
  t.match(wrongKey.stderr, /PROVISION_AUDIT_SECRET does not match the audit chain/)
  t.ok(await store.getTenant(order), 'nothing removed under the wrong key')

  const done = await run(['prune', '--json', '--order-days', '30', '--event-days', '90'])
  t.equal(done.code, 0, done.stderr)
  t.match(JSON.parse(done.stdout), { dry_run: false, events: { blanked: 1 }, orders: { removed: 1, tenant_ids: [order] } })
  t.equal(await store.getTenant(order), undefined)
  t.ok(await store.getTenant(kept))
  t.equal((await store.getEvent(oldId))!.payload, '')
  const replay = await run(['replay', oldId])
  t.equal(replay.code, 1)
  t.match(replay.stderr, /removed by retention/)

  for (const [argv, message] of [
    [['prune', '--event-days', '30'], /^error: --event-days must be a whole number from 31 to 36500\n$/],
    [['prune', '--order-days', '6'], /^error: --order-days must be a whole number from 7 to 36500\n$/],
    [['prune', 'now'], /^error: prune takes no arguments\n$/],
    [['tenants', '--dry-run'], /^error: --dry-run does not apply to `ctfhive tenants`/]
  ] as Array<[string[], RegExp]>) {
    const r = await run(argv)
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.stderr, message, argv.join(' '))
  }
})

t.test('erase: forgets a former buyer; refused while they are a customer; a malformed id is bad usage', async (t) => {
  const { app, store, run } = await setup(t)
  const id = await pendingTenant(app, 'Jane Doe CTF')
  await store.updateTenant(id, { billing: 'paid', infra: 'ready', paidAt: new Date(store.now()).toISOString() })
  const refused = await run(['erase', id])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /^error: Tenant [0-9a-f]{32} still has a subscription \(billing paid\)/)
  await store.updateTenant(id, { billing: 'canceled', infra: 'deprovisioned' })
  const done = await run(['erase', id.toUpperCase()])
  t.equal(done.code, 0, done.stderr)
  t.match(done.stdout, /^erased [0-9a-f]{32}: name, email/)
  t.match(await store.getTenant(id), { name: '(erased)', email: '' })
  t.match(JSON.parse((await run(['erase', id, '--json'])).stdout), { tenant_id: id, payloads_blanked: 0 })
  t.equal((await run(['erase', 'nope'])).code, 2)
  const wrongKey = await run(['erase', id], { PROVISION_AUDIT_SECRET: 'another-key-0123456789abcdef0123456789' })
  t.equal(wrongKey.code, 2)
})

t.test('reading commands leave a backup they read byte for byte as it was, in its own journal mode', async (t) => {
  const { app, config } = await setup(t)
  await pendingTenant(app, 'Backup CTF')
  const backup = `${config.databaseUrl.replace(/^sqlite:/, '')}.backup`
  const live = new DatabaseSync(config.databaseUrl.replace(/^sqlite:/, ''))
  live.exec(`VACUUM INTO '${backup}'`)
  live.close()
  const digest = (): string => createHash('sha256').update(readFileSync(backup)).digest('hex')
  const before = digest()
  for (const argv of [['audit', 'verify'], ['tenants'], ['events'], ['export'], ['prune', '--dry-run']]) {
    const r = await cli(argv, { DATABASE_URL: `sqlite:${backup}`, PROVISION_AUDIT_SECRET: AUDIT })
    t.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`)
  }
  t.equal(digest(), before, 'not switched to WAL, not written')
  t.notOk(existsSync(`${backup}-wal`), 'no WAL file left beside it')
  const write = await cli(['prune'], { DATABASE_URL: `sqlite:${backup}`, PROVISION_AUDIT_SECRET: AUDIT })
  t.equal(write.code, 0, 'a writing command still writes')
  t.teardown(() => { for (const f of [backup, `${backup}-wal`, `${backup}-shm`]) rmSync(f, { force: true }) })
})

t.test('usage and configuration errors exit 2', async (t) => {
  const help = await cli(['--help'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /audit verify/)
  t.equal((await cli(['help'], {})).code, 0)
  const none = await cli([], {})
  t.equal(none.code, 2)
  t.match(none.stderr, /^Usage:/)
  const unknown = await cli(['frobnicate'], {})
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown command "frobnicate"/)
  t.equal((await cli(['tenants', '--bogus'], {})).code, 2)
  const noDb = { DATABASE_URL: 'sqlite:/nonexistent/dir/ctfhive.db' }
  for (const [argv, message] of [
    [['export', '--state', 'provisioning'], /^error: --state does not apply to `ctfhive export` \(it takes only --json\)\n$/],
    [['events', '--offset', '5'], /^error: --offset does not apply to `ctfhive events` \(it takes --limit, --outcome, --after and --json\)\n$/],
    [['tenants', '--outcome', 'unmatched'], /^error: --outcome does not apply to `ctfhive tenants`/],
    [['audit', 'verify', '--state', 'active'], /^error: --state does not apply to `ctfhive audit` \(it takes --anchor and --json\)\n$/],
    [['tenants', '--anchor=1:00'], /^error: --anchor does not apply to `ctfhive tenants` \(it takes --state, --limit, --offset, --after and --json\)\n$/],
    [['tenant', 'abc', '--limit', '1'], /^error: --limit does not apply to `ctfhive tenant`/],
    [['retry', '--json', 'abc', '--offset', '1'], /^error: --offset does not apply to `ctfhive retry`/]
  ] as Array<[string[], RegExp]>) {
    // Refused before the store is opened: the missing database is never reached.
    const r = await cli(argv, noDb)
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.stderr, message, argv.join(' '))
    t.equal(r.stdout, '', 'nothing run')
  }
  const absent = await cli(['tenants', '--state', 'active', '--json'], noDb)
  t.equal(absent.code, 2)
  t.match(absent.stderr, /no database at \/nonexistent\/dir\/ctfhive\.db/, 'a command\'s own options pass')
  const badUrl = await cli(['tenants'], { DATABASE_URL: 'mysql://x' })
  t.equal(badUrl.code, 2)
  t.match(badUrl.stderr, /^error: DATABASE_URL/)
})

t.test('a database behind this release is refused, not migrated', async (t) => {
  const { run, config } = await setup(t)
  const path = config.databaseUrl.replace(/^sqlite:/, '')
  const db = new DatabaseSync(path)
  t.teardown(() => db.close())
  // As an older release left it, with this release's server not started yet.
  db.exec(rollbackSql(1))
  const r = await run(['tenants'])
  t.equal(r.code, 1)
  t.match(r.stderr, /^error: the database's schema is behind this release \(not applied: 002_event_indexes\.sql, 003_job_step_at\.sql, 004_rate_limits\.sql, 005_soft_cancel\.sql, 006_tenant_fqdn\.sql, 007_billing_state\.sql, 008_session_names\.sql, 009_unmatched_subscription\.sql, 010_control_names\.sql, 011_event_outcome_index\.sql, 012_listing_indexes\.sql, 013_admin_email\.sql, 014_public_errors\.sql, 015_state_index\.sql\); start the server of this release once/)
  t.equal(r.stdout, '')
  t.same(db.prepare('SELECT version FROM schema_migrations').all().map((row) => row.version), [1], 'still at version 1')
  t.equal(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'stripe_events_received'").get()?.n, 0, 'no index created')
})

t.test('a database that is not CTFHive\'s is refused and left as it was', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-cli-other-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'other.db')
  const db = new DatabaseSync(path)
  t.teardown(() => db.close())
  db.exec('CREATE TABLE notes (body TEXT)')
  const r = await cli(['tenants'], { DATABASE_URL: `sqlite:${path}`, PROVISION_AUDIT_SECRET: AUDIT })
  t.equal(r.code, 1)
  t.match(r.stderr, /^error: this is not a CTFHive database \(it has no schema_migrations table\): check DATABASE_URL/)
  t.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'delete', 'not switched to WAL')
  t.same(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((row) => row.name), ['notes'])
})

t.test('a DATABASE_URL naming no usable database is the job\'s setting (exit 2), not an alarm (exit 1)', async (t) => {
  const { mkdirSync, mkdtempSync, rmSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-cli-setting-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const folder = join(dir, 'folder.db')
  mkdirSync(folder)
  const garbage = join(dir, 'garbage.db')
  writeFileSync(garbage, 'not a database, only text long enough to fill a header '.repeat(20))
  for (const [path, reason] of [[folder, /SQLITE_CANTOPEN/], [garbage, /SQLITE_NOTADB/]] as Array<[string, RegExp]>) {
    for (const argv of [['audit', 'verify'], ['tenants', '--json']]) {
      const r = await cli(argv, { DATABASE_URL: `sqlite:${path}`, PROVISION_AUDIT_SECRET: AUDIT })
      t.equal(r.code, 2, `${path} ${argv.join(' ')}`)
      t.match(r.stderr, new RegExp(`^error: DATABASE_URL: ${path}: .*${reason.source}.*\n$`), 'one line naming DATABASE_URL')
      t.equal(r.stdout, '')
    }
  }
})

t.test('on PostgreSQL, a database that does not exist or a user it refuses is a setting (exit 2)', async (t) => {
  const server = await usePostgres(t)
  if (server === undefined) return
  const { noDb, noUser } = refusedUrls(await server.createDatabase())
  for (const [to, reason] of [
    [noDb, /^error: DATABASE_URL: the database it names does not exist on that server \(SQLSTATE 3D000\)\n$/],
    [noUser, /^error: DATABASE_URL: PostgreSQL refused (the connection for this user .*\(SQLSTATE 28000\)|the user name or password \(SQLSTATE 28P01\))\n$/]
  ] as Array<[URL, RegExp]>) {
    const r = await cli(['audit', 'verify'], { DATABASE_URL: to.toString(), PROVISION_AUDIT_SECRET: AUDIT })
    t.equal(r.code, 2, to.toString())
    t.match(r.stderr, reason)
    t.notMatch(r.stderr, /hunter2/)
  }
})

t.test('a database a newer release migrated is used, with a warning on stderr', async (t) => {
  const { run, config } = await setup(t)
  const db = new DatabaseSync(config.databaseUrl.replace(/^sqlite:/, ''))
  t.teardown(() => db.close())
  db.exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '999_later.sql', '2030-01-01T00:00:00.000Z')")
  const r = await run(['tenants', '--json'])
  t.equal(r.code, 0, r.stderr)
  t.same(JSON.parse(r.stdout).tenants, [], 'stdout stays clean JSON')
  t.equal(r.stderr, 'warning: the database has migrations this release does not know (999): a newer release migrated it; what its migrations added is not shown here: use that release\'s ctfhive\n')
  const current = await cli(['tenants'], { DATABASE_URL: config.databaseUrl, PROVISION_AUDIT_SECRET: AUDIT })
  t.match(current.stderr, /warning/, 'on every run')
  db.exec('DELETE FROM schema_migrations WHERE version = 999')
  t.equal((await run(['tenants'])).stderr, '', 'none on this release\'s schema')
})

t.test('text output shows a control character, line separator or bidirectional override as its code', async (t) => {
  t.equal(forTerminal('Old\u009b2J\u202eCTF\nnext\u2028line\ttab'), 'Old\\u{9b}2J\\u{202e}CTF\nnext\\u{2028}line\\u{9}tab')
  t.equal(forTerminal('Flag 🚩 – Ünï'), 'Flag 🚩 – Ünï', 'anything printable is left alone')
})

t.test('a name an older release stored with a terminal control sequence is listed with its codes', async (t) => {
  const { app, store, run } = await setup(t)
  const id = await pendingTenant(app, 'Old CTF')
  await store.updateTenant(id, { name: 'Old\u009b2J\u202eCTF' })
  const listed = await run(['tenants'])
  t.match(listed.stdout, 'Old\\u{9b}2J\\u{202e}CTF')
  t.notMatch(listed.stdout, /[\u009b\u202e]/, 'no raw control reaches the terminal')
  const json = await run(['tenant', id, '--json'])
  t.equal(JSON.parse(json.stdout).tenant.name, 'Old\u009b2J\u202eCTF', 'JSON keeps the name as stored')
})

t.test('on PostgreSQL, the CLI keeps to the database\'s clock as the server does, whatever this host\'s says', async (t) => {
  const server = await usePostgres(t)
  if (server === undefined) return
  const url = await server.createDatabase()
  const store = new PostgresStore({ url, poolSize: 2 })
  t.teardown(() => store.close())
  await store.migrate()
  const executor = new FakeExecutor()
  executor.failNext('create', 1, new ExecutorError('Linode API 400: type: not a valid type', { retryable: false }))
  const { app } = await buildTestApp(t, { store, executor, runJobs: false, env: { PROVISION_AUDIT_SECRET: AUDIT } })
  const id = await pendingTenant(app, 'Skewed CTF')
  await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId: id, plan: 'solo', subscription: 'sub_skew' })))
  await runAll(app, store)
  t.equal((await store.getTenant(id))?.infra, 'failed')

  // This host's clock ten minutes ahead of the database's (the one every instance keeps to),
  // while the CLI opens its store and queues the retry.
  const SKEW = 10 * 60_000
  const realNow = Date.now
  Date.now = () => realNow() + SKEW
  const r = await cli(['retry', id], { DATABASE_URL: url, PROVISION_AUDIT_SECRET: AUDIT }).finally(() => { Date.now = realNow })
  t.equal(r.code, 0, r.stderr)
  const now = Date.now()
  const queued = (await store.listJobs({ tenant: id })).find((j) => j.status === 'queued')
  t.ok(queued !== undefined && Math.abs(queued.runAfter - now) < 60_000, `the retry is due now by the database's clock (${queued === undefined ? 'none queued' : `${Math.round((queued.runAfter - now) / 1000)} s from now`})`)
  const entry = (await store.listAudit({ tenant: id })).find((e) => e.action === 'provision.retry_requested')
  t.ok(entry !== undefined && Math.abs(Date.parse(entry.at) - now) < 60_000, `its audit entry is dated by the database's clock (${entry?.at ?? 'none'})`)
})
