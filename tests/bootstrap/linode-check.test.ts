import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openStore } from '../../api/store/index.ts'
import { tempDbPath } from '../helpers/build-app.ts'
import { rollbackSql } from '../helpers/schema-rollback.ts'
import { makeTenant } from '../store/contract.ts'
import { main } from '../../bootstrap/linode-check.ts'
import { capture } from '../helpers/cli-io.ts'
import { startFakeLinode, type FakeLinode } from '../helpers/fake-linode.ts'
import { tenantFirewallRules } from '../../api/provisioning/linode-firewall.ts'

// A database nobody made, unless a test names one: the developer's ./data must not count.
const NO_DATABASE_PATH = join(tmpdir(), 'ctfhive-linode-check-none', 'absent.db')
const NO_DATABASE = `sqlite:${NO_DATABASE_PATH}`
/** What a run without a database says first: the zones of older domains were not checked. */
const NOTE = `note: no database at ${NO_DATABASE_PATH} (DATABASE_URL): older tenant domains not checked\n`

async function check (argv: string[], env: Record<string, string | undefined>) {
  const { out, io } = capture()
  const code = await main(argv, { DATABASE_URL: NO_DATABASE, ...env }, io)
  return { code, ...out }
}

t.test('good settings: a table of passes, exit 0', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const r = await check([], { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_PLAN: 'g6-standard-2' })
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trimEnd().split('\n')
  t.match(lines[0], /^check +expected +got +result$/)
  t.equal(lines.length, 2 + 9, 'header, rule, nine checks')
  t.ok(lines.slice(2).every((l) => l.endsWith('PASS')))
  t.match(r.stdout, /type g6-standard-2 \(solo, standard, pro\)/, 'LINODE_PLAN: one type for every plan')
  t.equal(r.stderr, `${NOTE}Linode settings OK\n`, 'the missing database is said, not skipped in silence')
  t.notMatch(r.stdout + r.stderr, fake.token)
})

t.test('a failing setting: exit 1, the cause in the table; --json for scripts', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const env = { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_REGION: 'ap-south', LINODE_IMAGE: 'linode/arch', LINODE_PLAN: 'per-plan' }
  const r = await check([], env)
  t.equal(r.code, 1)
  t.match(r.stdout, /region +ap-south: Linodes, Metadata, Cloud Firewall +lacks Metadata \(LINODE_REGION\) +FAIL/)
  t.match(r.stdout, /image .*no cloud-init.* +FAIL/)
  t.match(r.stdout, /type g6-standard-1 \(solo\) .*below CTFd's minimum of 2 cores +WARN/)
  t.equal(r.stderr, `${NOTE}2 checks failed: provisioning will fail until they are fixed\n`)

  const j = await check(['--json'], env)
  t.equal(j.code, 1)
  const body = JSON.parse(j.stdout)
  t.equal(body.ok, false)
  t.same(body.checks.filter((c: { result: string }) => c.result === 'fail').map((c: { check: string }) => c.check), ['region', 'image'])

  const warnOnly = await check([], { ...env, LINODE_REGION: 'us-east', LINODE_IMAGE: 'linode/debian12' })
  t.equal(warnOnly.code, 0, 'warnings do not fail')
  t.equal(warnOnly.stderr, `${NOTE}Linode settings OK (1 warning)\n`)
})

