import t, { type Test } from 'tap'
import pg from 'pg'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { MIGRATION_LOCK, PostgresStore, SCHEMA_TABLES_SQL } from '../../api/store/postgres.ts'
import { auditQuery, jobsQuery, recentEventsQuery, sqlState, tenantCountQuery, tenantsQuery } from '../../api/store/postgres-ops.ts'
import { appendAudit } from '../../api/provisioning/audit.ts'
import { StoreError } from '../../api/store/store.ts'
import { openStore, settingRefusal } from '../../api/store/index.ts'
import { NotCtfhiveDatabase } from '../../api/store/migrations.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { audit, makeTenant, storeContract } from './contract.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { checkoutSession, deliver, invoice, makeEvent, subscription } from '../helpers/stripe-events.ts'
import { CONTROL_NAMES, PUBLIC_ERRORS, SESSION_NAMES, rollbackSql } from '../helpers/schema-rollback.ts'

/** The plan PostgreSQL makes for `query` as a prepared statement, in `mode` (plan_cache_mode). */
async function preparedPlan (c: pg.Client, [sql, params]: [string, unknown[]], mode: string): Promise<string> {
  await c.query(`SET plan_cache_mode = ${mode}`)
  await c.query(`PREPARE listing AS ${sql}`)
  try {
    const r = await c.query(`EXPLAIN EXECUTE listing(${params.map((p) => typeof p === 'number' ? String(p) : c.escapeLiteral(String(p))).join(', ')})`)
    return r.rows.map((row) => String(row['QUERY PLAN'])).join('\n')
  } finally {
    await c.query('DEALLOCATE listing')
  }
}

const server = await usePostgres(t)

