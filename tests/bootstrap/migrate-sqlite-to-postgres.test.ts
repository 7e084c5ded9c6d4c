import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'
import { GENESIS_MAC, appendAudit, auditMac, verifyStoredChain } from '../../api/provisioning/audit.ts'
import { PostgresStore } from '../../api/store/postgres.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import type { Store } from '../../api/store/store.ts'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { CONNECT_TIMEOUT_MS, copySqliteToPostgres, main, redact, TABLES } from '../../bootstrap/migrate-sqlite-to-postgres.ts'
import { TENANT_COLUMNS } from '../../api/store/rows.ts'
import { buildTestApp, tempDbPath } from '../helpers/build-app.ts'
import { refusedUrls, usePostgres } from '../helpers/postgres.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { rollbackSql } from '../helpers/schema-rollback.ts'

const SECRET = 'migrate-test-audit-secret'
const SCRIPT = fileURLToPath(new URL('../../bootstrap/migrate-sqlite-to-postgres.ts', import.meta.url))

function capture (): { io: { stdout: { write (s: string): void }, stderr: { write (s: string): void } }, out: () => string, err: () => string } {
  let out = ''
  let err = ''
  return { io: { stdout: { write: (s: string) => { out += s } }, stderr: { write: (s: string) => { err += s } } }, out: () => out, err: () => err }
}

/** A SQLite database with the app's real rows: tenants in several states, events, jobs, audit. */
async function seedSqlite (t: Test): Promise<string> {
  const path = tempDbPath(t)
  const store = new SqliteStore({ path })
  const { app } = await buildTestApp(t, { store, env: { PROVISION_AUDIT_SECRET: SECRET } })
  t.teardown(() => store.close())
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo', name: `Copy ${i}` } })
    const tenantId = res.json().tenant_id as string
    await deliver(app, makeEvent('checkout.session.completed', checkoutSession({ tenantId, plan: 'solo', subscription: `sub_copy_${i}` })))
    await deliver(app, makeEvent('invoice.paid', invoice({ subscription: `sub_copy_${i}` })))
    if (i === 2) await deliver(app, makeEvent('customer.subscription.deleted', subscription({ id: `sub_copy_${i}`, tenantId, status: 'canceled' }), { created: Math.floor(Date.now() / 1000) + 5 }))
  }
  await deliver(app, makeEvent('invoice.paid', invoice({ subscription: 'sub_nobody' })))
  return path
}

/**
 * A migrated SQLite database holding a long, valid audit chain (each MAC made as appendAudit
 * makes it, written straight to the table: appending through the store would take minutes)
 * and Stripe events with payloads of `payloadBytes`.
 */
async function bulkSqlite (t: Test, opts: { entries: number, detailBytes: number, events: number, payloadBytes: number }): Promise<string> {
  const path = tempDbPath(t)
  await new SqliteStore({ path }).close()
  const db = new DatabaseSync(path)
  db.exec('BEGIN')
  const append = db.prepare('INSERT INTO audit_log (seq, at, tenant, action, detail, prev_mac, mac) VALUES (?, ?, ?, ?, ?, ?, ?)')
  const note = 'n'.repeat(opts.detailBytes)
  let prevMac = GENESIS_MAC
  for (let seq = 1; seq <= opts.entries; seq++) {
    const entry = { seq, at: new Date(1_700_000_000_000 + seq).toISOString(), tenant: (seq % 97).toString(16).padStart(32, '0'), action: 'bulk.step', detail: { seq, note } }
    const mac = auditMac(SECRET, prevMac, entry)
    append.run(seq, entry.at, entry.tenant, entry.action, JSON.stringify(entry.detail), prevMac, mac)
    prevMac = mac
  }
  const event = db.prepare("INSERT INTO stripe_events (id, type, created, received, outcome, tenant, payload) VALUES (?, 'invoice.paid', ?, ?, 'ok', NULL, ?)")
  const payload = JSON.stringify({ object: 'event', filler: 'p'.repeat(opts.payloadBytes) })
  for (let i = 0; i < opts.events; i++) event.run(`evt_bulk_${i}`, 1_700_000_000 + i, new Date(1_700_000_000_000 + i).toISOString(), payload)
  db.exec('COMMIT')
  db.close()
  return path
}

