// Picks the executor from config: Linode when a token is set, else the in-memory fake.
import type { Config } from '../config.ts'
import type { Executor } from './executor.ts'
import { FakeExecutor } from './fake.ts'
import { LinodeExecutor } from './linode.ts'
import { userDataBuilder } from './cloud-init.ts'

export function createExecutor (config: Config): Executor {
  if (config.linode.token === '') return new FakeExecutor()
  return LinodeExecutor.fromConfig(config, { userData: userDataBuilder(config.secretKey) })
}
