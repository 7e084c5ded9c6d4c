import t, { type Test } from 'tap'
import { DatabaseSync, type SQLInputValue } from 'node:sqlite'
import { closeSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { SqliteStore, sqlitePathFromUrl } from '../../api/store/sqlite.ts'
import { WriteWatch } from '../../api/store/sqlite-health.ts'
import { auditQuery, jobsQuery, recentEventsQuery, tenantCountQuery, tenantsQuery } from '../../api/store/sqlite-ops.ts'
import { PRUNE_BATCH } from '../../api/store/rows.ts'
import { StoreError, type StoreOps, type StripeEventRecord } from '../../api/store/store.ts'
import { makeTenant, storeContract } from './contract.ts'
import { buildTestApp } from '../helpers/build-app.ts'

/** A database file in a temp dir that the test's teardown removes (after its stores close). */
function tempPath (t?: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-store-'))
  t?.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'store.db')
}

t.test('the store contract on SQLite', async (t) => {
  storeContract(t, async () => {
    const path = tempPath()
    return {
      store: new SqliteStore({ path }),
      reopen: async () => new SqliteStore({ path }),
      cleanup: async () => { rmSync(dirname(path), { recursive: true, force: true }) }
    }
  })
})

function openRaw (t: Test, path: string): DatabaseSync {
  const db = new DatabaseSync(path)
  t.teardown(() => db.close())
  return db
}

t.test('WAL and synchronous=FULL are in effect on both connections', async (t) => {
  const path = tempPath(t)
  const store = new SqliteStore({ path })
  t.teardown(() => store.close())
  // The store's own connections are private; what they set is visible in the file (WAL) and
  // through the handles' pragmas, which we read via a transaction and a plain read.
  const raw = openRaw(t, path)
  t.equal(raw.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal', 'the database file is in WAL mode')
  const conns = store as unknown as { writer: { db: DatabaseSync }, conn: { db: DatabaseSync } }
  for (const [name, db] of [['writer', conns.writer.db], ['reader', conns.conn.db]] as const) {
    t.equal(db.prepare('PRAGMA synchronous').get()?.synchronous, 2, `${name}: synchronous=FULL (2)`)
    t.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal', `${name}: WAL`)
    t.equal(db.prepare('PRAGMA foreign_keys').get()?.foreign_keys, 1, `${name}: foreign keys on`)
  }
  t.not(conns.writer.db, conns.conn.db, 'reads use their own connection')
})

t.test('migrations run once: reopening keeps the data and the version rows', async (t) => {
  const path = tempPath(t)
  const first = new SqliteStore({ path })
  const tenant = makeTenant()
  await first.insertTenant(tenant)
  await first.close()
  const again = new SqliteStore({ path })
  const third = new SqliteStore({ path })
  t.teardown(async () => { await again.close(); await third.close() })
  t.same(await again.getTenant(tenant.id), tenant, 'data survives the reopen')
  const raw = openRaw(t, path)
  const rows = raw.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all()
  t.same(rows.map((r) => ({ ...r })), [{ version: 1, name: '001_initial.sql' }, { version: 2, name: '002_event_indexes.sql' }, { version: 3, name: '003_job_step_at.sql' }, { version: 4, name: '004_rate_limits.sql' }, { version: 5, name: '005_soft_cancel.sql' }, { version: 6, name: '006_tenant_fqdn.sql' }, { version: 7, name: '007_billing_state.sql' }, { version: 8, name: '008_session_names.sql' }, { version: 9, name: '009_unmatched_subscription.sql' }, { version: 10, name: '010_control_names.sql' }, { version: 11, name: '011_event_outcome_index.sql' }, { version: 12, name: '012_listing_indexes.sql' }, { version: 13, name: '013_admin_email.sql' }, { version: 14, name: '014_public_errors.sql' }, { version: 15, name: '015_state_index.sql' }], 'each migration recorded exactly once')
})

t.test("the admin's events come from an index, not a sort of the whole table: an outcome other than 'ok' from the partial one", async (t) => {
  const path = tempPath(t)
  const store = new SqliteStore({ path })
  t.teardown(() => store.close())
  const raw = openRaw(t, path)
  const plan = (filter: Parameters<typeof recentEventsQuery>[0]): string[] => {
    const [sql, params] = recentEventsQuery(filter)
    return raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...(params as string[])).map((r) => String(r.detail))
  }
  const after = { received: '2026-01-01T00:00:00.000Z', id: 'evt_1' }
  // 'ok', renewals among them, are most events: they and the whole listing read the received index.
  for (const filter of [{}, { after }, { outcome: 'ok' as const }, { outcome: 'ok' as const, after }]) {
    const steps = plan({ ...filter, limit: 50 })
    t.ok(steps.some((d) => d.includes('USING INDEX stripe_events_received')), `${JSON.stringify(filter)}: ${steps.join('; ')}`)
    t.notOk(steps.some((d) => /^SCAN stripe_events$/.test(d)), 'no full scan')
  }
  // The others read only the partial index, in the listing's order: no sort at all.
  for (const outcome of ['unmatched', 'stale', 'ignored_terminal'] as const) {
    for (const filter of [{ outcome }, { outcome, after }]) {
      const steps = plan({ ...filter, limit: 50 })
      t.match(steps, [/^(SCAN|SEARCH) stripe_events USING INDEX stripe_events_not_ok\b/], `${JSON.stringify(filter)}: ${steps.join('; ')}`)
      t.equal(steps.length, 1, 'and nothing else (no temporary b-tree)')
    }
  }
})

