// The one place tests build the app: a fresh SQLite file per test, config from an env map,
// and teardown that closes the app and then the store.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { buildApp, type AppDeps } from '../../api/app.ts'
import { loadConfig, type Config } from '../../api/config.ts'
import { createLogger } from '../../api/logger.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import type { Store } from '../../api/store/store.ts'
import { FakeExecutor } from '../../api/provisioning/fake.ts'

export const TEST_WEBHOOK_SECRET = 'whsec_test_secret_for_ctfhive_tests'

interface Teardown { teardown (fn: () => unknown): void }

export interface TestAppOptions extends Partial<Omit<AppDeps, 'store' | 'logger'>> {
  env?: Record<string, string>
  store?: Store
  /** Capture log lines (as parsed JSON objects) into this array. */
  logLines?: Array<Record<string, unknown>>
}

export interface TestApp {
  app: FastifyInstance
  store: Store
  config: Config
  executor: FakeExecutor
}

const leftovers = new Set<string>()

/**
 * A fresh temp directory: removed in `t`'s teardown when given, else when the process exits
 * (callers without a `t`), so test runs do not pile up directories in /tmp.
 */
function tempDir (t?: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-test-'))
  if (t !== undefined) {
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  } else {
    if (leftovers.size === 0) process.once('exit', removeLeftovers)
    leftovers.add(dir)
  }
  return dir
}

function removeLeftovers (): void {
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true })
  leftovers.clear()
}

/** A SQLite path in a fresh temp directory; pass `t` to remove it in its teardown (after the store's, registered later). */
export function tempDbPath (t?: Teardown): string {
  return join(tempDir(t), 'test.db')
}

/**
 * An in-memory store (closed in `t`'s teardown) and a stand-in that inherits every method
 * from it: a test overrides one method on `store` to make it fail or wait, and calls `inner`.
 */
export function storeWithOverrides (t: Teardown): { inner: SqliteStore, store: Store } {
  const inner = new SqliteStore({ path: ':memory:' })
  t.teardown(() => inner.close())
  return { inner, store: Object.create(inner) as Store }
}

/** Test config; its default SQLite file's directory is removed in `t`'s teardown when given. */
export function testConfig (env: Record<string, string> = {}, t?: Teardown): Config {
  return loadConfig({
    STRIPE_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
    // Only made when the test does not bring its own database.
    DATABASE_URL: env.DATABASE_URL ?? `sqlite:${tempDbPath(t)}`,
    LOG_LEVEL: 'silent',
    // A bound, not a deadline: the wait ends as soon as the attempt does, so a passing run
    // loses nothing, and a slow machine does not turn a webhook's answer into "provisioning".
    WEBHOOK_WAIT_MS: '10000',
    // Tests make many checkouts from one address; the limit has a test of its own.
    CHECKOUT_RATE_LIMIT: '0',
    // Not production unless a test says so: a live Stripe key alone would make it production.
    NODE_ENV: 'test',
    // The tiered product: each plan's own server type, resized on plan changes (the tests of
    // the default, one type for every plan, say LINODE_PLAN themselves).
    LINODE_PLAN: 'per-plan',
    ...env
  })
}

export function captureLogger (config: Config, lines: Array<Record<string, unknown>>): Logger {
  const stream = new Writable({
    write (chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
      cb()
    }
  })
  return createLogger({ ...config, logLevel: 'trace' }, stream)
}

export async function buildTestApp (t: Teardown, opts: TestAppOptions = {}): Promise<TestApp> {
  const config = testConfig(opts.env, t)
  const store = opts.store ?? new SqliteStore({ path: config.databaseUrl.replace(/^sqlite:/, '') })
  const executor = (opts.executor as FakeExecutor | undefined) ?? new FakeExecutor()
  const logger = opts.logLines !== undefined ? captureLogger(config, opts.logLines) : pino({ level: 'silent' })
  const app = await buildApp(config, {
    ...opts,
    store,
    executor,
    logger,
    jobs: { pollIntervalMs: 5, idleIntervalMs: 200, backoffMs: () => 10, ...opts.jobs }
  })
  t.teardown(async () => {
    await app.close()
    if (opts.store === undefined) await store.close()
  })
  await app.ready()
  return { app, store, config, executor }
}
