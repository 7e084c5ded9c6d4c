// /readyz through an outage: a load balancer probing every second must not write a stack a
// probe, and a store that answers but refuses writes is not ready.
import t from 'tap'
import { buildTestApp, storeWithOverrides } from '../helpers/build-app.ts'
import { NOT_READY_LOG_INTERVAL_MS } from '../../api/web/health.ts'
import { StoreError, StoreRefusesWrites } from '../../api/store/store.ts'

type Line = Record<string, unknown>

t.test('readiness turning bad is logged once, again at most once a minute while it stays bad, and its recovery once', async (t) => {
  const { store } = storeWithOverrides(t)
  let down = false
  store.ping = async () => { if (down) throw new StoreError('could not connect to PostgreSQL: connect ECONNREFUSED 127.0.0.1:5432') }
  const lines: Line[] = []
  const { app } = await buildTestApp(t, { store, logLines: lines })
  const realNow = Date.now
  let skew = 0
  Date.now = () => realNow() + skew
  t.teardown(() => { Date.now = realNow })
  const probe = async (): Promise<number> => (await app.inject('/readyz')).statusCode
  const said = (): Line[] => lines.filter((l) => typeof l.msg === 'string' && /^store ping/.test(l.msg))

  t.equal(await probe(), 200)
  t.same(said(), [], 'nothing while ready')
  down = true
  for (let i = 0; i < 20; i++) t.equal(await probe(), 503)
  t.match(said(), [{ level: 50, msg: 'store ping failed: not ready', err: { message: /ECONNREFUSED/ } }], 'twenty failing probes: one error line')
  skew += NOT_READY_LOG_INTERVAL_MS - 1000
  await probe()
  t.equal(said().length, 1, 'none again within the minute')
  skew += 1000
  await probe()
  await probe()
  t.match(said().slice(1), [{ level: 50, msg: 'store ping still failing: not ready', failing_s: 60 }], 'then one more, saying how long')
  down = false
  t.equal(await probe(), 200)
  t.equal(await probe(), 200)
  t.match(said().slice(2), [{ level: 30, msg: 'store ping answers again: ready', failed_s: 60 }], 'the recovery, once')
  down = true
  await probe()
  t.match(said().slice(3), [{ level: 50, msg: 'store ping failed: not ready' }], 'a new outage is logged at once')
})

t.test('a store that refuses writes is not ready, and the answer says why', async (t) => {
  const { store } = storeWithOverrides(t)
  store.ping = async () => { throw new StoreRefusesWrites('it is a standby (in recovery)') }
  const { app } = await buildTestApp(t, { store })
  const r = await app.inject('/readyz')
  t.equal(r.statusCode, 503)
  t.same(r.json(), { error: 'not_ready', message: 'The store refuses writes: it is a standby (in recovery).' })
  t.equal(r.headers['retry-after'], '5')
})
