// Picks the executor from config: Linode when a token is set, else the in-memory fake.
import type { Config } from '../config.ts'
import type { Executor } from './executor.ts'
import { FakeExecutor } from './fake.ts'
import { LinodeExecutor, type LinodeExecutorOptions } from './linode.ts'
import { userDataBuilder } from './cloud-init.ts'

/** `log` hears the Linode adapter's warnings: retries, unclear creates, a disabled firewall. */
export function createExecutor (config: Config, log?: LinodeExecutorOptions['log']): Executor {
  if (config.linode.token === '') return new FakeExecutor()
  return LinodeExecutor.fromConfig(config, { userData: userDataBuilder(config.secretKey), log })
}