t.test("tenant pages, a tenant's jobs and its audit entries come from indexes, not a scan or a sort of the table", async (t) => {
  const path = tempPath(t)
  const store = new SqliteStore({ path })
  t.teardown(() => store.close())
  const raw = openRaw(t, path)
  const plan = ([sql, params]: [string, unknown[]]): string[] =>
    raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...(params as SQLInputValue[])).map((r) => String(r.detail))
  // The export's pages and the admin's of a whole billing column: along tenants_created in the
  // listing's order, stopping when the page is full; a cursor page seeks to where it starts.
  const after = { createdAt: '2026-01-01T00:00:00.000Z', id: 'a'.repeat(32) }
  for (const filter of [{}, { billing: 'paid' as const }, { billing: 'canceled' as const }, { infra: 'failed' as const }]) {
    const steps = plan(tenantsQuery({ ...filter, limit: 501 }))
    t.same(steps, ['SCAN tenants USING INDEX tenants_created'], `${JSON.stringify(filter)}: no temporary b-tree`)
    const next = plan(tenantsQuery({ ...filter, after, limit: 501 }))
    t.same(next, ['SEARCH tenants USING INDEX tenants_created (created_at<?)'], `${JSON.stringify(filter)} after a tenant: a search, no temporary b-tree`)
  }
  // A state's pages, a (billing, infra) pair at a time (7 of them for provisioning), and their
  // counts: each only its own pair's rows, however few among the tenants, not a walk of them all.
  for (const filter of [{ billing: 'pending' as const, infra: 'provisioning' as const }, { billing: 'paid' as const, infra: 'ready' as const }]) {
    t.same(plan(tenantsQuery({ ...filter, limit: 501 })), ['SEARCH tenants USING INDEX tenants_state (billing=? AND infra=?)'], `${JSON.stringify(filter)}: in the listing's order, no temporary b-tree`)
    t.same(plan(tenantsQuery({ ...filter, after, limit: 501 })), ['SEARCH tenants USING INDEX tenants_state (billing=? AND infra=? AND created_at<?)'], `${JSON.stringify(filter)} after a tenant: from where the page before ended`)
    t.same(plan(tenantCountQuery(filter)), ['SEARCH tenants USING COVERING INDEX tenants_state (billing=? AND infra=?)'], `${JSON.stringify(filter)}: counted in the index alone`)
  }
  // A tenant's jobs (in webhook transactions), by status too; all of them stay a scan.
  for (const filter of [{ tenant: 'a'.repeat(32) }, { tenant: 'a'.repeat(32), status: 'queued' as const }]) {
    t.same(plan(jobsQuery(filter)), ['SEARCH jobs USING INDEX jobs_tenant (tenant=?)'], `${JSON.stringify(filter)}: in id order, no temporary b-tree`)
  }
  // A tenant's audit entries (each poll of planWait, the admin's tenant view): its own, not the chain from seq 1.
  for (const newest of [false, true]) {
    const steps = plan(auditQuery({ tenant: 'a'.repeat(32), limit: 1, newest }))
    t.ok(steps.includes('SEARCH audit_log USING INDEX audit_log_tenant (tenant=? AND rowid>?)'), `newest ${String(newest)}: ${steps.join('; ')}`)
    t.notOk(steps.some((d) => /^(SCAN|SEARCH) audit_log( USING INTEGER PRIMARY KEY|$)/.test(d)), 'not along seq')
  }
  t.same(plan(auditQuery({ afterSeq: 10, limit: 1000 })), ['SEARCH audit_log USING INTEGER PRIMARY KEY (rowid>?)'], 'the whole chain: along seq')
})

