// The executor contract on LinodeExecutor, against the fake Linode: no real sleeps, and
// servers move on per read, so nothing here waits on a clock.
import t from 'tap'
import { startLinodeExecutor } from '../helpers/linode-executor.ts'
import { executorContract } from './executor-contract.ts'

t.test('the executor contract on LinodeExecutor', async (t) => {
  executorContract(t, async (t) => {
    let healthy = false
    const { fake, executor } = await startLinodeExecutor(t, {
      exec: {
        // The tenant's own server, not Linode: a fetch that honours the signal as undici's does.
        healthFetch: async (_url, _timeoutMs, signal) => {
          signal?.throwIfAborted()
          return { status: healthy ? 200 : 503, body: '' }
        }
      }
    })
    return {
      executor,
      powerOff: (id) => { fake.instances.get(Number(id))!.status = 'offline' },
      dnsRecord: (id) => {
        for (const zone of fake.domains.values()) {
          const r = zone.records.get(Number(id))
          if (r !== undefined) return { fqdn: `${r.name}.${zone.domain}`, target: r.target }
        }
        return undefined
      },
      setHealthy: (h) => { healthy = h },
      // Every step's first request goes to Linode: the abort lands while it is being answered.
      duringNextCall: (_step, fn) => { fake.inject({ fault: { before: fn } }) }
    }
  })
})
