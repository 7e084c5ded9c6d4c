// The PostgreSQL store when the server misbehaves without going away: it stops answering on
// an open connection (a stopped backend, a paused host, a stuck pooler), another session holds
// the migration lock, or it answers but refuses every write (a standby, read-only sessions).
import t from 'tap'
import pg from 'pg'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { MIGRATION_LOCK, PostgresStore } from '../../api/store/postgres.ts'
import { sqlState } from '../../api/store/postgres-ops.ts'
import { StoreError, StoreRefusesWrites } from '../../api/store/store.ts'
import { openStore } from '../../api/store/index.ts'
import { usePostgres } from '../helpers/postgres.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { until } from '../helpers/until.ts'
import { makeTenant } from './contract.ts'

const poolOf = (store: PostgresStore): pg.Pool => (store as unknown as { pool: pg.Pool }).pool

/** A bound for the test, not for the store: 'hung' rather than a test that never ends. */
const settled = <T>(p: Promise<T>, ms = 8000): Promise<T | unknown> =>
  Promise.race([p.then((v) => v, (e: unknown) => e), sleep(ms).then(() => 'hung')])

/**
 * A TCP relay to PostgreSQL that can stop passing anything on, as a stopped backend or a
 * paused host does (what either side sends meanwhile is dropped).
 */
async function freezingRelay (url: string) {
  const target = new URL(url)
  const sockets = new Set<Socket>()
  let frozen = false
  const relay = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => { client.destroy(); upstream.destroy(); sockets.delete(s) })
    }
    client.on('data', (d: Buffer) => { if (!frozen) upstream.write(d) })
    upstream.on('data', (d: Buffer) => { if (!frozen) client.write(d) })
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  const via = new URL(url)
  via.hostname = '127.0.0.1'
  via.port = String((relay.address() as AddressInfo).port)
  return {
    url: via.toString(),
    freeze: () => { frozen = true },
    thaw: () => { frozen = false },
    frozen: () => frozen,
    close: () => { for (const s of sockets) s.destroy(); relay.close() }
  }
}

t.test('the client-side bound on an answer: the statement timeout and 5 s; none when the statement timeout is off', async (t) => {
  // Never connected: only the pools' settings are read.
  const url = 'postgres://ctfhive@127.0.0.1:1/ctfhive'
  const stores = [new PostgresStore({ url, statementTimeoutMs: 15_000 }), new PostgresStore({ url, statementTimeoutMs: 0 }), new PostgresStore({ url })]
  t.teardown(async () => { for (const s of stores) await s.close() })
  t.same(stores.map((s) => (poolOf(s).options as { query_timeout?: number }).query_timeout), [20_000, undefined, undefined])
})

const server = await usePostgres(t)

