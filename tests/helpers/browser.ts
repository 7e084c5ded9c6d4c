// Debian's Chromium for browser tests, driven by playwright-core. Suites skip with a one-line
// reason when it is missing, except under CI=true, where a missing browser fails the run.
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { chromium, type Browser, type Page } from 'playwright-core'

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

/** Records console errors and warnings, uncaught exceptions and requests to other origins. */
export function watchPage (page: Page, origin: string): string[] {
  const problems: string[] = []
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`) })
  page.on('pageerror', (e) => { problems.push(`exception: ${e.message}`) })
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) problems.push(`request to ${r.url()}`) })
  return problems
}

/** How many distinct colours a PNG has (sampled), counted by the browser on a blank page. */
export async function distinctColours (blank: Page, png: Buffer): Promise<number> {
  return blank.evaluate(async (b64) => {
    const { Image, document } = globalThis as any
    const img = new Image()
    img.src = `data:image/png;base64,${b64}`
    await img.decode()
    const canvas = document.createElement('canvas')
    canvas.width = img.width
    canvas.height = img.height
    const g = canvas.getContext('2d')
    g.drawImage(img, 0, 0)
    const data = g.getImageData(0, 0, img.width, img.height).data
    const seen = new Set<number>()
    for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2])
    return seen.size
  }, png.toString('base64'))
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

/**
 * axe-core's WCAG 2 A/AA and best-practice violations on the page as it is now, one line each
 * (rule, then the first elements). Evaluated through the DevTools protocol, which the page's
 * CSP does not govern: the page runs under its real policy.
 */
export async function axeViolations (page: Page): Promise<string[]> {
  await page.evaluate(AXE_SOURCE)
  return page.evaluate(async () => {
    const { axe, document } = globalThis as any
    // Colours are judged as they end up: mid-fade (a search result appearing, a panel
    // opening) text is lighter than it will be, and a loaded machine makes that window wide.
    // Endless ones (a spinner) never finish, and a wait is bounded all the same.
    const finite = document.getAnimations().filter((a: any) => a.effect?.getComputedTiming().iterations !== Infinity)
    await Promise.race([
      Promise.all(finite.map((a: any) => a.finished.catch(() => undefined))),
      new Promise((resolve) => { setTimeout(resolve, 3000) })
    ])
    const result = await axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] })
    return result.violations.map((v: any) => `${v.id}: ${v.nodes.slice(0, 3).map((n: any) => n.target.join(' ')).join(', ')}`)
  })
}
