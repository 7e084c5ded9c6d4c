import t from 'tap'
import { FakeExecutor } from '../../api/provisioning/fake.ts'
import { executorContract } from './executor-contract.ts'

t.test('the executor contract on FakeExecutor', async (t) => {
  executorContract(t, async () => {
    const executor = new FakeExecutor()
    return {
      executor,
      powerOff: (id) => { executor.servers.get(id)!.status = 'offline' },
      dnsRecord: (id) => {
        const r = executor.records.get(id)
        return r === undefined ? undefined : { fqdn: r.name, target: r.target }
      },
      setHealthy: (healthy) => { executor.unhealthyChecks = healthy ? 0 : Infinity },
      duringNextCall: (step, fn) => {
        const hold = executor.holdNext(step)
        void hold.reached.then(() => {
          fn()
          hold.release()
        })
      }
    }
  })
})