t.test('rate counts: the rows of windows that ended are deleted when a new window begins', async (t) => {
  const path = tempPath(t)
  const store = new SqliteStore({ path })
  t.teardown(() => store.close())
  await store.countHit('old', 1_000, 0)
  await store.countHit('live', 10_000, 0)
  await store.countHit('live', 10_000, 500)
  const keys = (): string[] => openRaw(t, path).prepare('SELECT key FROM rate_limits ORDER BY key').all().map((r) => String(r.key))
  t.same(keys(), ['live', 'old'])
  await store.countHit('live', 10_000, 2_000)
  t.same(keys(), ['live', 'old'], 'a hit inside a window deletes nothing')
  await store.countHit('new', 1_000, 2_000)
  t.same(keys(), ['live', 'new'], 'a new window deletes the ended ones, and only those')

  // Many ended at once (a burst from many addresses): each new window clears a bounded batch.
  for (let i = 0; i < PRUNE_BATCH + 4; i++) await store.countHit(`burst-${String(i).padStart(2, '0')}`, 1_000, 2_500)
  await store.countHit('later', 1_000, 5_000)
  // Ended by then: the burst's keys and "new", PRUNE_BATCH + 5 rows.
  t.equal(keys().filter((k) => k !== 'live' && k !== 'later').length, 5, `at most ${PRUNE_BATCH} deleted by one new window`)
  await store.countHit('later-still', 1_000, 5_000)
  t.same(keys(), ['later', 'later-still', 'live'], 'the next new window deletes the rest (and "new", ended too)')
})

t.test('group commit: concurrent transactions share batches; a failing unit rolls back alone', async (t) => {
  const path = tempPath(t)
  const store = new SqliteStore({ path })
  t.teardown(() => store.close())
  const tenants = Array.from({ length: 60 }, () => makeTenant())
  const results = await Promise.allSettled(tenants.map((tn, i) => store.transaction(async (tx) => {
    await tx.insertTenant(tn)
    await tx.recordEvent({ id: `evt_${i}`, type: 'invoice.paid', created: i, received: new Date().toISOString(), outcome: 'ok', tenant: tn.id, payload: '{}' })
    if (i === 17) throw new Error('unit 17 fails')
    if (i === 41) await tx.insertTenant(tn) // a failing store operation
    return i
  })))
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []))
  t.same(failed, [17, 41], 'only the failing units are rejected')
  t.match(results[17], { status: 'rejected', reason: { message: 'unit 17 fails' } }, 'with their own error')
  t.same(results.filter((r) => r.status === 'fulfilled').map((r) => r.value), tenants.map((_, i) => i).filter((i) => i !== 17 && i !== 41))

  // Checked in the file through a separate connection: what was acknowledged is committed.
  const raw = openRaw(t, path)
  const ids = new Set(raw.prepare('SELECT id FROM tenants').all().map((r) => String(r.id)))
  t.equal(ids.size, 58, 'the batch-mates committed')
  t.notOk(ids.has(tenants[17]!.id), 'the throwing unit left no tenant')
  t.notOk(ids.has(tenants[41]!.id), 'the unit with a failing statement left no tenant')
  const events = raw.prepare('SELECT id FROM stripe_events ORDER BY created').all().map((r) => String(r.id))
  t.equal(events.length, 58)
  t.notOk(events.includes('evt_17') || events.includes('evt_41'), 'nor an event')
})

