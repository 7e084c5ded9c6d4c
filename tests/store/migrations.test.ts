// The schema's version: only the server migrates; the operator CLI's store refuses a database
// this release's migrations have not reached, and a server on a schema a newer release
// migrated says so.
import t, { type Test } from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NotCtfhiveDatabase, SchemaAhead, SchemaBehind, aheadWarning, holdsOtherTables, refuseAhead, refuseUnlessCurrent, schemaStatusOf, tableList, versionList } from '../../api/store/migrations.ts'
import { migrate } from '../../api/store/sqlite-ops.ts'
import { openStore, settingRefusal } from '../../api/store/index.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import { StoreError } from '../../api/store/store.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { makeTenant } from './contract.ts'
import { CONTROL_NAMES, PUBLIC_ERRORS, SESSION_NAMES, rollbackSql } from '../helpers/schema-rollback.ts'
import { cleanName } from '../../api/tenants/name.ts'

const PG = { poolSize: 2, statementTimeoutMs: 5000 }

function tempPath (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-schema-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'store.db')
}

function raw (t: Test, path: string): DatabaseSync {
  const db = new DatabaseSync(path)
  t.teardown(() => db.close())
  return db
}

/** A database migrated by this release, then taken back to the schema `version` left. */
async function olderDatabase (t: Test, version: number): Promise<{ path: string, db: DatabaseSync }> {
  const path = tempPath(t)
  await (await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })).close()
  const db = raw(t, path)
  db.exec(rollbackSql(version))
  return { path, db }
}

function indexes (db: DatabaseSync): string[] {
  return db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => String(r.name))
}

t.test('schemaStatusOf: pending files in order, unknown versions sorted', async (t) => {
  const files = ['001_initial.sql', '002_event_indexes.sql', '003_more.sql']
  t.same(schemaStatusOf(files, [1, 2, 3]), { initialized: true, pending: [], unknown: [] })
  t.same(schemaStatusOf(files, [1]), { initialized: true, pending: ['002_event_indexes.sql', '003_more.sql'], unknown: [] })
  t.same(schemaStatusOf(files, []), { initialized: true, pending: files, unknown: [] })
  t.same(schemaStatusOf(files, undefined), { initialized: false, pending: files, unknown: [] }, 'no migrations table')
  t.same(schemaStatusOf(files.slice(0, 2), [9, 1, 2, 3]), { initialized: true, pending: [], unknown: [3, 9] })
})

t.test('a schema a newer release migrated: refused by the copy, a warning for the others; one behind is its own refusal', async (t) => {
  const files = ['001_initial.sql', '002_event_indexes.sql']
  const ahead = schemaStatusOf(files, [1, 2, 14, 3])
  t.equal(versionList(ahead.unknown), '003, 014', 'as the files are numbered')
  t.doesNotThrow(() => refuseUnlessCurrent(ahead), 'the operator CLI still works on it (a rollback)')
  t.throws(() => refuseAhead(ahead, 'the source', 'tool'), new SchemaAhead('the source has migrations this release does not know (003, 014): a newer release migrated it, and this release would leave out what they added; use that release\'s tool'))
  t.equal(aheadWarning(ahead), 'the database has migrations this release does not know (003, 014): a newer release migrated it')
  const current = schemaStatusOf(files, [1, 2])
  t.doesNotThrow(() => refuseAhead(current, 'the source', 'tool'))
  t.equal(aheadWarning(current), null)
  let behind: unknown
  try { refuseUnlessCurrent(schemaStatusOf(files, [1])) } catch (err) { behind = err }
  t.ok(behind instanceof SchemaBehind && behind instanceof StoreError, 'behind: a StoreError of its own class')
  t.equal((behind as Error).name, 'StoreError')
})

t.test('SQLite: the server migrates on open; a store that must not migrate refuses a file that is not ours, untouched', async (t) => {
  const path = tempPath(t)
  const other = new DatabaseSync(path)
  other.exec('CREATE TABLE notes (body TEXT)')
  other.close()
  t.throws(() => new SqliteStore({ path, migrate: false }), { name: 'StoreError', message: /this is not a CTFHive database \(it has no schema_migrations table\): check DATABASE_URL/ })
  const db = raw(t, path)
  t.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'delete', 'not switched to WAL')
  t.same(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => r.name), ['notes'], 'and nothing created')

  const fresh = tempPath(t)
  const store = await openStore({ databaseUrl: `sqlite:${fresh}`, pg: PG })
  t.same(await store.schema(), { initialized: true, pending: [], unknown: [] }, 'migrated')
  await store.close()
})

