// A LinodeExecutor against the fake Linode, as the Linode tests build it: no real sleeps
// (each requested wait recorded), short timeouts, warnings collected.
import type { LinodeExecutorOptions } from '../../api/provisioning/linode.ts'
import { LinodeExecutor } from '../../api/provisioning/linode.ts'
import { startFakeLinode, type FakeLinode, type FakeLinodeOptions } from './fake-linode.ts'

interface T { teardown: (fn: () => unknown) => void }

export interface TestExecutor { executor: LinodeExecutor, sleeps: number[], logs: string[] }

export function testExecutor (fake: FakeLinode, opts: Partial<LinodeExecutorOptions> = {}): TestExecutor {
  const sleeps: number[] = []
  const logs: string[] = []
  const executor = new LinodeExecutor({
    token: fake.token,
    apiBase: fake.url,
    region: 'us-east',
    image: 'linode/debian12',
    userData: () => 'I2Nsb3VkLWNvbmZpZw==',
    sleep: async (ms) => { sleeps.push(ms) },
    requestTimeoutMs: 2000,
    log: { warn: (obj, msg) => { logs.push(JSON.stringify({ ...obj, msg })) } },
    ...opts
  })
  return { executor, sleeps, logs }
}

/** A fake Linode holding the zone ctfhive.test, stopped at teardown, and an executor for it. */
export async function startLinodeExecutor (t: T, opts: { fake?: FakeLinodeOptions, exec?: Partial<LinodeExecutorOptions> } = {}): Promise<TestExecutor & { fake: FakeLinode }> {
  const fake = await startFakeLinode(t, { domains: ['ctfhive.test'], ...opts.fake })
  return { fake, ...testExecutor(fake, opts.exec) }
}
