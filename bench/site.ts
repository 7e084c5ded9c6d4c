#!/usr/bin/env node
// Lighthouse on the marketing site (not a test): builds the site for a loopback origin,
// serves it with the real app, and audits /, /pricing and /register in Debian's Chromium with
// Lighthouse's default mobile profile (simulated slow 4G, mid-range CPU).
//   npm run bench:site [-- --runs N]
// Targets: 100 in performance, accessibility, best practices and SEO on each page, and
// /pricing under 40 KB transferred. Prints one table; the median of N runs per page.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import * as chromeLauncher from 'chrome-launcher'
import lighthouse from 'lighthouse'
import { pino } from 'pino'
import { buildApp } from '../api/app.ts'
import { loadConfig } from '../api/config.ts'
import { FakeExecutor } from '../api/provisioning/fake.ts'
import { SqliteStore } from '../api/store/sqlite.ts'
import { buildSite } from '../marketing/build.ts'

const PAGES = ['/', '/pricing', '/register']
const CATEGORIES = ['performance', 'accessibility', 'best-practices', 'seo'] as const
const PRICING_BUDGET = 40 * 1024
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

interface Result { page: string, scores: Record<string, number>, bytes: number, misses: string[] }

async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    }).on('error', reject)
  })
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function main (): Promise<void> {
  const { runs } = parseArgs({ options: { runs: { type: 'string', default: '1' } } }).values
  const n = Math.max(1, Number(runs) || 1)
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const work = mkdtempSync(join(tmpdir(), 'ctfhive-bench-site-'))
  // Canonical links must name the origin under test, or SEO marks them as another domain.
  const dist = join(work, 'dist')
  buildSite({ outDir: dist, publicBaseUrl: origin, baseDomain: 'ctfhive.us', graceHours: 72 })
  const config = loadConfig({ MARKETING_DIST_DIR: dist, PUBLIC_BASE_URL: origin, PORT: String(port), DATABASE_URL: `sqlite:${join(work, 'bench.db')}`, LOG_LEVEL: 'silent' })
  const store = new SqliteStore({ path: join(work, 'bench.db') })
  const app = await buildApp(config, { store, executor: new FakeExecutor(), logger: pino({ level: 'silent' }), runJobs: false })
  await app.listen({ host: '127.0.0.1', port })
  const chrome = await chromeLauncher.launch({ chromePath: CHROMIUM, chromeFlags: FLAGS })
  const results: Result[] = []
  try {
    for (const page of PAGES) {
      const samples: Array<{ scores: Record<string, number>, bytes: number, misses: string[] }> = []
      for (let i = 0; i < n; i++) {
        const run = await lighthouse(`${origin}${page}`, { port: chrome.port, output: 'json', logLevel: 'error', onlyCategories: [...CATEGORIES] })
        if (run === undefined) throw new Error(`Lighthouse returned nothing for ${page}`)
        const lhr = run.lhr
        const scores = Object.fromEntries(CATEGORIES.map((c) => [c, Math.round((lhr.categories[c]?.score ?? 0) * 100)]))
        // What kept a category below 100: every scored audit that did not pass.
        const misses = CATEGORIES.flatMap((c) => (lhr.categories[c]?.auditRefs ?? [])
          .filter((ref) => ref.weight > 0 && (lhr.audits[ref.id]?.score ?? 1) < 1)
          .map((ref) => `${c}: ${ref.id} (${lhr.audits[ref.id]?.displayValue ?? lhr.audits[ref.id]?.score})`))
        samples.push({ scores, bytes: Number(lhr.audits['total-byte-weight']?.numericValue ?? 0), misses })
      }
      results.push({
        page,
        scores: Object.fromEntries(CATEGORIES.map((c) => [c, median(samples.map((s) => s.scores[c]!))])),
        bytes: median(samples.map((s) => s.bytes)),
        misses: [...new Set(samples.flatMap((s) => s.misses))]
      })
    }
  } finally {
    chrome.kill()
    await app.close()
    await store.close()
    rmSync(work, { recursive: true, force: true })
  }

  const head = ['page', 'performance', 'accessibility', 'best practices', 'SEO', 'transferred']
  const rows = results.map((r) => [r.page, ...CATEGORIES.map((c) => String(r.scores[c])), `${(r.bytes / 1024).toFixed(1)} KB`])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  console.log(`Lighthouse ${(await import('lighthouse/package.json', { with: { type: 'json' } })).default.version}, mobile profile, ${n} run(s) per page (median), ${CHROMIUM}`)
  console.log(line(head))
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const r of rows) console.log(line(r))
  for (const r of results) for (const m of r.misses) console.log(`  ${r.page} below 100 — ${m}`)
  const pricing = results.find((r) => r.page === '/pricing')!
  console.log(`/pricing transferred ${(pricing.bytes / 1024).toFixed(1)} KB (budget ${PRICING_BUDGET / 1024} KB): ${pricing.bytes < PRICING_BUDGET ? 'within' : 'OVER'}`)
}

await main()