/** The tables in the target's schema, by name. */
async function tablesOf (url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")).rows.map((r) => r.tablename as string)
  } finally {
    await client.end()
  }
}

async function rowsOf (store: Store): Promise<Record<string, unknown>> {
  const tenants = await store.listTenants({ limit: 1000 })
  const subs: Record<string, string | undefined> = {}
  for (let i = 0; i < 3; i++) subs[`sub_copy_${i}`] = await store.findTenantIdBySubscription(`sub_copy_${i}`)
  return {
    tenants,
    subs,
    events: await store.listEvents({ limit: 1000 }),
    jobs: await store.listJobs({}),
    audit: await store.listAudit({ limit: 10_000 })
  }
}

t.test('on PostgreSQL', async (t) => {
  const server = await usePostgres(t)
  if (server === undefined) return

  t.test('copies every table verbatim and the chain still verifies', async (t) => {
    const path = await seedSqlite(t)
    const url = await server.createDatabase()
    const c = capture()
    const code = await main(['--from', `sqlite:${path}`, '--to', url], { PROVISION_AUDIT_SECRET: SECRET }, c.io)
    t.equal(code, 0, 'copied and verified', { stderr: c.err() })
    t.match(c.out(), /^tenants\s+3$/m)
    t.match(c.out(), /^subscriptions\s+3$/m)
    t.match(c.out(), /target audit chain: ok \(\d+ entries, last seq \d+\)/)
    t.match(c.out(), /source audit chain: ok/)
    t.notMatch(c.err(), /warning/, 'no warning when the secret is given')

    const source = new SqliteStore({ path })
    const target = new PostgresStore({ url })
    t.teardown(async () => { await source.close(); await target.close() })
    const before = await rowsOf(source)
    t.same(await rowsOf(target), before, 'tenants, subscription index, events, jobs and audit entries are identical')
    const audit = before.audit as unknown[]
    t.ok(audit.length > 10, 'a real chain was copied')
    t.ok((before.jobs as unknown[]).length >= 4, 'jobs too (provision and teardown)')

    const raw = new DatabaseSync(path, { readOnly: true })
    t.teardown(() => raw.close())
    for (const { name } of TABLES) {
      const n = Number(raw.prepare(`SELECT count(*) AS n FROM ${name}`).get()!.n)
      t.match(c.out(), new RegExp(`^${name}\\s+${n}$`, 'm'), `${name}: all ${n} rows reported`)
    }

    // The target carries on where the source stopped: new job ids and audit entries follow on.
    const maxJob = Math.max(...(before.jobs as Array<{ id: number }>).map((j) => j.id))
    const job = await target.enqueueJob({ kind: 'provision', tenant: 'f'.repeat(32), runAfter: 0 })
    t.ok(job.id > maxJob, 'the job id sequence continues after the copied ids')
    await appendAudit(target, SECRET, 'f'.repeat(32), 'after.migration', {})
    t.match(await verifyStoredChain(target, SECRET), { ok: true, entries: audit.length + 1, lastSeq: audit.length + 1 }, 'appends continue the chain')
  })

  t.test('a non-empty target is refused unless --force, which replaces it', async (t) => {
    const path = await seedSqlite(t)
    const url = await server.createDatabase()
    t.equal(await main(['--from', `sqlite:${path}`, '--to', url], { PROVISION_AUDIT_SECRET: SECRET }, capture().io), 0)
    const target = new PostgresStore({ url })
    t.teardown(() => target.close())
    await appendAudit(target, SECRET, 'e'.repeat(32), 'written.on.target', {})
    const entries = (await target.listAudit({ limit: 10_000 })).length

    const refused = capture()
    t.equal(await main(['--from', `sqlite:${path}`, '--to', url], { PROVISION_AUDIT_SECRET: SECRET }, refused.io), 1)
    t.match(refused.err(), /the target is not empty \(tenants: 3, .*audit_log: \d+\); use --force/)
    t.equal((await target.listAudit({ limit: 10_000 })).length, entries, 'nothing changed on the target')

    const forced = capture()
    t.equal(await main(['--from', `sqlite:${path}`, '--to', url, '--force'], { PROVISION_AUDIT_SECRET: SECRET }, forced.io), 0, 'replaced and verified')
    t.match(forced.err(), /replacing the target's contents/)
    t.equal(await target.countTenants(), 3, 'replaced, not doubled')
    t.equal((await target.listAudit({ limit: 10_000 })).length, entries - 1, 'the target-only entry is gone')
    t.match(await verifyStoredChain(target, SECRET), { ok: true, entries: entries - 1, lastSeq: entries - 1 })
  })

  t.test('a key the chain was not written with is a setting (exit 2), refused before anything is written', async (t) => {
    const path = await seedSqlite(t)
    const url = await server.createDatabase()
    const wrong = capture()
    t.equal(await main(['--from', `sqlite:${path}`, '--to', url], { PROVISION_AUDIT_SECRET: 'not-the-server-secret' }, wrong.io), 2)
    t.equal(wrong.out(), '', 'no chain verdict: the chain is not in question')
    t.match(wrong.err(), /error: PROVISION_AUDIT_SECRET is not the key the source's audit chain was written with \(neither its first nor its last entry verifies under it; the server would refuse to start with it\): set the server's secret; nothing was copied\n$/)
    t.same(await tablesOf(url), [], 'nothing written to the target')
    const right = capture()
    t.equal(await main(['--from', `sqlite:${path}`, '--to', url], { PROVISION_AUDIT_SECRET: SECRET }, right.io), 0, 'the right secret then copies, no --force needed')
    t.match(right.out(), /target audit chain: ok/)

    const url2 = await server.createDatabase()
    // Unset and set to the dev default are the same case: the error says the key is unset.
    for (const env of [{}, { PROVISION_AUDIT_SECRET: 'audit-dev-secret' }]) {
      const defaulted = capture()
      t.equal(await main(['--from', `sqlite:${path}`, '--to', url2], env, defaulted.io), 2, 'the dev default is not this chain’s secret')
      t.match(defaulted.err(), /warning: PROVISION_AUDIT_SECRET is not set, or is the development default/)
      t.match(defaulted.err(), /error: PROVISION_AUDIT_SECRET is not set \(or is the development default\), and the first entry of the source's audit chain does not verify under it: set the server's secret; nothing was copied\n$/)
      t.equal(defaulted.out(), '')
    }
    t.same(await tablesOf(url2), [], 'nothing written to the target')
  })

  t.test('a chain broken under the right key fails the run (exit 1) before anything is written', async (t) => {
    const path = await seedSqlite(t)
    const raw = new DatabaseSync(path)
    t.teardown(() => raw.close())
    const original = String(raw.prepare('SELECT detail FROM audit_log WHERE seq = 3').get()!.detail)
    raw.prepare('UPDATE audit_log SET detail = ? WHERE seq = 3').run('{"forged":true}')
    const url = await server.createDatabase()
    const later = capture()
    t.equal(await main(['--from', `sqlite:${path}`, '--to', url], { PROVISION_AUDIT_SECRET: SECRET }, later.io), 1)
    t.match(later.out(), /^source audit chain: BROKEN at seq 3 \(modified\)/)
    t.match(later.err(), /error: the source's audit chain does not verify, under a key that verifies its first entry .*nothing was copied/)

    // Entry 1 altered, the last verifying: the key is the server's, so the chain is at fault.
    raw.prepare('UPDATE audit_log SET detail = ? WHERE seq = 3').run(original)
    raw.prepare('UPDATE audit_log SET detail = ? WHERE seq = 1').run('{"forged":true}')
    const first = capture()
    t.equal(await main(['--from', `sqlite:${path}`, '--to', url], { PROVISION_AUDIT_SECRET: SECRET }, first.io), 1)
    t.match(first.out(), /^source audit chain: BROKEN at seq 1 \(modified\)/)
    t.match(first.err(), /error: the first entry of the source's audit chain does not verify under PROVISION_AUDIT_SECRET, though its last does: the key was changed while entries were being written, or entry 1 was altered/)
    t.same(await tablesOf(url), [], 'nothing written to the target')
  })

  t.test("another application's database is refused before anything is written, --force or not", async (t) => {
    const path = await seedSqlite(t)
    // Tables CTFHive would not clash with (the copy used to succeed among them), and a `jobs`
    // it would (the copy used to fail, leaving schema_migrations behind).
    for (const tables of [['accounts'], ['accounts', 'jobs']]) {
      const url = await server.createDatabase()
      const other = new pg.Client({ connectionString: url })
      await other.connect()
      for (const name of tables) await other.query(`CREATE TABLE ${name} (id integer PRIMARY KEY, note text)`)
      await other.query("INSERT INTO accounts VALUES (1, 'theirs')")
      await other.end()
      for (const argv of [[], ['--force']]) {
        const c = capture()
        t.equal(await main(['--from', `sqlite:${path}`, '--to', url, ...argv], { PROVISION_AUDIT_SECRET: SECRET }, c.io), 1, `${tables.join(', ')} ${argv.join(' ')}`)
        t.match(c.err(), `error: the target is not a CTFHive database: it holds other tables (${tables.join(', ')}) and no schema_migrations table; give an empty database (nothing was written)\n`)
        t.equal(c.out(), '')
        t.same(await tablesOf(url), tables, 'its tables, and only those')
      }
    }
  })

  t.test('the source is read as one snapshot, even while a server still writes to it', async (t) => {
    const path = await seedSqlite(t)
    const url = await server.createDatabase()
    const writer = new DatabaseSync(path)
    t.teardown(() => writer.close())
    const before = Number(writer.prepare('SELECT count(*) AS n FROM subscriptions').get()!.n)
    const late = 'a'.repeat(32)
    // Right after the tenants are copied, a tenant and its subscription appear in the source.
    const result = await copySqliteToPostgres({
      sqlitePath: path,
      postgresUrl: url,
      force: false,
      auditSecret: SECRET,
      progress: (line) => {
        if (!line.startsWith('tenants:')) return
        writer.prepare(`INSERT INTO tenants (${Object.values(TENANT_COLUMNS).join(', ')}) SELECT ${Object.values(TENANT_COLUMNS).map((c) => (c === 'id' ? '?' : c === 'slug' || c === 'fqdn' ? `'late-' || ${c}` : c)).join(', ')} FROM tenants LIMIT 1`).run(late)
        writer.prepare('INSERT INTO subscriptions (subscription_id, tenant_id) VALUES (?, ?)').run('sub_late', late)
      }
    })
    t.equal(result.counts.subscriptions, before, 'the subscription written mid-copy is not in this copy (nor is its tenant)')
    t.ok(result.target.ok)
  })

  t.test('a target a newer release migrated is refused (exit 2), --force or not, with nothing written', async (t) => {
    const path = await seedSqlite(t)
    const url = await server.createDatabase()
    const target = new PostgresStore({ url })
    t.teardown(() => target.close())
    await target.migrate()
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    t.teardown(() => client.end())
    // A migration 999 of a later release: its columns would be left at their defaults.
    await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '999_later.sql', '2030-01-01T00:00:00.000Z')")
    for (const argv of [[], ['--force']]) {
      const c = capture()
      t.equal(await main(['--from', `sqlite:${path}`, '--to', url, ...argv], { PROVISION_AUDIT_SECRET: SECRET }, c.io), 2, argv.join(' '))
      t.match(c.err(), /error: the target has migrations this release does not know \(999\): a newer release migrated it, and this release would leave out what they added; use that release's `npm run db:to-postgres`/)
      t.equal(c.out(), '')
      t.equal(await target.countTenants(), 0, 'nothing written')
    }
  })

  t.test('a target refusing the user, or naming no database, is a setting (exit 2): one line naming --to', async (t) => {
    const path = await seedSqlite(t)
    const { noDb, noUser } = refusedUrls(await server.createDatabase())
    for (const [to, reason] of [
      [noDb, /database "ctfhive_no_such_database" does not exist; the database it names does not exist on that server \(SQLSTATE 3D000\)/],
      [noUser, /PostgreSQL refused the connection for this user .*\(SQLSTATE 28000\)|PostgreSQL refused the user name or password \(SQLSTATE 28P01\)/]
    ] as Array<[URL, RegExp]>) {
      const c = capture()
      t.equal(await main(['--from', `sqlite:${path}`, '--to', to.toString()], { PROVISION_AUDIT_SECRET: SECRET }, c.io), 2, to.pathname)
      const errors = c.err().split('\n').filter((l) => l.startsWith('error: '))
      t.equal(errors.length, 1, 'one line')
      t.match(errors[0], /^error: --to: could not connect to PostgreSQL at postgres:\/\//)
      t.match(errors[0], reason)
      t.notMatch(c.err() + c.out(), /hunter2/, 'no password in messages')
    }
    // The target from DATABASE_URL is named so.
    const c = capture()
    t.equal(await main(['--from', `sqlite:${path}`], { PROVISION_AUDIT_SECRET: SECRET, DATABASE_URL: noDb.toString() }, c.io), 2)
    t.match(c.err(), /^error: DATABASE_URL: could not connect to PostgreSQL/m)
  })

  t.test('memory does not grow with the data: both chains and the events are read a page at a time', async (t) => {
    // 48 MB of audit details and 80 MB of event payloads, copied in a 64 MB heap. Read whole,
    // the chain alone took over 192 MB here (a copy per side, as rows and as entries).
    const path = await bulkSqlite(t, { entries: 24_000, detailBytes: 2000, events: 20_000, payloadBytes: 4000 })
    const url = await server.createDatabase()
    const r = spawnSync(process.execPath, ['--max-old-space-size=64', SCRIPT, '--from', `sqlite:${path}`, '--to', url], {
      encoding: 'utf8', env: { PATH: process.env.PATH, PROVISION_AUDIT_SECRET: SECRET }, timeout: 120_000
    })
    t.notMatch(r.stderr, /heap out of memory/, 'within the heap')
    t.equal(r.status, 0, r.stderr.slice(0, 2000))
    t.match(r.stdout, /^stripe_events\s+20000$/m)
    t.match(r.stdout, /^audit_log\s+24000$/m)
    t.match(r.stdout, /source audit chain: ok \(24000 entries, last seq 24000\)/)
    t.match(r.stdout, /target audit chain: ok \(24000 entries, last seq 24000\)/)
  })

  t.test('a chain read in pages gets the verdicts it got read whole', async (t) => {
    // Past the first page of 1000, and a row below seq 1, which the first page must not skip.
    const cases: Array<[string, RegExp]> = [
      ['DELETE FROM audit_log WHERE seq = 1500', /^source audit chain: BROKEN at seq 1501 \(removed\): expected seq 1500, found 1501: entries are missing$/m],
      ["UPDATE audit_log SET detail = '{\"forged\":true}' WHERE seq = 2400", /^source audit chain: BROKEN at seq 2400 \(modified\): content does not match its MAC$/m],
      ['INSERT INTO audit_log SELECT 0, at, tenant, action, detail, prev_mac, mac FROM audit_log WHERE seq = 1', /^source audit chain: BROKEN at seq 0 \(inserted\): seq 0 is below 1, where the chain starts/m]
    ]
    for (const [sql, verdict] of cases) {
      const path = await bulkSqlite(t, { entries: 2500, detailBytes: 10, events: 0, payloadBytes: 0 })
      const raw = new DatabaseSync(path)
      raw.exec(sql)
      raw.close()
      const url = await server.createDatabase()
      const c = capture()
      t.equal(await main(['--from', `sqlite:${path}`, '--to', url], { PROVISION_AUDIT_SECRET: SECRET }, c.io), 1, sql)
      t.match(c.out(), verdict)
      t.same(await tablesOf(url), [], 'nothing written to the target')
    }
  })

  t.test('the command runs as a script', async (t) => {
    const path = await seedSqlite(t)
    const url = await server.createDatabase()
    const r = spawnSync(process.execPath, [SCRIPT, '--from', `sqlite:${path}`], {
      encoding: 'utf8', env: { PATH: process.env.PATH, PROVISION_AUDIT_SECRET: SECRET, DATABASE_URL: url }, timeout: 60_000
    })
    t.equal(r.status, 0, r.stderr)
    t.match(r.stdout, /target audit chain: ok/)
    t.match(r.stderr, /copying .* → postgres:\/\//, 'the target defaults to DATABASE_URL')
  })
})

/** A TCP listener that accepts connections and never says a word, like a wedged database host. */
async function silentServer (t: Test): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  }))
  return (server.address() as AddressInfo).port
}

t.test('a PostgreSQL host that accepts but never answers fails the run after the connect timeout', async (t) => {
  t.equal(CONNECT_TIMEOUT_MS, 10_000, 'the command gives a host 10 s')
  const path = await seedSqlite(t)
  const port = await silentServer(t)
  const c = capture()
  // Without a connect timeout the run would never end: give up well before tap does.
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<'hung'>((resolve) => { timer = setTimeout(() => resolve('hung'), 5000) })
  const code = await Promise.race([main(['--from', `sqlite:${path}`, '--to', `postgres://ctfhive:hunter2@127.0.0.1:${port}/ctfhive`], { PROVISION_AUDIT_SECRET: SECRET }, c.io, { connectTimeoutMs: 300 }), hung])
  clearTimeout(timer)
  t.equal(code, 1, 'a store failure, like the others')
  const errors = c.err().split('\n').filter((l) => l.startsWith('error: '))
  t.same(errors, [`error: could not connect to PostgreSQL at postgres://ctfhive:***@127.0.0.1:${port}/ctfhive: no answer within 0.3 s`], 'one clear line')
  t.notMatch(c.err() + c.out(), /hunter2/, 'no password in messages')
})

t.test('a source an older release left is refused (exit 2) before anything is read or written', async (t) => {
  const path = await seedSqlite(t)
  const raw = new DatabaseSync(path)
  t.teardown(() => raw.close())
  raw.exec(rollbackSql(2))
  const c = capture()
  // The target is never reached: the port is closed.
  const code = await main(['--from', `sqlite:${path}`, '--to', 'postgres://ctfhive@127.0.0.1:9/ctfhive'], { PROVISION_AUDIT_SECRET: SECRET }, c.io)
  t.equal(code, 2, 'another release\'s schema: the wrong tool, or too early')
  t.match(c.err(), /error: the database's schema is behind this release \(not applied: 003_job_step_at\.sql, 004_rate_limits\.sql, 005_soft_cancel\.sql, 006_tenant_fqdn\.sql, 007_billing_state\.sql, 008_session_names\.sql, 009_unmatched_subscription\.sql, 010_control_names\.sql, 011_event_outcome_index\.sql, 012_listing_indexes\.sql, 013_admin_email\.sql, 014_public_errors\.sql(, [^)]+)?\); start the server of this release once/)
  t.notMatch(c.err(), /could not connect/, 'refused before connecting to the target')
  t.equal(c.out(), '', 'nothing copied')
})

t.test('a source a newer release migrated is refused (exit 2): this release would drop what it added', async (t) => {
  const path = await seedSqlite(t)
  const raw = new DatabaseSync(path)
  t.teardown(() => raw.close())
  // As a later release's migration 999 would leave it: a column this release does not copy.
  raw.exec("ALTER TABLE tenants ADD COLUMN notes TEXT; UPDATE tenants SET notes = 'kept'; INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '999_tenant_notes.sql', '2030-01-01T00:00:00.000Z')")
  const c = capture()
  // The target is never reached: the port is closed.
  const code = await main(['--from', `sqlite:${path}`, '--to', 'postgres://ctfhive@127.0.0.1:9/ctfhive'], { PROVISION_AUDIT_SECRET: SECRET }, c.io)
  t.equal(code, 2)
  const errors = c.err().split('\n').filter((l) => l.startsWith('error: '))
  t.same(errors, [`error: the source (${path}) has migrations this release does not know (999): a newer release migrated it, and this release would leave out what they added; use that release's \`npm run db:to-postgres\``])
  t.notMatch(c.err(), /could not connect/, 'refused before connecting to the target')
  t.equal(c.out(), '', 'nothing copied')
})

t.test('a --from that is no SQLite database is a setting (exit 2), named as --from', async (t) => {
  const dir = dirname(tempDbPath(t))
  const garbage = join(dir, 'garbage.db')
  writeFileSync(garbage, 'this is not a database, just text that is long enough to be a header'.repeat(20))
  const folder = join(dir, 'folder.db')
  mkdirSync(folder)
  for (const [path, message] of [
    [garbage, new RegExp(`^error: --from: ${garbage}: file is not a database \\(SQLITE_NOTADB: the file is not an SQLite database\\)\n$`)],
    [folder, new RegExp(`^error: --from names a directory, not an SQLite database file: ${folder}\n$`)]
  ] as Array<[string, RegExp]>) {
    const c = capture()
    t.equal(await main(['--from', `sqlite:${path}`, '--to', 'postgres://ctfhive@127.0.0.1:9/ctfhive'], { PROVISION_AUDIT_SECRET: SECRET }, c.io), 2, path)
    t.match(c.err().split('\n').filter((l) => !l.startsWith('copying') && !l.startsWith('warning')).join('\n'), message)
  }
})

t.test('secrets in a URL\'s query are masked in messages, not only ?password=', async (t) => {
  const path = await seedSqlite(t)
  const c = capture()
  const to = 'postgres://ctfhive@127.0.0.1:9/ctfhive?password=SECRET5&sslpassword=SECRET6&application_name=copy'
  t.equal(await main(['--from', `sqlite:${path}`, '--to', to], { PROVISION_AUDIT_SECRET: SECRET }, c.io, { connectTimeoutMs: 2000 }), 1, 'the closed target')
  t.match(c.err(), /could not connect to PostgreSQL at postgres:\/\/ctfhive@127\.0\.0\.1:9\/ctfhive\?password=\*\*\*&sslpassword=\*\*\*&application_name=copy/)
  t.notMatch(c.err() + c.out(), /SECRET[56]/)
  t.equal(redact('postgres://u:pw@h/db?sslkey=/etc/k.pem&PassPhrase=x&client_secret=y&sslmode=require'), 'postgres://u:***@h/db?sslkey=***&PassPhrase=***&client_secret=***&sslmode=require')
  // One that does not parse (a port out of range) is masked all the same.
  t.equal(redact('mysql://u:pw@h:99999/db?sslpassword=SECRET6&x=1'), 'mysql://***@h:99999/db?sslpassword=***&x=1')
})

t.test('--to and --from are checked as DATABASE_URL is (exit 2), the password never shown', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--from', 'sqlite:/tmp/x.db', '--to', 'postgres://u:SECRET1@127.0.0.1:99999/db'], /^error: --to is not a valid postgres:\/\/ URL: check the port \(1–65535\) and percent-encode @ : \/ \? # in the user name and password\n/],
    [['--from', 'sqlite::memory:', '--to', 'postgres://h/db'], /^error: --from is an in-memory database/],
    [['--from', 'sqlite:', '--to', 'postgres://h/db'], /^error: --from names no database file/]
  ]
  for (const [argv, message] of cases) {
    const c = capture()
    t.equal(await main(argv, { PROVISION_AUDIT_SECRET: SECRET }, c.io), 2, argv.join(' '))
    t.match(c.err(), message)
    t.notMatch(c.err(), /SECRET1|RET1/, 'no password in messages')
  }
})