t.test('a batch whose BEGIN fails rejects every unit with a StoreError', async (t) => {
  const path = tempPath(t)
  const store = new SqliteStore({ path, busyTimeoutMs: 0 })
  t.teardown(() => store.close())
  const raw = openRaw(t, path)
  raw.exec('BEGIN IMMEDIATE') // another process holds the write lock
  const results = await Promise.allSettled([1, 2].map(() => store.transaction(async (tx) => tx.insertTenant(makeTenant()))))
  raw.exec('ROLLBACK')
  for (const r of results) t.ok(r.status === 'rejected' && r.reason instanceof StoreError, 'StoreError')
  await store.insertTenant(makeTenant())
  t.equal(await store.countTenants(), 1, 'the store works again once the lock is gone')
})

t.test('an event settled on the store itself waits for the batch that holds the write lock', async (t) => {
  // No busy wait: a write that reached the lock beside the batch would fail at once.
  const store = new SqliteStore({ path: tempPath(t), busyTimeoutMs: 0 })
  t.teardown(() => store.close())
  const held = { id: 'evt_held', type: 'invoice.paid', created: 1, received: new Date().toISOString(), outcome: 'unmatched' as const, tenant: null, payload: '{}', unmatchedSubscription: 'sub_held' }
  await store.recordEvent(held)
  let release!: () => void
  const batch = store.transaction(async (tx) => {
    await tx.insertTenant(makeTenant())
    await new Promise<void>((resolve) => { release = resolve })
  })
  while (release === undefined) await new Promise((resolve) => setImmediate(resolve))
  const settled = store.settleEvent(held.id, 'ok', null)
  release()
  await batch
  await t.resolves(settled, 'settled after the batch')
  t.match(await store.getEvent(held.id), { outcome: 'ok', unmatchedSubscription: null })
})

/** Caps the writer's file a few pages above its size: the next big write fails with SQLITE_FULL. */
function fillDisk (store: SqliteStore): DatabaseSync {
  const w = (store as unknown as { writer: { db: DatabaseSync } }).writer.db
  const pages = Number(w.prepare('PRAGMA page_count').get()?.page_count)
  w.exec(`PRAGMA max_page_count = ${pages + 3}`)
  w.exec('PRAGMA cache_size = 2') // spill to the file mid-statement, as a real full disk would
  return w
}

const event = (id: string, bytes: number): StripeEventRecord =>
  ({ id, type: 'invoice.paid', created: 1, received: new Date().toISOString(), outcome: 'ok', tenant: null, payload: 'x'.repeat(bytes) })

t.test('a full disk that makes SQLite roll back the whole batch: every unit of it gets a StoreError, later batches run', async (t) => {
  const path = tempPath(t)
  const store = new SqliteStore({ path })
  t.teardown(() => store.close())
  const w = fillDisk(store)
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => process.off('unhandledRejection', onUnhandled))
  const results = await Promise.allSettled(['a', 'b', 'c'].map((id) => store.transaction(async (tx) => tx.recordEvent(event(id, id === 'b' ? 2_000_000 : 100)))))
  t.same(results.map((r) => r.status), ['rejected', 'rejected', 'rejected'], 'no unit is acknowledged: the batch is gone')
  for (const r of results) t.ok(r.status === 'rejected' && r.reason instanceof StoreError, 'a StoreError, which the routes answer with 500')
  t.notOk(w.isTransaction, 'no transaction left open')
  w.exec('PRAGMA max_page_count = 1073741823')
  t.equal(await store.transaction(async (tx) => tx.recordEvent(event('d', 100))), true, 'the next batch commits')
  const raw = openRaw(t, path)
  t.same(raw.prepare('SELECT id FROM stripe_events').all().map((r) => r.id), ['d'], 'only what was acknowledged is in the file')
  t.same(unhandled, [], 'no unhandled rejection')
})

