// Polls a condition until it holds, bounded; for tests that wait on background jobs.
export async function until (check: () => Promise<boolean>, what: string, boundMs = 10_000): Promise<void> {
  const deadline = Date.now() + boundMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/**
 * Returns once the clock has moved past the current millisecond. Tenants are listed by
 * creation time (milliseconds), ties broken by their random ids; tests that assert an order
 * create each tenant in a millisecond of its own.
 */
export async function nextMillisecond (): Promise<void> {
  const now = Date.now()
  while (Date.now() <= now) await new Promise((resolve) => setTimeout(resolve, 1))
}