t.test('PROVISION_AUDIT_SECRET and DATABASE_URL are read as the server reads them', async (t) => {
  const path = await seedSqlite(t)
  // Spaces around a value are trimmed by the server's config: the chain written under the
  // trimmed secret verifies here too, and the target defaults to the trimmed DATABASE_URL.
  const c = capture()
  const code = await main(['--from', `sqlite:${path}`], { PROVISION_AUDIT_SECRET: ` ${SECRET} `, DATABASE_URL: ' postgres://ctfhive@127.0.0.1:9/ctfhive ' }, c.io, { connectTimeoutMs: 2000 })
  t.equal(code, 1, 'it got as far as the (closed) target')
  t.notMatch(c.out(), /BROKEN/, 'the source chain verifies')
  t.match(c.err(), /copying .* → postgres:\/\/ctfhive@127\.0\.0\.1:9\/ctfhive\n/)
  t.match(c.err(), /error: could not connect to PostgreSQL at postgres:\/\/ctfhive@127\.0\.0\.1:9\/ctfhive/)

  const bad = capture()
  t.equal(await main(['--from', `sqlite:${path}`, '--to', 'postgres://h/db'], { DATABASE_URL: 'mysql://x' }, bad.io), 2, 'a value the server refuses is refused here')
  t.match(bad.err(), /^error: DATABASE_URL/)
})