// Each kind of write: a plain statement, and one that answers a row (RETURNING).
const writesAfterRollback = {
  'an event': (tx: StoreOps) => tx.recordEvent(event('after', 100)),
  'a rate-limit hit': (tx: StoreOps) => tx.countHit('k', 60_000, Date.now())
}
for (const [what, write] of Object.entries(writesAfterRollback)) {
  t.test(`a unit that swallows a full-disk error cannot write ${what} outside the batch`, async (t) => {
    const path = tempPath(t)
    const store = new SqliteStore({ path })
    t.teardown(() => store.close())
    const w = fillDisk(store)
    let secondWrite: unknown
    const result = store.transaction(async (tx) => {
      try { await tx.recordEvent(event('big', 2_000_000)) } catch { /* carries on regardless */ }
      w.exec('PRAGMA max_page_count = 1073741823') // room again for what follows
      try { await write(tx) } catch (err) { secondWrite = err }
      return 'done'
    })
    await t.rejects(result, StoreError, 'the unit is not acknowledged')
    t.type(secondWrite, StoreError, 'its write after the rollback is refused, not autocommitted')
    const raw = openRaw(t, path)
    t.same(raw.prepare('SELECT id FROM stripe_events').all(), [], 'nothing reached the file')
    t.same(raw.prepare('SELECT key FROM rate_limits').all(), [])
  })
}

t.test('sqlitePathFromUrl', async (t) => {
  t.equal(sqlitePathFromUrl('sqlite:./data/ctfhive.db'), './data/ctfhive.db')
  t.equal(sqlitePathFromUrl('sqlite:data/x.db'), 'data/x.db')
  t.equal(sqlitePathFromUrl('sqlite:///var/lib/ctfhive/x.db'), '/var/lib/ctfhive/x.db')
  t.equal(sqlitePathFromUrl('sqlite:/abs/x.db'), '/abs/x.db')
  t.equal(sqlitePathFromUrl('sqlite::memory:'), ':memory:')
})

t.test('an in-memory store works for one process', async (t) => {
  const store = new SqliteStore({ path: ':memory:' })
  t.teardown(() => store.close())
  const tn = makeTenant()
  await store.insertTenant(tn)
  t.same(await store.getTenant(tn.id), tn)
})

t.test('a COMMIT that fails answers every unit of its batch with a StoreError', async (t) => {
  const store = new SqliteStore({ path: tempPath(t) })
  t.teardown(() => store.close())
  const writer = (store as unknown as { writer: { db: DatabaseSync } }).writer.db
  // A deferred foreign key is checked at COMMIT only, so the batch's COMMIT fails.
  const first = store.transaction(async (tx) => { writer.exec('PRAGMA defer_foreign_keys = ON'); await tx.linkSubscription('sub_x', 'f'.repeat(32)) })
  const second = store.transaction(async (tx) => tx.countTenants())
  const timeout = new Promise((resolve) => setTimeout(() => resolve('no answer after 2 s'), 2000).unref())
  const results = await Promise.all([first, second].map((p) => Promise.race([p.then(() => 'resolved', (e: unknown) => e instanceof StoreError ? 'StoreError' : String(e)), timeout])))
  t.same(results, ['StoreError', 'StoreError'])
  t.equal(await store.findTenantIdBySubscription('sub_x'), undefined, 'nothing of the batch was written')
  // The failed COMMIT left no transaction open behind it: the writer goes on.
  const after = makeTenant()
  await t.resolves(store.transaction((tx) => tx.insertTenant(after)), 'the next batch commits')
  t.equal((await store.getTenant(after.id))?.id, after.id)
})

t.test('close() lets the transactions already submitted commit', async (t) => {
  const path = tempPath(t)
  const store = new SqliteStore({ path })
  const tenant = makeTenant()
  const submitted = store.transaction((tx) => tx.insertTenant(tenant))
  await store.close()
  await t.resolves(submitted, 'acknowledged')
  const again = new SqliteStore({ path })
  t.teardown(() => again.close())
  t.equal((await again.getTenant(tenant.id))?.id, tenant.id, 'and durable')
})

/** Overwrites the first 16 KiB of a database file with zeros: its header and first pages. */
function zeroHead (path: string): void {
  const fd = openSync(path, 'r+')
  try { writeSync(fd, Buffer.alloc(16 * 1024), 0, 16 * 1024, 0) } finally { closeSync(fd) }
}