t.test('holdsOtherTables: tables and no schema_migrations among them; an empty database is ours to set up', async (t) => {
  t.notOk(holdsOtherTables([]), 'empty')
  t.ok(holdsOtherTables(['users']), 'another application\'s')
  t.notOk(holdsOtherTables(['schema_migrations']), 'ours, just begun')
  t.notOk(holdsOtherTables(['jobs', 'schema_migrations', 'tenants']), 'ours')
  t.equal(tableList(['a', 'b']), 'a, b')
  t.equal(tableList(['a', 'b', 'c', 'd', 'e', 'f', 'g']), 'a, b, c, d, e and 2 more')
})

t.test("SQLite: the server refuses another application's database, untouched, as a setting; an empty file is migrated", async (t) => {
  const path = tempPath(t)
  const other = new DatabaseSync(path)
  other.exec('CREATE TABLE users (name TEXT); CREATE VIEW user_names AS SELECT name FROM users')
  other.close()
  const err = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG }).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof NotCtfhiveDatabase, `refused: ${String(err)}`)
  t.match((err as Error).message, /^this is not a CTFHive database: it holds other tables \(user_names, users\) and no schema_migrations table/)
  const refusal = settingRefusal(err)
  t.equal(refusal?.variable, 'DATABASE_URL', 'a setting: the server exits 78')
  t.match(refusal?.message, /^DATABASE_URL: this is not a CTFHive database/)
  const db = raw(t, path)
  t.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'delete', 'not switched to WAL')
  t.same(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => r.name), ['users'], 'and nothing created')
  t.notOk(existsSync(`${path}-wal`), 'no WAL beside it')

  // An existing empty file (as `touch` leaves it) is a new database.
  const empty = tempPath(t)
  writeFileSync(empty, '')
  const store = await openStore({ databaseUrl: `sqlite:${empty}`, pg: PG })
  t.same(await store.schema(), { initialized: true, pending: [], unknown: [] }, 'migrated')
  await store.close()
  const again = await openStore({ databaseUrl: `sqlite:${empty}`, pg: PG })
  t.same(await again.schema(), { initialized: true, pending: [], unknown: [] }, 'and opens again: its tables are its own')
  await again.close()
})

t.test('the CLI store refuses a database behind this release and leaves it as it was', async (t) => {
  // As an older release left it: only migration 001 applied.
  const { path, db } = await olderDatabase(t, 1)
  const before = indexes(db)

  const err = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG }, { migrate: false }).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof StoreError, 'a StoreError')
  t.match((err as Error).message, /schema is behind this release \(not applied: 002_event_indexes\.sql, 003_job_step_at\.sql, 004_rate_limits\.sql, 005_soft_cancel\.sql, 006_tenant_fqdn\.sql, 007_billing_state\.sql, 008_session_names\.sql, 009_unmatched_subscription\.sql, 010_control_names\.sql, 011_event_outcome_index\.sql, 012_listing_indexes\.sql, 013_admin_email\.sql, 014_public_errors\.sql, 015_state_index\.sql\); start the server of this release once/)
  t.same(indexes(db), before, 'no index created')
  t.notOk(db.prepare('SELECT * FROM pragma_table_info(?)').all('jobs').some((c) => c.name === 'step_at'), 'no column added')
  t.equal(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'rate_limits'").get()?.n, 0, 'no table created')
  t.notOk(db.prepare('SELECT * FROM pragma_table_info(?)').all('tenants').some((c) => c.name === 'soft_cancel_from' || c.name === 'fqdn'), 'no tenant column added')
  t.same(db.prepare('SELECT version FROM schema_migrations').all().map((r) => r.version), [1], 'no version recorded')

  // Up to date, it opens and works.
  await (await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })).close()
  const cliStore = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG }, { migrate: false })
  t.equal(await cliStore.countTenants(), 0)
  await cliStore.close()
})

t.test('migration 003 gives the jobs an older release left the time of their last change as step_at', async (t) => {
  // As release 002 left it: no step_at, a job waiting at the health check.
  const { path, db } = await olderDatabase(t, 2)
  db.prepare("INSERT INTO jobs (kind, tenant, status, step, attempts, run_after, lease_until, created_at, updated_at) VALUES ('provision', ?, 'queued', 'dns', 1, 0, 0, ?, ?)")
    .run('a'.repeat(32), '2026-11-20T08:00:00.000Z', '2026-11-20T08:30:15.249Z')

  const store = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })
  t.teardown(() => store.close())
  const [job] = await store.listJobs({})
  t.match(job, { step: 'dns', attempts: 1, stepAt: Date.parse('2026-11-20T08:30:15.249Z') }, 'to the millisecond')
  t.same(await store.schema(), { initialized: true, pending: [], unknown: [] })
})

