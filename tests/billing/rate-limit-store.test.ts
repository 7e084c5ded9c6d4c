// The checkout rate limit counts in the store: instances on one database share a client's
// limit, and a client already over it is refused without further store writes.
import t from 'tap'
import { storeRateLimit } from '../../api/billing/rate-limit-store.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import { StoreError, type RateCount, type Store } from '../../api/store/store.ts'
import { buildTestApp, tempDbPath } from '../helpers/build-app.ts'

const checkout = (app: Awaited<ReturnType<typeof buildTestApp>>['app'], ip: string) =>
  app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'solo' }, remoteAddress: ip })

/** The store, with its countHit calls recorded and, once `fail` is set, refused. */
function watched (store: Store): { store: Store, hits: string[], fail: { on: boolean } } {
  const hits: string[] = []
  const fail = { on: false }
  const proxy = new Proxy(store, {
    get (target, prop) {
      if (prop === 'countHit') {
        return async (key: string, windowMs: number, now: number): Promise<RateCount> => {
          hits.push(key)
          if (fail.on) throw new StoreError('disk I/O error')
          return target.countHit(key, windowMs, now)
        }
      }
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  return { store: proxy, hits, fail }
}

t.test('two instances on one database share a client\'s limit', async (t) => {
  const path = tempDbPath(t)
  const one = new SqliteStore({ path })
  const two = new SqliteStore({ path })
  t.teardown(async () => { await one.close(); await two.close() })
  const env = { CHECKOUT_RATE_LIMIT: '2' }
  const a = (await buildTestApp(t, { store: one, env })).app
  const b = (await buildTestApp(t, { store: two, env })).app

  t.equal((await checkout(a, '203.0.113.7')).statusCode, 200)
  t.equal((await checkout(b, '203.0.113.7')).statusCode, 200, 'the second hit, on the other instance')
  const third = await checkout(a, '203.0.113.7')
  t.equal(third.statusCode, 429, 'the third is over the limit, wherever it lands')
  t.equal(third.json().error, 'rate_limited')
  t.match(third.headers['retry-after'], /^([1-9]|[1-5]\d|60)$/, 'Retry-After: the rest of the minute')
  t.equal((await checkout(b, '203.0.113.7')).statusCode, 429)
  t.equal(await one.countTenants(), 2, 'refused checkouts created nothing')
  t.equal((await checkout(b, '203.0.113.8')).statusCode, 200, 'another client has its own count')
})

t.test('a client over the limit is refused without a store write; a store failure is a 500 that creates nothing', async (t) => {
  const path = tempDbPath(t)
  const real = new SqliteStore({ path })
  t.teardown(() => real.close())
  const { store, hits, fail } = watched(real)
  const { app } = await buildTestApp(t, { store, env: { CHECKOUT_RATE_LIMIT: '1' } })

  const codes = []
  for (let i = 0; i < 5; i++) codes.push((await checkout(app, '198.51.100.9')).statusCode)
  t.same(codes, [200, 429, 429, 429, 429])
  t.same(hits, ['POST /billing/checkout 198.51.100.9', 'POST /billing/checkout 198.51.100.9'],
    'two writes: the allowed hit and the first refused one; the rest are refused from memory')

  // Hits that arrive together from one client still cost at most the limit plus one write.
  hits.length = 0
  const together = await Promise.all(Array.from({ length: 20 }, () => checkout(app, '198.51.100.11')))
  t.same(together.map((r) => r.statusCode).sort(), [200, ...Array(19).fill(429)], 'one allowed, the rest refused')
  t.equal(hits.length, 2, 'and two store writes, not twenty')

  fail.on = true
  const broken = await checkout(app, '198.51.100.10')
  t.equal(broken.statusCode, 500, 'not a client mistake')
  t.equal(broken.json().error, 'store_unavailable', 'the store, not the code, failed')
  t.notMatch(broken.body, /disk I\/O/, 'the store\'s message stays in the log')
  t.equal(await real.countTenants(), 2, 'nothing created')
})

t.test('the clients remembered over the limit are bounded; a forgotten one costs one write again', async (t) => {
  let calls = 0
  const fake = { now: Date.now, countHit: async (_key: string, windowMs: number, now: number): Promise<RateCount> => { calls++; return { count: 2, resetAt: now + windowMs } } }
  const Limit = storeRateLimit(fake as unknown as Store)
  const limit = new Limit({})
  const incr = (key: string) => new Promise<{ current: number, ttl: number }>((resolve, reject) => {
    limit.incr(key, (err, hit) => { err === null ? resolve(hit!) : reject(err) }, 60_000, 1)
  })
  for (let i = 0; i <= 10_000; i++) await incr(`c${i}`)
  t.equal(calls, 10_001, 'each new client is counted in the store once')
  const again = await incr('c5')
  t.equal(calls, 10_001, 'a remembered client is refused from memory')
  t.equal(again.current, 3, 'its count goes on')
  t.ok(again.ttl > 0 && again.ttl <= 60_000, 'with the rest of its window')
  await incr('c0')
  t.equal(calls, 10_002, 'the oldest was forgotten to make room: it is counted in the store again')
})

t.test('a client over the limit is let in again once its window ends', async (t) => {
  const store = new SqliteStore({ path: tempDbPath(t) })
  t.teardown(() => store.close())
  const limit = new (storeRateLimit(store))({})
  const incr = () => new Promise<{ current: number, ttl: number }>((resolve, reject) => {
    limit.incr('203.0.113.1', (err, hit) => { err === null ? resolve(hit!) : reject(err) }, 100, 1)
  })
  t.equal((await incr()).current, 1)
  t.equal((await incr()).current, 2, 'over the limit: remembered')
  await new Promise((resolve) => setTimeout(resolve, 150))
  const after = await incr()
  t.equal(after.current, 1, 'a new window counts from one')
  t.ok(after.ttl > 0, 'with a positive ttl')
})

t.test('a clock stepped back ends the window of a client over the limit, in memory and in the store', async (t) => {
  const real = new SqliteStore({ path: tempDbPath(t) })
  t.teardown(() => real.close())
  const clock = { now: Date.now() }
  const { store, hits } = watched(real)
  store.now = () => clock.now
  const { app } = await buildTestApp(t, { store, env: { CHECKOUT_RATE_LIMIT: '1' } })
  t.same([(await checkout(app, '203.0.113.9')).statusCode, (await checkout(app, '203.0.113.9')).statusCode], [200, 429], 'over the limit: remembered')
  hits.length = 0
  // NTP steps the clock back an hour: the window would otherwise refuse the client for an hour and a minute.
  clock.now -= 3_600_000
  t.equal((await checkout(app, '203.0.113.9')).statusCode, 200, 'its window has ended')
  t.equal(hits.length, 1, 'counted in the store again, not refused from memory')
  const again = await checkout(app, '203.0.113.9')
  t.equal(again.statusCode, 429, 'a new window, from the new time')
  t.match(again.headers['retry-after'], /^([1-9]|[1-5]\d|60)$/, 'Retry-After: the rest of its minute')
  // Another instance's clock half a second behind this one's is no step.
  clock.now -= 500
  t.equal((await checkout(app, '203.0.113.9')).statusCode, 429, 'the window holds')
})

// Behind TRUST_PROXY=true the address is what X-Forwarded-For says: PostgreSQL's primary-key
// index refuses a key over 2704 bytes, which answered 500 for a client's header.
t.test('a client address of any length is counted under a key of bounded length', async (t) => {
  const { store, hits } = watched(new SqliteStore({ path: ':memory:' }))
  t.teardown(() => store.close())
  const { app } = await buildTestApp(t, { store, env: { CHECKOUT_RATE_LIMIT: '2', TRUST_PROXY: 'true' } })
  const forwarded = 'f'.repeat(3000)
  const post = () => app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'nope' }, headers: { 'x-forwarded-for': forwarded } })
  t.same([(await post()).statusCode, (await post()).statusCode, (await post()).statusCode], [400, 400, 429], 'counted as one client')
  t.ok(hits.length > 0 && hits.every((k) => k.length <= 128), 'every stored key is short')
  t.equal(new Set(hits).size, 1, 'the same key each time')
  t.ok(hits[0]!.startsWith('sha256:'), 'its digest')
  await app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'nope' }, headers: { 'x-forwarded-for': '203.0.113.9' } })
  t.match(hits.at(-1), /203\.0\.113\.9$/, 'an ordinary address is kept as it is')
})