t.test('ping reads the database file: a damaged one is a StoreError', async (t) => {
  t.test('the reader: the file and its WAL overwritten under a running store', async (t) => {
    const path = tempPath(t)
    const store = new SqliteStore({ path })
    t.teardown(() => store.close())
    const tenant = makeTenant()
    await store.insertTenant(tenant)
    // As /readyz does all along: page 1 is in the reader's cache by then.
    await t.resolves(store.ping(), 'a sound file answers')
    zeroHead(path)
    writeFileSync(`${path}-wal`, '')
    await t.rejects(store.getTenant(tenant.id), 'reads fail')
    await t.rejects(store.ping(), { name: 'StoreError', message: /^the database file cannot be read: / })
  })

  t.test('the writer: reads still come from cache, writes fail', async (t) => {
    const path = tempPath(t)
    const store = new SqliteStore({ path })
    t.teardown(() => store.close())
    const tenant = makeTenant()
    await store.insertTenant(tenant)
    // Another connection checkpoints (an operator, another process): both of the store's
    // connections must read again; the reader does so now, and has the pages from then on.
    openRaw(t, path).exec('PRAGMA wal_checkpoint(TRUNCATE)')
    t.equal((await store.getTenant(tenant.id))?.id, tenant.id)
    zeroHead(path)
    await t.resolves(store.getTenant(tenant.id), 'the reader does not notice')
    await t.rejects(store.insertTenant(makeTenant()), StoreError, 'but a write fails')
    await t.rejects(store.ping(), { name: 'StoreError', message: /file is not a database/ })
  })
})

