// Debian's Chromium for browser tests, driven by playwright-core. Suites skip with a one-line
// reason when it is missing, except under CI=true, where a missing browser fails the run.
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'
]

interface Teardown { teardown (fn: () => unknown): void }

/** Why browser tests cannot run here, or undefined when they can. Throws under CI=true. */
export function chromiumUnavailable (): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined
  const reason = `Chromium not found at ${CHROMIUM_PATH} (apt-get install chromium)`
  if (process.env.CI === 'true') throw new Error(`${reason}; CI=true requires it`)
  return reason
}

export async function launchBrowser (t: Teardown): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: 60_000 })
  t.teardown(() => browser.close())
  return browser
}