t.test('the zones of older domains tenants with a server live under are checked too, from the store', async (t) => {
  const path = tempDbPath(t)
  const store = await openStore({ databaseUrl: `sqlite:${path}`, pg: { poolSize: 1, statementTimeoutMs: 1000 } })
  await store.insertTenant(makeTenant({ infra: 'ready', fqdn: 'spring-abc123.old.example.org' }))
  await store.insertTenant(makeTenant({ infra: 'ready', fqdn: 'summer-def456.ctf.example.org' }))
  await store.insertTenant(makeTenant({ infra: 'deprovisioned', fqdn: 'gone-aaa111.gone.example.org' }))
  await store.close()
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const env = { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_PLAN: 'g6-standard-2', DATABASE_URL: `sqlite:${path}` }
  const missing = await check([], env)
  t.equal(missing.code, 0, 'a warning: new tenants are not affected')
  t.match(missing.stdout, /DNS zone old\.example\.org +old\.example\.org: active master zone \(tenants made under it\) +no zone: tenants made under it have no DNS records, and cannot be provisioned again +WARN/)
  t.notMatch(missing.stdout, /gone\.example\.org/, 'not a domain whose tenants were all torn down')
  t.equal(missing.stderr, 'Linode settings OK (1 warning)\n', 'no note: the database was read')

  const withZone = await startFakeLinode(t, { domains: ['ctf.example.org', 'old.example.org'] })
  const ok = await check([], { ...env, LINODE_API_TOKEN: withZone.token, LINODE_API_BASE: withZone.url })
  t.match(ok.stdout, /DNS zone old\.example\.org .* +PASS/)
  t.equal(ok.stderr, 'Linode settings OK\n')

  // A database this release has not migrated yet: said, and the rest still checked.
  const db = new DatabaseSync(path)
  db.exec(rollbackSql(1))
  db.close()
  const behind = await check([], env)
  t.equal(behind.code, 0)
  t.match(behind.stderr, /^note: the zones of older tenant domains were not checked: the database's schema is behind this release/)
  t.notMatch(behind.stdout, /old\.example\.org/)
  t.match(behind.stdout, /DNS zone +ctf\.example\.org: active master zone +zone \d+, active +PASS/)
})

t.test('a Linode that does not answer is not OK: exit 1, and not a wrong setting', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const env = { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_PLAN: 'g6-standard-2' }
  fake.inject({ path: '/profile', times: 3, fault: { status: 503 } })
  const down = await check([], env)
  t.equal(down.code, 1)
  t.match(down.stdout, /token +accepted +could not check: 503 Injected failure +UNKNOWN/)
  t.equal(down.stderr, `${NOTE}1 check could not be run: Linode did not answer, or its reply was malformed (see "got"); run it again later\n`)
  t.equal(JSON.parse((await check(['--json'], env)).stdout).ok, true, 'and OK once it answers')

  fake.inject({ path: '/profile', fault: { delayMs: 1000 } })
  const { out, io } = capture()
  t.equal(await main([], { ...env, DATABASE_URL: NO_DATABASE }, io, 100), 1)
  t.equal(out.stderr, `${NOTE}error: Linode did not answer within 0.1 s; nothing was checked to the end\n`)
  t.equal(out.stdout, '')
})