if (server !== undefined) {
  const open = async (url: string, statementTimeoutMs = 10_000): Promise<PostgresStore> => {
    const store = new PostgresStore({ url, poolSize: 5, statementTimeoutMs })
    await store.migrate()
    return store
  }
  /** A plain client on `url`, ended with the test: SQL the store would not run. */
  const clientOf = async (t: Test, url: string): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    t.teardown(() => c.end())
    return c
  }
  const poolOf = (store: PostgresStore): pg.Pool => (store as unknown as { pool: pg.Pool }).pool

  /**
   * Resolves once some backend of the database matches `where` (on pg_stat_activity), or
   * `stop` says there is no more to wait for.
   */
  const backendWhere = async (url: string, where: string, what: string, stop = (): boolean => false): Promise<void> => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    // A bound, not a speed check: a statement that never gets there fails the test instead of hanging it.
    const deadline = Date.now() + 20_000
    try {
      for (;;) {
        const r = await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND ${where}`)
        if (r.rows[0].n > 0 || stop()) return
        if (Date.now() > deadline) throw new Error(`no backend is ${what}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    } finally {
      await c.end()
    }
  }
  /** Resolves once some backend of the database waits on a lock (a row lock, say). */
  const lockWaiter = (url: string): Promise<void> => backendWhere(url, "wait_event_type = 'Lock'", 'waiting on a lock')

  t.test('the store contract on PostgreSQL', async (t) => {
    storeContract(t, async () => {
      const url = await server.createDatabase()
      return { store: await open(url), reopen: () => open(url) }
    })
  })

  t.test('openStore picks PostgreSQL for postgres:// URLs and migrates', async (t) => {
    const url = await server.createDatabase()
    const store = await openStore({ databaseUrl: url, pg: { poolSize: 3, statementTimeoutMs: 1234 } })
    t.teardown(() => store.close())
    t.equal(store.kind, 'postgres')
    const tn = makeTenant()
    await store.insertTenant(tn)
    t.same(await store.getTenant(tn.id), tn)
    const r = await poolOf(store as PostgresStore).query('SHOW statement_timeout')
    t.equal(r.rows[0].statement_timeout, '1234ms', 'statement_timeout is set on every connection')
    t.equal(poolOf(store as PostgresStore).options.max, 3, 'pool size from config')
  })

  t.test('migrations: concurrent starts serialise on the advisory lock; reopening is a no-op', async (t) => {
    const url = await server.createDatabase()
    const stores = await Promise.all([1, 2, 3].map(() => open(url)))
    t.teardown(async () => { for (const s of stores) await s.close() })
    const again = await open(url)
    stores.push(again)
    const r = await poolOf(again).query('SELECT version, name FROM schema_migrations ORDER BY version')
    t.same(r.rows, [{ version: 1, name: '001_initial.sql' }, { version: 2, name: '002_event_indexes.sql' }, { version: 3, name: '003_job_step_at.sql' }, { version: 4, name: '004_rate_limits.sql' }, { version: 5, name: '005_soft_cancel.sql' }, { version: 6, name: '006_tenant_fqdn.sql' }, { version: 7, name: '007_billing_state.sql' }, { version: 8, name: '008_session_names.sql' }, { version: 9, name: '009_unmatched_subscription.sql' }, { version: 10, name: '010_control_names.sql' }, { version: 11, name: '011_event_outcome_index.sql' }, { version: 12, name: '012_listing_indexes.sql' }, { version: 13, name: '013_admin_email.sql' }, { version: 14, name: '014_public_errors.sql' }, { version: 15, name: '015_state_index.sql' }], 'each migration applied once')
    const tn = makeTenant()
    await stores[0]!.insertTenant(tn)
    t.same(await stores[2]!.getTenant(tn.id), tn)
  })

  t.test('a start waits for another instance\'s migrations longer than PG_STATEMENT_TIMEOUT_MS', async (t) => {
    const url = await server.createDatabase()
    const other = new pg.Client({ connectionString: url })
    await other.connect()
    t.teardown(() => other.end())
    await other.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
    const opening = openStore({ databaseUrl: url, pg: { poolSize: 1, statementTimeoutMs: 300 } })
    await sleep(900)
    await other.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK])
    const store = await opening
    t.teardown(() => store.close())
    t.same(await store.schema(), { initialized: true, pending: [], unknown: [] }, 'migrated once the lock was free')
    const r = await poolOf(store as PostgresStore).query('SHOW statement_timeout')
    t.equal(r.rows[0].statement_timeout, '300ms', 'and the one connection keeps its own timeout for requests')
  })

  t.test('an instance paused inside a transaction that holds the audit lock stalls the others only until PostgreSQL ends its session', async (t) => {
    const url = await server.createDatabase()
    const paused = new PostgresStore({ url, poolSize: 2, idleInTransactionTimeoutMs: 300 })
    t.teardown(() => paused.close())
    await paused.migrate()
    const other = await open(url)
    t.teardown(() => other.close())
    const tenant = 'a'.repeat(32)
    let resume!: () => void
    const frozen = new Promise<void>((resolve) => { resume = resolve })
    const stalled = paused.transaction(async (tx) => {
      await audit(tx, tenant, 'server.created')
      await frozen // the process stopped here, its transaction open, the lock held
      await tx.countTenants()
    })
    await backendWhere(url, "state = 'idle in transaction'", 'idle in its transaction')
    // Bounded by the other store's statement timeout (10 s) when the session is never ended.
    const appended = await audit(other, tenant, 'dns.record').finally(resume)
    t.equal(appended.seq, 1, "the other instance appended once the paused one's session was ended")
    t.ok(await stalled.then(() => undefined, (e: unknown) => e) instanceof StoreError, "the paused transaction fails when it goes on: none of it was written")
    t.same((await other.listAudit({ tenant })).map((e) => e.action), ['dns.record'])
    const fresh = new PostgresStore({ url, poolSize: 1 })
    t.teardown(() => fresh.close())
    t.equal((await poolOf(fresh).query('SHOW idle_in_transaction_session_timeout')).rows[0].idle_in_transaction_session_timeout, '30s', 'the default')
    // The database runs on this host: its clock is this one.
    t.ok(Math.abs(await fresh.syncClock()) < 1000, 'the clock offset is measured, not made up')
  })

  /** Two instances on a new database: `a` on this host's clocks, `b` on those given. */
  const clockedPair = async (t: Test, clocks: { hostClock?: () => number, steadyClock?: () => number }): Promise<{ a: PostgresStore, b: PostgresStore }> => {
    const url = await server.createDatabase()
    const a = await open(url)
    t.teardown(() => a.close())
    const b = new PostgresStore({ url, poolSize: 2, ...clocks })
    t.teardown(() => b.close())
    // A warm connection, as the app's clock reads have: the first would count connecting too.
    await b.ping()
    return { a, b }
  }

  /** A worker on `a` holds a new job of `tenant` under a 30 s lease. */
  const jobHeldBy = async (t: Test, a: PostgresStore, tenant: string): Promise<void> => {
    const job = await a.enqueueJob({ kind: 'provision', tenant, runAfter: a.now() })
    t.equal((await a.claimNextJob('in-step', a.now(), 30_000))?.id, job.id)
  }

  t.test("an instance whose host clock runs ahead keeps to the database's clock: it takes no job another instance still holds", async (t) => {
    const AHEAD = 90_000
    const { a, b } = await clockedPair(t, { hostClock: () => Date.now() + AHEAD })
    t.ok(b.now() - Date.now() > AHEAD - 1000, "before measuring, its clock is its host's")
    const offset = await b.syncClock()
    t.ok(Math.abs(offset + AHEAD) < 1000, `the database's clock is measured ${Math.round(offset)} ms from the host's`)
    t.ok(Math.abs(b.now() - Date.now()) < 1000, "after measuring, it reads the database's time")
    t.ok(Math.abs(await b.transaction(async (tx) => tx.now()) - Date.now()) < 1000, "and so do its transactions")

    await jobHeldBy(t, a, 'c'.repeat(32))
    t.equal(await b.claimNextJob('ahead', b.now(), 30_000), undefined, 'the other instance does not take the job while its lease runs')
    // Its writes are timed by the database's clock too.
    const entry = await appendAudit(b, 'a'.repeat(64), 'c'.repeat(32), 'server.created')
    t.ok(Math.abs(Date.parse(entry.at) - Date.now()) < 5000, `its audit entry is dated ${entry.at}`)
  })

  /** The measurements b's now() starts itself, counted, each one's answer kept to wait for. */
  const watchSyncs = (b: PostgresStore): Array<Promise<number>> => {
    const started: Array<Promise<number>> = []
    const measure = b.syncClock.bind(b)
    b.syncClock = () => { const p = measure(); started.push(p); return p }
    return started
  }

  t.test("a step of an instance's wall clock is measured at once; its job times keep to the database's clock", async (t) => {
    let step = 0
    const { a, b } = await clockedPair(t, { hostClock: () => Date.now() + step })
    await b.syncClock()
    await jobHeldBy(t, a, 'd'.repeat(32))
    const syncs = watchSyncs(b)
    // NTP steps b's host a minute and a half back, ten minutes before b would measure again.
    step = -90_000
    t.ok(Math.abs(b.now() - Date.now()) < 1000, "a step back is no suspend: it still reads the database's time")
    t.equal(syncs.length, 1, 'and measures again at once')
    t.ok(Math.abs(await syncs[0]! - 90_000) < 1000, 'which sees the step, for the server\'s warning')
    // Now forward: told from a suspend only by that measurement, which answers in a round trip.
    step = 90_000
    b.now()
    t.equal(syncs.length, 2)
    t.ok(Math.abs(await syncs[1]! + 90_000) < 1000, `measured ${Math.round(await syncs[1]!)} ms`)
    t.ok(Math.abs(b.now() - Date.now()) < 1000, "then it reads the database's time")
    t.equal(await b.claimNextJob('stepped', b.now(), 30_000), undefined, 'it does not take the job whose lease still runs')
    t.equal(syncs.length, 2, 'measured once for each step, not on every read')
  })

  t.test("an instance's host suspended for an hour, which its steady clock missed, keeps to the database's clock from its first read", async (t) => {
    // CLOCK_MONOTONIC (performance.now) does not count the time a host is suspended or its VM paused.
    let suspended = 0
    const { a, b } = await clockedPair(t, { steadyClock: () => performance.timeOrigin + performance.now() - suspended })
    await b.syncClock()
    const syncs = watchSyncs(b)
    // On resume the wall clock has the hour (the kernel, or NTP, sets it); the steady clock not.
    suspended = 3_600_000
    const reads = Array.from({ length: 100 }, () => b.now() - Date.now())
    t.ok(reads.every((d) => Math.abs(d) < 1000), "before measuring again, it reads the wall clock with the database's last offset")
    t.equal(syncs.length, 1, 'and starts one measurement, not one a read')
    const tenant = 'e'.repeat(32)
    const job = await b.enqueueJob({ kind: 'provision', tenant, runAfter: b.now() })
    t.equal((await b.claimNextJob('resumed', b.now(), 330_000))?.id, job.id)
    t.equal(await a.claimNextJob('in-step', a.now(), 330_000), undefined, 'its lease runs: no other instance takes the job')
    const entry = await appendAudit(b, 'a'.repeat(64), tenant, 'tenant.canceled')
    t.ok(Math.abs(Date.parse(entry.at) - a.now()) < 5000, `its audit entry is dated ${entry.at}`)
    const hit = await b.countHit('POST /billing/checkout 203.0.113.1', 60_000, b.now())
    t.ok(Math.abs(hit.resetAt - a.now() - 60_000) < 5000, 'a rate window ends a minute from now')
    await syncs[0]
    t.ok(Math.abs(b.now() - a.now()) < 1000, 'once measured, it keeps to the steady clock again')
    t.equal(syncs.length, 1, 'with no further measurement')
  })

  t.test("the server refuses another application's database, untouched, as a setting; tables only in another schema do not count", async (t) => {
    const url = await server.createDatabase()
    const c = await clientOf(t, url)
    await c.query('CREATE TABLE users (name text); CREATE VIEW user_names AS SELECT name FROM users')
    const config = { databaseUrl: url, pg: { poolSize: 2, statementTimeoutMs: 5000 } }
    const err = await openStore(config).then(async (s) => { await s.close() }, (e: unknown) => e)
    t.ok(err instanceof NotCtfhiveDatabase, `refused: ${String(err)}`)
    t.match((err as Error).message, /^this is not a CTFHive database: it holds other tables \(user_names, users\) and no schema_migrations table/)
    t.equal(settingRefusal(err)?.variable, 'DATABASE_URL', 'a setting: the server exits 78')
    const held = (await c.query(SCHEMA_TABLES_SQL)).rows.map((r) => r.name)
    t.same(held, ['user_names', 'users'], 'nothing created')

    // The same tables in a schema the store does not use leave public empty: it is migrated.
    const apart = await server.createDatabase()
    const d = await clientOf(t, apart)
    await d.query('CREATE SCHEMA other; CREATE TABLE other.users (name text)')
    const store = await openStore({ ...config, databaseUrl: apart })
    t.teardown(() => store.close())
    t.same(await store.schema(), { initialized: true, pending: [], unknown: [] }, 'migrated')
    await (store as PostgresStore).migrate()
    t.pass('and migrates again: its tables are its own')

    // An extension's tables and views (some hosts install pg_stat_statements in every database)
    // are not another application's: that database is empty to us, and migrated.
    const withExtension = await server.createDatabase()
    const e = await clientOf(t, withExtension)
    await e.query('CREATE EXTENSION pg_buffercache; CREATE EXTENSION pg_stat_statements')
    const extended = await openStore({ ...config, databaseUrl: withExtension })
    t.teardown(() => extended.close())
    t.same(await extended.schema(), { initialized: true, pending: [], unknown: [] }, 'an extension\'s objects do not make it another application\'s')
  })

  t.test('schema: what a database lacks or has beyond this release; the CLI store refuses one behind', async (t) => {
    const url = await server.createDatabase()
    const config = { databaseUrl: url, pg: { poolSize: 2, statementTimeoutMs: 5000 } }
    const err = await openStore(config, { migrate: false }).then(() => undefined, (e: unknown) => e)
    t.ok(err instanceof StoreError)
    t.match((err as Error).message, /this is not a CTFHive database \(it has no schema_migrations table\)/)
    const look = new PostgresStore({ url, poolSize: 1 })
    t.teardown(() => look.close())
    t.same(await look.schema(), { initialized: false, pending: ['001_initial.sql', '002_event_indexes.sql', '003_job_step_at.sql', '004_rate_limits.sql', '005_soft_cancel.sql', '006_tenant_fqdn.sql', '007_billing_state.sql', '008_session_names.sql', '009_unmatched_subscription.sql', '010_control_names.sql', '011_event_outcome_index.sql', '012_listing_indexes.sql', '013_admin_email.sql', '014_public_errors.sql', '015_state_index.sql'], unknown: [] }, 'nothing was created')

    const store = await openStore(config)
    t.teardown(() => store.close())
    t.same(await store.schema(), { initialized: true, pending: [], unknown: [] }, 'the server migrates')
    await poolOf(store as PostgresStore).query('DELETE FROM schema_migrations WHERE version = 2')
    const behind = await openStore(config, { migrate: false }).then(() => undefined, (e: unknown) => e)
    t.match((behind as Error).message, /schema is behind this release \(not applied: 002_event_indexes\.sql\)/)
    await poolOf(store as PostgresStore).query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (2, '002_event_indexes.sql', 'now'), (99, '099_future.sql', 'now')")
    t.same(await store.schema(), { initialized: true, pending: [], unknown: [99] }, 'a newer release ran')
    const cli = await openStore(config, { migrate: false })
    t.equal(await cli.countTenants(), 0, 'the CLI store opens an up-to-date database')
    await cli.close()
  })

  t.test('migration 003 gives the jobs an older release left the time of their last change as step_at', async (t) => {
    const url = await server.createDatabase()
    const first = await open(url)
    // As release 002 left it: no step_at, a job waiting at the health check.
    await poolOf(first).query(rollbackSql(2))
    await poolOf(first).query("INSERT INTO jobs (kind, tenant, status, step, attempts, run_after, lease_until, created_at, updated_at) VALUES ('provision', $1, 'queued', 'dns', 1, 0, 0, $2, $3)",
      ['a'.repeat(32), '2026-11-20T08:00:00.000Z', '2026-11-20T08:30:15.249Z'])
    await first.close()
    const store = await open(url)
    t.teardown(() => store.close())
    const [job] = await store.listJobs({})
    t.match(job, { step: 'dns', attempts: 1, stepAt: Date.parse('2026-11-20T08:30:15.249Z') }, 'to the millisecond')
    t.same(await store.schema(), { initialized: true, pending: [], unknown: [] })
  })

  // Each data migration, run over the names an older release stored: before → after.
  for (const [what, names, below] of [
    ['008 renames the tenants an older release named after a whole session id', SESSION_NAMES, 7],
    // PostgreSQL's text never held a NUL.
    ['010 cleans the control characters out of the names an older release took', CONTROL_NAMES.filter(([before]) => !before.includes('\u0000')), 9]
  ] as const) {
    t.test(`migration ${what}`, async (t) => {
      const url = await server.createDatabase()
      const first = await open(url)
      const ids = []
      for (const [before] of names) {
        const tenant = makeTenant({ name: before })
        await first.insertTenant(tenant)
        ids.push(tenant.id)
      }
      await poolOf(first).query(rollbackSql(below))
      await first.close()
      const store = await open(url)
      t.teardown(() => store.close())
      t.same(await Promise.all(ids.map(async (id) => (await store.getTenant(id))?.name)), names.map(([, after]) => after))
    })
  }

  t.test("migration 014 replaces the raw causes older releases put in a failed tenant's public error", async (t) => {
    const url = await server.createDatabase()
    const first = await open(url)
    const ids = []
    for (const [before] of PUBLIC_ERRORS) {
      const tenant = makeTenant({ error: before, infra: 'failed' })
      await first.insertTenant(tenant)
      ids.push(tenant.id)
    }
    await poolOf(first).query(rollbackSql(13))
    await first.close()
    const store = await open(url)
    t.teardown(() => store.close())
    t.same(await Promise.all(ids.map(async (id) => (await store.getTenant(id))?.error)), PUBLIC_ERRORS.map(([, after]) => after))
  })

  t.test("the admin's events come from an index: an outcome other than 'ok' from the partial one, in every plan", async (t) => {
    const url = await server.createDatabase()
    await (await open(url)).close()
    const c = await clientOf(t, url)
    // As a store fills: mostly 'ok' (renewals), one event in fifty unmatched; then analysed.
    await c.query(`INSERT INTO stripe_events (id, type, created, received, outcome, tenant, payload)
      SELECT 'evt_' || i, 'invoice.paid', i, to_char(timestamp '2026-01-01' + i * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        CASE WHEN i % 50 = 0 THEN 'unmatched' ELSE 'ok' END, NULL, '{}'
      FROM generate_series(1, 5000) AS i`)
    await c.query('ANALYZE stripe_events')
    const plan = (filter: Parameters<typeof recentEventsQuery>[0], mode: string): Promise<string> => preparedPlan(c, recentEventsQuery(filter), mode)
    const after = { received: '2026-01-01T01:00:00.000Z', id: 'evt_3600' }
    // Custom plans (a prepared statement's first runs) and the generic plan it may keep after.
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      for (const filter of [{}, { after }, { outcome: 'ok' as const }, { outcome: 'ok' as const, after }]) {
        const text = await plan({ ...filter, limit: 50 }, mode)
        t.match(text, /using stripe_events_received on stripe_events/, `${mode} ${JSON.stringify(filter)}:\n${text}`)
        t.notMatch(text, /Seq Scan|stripe_events_not_ok/)
      }
      for (const filter of [{ outcome: 'unmatched' as const }, { outcome: 'unmatched' as const, after }]) {
        const text = await plan({ ...filter, limit: 50 }, mode)
        t.match(text, /(Index Scan Backward using|Bitmap Index Scan on) stripe_events_not_ok\b/, `${mode} ${JSON.stringify(filter)}:\n${text}`)
        t.notMatch(text, /Seq Scan|stripe_events_received/)
      }
    }
  })

  t.test("tenant pages, a tenant's jobs and its audit entries come from indexes, in every plan", async (t) => {
    const url = await server.createDatabase()
    await (await open(url)).close()
    const c = await clientOf(t, url)
    // As a store fills: tenants mostly active, a few provisioning, three at a timestamp; jobs
    // and audit entries for each; then analysed.
    await c.query(`INSERT INTO tenants (id, name, plan, slug, billing, infra, created_at, updated_at)
      SELECT lpad(to_hex(i), 32, '0'), 'T', 'solo', 't-' || i, CASE WHEN i % 10 = 0 THEN 'canceled' WHEN i % 1000 = 1 THEN 'pending' ELSE 'paid' END,
        CASE WHEN i % 10 = 0 THEN 'deprovisioned' WHEN i % 1000 = 1 THEN 'provisioning' ELSE 'ready' END,
        to_char(timestamp '2026-01-01' + (i / 3) * interval '1 second', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), '2026-01-01T00:00:00.000Z'
      FROM generate_series(1, 20000) AS i`)
    await c.query(`INSERT INTO jobs (kind, tenant, status, run_after, created_at, updated_at)
      SELECT 'provision', lpad(to_hex(i / 3), 32, '0'), 'done', 0, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z' FROM generate_series(3, 60000) AS i`)
    await c.query(`INSERT INTO audit_log (seq, at, tenant, action, detail, prev_mac, mac)
      SELECT i, '2026-01-01T00:00:00.000Z', lpad(to_hex(i / 10), 32, '0'), 'step', '{}', '', '' FROM generate_series(10, 200000) AS i`)
    await c.query('ANALYZE')
    const plan = (query: [string, unknown[]], mode: string): Promise<string> => preparedPlan(c, query, mode)
    const tenant = (10_000).toString(16).padStart(32, '0')
    const after = { createdAt: '2026-01-01T01:00:00.000Z', id: (10_800).toString(16).padStart(32, '0') }
    // Custom plans (a prepared statement's first runs) and the generic plan it may keep after.
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      // The export's pages and the admin's (of the most common state too), in the listing's order.
      for (const filter of [{}, { after }, { billing: 'paid' as const, infra: 'ready' as const }, { billing: 'paid' as const, infra: 'ready' as const, after }]) {
        const text = await plan(tenantsQuery({ ...filter, limit: 501 }), mode)
        t.match(text, /Index Scan using tenants_(created|state) on tenants/, `${mode} ${JSON.stringify(filter)}:\n${text}`)
        if ('after' in filter) t.match(text, /Index Cond: \(.*created_at <= /, 'starts where the page before ended')
        t.notMatch(text, /Seq Scan|Sort/)
      }
      // A rare state's pages, a (billing, infra) pair at a time, and their counts: only its rows.
      for (const filter of [{ billing: 'pending' as const, infra: 'provisioning' as const }, { billing: 'pending' as const, infra: 'provisioning' as const, after }]) {
        const text = await plan(tenantsQuery({ ...filter, limit: 501 }), mode)
        t.match(text, /Index Scan using tenants_state on tenants/, `${mode} ${JSON.stringify(filter)}:\n${text}`)
        t.match(text, /Index Cond: \(\(billing = .*\) AND \(infra = .*\)/, 'starts at its pair')
        if ('after' in filter) t.match(text, /Index Cond: \(.*created_at <= /, 'and where the page before ended')
        t.notMatch(text, /Seq Scan|Sort/)
        // A count's generic plan, made for any pair, may take tenants_billing: never the table.
        const count = await plan(tenantCountQuery(filter), mode)
        if (mode === 'force_custom_plan') t.match(count, /Index (Only )?Scan using tenants_state on tenants|Bitmap Index Scan on tenants_state/, `${mode} count ${JSON.stringify(filter)}:\n${count}`)
        t.notMatch(count, /Seq Scan/, `${mode} count ${JSON.stringify(filter)}:\n${count}`)
      }
      for (const filter of [{ tenant }, { tenant, status: 'done' as const }]) {
        const text = await plan(jobsQuery(filter), mode)
        t.match(text, /Index Scan using jobs_tenant on jobs/, `${mode} ${JSON.stringify(filter)}:\n${text}`)
        t.notMatch(text, /Seq Scan|Sort/)
      }
      for (const newest of [false, true]) {
        const text = await plan(auditQuery({ tenant, limit: newest ? 5000 : 1, newest }), mode)
        t.match(text, /audit_log_tenant/, `${mode} a tenant's, newest ${String(newest)}:\n${text}`)
        t.notMatch(text, /Seq Scan|audit_log_pkey/, 'not the chain from seq 1')
      }
    }
  })

  t.test('rate counts: the rows of windows that ended are deleted when a new window begins', async (t) => {
    const store = await open(await server.createDatabase())
    t.teardown(() => store.close())
    await store.countHit('old', 1_000, 0)
    await store.countHit('live', 10_000, 0)
    const keys = async (): Promise<string[]> => (await poolOf(store).query('SELECT key FROM rate_limits ORDER BY key')).rows.map((r) => String(r.key))
    await store.countHit('live', 10_000, 2_000)
    t.same(await keys(), ['live', 'old'], 'a hit inside a window deletes nothing')
    await store.countHit('new', 1_000, 2_000)
    t.same(await keys(), ['live', 'new'], 'a new window deletes the ended ones, and only those')
  })

  t.test('pg errors become StoreErrors carrying the SQLSTATE', async (t) => {
    const url = await server.createDatabase()
    const store = await open(url)
    t.teardown(() => store.close())
    const tn = makeTenant()
    await store.insertTenant(tn)
    const dup = await store.insertTenant(tn).catch((e: unknown) => e)
    t.ok(dup instanceof StoreError, 'a constraint violation is a StoreError')
    t.equal(sqlState(dup), '23505')
    t.match((dup as Error).message, /duplicate key/)
    const inTx = await store.transaction((tx) => tx.linkSubscription('sub_1', 'f'.repeat(32))).catch((e: unknown) => e)
    t.ok(inTx instanceof StoreError, 'also inside a transaction')
    t.equal(sqlState(inTx), '23503', 'a foreign key violation')
    t.equal(sqlState(new Error('x')), undefined)

    const down = new PostgresStore({ url: 'postgres://postgres@127.0.0.1:1/none' })
    t.teardown(() => down.close())
    await t.rejects(down.ping(), StoreError, 'an unreachable server is a StoreError on reads')
    await t.rejects(down.transaction(async () => 1), StoreError, 'and on transactions')
    await t.rejects(down.migrate(), StoreError, 'and on migrate')
  })

  t.test('statement_timeout cancels a statement that waits too long', async (t) => {
    const url = await server.createDatabase()
    const slow = await open(url, 300)
    const holder = await open(url)
    t.teardown(async () => { await slow.close(); await holder.close() })
    const tn = makeTenant()
    await holder.insertTenant(tn)
    let release!: () => void
    let locked!: () => void
    const held = new Promise<void>((resolve) => { release = resolve })
    const lockTaken = new Promise<void>((resolve) => { locked = resolve })
    const locking = holder.transaction(async (tx) => {
      await tx.getTenantForUpdate(tn.id)
      locked()
      await held
    })
    await lockTaken
    const err = await slow.transaction((tx) => tx.getTenantForUpdate(tn.id)).catch((e: unknown) => e)
    release()
    await locking
    t.ok(err instanceof StoreError)
    t.equal(sqlState(err), '57014', 'query_canceled by statement_timeout')
  })

  t.test('getTenantForUpdate holds the row until the holder commits', async (t) => {
    const url = await server.createDatabase()
    const store = await open(url)
    t.teardown(() => store.close())
    const tn = makeTenant()
    await store.insertTenant(tn)
    let second: Promise<string | undefined> | undefined
    await store.transaction(async (tx) => {
      await tx.getTenantForUpdate(tn.id)
      second = store.transaction(async (tx2) => (await tx2.getTenantForUpdate(tn.id))?.billing)
      await lockWaiter(url)
      await tx.updateTenant(tn.id, { billing: 'paid' })
    })
    t.equal(await second, 'paid', 'the second locker waited and then saw the committed change')
  })

  t.test('claims skip rows another transaction holds (SKIP LOCKED)', async (t) => {
    const url = await server.createDatabase()
    // A claim that blocked on the held row would hit this timeout and fail the test.
    const store = await open(url, 2000)
    t.teardown(() => store.close())
    const a = await store.enqueueJob({ kind: 'provision', tenant: 'a'.repeat(32), runAfter: 1 })
    const b = await store.enqueueJob({ kind: 'provision', tenant: 'b'.repeat(32), runAfter: 2 })
    await store.transaction(async (tx) => {
      const mine = await tx.claimNextJob('w1', 10, 1000)
      t.equal(mine?.id, a.id)
      const other = await store.claimNextJob('w2', 10, 1000)
      t.equal(other?.id, b.id, 'the other worker got the next job without waiting')
      t.equal(await store.claimNextJob('w3', 10, 1000), undefined, 'and a third finds nothing free')
    })
  })

  t.test('a deadlock is rerun: both transactions commit', async (t) => {
    const url = await server.createDatabase()
    const store = await open(url)
    t.teardown(() => store.close())
    const x = makeTenant()
    const y = makeTenant()
    await store.insertTenant(x)
    await store.insertTenant(y)
    let arrived = 0
    let go!: () => void
    const bothLocked = new Promise<void>((resolve) => { go = resolve })
    const runs = { first: 0, second: 0 }
    const cross = (name: 'first' | 'second', one: string, two: string): Promise<void> => store.transaction(async (tx) => {
      runs[name]++
      await tx.getTenantForUpdate(one)
      if (++arrived === 2) go()
      await bothLocked
      await tx.getTenantForUpdate(two)
      const t2 = (await tx.getTenant(two))!
      await tx.updateTenant(two, { billingAt: t2.billingAt + 1 })
    })
    const results = await Promise.allSettled([cross('first', x.id, y.id), cross('second', y.id, x.id)])
    t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled'])
    // PostgreSQL aborts one of the two; on a loaded machine a rerun can meet the other again,
    // so what must hold is that something was rerun and each update landed exactly once.
    t.ok(runs.first + runs.second >= 3, 'the deadlock victim ran again')
    t.equal((await store.getTenant(x.id))!.billingAt, 1)
    t.equal((await store.getTenant(y.id))!.billingAt, 1)
  })

  t.test('a unique race is rerun: the loser takes the update path', async (t) => {
    const url = await server.createDatabase()
    const store = await open(url)
    t.teardown(() => store.close())
    const tn = makeTenant()
    let arrived = 0
    let go!: () => void
    const bothRead = new Promise<void>((resolve) => { go = resolve })
    const paths: string[] = []
    const upsert = (): Promise<void> => store.transaction(async (tx) => {
      const existing = await tx.getTenantForUpdate(tn.id)
      if (++arrived === 2) go()
      await bothRead
      if (existing === undefined) {
        paths.push('insert')
        await tx.insertTenant(tn)
      } else {
        paths.push('update')
        await tx.updateTenant(tn.id, { billingAt: existing.billingAt + 1 })
      }
    })
    await Promise.all([upsert(), upsert()])
    t.same(paths, ['insert', 'insert', 'update'], 'both tried to insert; the one that lost ran again and updated')
    t.equal((await store.getTenant(tn.id))!.billingAt, 1)
  })

  t.test('an error thrown by the function is not retried and passes through', async (t) => {
    const url = await server.createDatabase()
    const store = await open(url)
    t.teardown(() => store.close())
    let runs = 0
    const mine = Object.assign(new Error('mine'), { code: '40001' })
    const err = await store.transaction(async () => { runs++; throw mine }).catch((e: unknown) => e)
    t.equal(err, mine)
    t.equal(runs, 1, 'a look-alike code on a non-database error is not a reason to rerun')
  })

  /** The tx's raw query (PgOps.q is protected): for the tests' own statements. */
  const raw = (tx: unknown, text: string): Promise<Array<Record<string, unknown>>> => (tx as { q: (text: string) => Promise<Array<Record<string, unknown>>> }).q(text)
  const terminate = async (url: string, pid: unknown): Promise<void> => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    await c.query('SELECT pg_terminate_backend($1)', [pid])
    await c.end()
  }

  for (const when of ['mid-statement', 'between statements'] as const) {
    t.test(`a backend ended ${when} fails that transaction only; the process and the store go on`, async (t) => {
      const url = await server.createDatabase()
      const store = await open(url)
      t.teardown(() => store.close())
      const uncaught: unknown[] = []
      const onUncaught = (err: unknown): void => { uncaught.push(err) }
      // tap turns an uncaught exception into a failure of its own; listening first records it here.
      process.prependListener('uncaughtException', onUncaught)
      t.teardown(() => { process.off('uncaughtException', onUncaught) })
      const tn = makeTenant()
      const result = store.transaction(async (tx) => {
        await tx.insertTenant(tn)
        const [{ pid }] = await raw(tx, 'SELECT pg_backend_pid() AS pid') as [{ pid: number }]
        if (when === 'mid-statement') {
          const sleeping = raw(tx, 'SELECT pg_sleep(30)')
          sleeping.catch(() => {}) // awaited below; it may reject while the backend is ended
          await backendWhere(url, "query LIKE 'SELECT pg_sleep%' AND state = 'active'", 'sleeping')
          await terminate(url, pid)
          await sleeping
        } else {
          await terminate(url, pid)
          await new Promise((resolve) => setTimeout(resolve, 100)) // the client hears it while idle in the transaction
          await raw(tx, 'SELECT 1')
        }
      })
      await t.rejects(result, 'the transaction fails')
      t.same(uncaught, [], 'no uncaught error')
      t.equal(await store.getTenant(tn.id), undefined, 'nothing of it committed')
      const other = makeTenant()
      await store.insertTenant(other)
      t.same(await store.getTenant(other.id), other, 'the next transaction works')
    })
  }

  t.test('a function that swallows a failed statement cannot commit what remains', async (t) => {
    const url = await server.createDatabase()
    const store = await open(url)
    t.teardown(() => store.close())
    const a = makeTenant()
    const err = await store.transaction(async (tx) => {
      await tx.insertTenant(a)
      try { await tx.insertTenant(a) } catch { /* carries on regardless */ }
      return 'looks fine'
    }).catch((e: unknown) => e)
    t.type(err, StoreError, 'PostgreSQL answered COMMIT with ROLLBACK: the caller hears it')
    t.equal(await store.getTenant(a.id), undefined, 'and nothing was written')
  })

  t.test('transactions run READ COMMITTED whatever the server default', async (t) => {
    const url = await server.createDatabase()
    const strict = new URL(url)
    strict.searchParams.set('options', '-c default_transaction_isolation=serializable')
    const store = await open(strict.toString())
    t.teardown(() => store.close())
    t.equal((await poolOf(store).query('SHOW default_transaction_isolation')).rows[0].default_transaction_isolation, 'serializable', 'the connection default is stricter')
    const level = await store.transaction(async (tx) => (await raw(tx, 'SHOW transaction_isolation'))[0]!.transaction_isolation)
    t.equal(level, 'read committed')
  })

  // A rolling upgrade: every pooled connection that prepared a statement on the table fails it
  // from then on, more of them than a transaction's attempts. Transactions first: a failed
  // plain read drops its connection, which would hide a transaction's failure too.
  for (const first of ['transactions', 'reads'] as const) {
    t.test(`after another process adds a column, ${first} and the others still work`, async (t) => {
      const url = await server.createDatabase()
      const size = 7
      const store = new PostgresStore({ url, poolSize: size })
      await store.migrate()
      t.teardown(() => store.close())
      const tenants = Array.from({ length: size }, () => makeTenant())
      for (const one of tenants) await store.insertTenant(one)
      const tn = tenants[0]!
      // Each of the pool's connections prepares both statements: held at once, they are
      // distinct (a row each, as the first would hold a shared row's lock).
      let arrived = 0
      let go = (): void => {}
      const all = new Promise<void>((resolve) => { go = resolve })
      await Promise.all(tenants.map((one) => store.transaction(async (tx) => {
        await tx.getTenantForUpdate(one.id)
        await tx.getTenant(one.id)
        if (++arrived === size) go()
        await all
      })))
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      await c.query('ALTER TABLE tenants ADD COLUMN note TEXT')
      await c.end()
      const transaction = (): Promise<unknown> => store.transaction((tx) => tx.getTenantForUpdate(tn.id))
      const read = (): Promise<unknown> => store.getTenant(tn.id)
      const [a, b] = first === 'transactions' ? [transaction, read] : [read, transaction]
      for (let i = 0; i < size + 1; i++) t.same(await a(), tn, `${first}, ${i + 1}`)
      t.same(await b(), tn, 'then the other kind')
    })
  }

  t.test('the webhook and the success page adopting one subscription at once make one tenant', async (t) => {
    const url = await server.createDatabase()
    const store = await open(url)
    t.teardown(() => store.close())
    const { app } = await buildTestApp(t, { store })
    for (let i = 0; i < 6; i++) {
      // A session made outside this server: no tenant id, so only the subscription links it.
      const session = checkoutSession({ subscription: `sub_adopt_${i}`, name: `Adopt ${i}` })
      const event = makeEvent('checkout.session.completed', session)
      await Promise.all([
        app.tenants.handleEvent(event as never, JSON.stringify(event)),
        app.tenants.fulfilCheckoutSession(session),
        app.tenants.fulfilCheckoutSession(session)
      ])
      const tenants = (await store.listTenants({ limit: 1000 })).filter((tn) => tn.name === `Adopt ${i}`)
      t.equal(tenants.length, 1, `session ${i}: one tenant`)
    }
  })

  /**
   * Makes the store's transactions stop, the first time one of `methods` has answered, until
   * `release` is called (`paused` resolves then); counts the deadlocks they were failed for.
   */
  const pauseAfter = (store: PostgresStore, methods: string[]) => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    let reached!: () => void
    const paused = new Promise<void>((resolve) => { reached = resolve })
    let armed = true
    const counts = { deadlocks: 0 }
    const transaction = store.transaction.bind(store)
    store.transaction = (fn) => transaction((tx) => {
      return fn(new Proxy(tx, {
        get (target, prop) {
          const v = Reflect.get(target, prop, target)
          if (typeof v !== 'function') return v
          if (!methods.includes(String(prop))) return v.bind(target)
          return async (...args: unknown[]) => {
            const answer = await v.apply(target, args)
            if (armed) {
              armed = false
              reached()
              await gate
            }
            return answer
          }
        }
      })).catch((err: unknown) => {
        if (sqlState(err) === '40P01') counts.deadlocks++
        throw err
      })
    })
    return { paused, release, counts }
  }

  /** Two app instances on one new database, as two servers behind a load balancer. */
  const twoInstances = async (t: Test) => {
    const url = await server.createDatabase()
    const storeA = await open(url)
    const storeB = await open(url)
    t.teardown(async () => { await storeA.close(); await storeB.close() })
    const { app: a } = await buildTestApp(t, { store: storeA })
    const { app: b } = await buildTestApp(t, { store: storeB })
    return { url, storeA, storeB, a, b }
  }

  /**
   * A delivers `first` and stops once one of `pauseOn` has answered; B then delivers `second`
   * until it waits on a lock; A goes on. The answers, and how many deadlocks each side was failed for.
   */
  const lockRace = async (i: Awaited<ReturnType<typeof twoInstances>>, first: ReturnType<typeof makeEvent>, pauseOn: string[], second: ReturnType<typeof makeEvent>) => {
    const pauseA = pauseAfter(i.storeA, pauseOn)
    const pauseB = pauseAfter(i.storeB, [])
    const answerA = deliver(i.a, first)
    await pauseA.paused
    const answerB = deliver(i.b, second)
    await backendWhere(i.url, "wait_event_type = 'Lock'", 'waiting on a lock')
    pauseA.release()
    const [ra, rb] = await Promise.all([answerA, answerB])
    return { ra, rb, deadlocks: [pauseA.counts.deadlocks, pauseB.counts.deadlocks] }
  }

  // Two instances: A takes a subscription on (and lists the events held for it), while B's
  // event about that subscription finds no tenant yet. Whichever order they commit in, B's
  // event must end applied to A's tenant: answered by B once A has committed, or held by B
  // before A lists. A is paused just after its list, the moment B's answer would be lost.
  for (const [adopter, heldEvent] of [
    ['a Payment Link checkout', 'customer.subscription.created'],
    ['a subscription event naming our tenant', 'invoice.paid']
  ] as const) {
    t.test(`${adopter} taking a subscription on while another instance gets an event about it: the event is applied`, async (t) => {
      const { url, storeA, a, b } = await twoInstances(t)
      const sub = 'sub_taken_on'
      const base = 1_900_000_000
      let adopting, held
      if (heldEvent === 'customer.subscription.created') {
        held = makeEvent('customer.subscription.created', subscription({ id: sub, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: base })
        adopting = makeEvent('checkout.session.completed', checkoutSession({ subscription: sub, created: base + 3 }), { created: base + 3 })
      } else {
        const pending = await a.tenants.createPendingTenant({ name: 'Ours', email: 'ops@ours.test', plan: 'pro' })
        adopting = makeEvent('customer.subscription.created', subscription({ id: sub, tenantId: pending.id, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: base })
        held = makeEvent('invoice.paid', invoice({ subscription: sub }), { created: base + 1 })
      }
      const pauseA = pauseAfter(storeA, ['listUnmatchedEvents'])

      const answerA = deliver(a, adopting)
      await pauseA.paused
      let answeredB = false
      const answerB = deliver(b, held).finally(() => { answeredB = true })
      // B either waits for A (on the subscription's lock) or answers without it.
      await backendWhere(url, "wait_event_type = 'Lock'", 'waiting on a lock', () => answeredB)
      t.notOk(answeredB, 'B waits for A')
      pauseA.release()
      const [ra, rb] = await Promise.all([answerA, answerB])
      t.equal(ra.json().status, 'ok', 'A took the subscription on')
      const tenantId = await storeA.findTenantIdBySubscription(sub)
      t.match(rb.json(), { status: 'ok', tenant_id: tenantId }, 'B applied its event to the tenant')
      t.match(await storeA.getEvent(held.id), { outcome: 'ok', tenant: tenantId, unmatchedSubscription: null }, 'and nothing waits')
      t.equal((await storeA.getTenant(tenantId!))?.plan, 'pro')
    })
  }

  t.test("our checkout's completion and its subscription's first event at once: no deadlock", async (t) => {
    // Each event names the tenant and the subscription; the first to lock something waits
    // while the other runs as far as it can. Locks taken in opposite orders would deadlock,
    // and PostgreSQL would fail one (after deadlock_timeout) for a rerun.
    const two = await twoInstances(t)
    const { storeA, a } = two
    const pending = await a.tenants.createPendingTenant({ name: 'Ours', email: 'ops@ours.test', plan: 'standard' })
    const sub = 'sub_ours'
    const completed = makeEvent('checkout.session.completed', checkoutSession({ tenantId: pending.id, plan: 'standard', subscription: sub }), { created: 1_900_000_010 })
    const created = makeEvent('customer.subscription.created', subscription({ id: sub, tenantId: pending.id, status: 'active', lookupKey: 'ctfhive_standard_monthly' }), { created: 1_900_000_009 })
    const { ra, rb, deadlocks } = await lockRace(two, completed, ['lockSubscription', 'getTenantForUpdate'], created)
    // The subscription's event is older than the paid checkout already applied: stale.
    t.match([ra.json(), rb.json()], [{ status: 'ok', tenant_id: pending.id }, { status: 'stale', tenant_id: pending.id }])
    t.same(deadlocks, [0, 0], 'neither was failed for a deadlock (and rerun)')
    t.equal(await storeA.findTenantIdBySubscription(sub), pending.id)
  })

  t.test('a tenant taking a subscription on (its audit entry written) while a Payment Link checkout adopts it: no deadlock', async (t) => {
    // A appends to the audit chain (its lock) and then needs the subscription's; B, adopting,
    // holds the subscription's and needs the chain's to record its new tenant. A takes the
    // subscription's lock before any audit entry, so B waits for A instead of each for the other.
    const two = await twoInstances(t)
    const pending = await two.a.tenants.createPendingTenant({ name: 'Ours', email: 'ops@ours.test', plan: 'pro' })
    const sub = 'sub_shared'
    const taking = makeEvent('customer.subscription.created', subscription({ id: sub, tenantId: pending.id, status: 'active', lookupKey: 'ctfhive_pro_monthly' }), { created: 1_900_000_000 })
    const adopting = makeEvent('checkout.session.completed', checkoutSession({ subscription: sub, created: 1_900_000_003 }), { created: 1_900_000_003 })
    const { ra, rb, deadlocks } = await lockRace(two, taking, ['appendAudit'], adopting)
    t.same(deadlocks, [0, 0], 'neither was failed for a deadlock (and rerun)')
    t.match([ra.json(), rb.json()], [{ status: 'ok', tenant_id: pending.id }, { tenant_id: pending.id }], 'one tenant: the adopting checkout found ours')
  })
}

t.test('a host that accepts connections and never answers: the store gives up instead of hanging', async (t) => {
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => { sockets.add(socket) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of sockets) s.destroy(); silent.close() })
  const port = (silent.address() as AddressInfo).port
  // 1 s: a test process descheduled past a shorter one would run the timer before accepting.
  const store = new PostgresStore({ url: `postgres://ctfhive:pw-not-shown@127.0.0.1:${port}/ctfhive`, connectTimeoutMs: 1000 })
  t.teardown(() => store.close())
  const err = await store.migrate().then(() => undefined, (e: unknown) => e as Error)
  t.ok(err instanceof Error, 'migrate rejects')
  t.match(err?.message, /timeout/i)
  t.notMatch(String(err?.message), /pw-not-shown/)
  t.equal(sockets.size, 1, 'it did reach the host')
})

t.test('a measurement a clock jump started that fails is tried again after a pause, not on every read', async (t) => {
  let steady = 1_000_000
  let wall = Date.now()
  // Never connected: its measurements are replaced below.
  const store = new PostgresStore({ url: 'postgres://ctfhive@127.0.0.1:1/ctfhive', hostClock: () => wall, steadyClock: () => steady })
  t.teardown(() => store.close())
  let tries = 0
  store.syncClock = async () => { tries++; throw new StoreError('could not connect to PostgreSQL') }
  t.equal(store.now(), wall, 'before any measurement: the wall clock')
  wall += 3_600_000
  t.equal(store.now(), wall, 'after a suspend: the wall clock, while the database cannot say')
  await new Promise(setImmediate)
  t.equal(store.now(), wall)
  t.equal(tries, 1, 'one try')
  steady += 4_000
  wall += 4_000
  t.equal(store.now(), wall)
  t.equal(tries, 1, 'none again within 5 s')
  steady += 1_000
  wall += 1_000
  store.now()
  t.equal(tries, 2, 'then another')
})