t.test("migration 011 adds the events' partial index over the outcomes other than 'ok'; an older release's database has none", async (t) => {
  const { path, db } = await olderDatabase(t, 10)
  t.notOk(indexes(db).includes('stripe_events_not_ok'), 'none as release 010 left it')
  await (await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })).close()
  const sql = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'stripe_events_not_ok'").get()?.sql
  t.equal(sql, "CREATE INDEX stripe_events_not_ok ON stripe_events (received, id) WHERE outcome <> 'ok'", 'partial: renewals never enter it')
})

t.test("migration 012 adds the indexes of the tenant listing and of a tenant's jobs; an older release's database has neither", async (t) => {
  const { path, db } = await olderDatabase(t, 11)
  t.notOk(indexes(db).some((name) => name === 'tenants_created' || name === 'jobs_tenant'), 'none as release 011 left it')
  await (await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })).close()
  const sql = (name: string): unknown => db.prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?").get(name)?.sql
  t.equal(sql('tenants_created'), 'CREATE INDEX tenants_created ON tenants (created_at DESC, id)', "in the listing's very order")
  t.equal(sql('jobs_tenant'), 'CREATE INDEX jobs_tenant ON jobs (tenant, id)')
})

// Each data migration, run over the names an older release stored: before → after.
for (const [what, names, below] of [
  ['008 renames the tenants an older release named after a whole session id', SESSION_NAMES, 7],
  ['010 cleans the control characters out of the names an older release took', CONTROL_NAMES, 9]
] as const) {
  t.test(`migration ${what}`, async (t) => {
    const path = tempPath(t)
    const old = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })
    const ids = []
    for (const [before] of names) {
      const tenant = makeTenant({ name: before })
      await old.insertTenant(tenant)
      ids.push(tenant.id)
    }
    await old.close()
    raw(t, path).exec(rollbackSql(below))
    const store = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })
    t.teardown(() => store.close())
    t.same(await Promise.all(ids.map(async (id) => (await store.getTenant(id))?.name)), names.map(([, after]) => after))
  })
}

t.test("migration 014 replaces the raw causes older releases put in a failed tenant's public error", async (t) => {
  const path = tempPath(t)
  const old = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })
  const ids = []
  for (const [before] of PUBLIC_ERRORS) {
    const tenant = makeTenant({ error: before, infra: 'failed' })
    await old.insertTenant(tenant)
    ids.push(tenant.id)
  }
  await old.close()
  raw(t, path).exec(rollbackSql(13))
  const store = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })
  t.teardown(() => store.close())
  t.same(await Promise.all(ids.map(async (id) => (await store.getTenant(id))?.error)), PUBLIC_ERRORS.map(([, after]) => after))
})

t.test('a migration SQLite rolls back itself (a full disk) is reported with its cause, and leaves the version before', async (t) => {
  const { path, db } = await olderDatabase(t, 9)
  // As SQLite answers SQLITE_FULL mid-statement: the transaction is gone when the error arrives.
  const full = new Proxy(db, {
    get (target, key) {
      if (key === 'exec') {
        return (sql: string) => {
          if (sql.includes('WITH RECURSIVE')) {
            target.exec('ROLLBACK')
            throw new Error('database or disk is full')
          }
          return target.exec(sql)
        }
      }
      const value = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const err = await Promise.resolve().then(() => migrate(full)).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof StoreError)
  t.equal((err as Error).message, 'migration 010_control_names.sql failed: database or disk is full', 'the migration and the cause, not "no transaction is active"')
  t.same(raw(t, path).prepare('SELECT max(version) AS v FROM schema_migrations').get(), { v: 9 })
})

t.test('migration 010 applies the C0/DEL part of the rule for names Stripe hands us now', async (t) => {
  for (const [before, after] of CONTROL_NAMES) {
    if (/[\u0000-\u001f\u007f]/.test(before)) t.equal(after, cleanName(before) ?? 'ctfhive-event', JSON.stringify(before))
  }
})

t.test('a server on a schema a newer release migrated warns at start, and runs', async (t) => {
  const path = tempPath(t)
  const store = await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })
  raw(t, path).prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(99, '099_future.sql', new Date().toISOString())
  const logLines: Array<Record<string, unknown>> = []
  const { app } = await buildTestApp(t, { store, logLines })
  t.teardown(() => store.close())
  const warned = logLines.find((l) => String(l.msg).includes('migrations this release does not know'))
  t.match(warned, { level: 40, versions: [99] })
  t.equal((await app.inject('/readyz')).statusCode, 200)
})

t.test('an up-to-date database: no warning', async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  await buildTestApp(t, { logLines })
  t.notOk(logLines.some((l) => String(l.msg).includes('does not know')))
})