t.test('usage and configuration errors exit 2 before any call', async (t) => {
  const fake = await startFakeLinode(t)
  const none = await check([], { LINODE_API_BASE: fake.url })
  t.equal(none.code, 2)
  t.match(none.stderr, /^error: LINODE_API_TOKEN is not set/)
  const badUrl = await check([], { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: 'not a url' })
  t.equal(badUrl.code, 2)
  t.match(badUrl.stderr, /LINODE_API_BASE/)
  const flag = await check(['--plan', 'x'], {})
  t.equal(flag.code, 2)
  t.match(flag.stderr, /Unknown option '--plan'.*\n\nUsage: npm run linode:check/s)
  t.equal(fake.requests.length, 0)
  const twice = await check(['--json', '--json', '-h'], {})
  t.equal(twice.code, 0, 'a repeated flag is no usage error (only an option taking a value, given twice, is)')
  const help = await check(['-h'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: npm run linode:check -- \[--json\]/)
  t.match(help.stdout, /cannot prove the token may write \(its scopes need linodes, domains and firewall read\/write\)/)
  t.match(help.stdout, /--attach-firewall +first put every tenant server that is behind no firewall behind/)
  // npm prints its banner on stdout unless -s: `npm run linode:check -- --json` is not JSON.
  t.match(help.stdout, /--json +the checks as JSON on stdout, for scripts: run it as\n +`npm run -s linode:check -- --json`/)
})

async function drifted (t: { teardown: (fn: () => unknown) => void }) {
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const env = { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_PLAN: 'g6-standard-2' }
  const a = fake.addInstance({ label: 'ctf-a', tags: ['ctfhive'], status: 'running' }).id
  const b = fake.addInstance({ label: 'ctf-b', tags: ['ctfhive'], status: 'running' }).id
  return { fake, env, a, b }
}
const oursIn = (fake: FakeLinode) => [...fake.firewalls.values()].find((f) => f.label === 'ctfhive-tenants')

t.test('--attach-firewall: servers behind no firewall are added, then the check passes; run again, nothing to do', async (t) => {
  const { fake, env, a, b } = await drifted(t)
  const before = await check([], env)
  t.match(before.stdout, /servers behind it .*2 of 2 tenant servers behind no enabled firewall.*--attach-firewall +WARN/)
  t.equal(fake.count('POST'), 0, 'without the flag, read-only')

  const r = await check(['--attach-firewall'], env)
  const fw = oursIn(fake)!
  t.equal(r.code, 0, r.stderr)
  t.same([...fw.linodes].sort(), [a, b].sort())
  t.equal(r.stderr, `added to firewall ctfhive-tenants (${fw.id}): ctf-a (${a}), ctf-b (${b})\n${NOTE}Linode settings OK\n`)
  t.match(r.stdout, /servers behind it .* 2 tenant servers, none exposed +PASS/, 'the check runs after the repair')

  const again = await check(['--attach-firewall', '--json'], env)
  t.equal(again.code, 0)
  const body = JSON.parse(again.stdout)
  t.match(body, { ok: true, repair: { firewall: { id: fw.id, status: 'enabled' }, total: 2, attached: [], disabled: [], failed: [] } })
  t.equal((await check(['--attach-firewall'], env)).stderr, `firewall ctfhive-tenants (${fw.id}): all 2 tenant servers were behind a firewall already\n${NOTE}Linode settings OK\n`)
})

t.test('--attach-firewall: a disabled firewall and a refused server are reported; exit 1 while one is left', async (t) => {
  const { fake, env, a, b } = await drifted(t)
  const fw = fake.addFirewall({ label: 'ctfhive-tenants', tags: ['ctfhive'], status: 'disabled', rules: { ...tenantFirewallRules(), version: 1 } })
  const c = fake.addInstance({ label: 'ctf-c', tags: ['ctfhive'], status: 'running' }).id
  fw.linodes.add(c)
  fake.inject({ method: 'POST', path: `/networking/firewalls/${fw.id}/devices`, times: 1, fault: { status: 400, body: { errors: [{ field: 'id', reason: 'not allowed' }] } } })
  const r = await check(['--attach-firewall'], env)
  t.equal(r.code, 1)
  t.match(r.stderr, `warning: linode firewall ctfhive-tenants is disabled: servers behind it are not filtered\n`)
  t.match(r.stderr, `added to firewall ctfhive-tenants (${fw.id}, disabled: it filters nothing until enabled): ctf-b (${b})\n`)
  t.match(r.stderr, `left behind a disabled firewall (enable it in the console): ctf-c (${c}) behind ${fw.id}\n`)
  t.match(r.stderr, `could not add ctf-a (${a}): Linode API 400: id: not allowed`)
  t.match(r.stderr, /\nLinode settings OK \(\d warnings?\), but the firewall repair did not finish: see above\n$/, 'one line: the settings, and the repair that failed')
  const j = await check(['--attach-firewall', '--json'], env)
  t.equal(j.code, 0, 'the refusal was once: the next run adds it')
  t.same(JSON.parse(j.stdout).repair.attached.map((s: { id: number }) => s.id), [a])
})

t.test('--attach-firewall: a firewall Linode refuses adds nothing, and the check says why', async (t) => {
  const { fake, env } = await drifted(t)
  fake.inject({ path: '/networking/firewalls', times: 2, fault: { status: 401, body: { errors: [{ reason: 'Your OAuth token is not authorized to use this endpoint.' }] } } })
  const r = await check(['--attach-firewall', '--json'], env)
  t.equal(r.code, 1)
  t.match(r.stderr, /^error: the firewall repair stopped: Linode refused the token for Cloud Firewalls/)
  const body = JSON.parse(r.stdout)
  t.equal(body.ok, false)
  t.match(body.repair.error, /firewall:read_write scope/)
  t.match(body.checks.find((c: { check: string }) => c.check === 'firewall'), { result: 'fail' })
  t.equal(fake.count('POST'), 0)

  const slow = await drifted(t)
  slow.fake.addFirewall({ label: 'ctfhive-tenants', tags: ['ctfhive'], rules: { ...tenantFirewallRules(), version: 1 } })
  slow.fake.inject({ method: 'POST', fault: { delayMs: 1000 } })
  const { out, io } = capture()
  t.equal(await main(['--attach-firewall'], slow.env, io, 300), 1)
  t.match(out.stderr, /^error: the firewall repair stopped: Linode did not answer within 0.3 s; servers added before that stay added, run it again\n/)
  t.match(out.stdout, /servers behind it/, 'the check still runs')
})


/** A "Linode" (a proxy, a captive portal) answering every request 200 with `body` as `type`. */
async function oddLinode (t: { teardown: (fn: () => unknown) => void }, type: string, body: string): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': type })
    res.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v4`
}

t.test('--attach-firewall: a reply not shaped as Linode documents it is one error line, not a stack trace', async (t) => {
  // A listing whose data is not a list: the repair used to die reading a firewall's label.
  const { fake, env } = await drifted(t)
  fake.inject({ path: '/networking/firewalls', times: 1, fault: { status: 200, body: { data: 'x', page: 1, pages: 1, results: 1 } } })
  const shapeless = await check(['--attach-firewall'], env)
  t.equal(shapeless.code, 1)
  t.match(shapeless.stderr, /^error: the firewall repair stopped: .*not shaped as documented.*\n/)
  t.notMatch(shapeless.stderr, /^\s+at /m, 'no stack trace')
  t.match(shapeless.stdout, /servers behind it/, 'the check still runs')
  t.equal(fake.count('POST'), 0, 'nothing added')

  for (const [type, body] of [['application/json', 'null'], ['text/html', '<html>proxy login</html>']] as const) {
    const r = await check(['--attach-firewall'], { LINODE_API_TOKEN: 'token', LINODE_API_BASE: await oddLinode(t, type, body), BASE_DOMAIN: 'ctf.example.org' })
    t.equal(r.code, 1, body)
    t.equal(r.stderr.split('\n').filter((l) => l.startsWith('error: ')).length, 1, `${body}: one error line`)
    t.match(r.stderr, /^error: the firewall repair stopped: /, body)
    t.notMatch(r.stderr, /^\s+at /m, `${body}: no stack trace`)
  }
})

t.test('without --attach-firewall: a reply not JSON, or null, is UNKNOWN with what Linode sent, not FAIL with a TypeError or "200 error"', async (t) => {
  for (const [type, body, got] of [
    ['application/json', 'null', /token +accepted +could not check: a malformed reply from LINODE_API_BASE \(Cannot read properties of null \(reading 'username'\)\) +UNKNOWN/],
    ['text/html', '<html>proxy login</html>', /token +accepted +could not check: a reply that is not JSON \(HTTP 200\) +UNKNOWN/]
  ] as const) {
    const r = await check([], { LINODE_API_TOKEN: 'token', LINODE_API_BASE: await oddLinode(t, type, body), BASE_DOMAIN: 'ctf.example.org' })
    t.equal(r.code, 1, body)
    t.match(r.stdout, got, body)
    t.equal(r.stderr, `${NOTE}1 check could not be run: Linode did not answer, or its reply was malformed (see "got"); run it again later\n`, body)
  }
})