t.test('bad usage exits 2 with a reason', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--from', 'sqlite:/nonexistent/x.db'], /--to postgres:\/\/… is required/],
    [['--from', 'postgres://a/b', '--to', 'postgres://c/d'], /--from must be a sqlite: URL/],
    [['--from', 'postgres://admin:hunter2@db/ctfhive', '--to', 'sqlite:./x.db'], /--from must be a sqlite: URL, got postgres:\/\/admin:\*\*\*@db\/ctfhive/],
    [['--to', 'mysql://user:hunter2@h/db'], /--to must be a postgres:\/\/ URL, got mysql:\/\/user:\*\*\*@h\/db/],
    [['--to', 'mysql://user@h/db?password=hunter2'], /--to must be a postgres:\/\/ URL, got mysql:\/\/user@h\/db\?password=\*\*\*/],
    [['--from', 'sqlite:/nonexistent/x.db', '--to', 'postgres://h/db'], /no SQLite database at \/nonexistent\/x.db/],
    // A bare path is shown as it is (it holds no password), with how to write it.
    [['--from', '/tmp/x.db', '--to', 'postgres://h/db'], /--from must be a sqlite: URL, got \/tmp\/x\.db \(a file is given as sqlite:\/tmp\/x\.db\)\n/],
    [['--to', 'user:hunter2@h/db'], /--to must be a postgres:\/\/ URL, got \*\*\*@h\/db\n/],
    [['--bogus'], /Unknown option '--bogus'/],
    // `--to A --to B --force` must not quietly empty B.
    [['--from', 'sqlite:/nonexistent/x.db', '--to', 'postgres://h/a', '--to', 'postgres://h/b', '--force'], /^error: --to given twice\n/]
  ]
  for (const [argv, message] of cases) {
    const c = capture()
    t.equal(await main(argv, {}, c.io), 2, argv.join(' '))
    t.match(c.err(), message)
    t.notMatch(c.err(), /hunter2/, 'no password in messages')
  }
  const help = capture()
  t.equal(await main(['--help'], {}, help.io), 0)
  t.match(help.out(), /^Usage: node bootstrap\/migrate-sqlite-to-postgres.ts/)
})
