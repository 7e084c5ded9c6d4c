// The documentation in a real browser: the MkDocs build served by the app renders under its
// strict CSP without console errors, loads nothing from other origins, its search works, axe
// finds nothing on any page, and on a narrow screen the navigation drawer works from the keyboard.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildDocs, mkdocsVersion } from '../../docs-site/build.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { buildTestSite } from '../helpers/site-build.ts'
import { axeViolations, chromiumUnavailable, distinctColours, launchBrowser, watchPage } from '../helpers/browser.ts'

const missing = chromiumUnavailable() ?? (mkdocsVersion() === undefined ? 'mkdocs not installed (apt-get install mkdocs mkdocs-material)' : undefined)
if (missing !== undefined && !(process.env.CI === 'true')) {
  t.test('docs in a browser', { skip: missing }, () => {})
} else {
  t.test('docs in a browser', async (t) => {
    t.ok(mkdocsVersion(), 'mkdocs is installed (required under CI=true)')
    const dir = mkdtempSync(join(tmpdir(), 'ctfhive-docs-e2e-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    buildDocs({ outDir: join(dir, 'site'), publicBaseUrl: 'http://127.0.0.1' })
    // The docs' favicon is the marketing site's: serve a fresh build of it too (a clean clone has none).
    const site = buildTestSite(t)
    const { app } = await buildTestApp(t, { env: { MARKETING_DIST_DIR: site.dir, DOCS_SITE_DIR: join(dir, 'site') } })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const address = app.server.address()
    const origin = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
    const browser = await launchBrowser(t)
    const context = await browser.newContext()
    t.teardown(() => context.close())
    const page = await context.newPage()
    const blank = await context.newPage()
    const problems = watchPage(page, origin)

    for (const path of ['/docs/', '/docs/control-plane/billing-stripe/', '/docs/operations/backups/']) {
      const r = await page.goto(`${origin}${path}`, { waitUntil: 'networkidle' })
      t.equal(r?.status(), 200, path)
      t.ok(await page.locator('nav[aria-label="Table of contents"]').first().count(), `${path} has a table of contents`)
      t.ok(await distinctColours(blank, await page.screenshot()) > 20, `${path} screenshot is not blank`)
      t.same(problems.splice(0), [], `${path}: no console errors, nothing from other origins`)
    }

    // Links in the prose stand out from the text: our colour (Material sets its own on the
    // body, which ours must override) and an underline.
    await page.goto(`${origin}/docs/control-plane/http-api/`)
    const link = page.locator('.md-content .md-typeset :is(p, li, td, dd) > a:not(.headerlink)').first()
    t.equal(await link.evaluate((el) => (globalThis as any).getComputedStyle(el).color), 'rgb(31, 71, 184)', 'a prose link has the link colour')
    t.match(await link.evaluate((el) => (globalThis as any).getComputedStyle(el).textDecorationLine), /underline/, 'and is underlined')

    // Comments in code blocks are readable: 4.5:1 on the code background (WCAG 1.4.3).
    await page.goto(`${origin}/docs/getting-started/`)
    const comment = page.locator('.md-typeset .highlight .c1').first()
    const [fg, bg] = await comment.evaluate((el) => {
      const css = (e: any) => (globalThis as any).getComputedStyle(e)
      return [css(el).color, css(el.closest('pre').querySelector('code')).backgroundColor]
    }) as [string, string]
    const channels = (css: string): number[] => (css.match(/[\d.]+/g) ?? []).map(Number)
    // A translucent colour (Material's are) is seen blended over the background.
    const [br, bgG, bb] = channels(bg) as [number, number, number]
    const [fr, fgG, fb, alpha = 1] = channels(fg) as [number, number, number, number?]
    const seen = [[fr, br], [fgG, bgG], [fb, bb]].map(([f, b]) => alpha * f! + (1 - alpha) * b!)
    const luminance = ([r, g, b]: number[]): number => {
      const lin = (v: number): number => { const c = v / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4 }
      return 0.2126 * lin(r!) + 0.7152 * lin(g!) + 0.0722 * lin(b!)
    }
    const [hi, lo] = [luminance(seen), luminance([br, bgG, bb])].sort((a, b) => b - a) as [number, number]
    t.ok((hi + 0.05) / (lo + 0.05) >= 4.5, `a code comment (${fg} on ${bg}) reaches 4.5:1: ${((hi + 0.05) / (lo + 0.05)).toFixed(2)}`)

    // The navigation's sections fold and unfold.
    await page.goto(`${origin}/docs/`)
    const operations = page.locator('nav.md-nav--primary .md-nav__link--index', { hasText: 'Operations' }).locator('label').first()
    const backups = page.locator('nav.md-nav--primary a', { hasText: 'Backups' }).first()
    t.notOk(await backups.isVisible(), 'a closed section hides its pages')
    await operations.click()
    await backups.waitFor({ state: 'visible' })
    t.ok(await backups.isVisible(), 'opening it shows them')

    // Search runs in a web worker on the same origin. A query typed while the worker still
    // builds its index (slow on a busy machine) can be dropped: wait until it says it is ready.
    const searchReady = (): Promise<void> => page.locator('.md-search-result__meta').filter({ hasNotText: /Initializing/i }).waitFor({ state: 'attached', timeout: 60_000 })
    // Typed as a person types, and again if the theme's own opening of the search (its focus
    // and reset, run as the overlay opens) swallowed the query: the results must show.
    const search = async (query: string): Promise<void> => {
      await searchReady()
      const input = page.locator('input[name="query"]')
      for (let attempt = 1; ; attempt++) {
        await input.focus()
        await input.fill('')
        await page.keyboard.type(query, { delay: 20 })
        try {
          await page.locator('.md-search-result__item').first().waitFor({ timeout: 10_000 })
          return
        } catch (err) {
          if (attempt === 3) throw err
        }
      }
    }
    await search('webhook')
    t.ok(await page.locator('.md-search-result__item').count() > 0, 'search finds pages')
    t.same(problems.splice(0), [], 'no CSP violations while searching')
    t.same(await axeViolations(page), [], 'axe: nothing with the search open and its results shown')

    // Every page, as a screen reader or keyboard user meets it (the theme's own markup included).
    const pages = readdirSync(join(dir, 'site'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f === '404.html' || f.endsWith('index.html')).map((f) => `/docs/${f.replace(/index\.html$/, '')}`).sort()
    t.ok(pages.length >= 15, `${pages.length} pages`)
    for (const path of pages) {
      await page.goto(`${origin}${path}`, { waitUntil: 'networkidle' })
      t.same(await axeViolations(page), [], `axe: nothing on ${path}`)
    }
    // The docs' own 404 page says what it is in its title (a tab, a history entry), not the home page's.
    const notFound = await page.goto(`${origin}/docs/no/such/page/`, { waitUntil: 'networkidle' })
    t.equal(notFound?.status(), 404)
    t.equal(await page.title(), 'Page not found - CTFHive documentation', 'the 404 page has a title of its own')

    // On a phone and a tablet the theme lays out its navigation and search otherwise. At 320 px
    // the widest tables still scroll sideways: the pages with them.
    const narrow: Record<number, string[]> = {
      320: ['/docs/control-plane/configuration/', '/docs/control-plane/http-api/', '/docs/control-plane/provisioning/', '/docs/control-plane/testing/'],
      375: ['/docs/', '/docs/control-plane/http-api/'],
      768: ['/docs/', '/docs/control-plane/http-api/']
    }
    for (const [width, paths] of Object.entries(narrow)) {
      await page.setViewportSize({ width: Number(width), height: 800 })
      for (const path of paths) {
        await page.goto(`${origin}${path}`, { waitUntil: 'networkidle' })
        t.same(await axeViolations(page), [], `axe: nothing on ${path} at ${width} px`)
        // A table box that scrolls sideways can be focused (to scroll it with the arrow keys) and is named.
        const boxes = await page.locator('.md-typeset__scrollwrap').evaluateAll((els) => els
          .filter((el: any) => el.scrollWidth > el.clientWidth + 1)
          .map((el: any) => ({ tabindex: el.getAttribute('tabindex'), role: el.getAttribute('role'), name: el.getAttribute('aria-label') })))
        t.same(boxes.filter((b) => b.tabindex !== '0' || b.role !== 'region' || !b.name), [], `${path} at ${width} px: every table that scrolls sideways takes focus and has a name`)
      }
    }
    // There the search opens from its button, and its results show.
    await page.locator('label.md-header__button[for="__search"]').click()
    await search('webhook')
    t.ok(await page.locator('.md-search-result__item').first().isVisible(), 'search results show on a narrow screen')

    // Below 1220 px the navigation is a drawer, off-screen while closed. Its links are out of
    // the Tab order then: from the top of the page, Tab reaches the content through visible
    // stops only, among them the button that opens the drawer.
    await page.setViewportSize({ width: 375, height: 800 })
    await page.goto(`${origin}/docs/control-plane/http-api/`, { waitUntil: 'networkidle' })
    interface Stop { what: string, inDrawer: boolean, inContent: boolean, onScreen: boolean, menu: boolean }
    const stops: Stop[] = []
    for (let i = 0; i < 60; i++) {
      await page.keyboard.press('Tab')
      const stop = await page.evaluate((): Stop => {
        const { document, innerWidth, innerHeight } = globalThis as any
        const el = document.activeElement
        const r = el.getBoundingClientRect()
        return {
          what: `${el.tagName.toLowerCase()} ${(el.getAttribute('aria-label') ?? el.textContent ?? '').trim().slice(0, 30)}`,
          inDrawer: el.closest('.md-sidebar--primary') !== null,
          inContent: el.closest('.md-content') !== null,
          onScreen: r.width > 0 && r.right > 0 && r.left < innerWidth && r.bottom > 0 && r.top < innerHeight,
          menu: el.matches('button[aria-controls]') && el.getAttribute('aria-label') === 'Navigation'
        }
      })
      if (stop.inContent) break
      stops.push(stop)
    }
    t.ok(stops.length < 10, `Tab reaches the content after ${stops.length} stops: ${stops.map((s) => s.what).join(' | ')}`)
    t.same(stops.filter((s) => s.inDrawer).map((s) => s.what), [], 'no link of the closed drawer is in the Tab order')
    t.same(stops.filter((s) => !s.onScreen).map((s) => s.what), [], 'every stop on the way is on screen')
    t.ok(stops.some((s) => s.menu), 'the menu button is one of them')

    // The menu is a real button: named, focusable, saying whether the drawer is open.
    const menu = page.getByRole('button', { name: 'Navigation', exact: true })
    t.equal(await menu.count(), 1, 'one menu button')
    if (await menu.count() === 1) {
      t.equal(await menu.getAttribute('aria-expanded'), 'false', 'closed')
      const drawer = page.locator(`#${await menu.getAttribute('aria-controls')}`)
      t.ok(await drawer.evaluate((el) => el.matches('.md-sidebar--primary')), 'it controls the navigation drawer')
      await menu.focus()
      await page.keyboard.press('Enter')
      await page.waitForFunction(() => (globalThis as any).document.getElementById('__drawer').checked, null, { timeout: 10_000 })
      t.equal(await menu.getAttribute('aria-expanded'), 'true', 'Enter opens the drawer, and the button says so')
      t.equal(await drawer.evaluate((el) => (globalThis as any).getComputedStyle(el).visibility), 'visible', 'the open drawer shows')
      t.ok(await drawer.evaluate((el) => el.contains((globalThis as any).document.activeElement)), 'focus moves into it')
      await page.keyboard.press('Escape')
      await page.waitForFunction(() => !(globalThis as any).document.getElementById('__drawer').checked, null, { timeout: 10_000 })
      t.equal(await menu.getAttribute('aria-expanded'), 'false', 'Escape closes it')
      t.ok(await menu.evaluate((el) => el === (globalThis as any).document.activeElement), 'and focus returns to the button')
    }
  })
}