t.test('an operation that finds a table page damaged (SQLITE_CORRUPT) makes ping fail from then on, logged once', async (t) => {
  const path = tempPath(t)
  const first = new SqliteStore({ path })
  // Enough rows that the table spans pages: its root page is not page 1, which ping reads.
  const tenants = Array.from({ length: 200 }, () => makeTenant())
  for (const tenant of tenants) await first.insertTenant(tenant)
  await first.close()
  const raw = new DatabaseSync(path)
  const root = Number(raw.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'tenants'").get()?.rootpage)
  const pageSize = Number(raw.prepare('PRAGMA page_size').get()?.page_size)
  raw.close()
  t.ok(root > 1, `the tenants table's root is page ${root}`)
  const fd = openSync(path, 'r+')
  try { writeSync(fd, Buffer.alloc(pageSize, 0xff), 0, pageSize, (root - 1) * pageSize) } finally { closeSync(fd) }

  const logged: Array<{ obj: object, msg: string }> = []
  const store = new SqliteStore({ path, log: { error: (obj, msg) => { logged.push({ obj, msg }) } } })
  t.teardown(() => store.close())
  const { app } = await buildTestApp(t, { store })
  await t.resolves(store.ping(), 'page 1 is sound: ping alone does not see it')
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready')
  await t.rejects(store.getTenant(tenants[0]!.id), { message: /database disk image is malformed/ }, 'a read finds it')
  await t.rejects(store.ping(), { name: 'StoreError', message: /^the database file is damaged \(an operation failed: database disk image is malformed\): restore it from a backup/ })
  t.equal((await app.inject('/readyz')).statusCode, 503, 'not ready: a load balancer takes the instance out')
  await t.rejects(store.updateTenant(tenants[1]!.id, { updatedAt: 'now' }), 'a write finds it too')
  await t.rejects(store.ping(), StoreError, 'and ping still fails')
  t.equal(logged.length, 1, 'logged once')
  t.match(logged[0]?.msg, /the database file is damaged \(SQLITE_CORRUPT\)/)
})

/** A log that keeps its lines, by level. */
function keptLog (): { lines: Array<{ level: string, msg: string }>, error (o: object, m: string): void, info (o: object, m: string): void } {
  const lines: Array<{ level: string, msg: string }> = []
  return { lines, error: (_o, msg) => { lines.push({ level: 'error', msg }) }, info: (_o, msg) => { lines.push({ level: 'info', msg }) } }
}

t.test('writes the file refuses (SQLITE_READONLY) make ping fail, logged once, until a write succeeds again', async (t) => {
  const path = tempPath(t)
  const log = keptLog()
  const store = new SqliteStore({ path, log })
  t.teardown(() => store.close())
  const { app } = await buildTestApp(t, { store })
  await store.insertTenant(makeTenant())
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready')
  // As a file system remounted read-only does to every write; reads (page 1 too) still work.
  const w = (store as unknown as { writer: { db: DatabaseSync } }).writer.db
  w.exec('PRAGMA query_only = ON')
  await t.rejects(store.insertTenant(makeTenant()), { message: /attempt to write a readonly database/ }, 'a write fails')
  await t.rejects(store.ping(), { name: 'StoreError', message: /^writes to the database file fail: .*attempt to write a readonly database/ })
  t.equal((await app.inject('/readyz')).statusCode, 503, 'not ready')
  await t.rejects(store.insertTenant(makeTenant()), 'writes still fail')
  t.same(log.lines, [{ level: 'error', msg: 'writes to the database file fail: readiness answers not ready until a write succeeds again' }], 'logged once')
  w.exec('PRAGMA query_only = OFF')
  await t.resolves(store.ping(), 'ping tries a write, which commits now')
  t.equal((await app.inject('/readyz')).statusCode, 200, 'ready again')
  t.equal(log.lines.at(-1)?.msg, 'writes to the database file succeed again')
  t.equal(await store.countTenants(), 1, "ping's own write added nothing")
})

t.test('which failures the write watch notes: the file cannot be written (READONLY, IOERR), not a refused row', async (t) => {
  const error = (errcode: number): Error => Object.assign(new Error(`code ${errcode}`), { code: 'ERR_SQLITE_ERROR', errcode })
  for (const [errcode, noted] of [[8, true], [1032, true], [10, true], [778, true], [19, false], [13, false], [5, false]] as const) {
    const watch = new WriteWatch(undefined)
    watch.note(new StoreError('commit failed', { cause: error(errcode) }))
    t.equal(watch.failure !== null, noted, `errcode ${errcode}`)
  }
})

t.test('the database file renamed over (a restore by mv) or removed under a running store: writes refused, ping fails, logged once', async (t) => {
  t.test('replaced', async (t) => {
    const path = tempPath(t)
    const log = keptLog()
    const store = new SqliteStore({ path, log })
    t.teardown(() => store.close())
    const { app } = await buildTestApp(t, { store })
    await store.insertTenant(makeTenant())
    const restored = join(dirname(path), 'restored.db')
    await new SqliteStore({ path: restored }).close()
    renameSync(restored, path)
    const writes = await Promise.allSettled(Array.from({ length: 20 }, () => store.insertTenant(makeTenant())))
    t.same(writes.map((r) => r.status), Array(20).fill('rejected'), 'no write is acknowledged into the old file')
    t.match(writes[0], { reason: { name: 'StoreError', message: /^the database file .*store\.db was replaced or removed while the server runs \(another file is there now\): writes are refused/ } })
    await t.rejects(store.ping(), { name: 'StoreError', message: /was replaced or removed/ })
    t.equal((await app.inject('/readyz')).statusCode, 503, 'not ready')
    t.equal(log.lines.length, 1, 'logged once')
    t.match(log.lines[0]?.msg, /was replaced or removed/)
  })

  t.test('removed with its directory', async (t) => {
    const path = tempPath(t)
    const store = new SqliteStore({ path })
    t.teardown(() => store.close())
    await store.insertTenant(makeTenant())
    rmSync(dirname(path), { recursive: true, force: true })
    await t.rejects(store.insertTenant(makeTenant()), { name: 'StoreError', message: /was replaced or removed while the server runs \(no file is there now\)/ })
    await t.rejects(store.ping(), /was replaced or removed/)
  })

  t.test('moved away and back: the same file, writes go on', async (t) => {
    const path = tempPath(t)
    const store = new SqliteStore({ path })
    t.teardown(() => store.close())
    renameSync(path, `${path}.away`)
    await t.rejects(store.ping(), /was replaced or removed/)
    renameSync(`${path}.away`, path)
    await t.resolves(store.ping())
    await t.resolves(store.insertTenant(makeTenant()))
  })
})