if (server !== undefined) {
  t.test('a server that stops answering on an open connection: the statement fails after the query timeout, no ROLLBACK waits behind it, and the connection is dropped', async (t) => {
    const url = await server.createDatabase()
    const first = new PostgresStore({ url, poolSize: 1 })
    await first.migrate()
    await first.close()
    const relay = await freezingRelay(url)
    // A statement timeout the server would enforce, had it answered; the query timeout is this process's own.
    const store = new PostgresStore({ url: relay.url, poolSize: 2, statementTimeoutMs: 10_000, queryTimeoutMs: 500 })
    t.teardown(async () => { relay.close(); await store.close() })
    // What the store asks of its connections once the server has stopped answering: pg queues a
    // statement behind one that got no answer, so the wire alone would not show it.
    const askedFrozen: string[] = []
    poolOf(store).on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown
      client.query = ((...args: unknown[]) => {
        const config = args[0] as string | { text: string }
        if (relay.frozen()) askedFrozen.push(typeof config === 'string' ? config : config.text)
        return query(...args)
      }) as typeof client.query
    })
    const tn = makeTenant()
    await store.insertTenant(tn)
    // Two warm connections: one for the transaction, one for the read after it.
    await Promise.all([store.getTenant(tn.id), store.getTenant(tn.id)])
    t.equal(poolOf(store).totalCount, 2)

    const started = Date.now()
    const failed = await settled(store.transaction(async (tx) => {
      await tx.getTenant(tn.id)
      relay.freeze()
      return tx.getTenantForUpdate(tn.id)
    }))
    t.type(failed, StoreError, `the transaction fails (${String(failed)})`)
    t.match(String(failed), /Query read timeout/)
    t.notOk(askedFrozen.includes('ROLLBACK'), 'no ROLLBACK was queued behind the statement that got no answer (it would wait as long again)')
    t.equal(askedFrozen.length, 1, 'only that statement was asked')
    t.match(askedFrozen[0], /FOR UPDATE/)
    t.ok(Date.now() - started < 5000, `it failed after ${Date.now() - started} ms`)

    const read = await settled(store.getTenant(tn.id))
    t.type(read, StoreError, 'a plain read fails the same way')
    t.equal(poolOf(store).totalCount, 0, 'both connections were dropped, not pooled again')

    relay.thaw()
    t.same(await store.getTenant(tn.id), tn, 'once the server answers, new connections serve')
    await store.transaction((tx) => tx.updateTenant(tn.id, { billingAt: 7 }))
    t.equal((await store.getTenant(tn.id))?.billingAt, 7, 'and transactions commit')
  })

  t.test('a start that finds the migration lock held says so at once and again while it waits, then migrates', async (t) => {
    const url = await server.createDatabase()
    const lines: Array<{ obj: Record<string, unknown>, msg: string }> = []
    // A query timeout far shorter than the wait: migrations are not bounded by it.
    const store = new PostgresStore({
      url, poolSize: 1, statementTimeoutMs: 100, queryTimeoutMs: 200, migrationNoticeMs: 100,
      log: { info: (obj, msg) => { lines.push({ obj: obj as Record<string, unknown>, msg }) } }
    })
    t.teardown(() => store.close())
    // Ended first (teardowns run last to first): a failed test frees the lock before the store closes.
    const other = new pg.Client({ connectionString: url })
    await other.connect()
    t.teardown(() => other.end())
    await other.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
    const holder = (await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
    let done = false
    const opening = store.migrate().finally(() => { done = true })
    await until(async () => lines.length >= 3, 'the waiting line, repeated')
    t.notOk(done, 'still waiting')
    t.match(lines[0], { msg: "waiting for another instance's migration (advisory lock 4711001)…", obj: { lock: MIGRATION_LOCK, holder_pid: holder, waited_s: 0 } })
    t.ok(lines.every((l) => l.msg === lines[0]!.msg), 'the same line each time')
    await other.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK])
    await opening
    t.same(await store.schema(), { initialized: true, pending: [], unknown: [] }, 'migrated once the lock was free')
    const count = lines.length
    await sleep(300)
    t.equal(lines.length, count, 'and the line stops')
  })

  t.test("the server's store (openStore) is given the log that says so", async (t) => {
    const url = await server.createDatabase()
    const other = new pg.Client({ connectionString: url })
    await other.connect()
    t.teardown(() => other.end())
    await other.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
    const lines: string[] = []
    const opening = openStore({ databaseUrl: url, pg: { poolSize: 1, statementTimeoutMs: 1000 } }, { log: { error: () => {}, info: (_obj, msg) => { lines.push(msg) } } })
    await until(async () => lines.length >= 1, 'the waiting line')
    t.match(lines[0], /^waiting for another instance's migration/)
    await other.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK])
    const store = await opening
    await store.close()
  })

  t.test('a free migration lock: no line', async (t) => {
    const lines: string[] = []
    const store = new PostgresStore({ url: await server.createDatabase(), poolSize: 1, log: { info: (_obj, msg) => { lines.push(msg) } } })
    t.teardown(() => store.close())
    await store.migrate()
    t.same(lines, [])
  })

  t.test('a database whose sessions are read-only answers ping with the refusal, and /readyz is 503', async (t) => {
    const url = await server.createDatabase()
    const name = new URL(url).pathname.slice(1)
    const first = new PostgresStore({ url, poolSize: 1 })
    await first.migrate()
    await first.ping()
    await first.close()
    const admin = new pg.Client({ connectionString: server.adminUrl })
    await admin.connect()
    t.teardown(async () => {
      await admin.query(`ALTER DATABASE ${name} RESET default_transaction_read_only`)
      await admin.end()
    })
    // As ALTER SYSTEM would do for every database (a demoted primary answers alike): new sessions are read-only.
    await admin.query(`ALTER DATABASE ${name} SET default_transaction_read_only = on`)
    const store = new PostgresStore({ url, poolSize: 2 })
    t.teardown(() => store.close())
    const write = await store.insertTenant(makeTenant()).catch((e: unknown) => e)
    t.equal(sqlState(write), '25006', 'every write fails')
    const refused = await store.ping().catch((e: unknown) => e)
    t.type(refused, StoreRefusesWrites, 'ping says so')
    t.match(refused, { message: 'PostgreSQL refuses writes: its sessions are read-only (default_transaction_read_only is on)' })
    const { app } = await buildTestApp(t, { store, runJobs: false })
    const r = await app.inject('/readyz')
    t.equal(r.statusCode, 503)
    t.same(r.json(), { error: 'not_ready', message: 'The store refuses writes: its sessions are read-only (default_transaction_read_only is on).' })

    await admin.query(`ALTER DATABASE ${name} RESET default_transaction_read_only`)
    const writable = new PostgresStore({ url, poolSize: 1 })
    t.teardown(() => writable.close())
    await t.resolves(writable.ping(), 'writable again: ready')
  })
}
