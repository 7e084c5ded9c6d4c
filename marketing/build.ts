#!/usr/bin/env node
// Renders the marketing site to static files: one HTML file per page of api/web/site-pages.ts,
// one fingerprinted stylesheet and script, the images, a .br and .gz next to every text file,
// and a manifest saying what was built from what. Prices come from api/plans.ts at build time,
// so the pages cannot drift from the checkout; the hardware each plan card names, from LINODE_PLAN.
//   node marketing/build.ts [--if-missing] [--out DIR]
// --if-missing builds only when DIR is absent or was built from other sources or settings.
import { createHash, randomBytes } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, extname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEFAULT_LINODE_TYPE } from '../api/config.ts'
import { RECONNECTING, PROGRESS_STEPS, PROGRESS_TEXT, REGISTER_ERRORS, STOPPED_STEPS, siteValues } from '../api/web/buyer-text.ts'
import { MANIFEST_FILE, NOT_FOUND_FILE, SITE_PAGES } from '../api/web/site-pages.ts'
import { buildCli, writeCompressedVariants } from '../api/web/static-build.ts'
import { renderPage, type SiteContext } from './layout.ts'
import { sitePages } from './pages.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '..')
const STATIC_DIR = join(HERE, 'static')
const SCRIPT_MARKER = '/* BUYER_TEXT */ null'

/** Everything the output depends on: a change to any of these means a rebuild. */
const SOURCES = [
  'marketing/build.ts', 'marketing/layout.ts', 'marketing/pages.ts', 'marketing/src/site.css', 'marketing/src/site.js',
  'api/plans.ts', 'api/config.ts', 'api/web/buyer-text.ts', 'api/web/slots.ts', 'api/web/site-pages.ts',
  'api/web/typed-values.ts'
]

const COMPRESSIBLE = new Set(['.html', '.css', '.js', '.svg', '.txt', '.xml', '.json', '.webmanifest'])

export interface BuildOptions {
  outDir: string
  publicBaseUrl: string
  baseDomain: string
  /** CONTACT_DOMAIN: the domain of the contact page's mailboxes (BASE_DOMAIN when absent). */
  contactDomain?: string
  graceHours: number
  /** LINODE_PLAN: the server each plan gets, which its card describes (DESIGN's default when absent). */
  linodePlan?: string
}

export interface BuildManifest {
  version: 1
  builtAt: string
  sourceHash: string
  publicBaseUrl: string
  baseDomain: string
  contactDomain: string
  linodePlan: string
  /** URL path → file, for every page. */
  pages: Record<string, string>
  assets: { css: string, js: string }
  files: string[]
}

function staticFiles (): string[] {
  return readdirSync(STATIC_DIR).filter((f) => !f.startsWith('.')).sort()
}

/** A digest of the sources, the images and the settings baked into the pages. */
export function sourceHash (opts: Omit<BuildOptions, 'outDir'>): string {
  const h = createHash('sha256')
  for (const rel of [...SOURCES, ...staticFiles().map((f) => `marketing/static/${f}`)]) {
    h.update(`${rel}\0`).update(readFileSync(join(ROOT, rel))).update('\0')
  }
  // The footer's year too: a build kept from last year is made again on the next start.
  h.update(JSON.stringify({ publicBaseUrl: opts.publicBaseUrl, baseDomain: opts.baseDomain, contactDomain: contactDomain(opts), graceHours: opts.graceHours, linodePlan: opts.linodePlan ?? DEFAULT_LINODE_TYPE, year: new Date().getUTCFullYear() }))
  return h.digest('hex')
}

export function readManifest (outDir: string): BuildManifest | undefined {
  try {
    return JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), 'utf8')) as BuildManifest
  } catch {
    return undefined
  }
}

/** Why `outDir` must be (re)built for these settings, or null when it is up to date. */
export function buildReason (opts: BuildOptions): string | null {
  const manifest = readManifest(opts.outDir)
  if (manifest === undefined) return 'not built yet'
  if (manifest.publicBaseUrl !== opts.publicBaseUrl) return `built for ${manifest.publicBaseUrl}, not ${opts.publicBaseUrl}`
  if (manifest.sourceHash !== sourceHash(opts)) return 'sources or settings changed'
  const missing = manifest.files.find((f) => !existsSync(join(opts.outDir, f)))
  if (missing !== undefined) return `${missing} is missing`
  return null
}

function fingerprint (content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex').slice(0, 10)
}

export function minifyCss (css: string): string {
  return css.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\s+/g, ' ')
    .replace(/\s*([{};])\s*/g, '$1').replace(/;}/g, '}').trim() + '\n'
}

/** Drops whole-line comments and indentation; the script has no multi-line strings. */
export function minifyJs (js: string): string {
  return js.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('//')).join('\n') + '\n'
}

function contactDomain (opts: Pick<BuildOptions, 'baseDomain' | 'contactDomain'>): string {
  return opts.contactDomain ?? opts.baseDomain
}

/** The script with the buyer texts and the values they take from the settings. */
export function siteScript (settings: Pick<BuildOptions, 'baseDomain' | 'contactDomain' | 'graceHours'>): string {
  const source = readFileSync(join(HERE, 'src/site.js'), 'utf8')
  if (!source.includes(SCRIPT_MARKER)) throw new Error(`marketing/src/site.js lost its ${SCRIPT_MARKER} marker`)
  const text = JSON.stringify({ registerErrors: REGISTER_ERRORS, progress: PROGRESS_TEXT, steps: PROGRESS_STEPS, stoppedSteps: STOPPED_STEPS, reconnecting: RECONNECTING, settings: siteValues({ contactDomain: contactDomain(settings), graceHours: settings.graceHours }) })
  return minifyJs(source.replace(SCRIPT_MARKER, text))
}

function writeCompressed (dir: string, file: string, content: Buffer): string[] {
  writeFileSync(join(dir, file), content)
  if (!COMPRESSIBLE.has(extname(file))) return [file]
  return [file, ...writeCompressedVariants(join(dir, file), content).map((path) => relative(dir, path))]
}

export function buildSite (opts: BuildOptions): BuildManifest {
  const outDir = resolve(opts.outDir)
  const tmp = `${outDir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  mkdirSync(join(tmp, 'assets'), { recursive: true })
  try {
    const files: string[] = []
    const css = minifyCss(readFileSync(join(HERE, 'src/site.css'), 'utf8'))
    const js = siteScript(opts)
    const assets = { css: `/assets/site.${fingerprint(css)}.css`, js: `/assets/site.${fingerprint(js)}.js` }
    files.push(...writeCompressed(tmp, assets.css.slice(1), Buffer.from(css)))
    files.push(...writeCompressed(tmp, assets.js.slice(1), Buffer.from(js)))
    for (const f of staticFiles()) {
      copyFileSync(join(STATIC_DIR, f), join(tmp, f))
      files.push(f)
    }

    const linodePlan = opts.linodePlan ?? DEFAULT_LINODE_TYPE
    const ctx: SiteContext = { publicBaseUrl: opts.publicBaseUrl, baseDomain: opts.baseDomain, contactDomain: contactDomain(opts), graceHours: opts.graceHours, linodePlan, ...assets, year: new Date().getUTCFullYear() }
    const pages: Record<string, string> = {}
    for (const page of sitePages(ctx)) {
      files.push(...writeCompressed(tmp, page.file, Buffer.from(renderPage(page, ctx))))
      pages[page.path] = page.file
    }
    // The build and the server must agree on the page list.
    for (const p of SITE_PAGES) if (pages[p.path] !== p.file) throw new Error(`page ${p.path} was not built as ${p.file}`)
    if (!files.includes(NOT_FOUND_FILE)) throw new Error(`${NOT_FOUND_FILE} was not built`)

    const manifest: BuildManifest = {
      version: 1,
      builtAt: new Date().toISOString(),
      sourceHash: sourceHash(opts),
      publicBaseUrl: opts.publicBaseUrl,
      baseDomain: opts.baseDomain,
      contactDomain: contactDomain(opts),
      linodePlan,
      pages,
      assets,
      files: files.sort()
    }
    writeFileSync(join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`)
    // Swap the whole directory so a running server never sees half a build.
    const old = `${outDir}.old-${process.pid}-${randomBytes(4).toString('hex')}`
    if (existsSync(outDir)) renameSync(outDir, old)
    renameSync(tmp, outDir)
    rmSync(old, { recursive: true, force: true })
    return manifest
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true })
    throw err
  }
}

interface Io { stdout: { write (s: string): unknown }, stderr: { write (s: string): unknown } }

export function main (argv: string[], env: Record<string, string | undefined> = process.env, io: Io = process): number {
  const cli = buildCli('marketing', 'marketing/build.ts', argv, env, io.stderr)
  if (typeof cli === 'number') return cli
  const { config } = cli
  const outDir = resolve(cli.out ?? config.marketingDistDir)
  const opts: BuildOptions = { outDir, publicBaseUrl: config.publicBaseUrl, baseDomain: config.baseDomain, contactDomain: config.contactDomain, graceHours: config.deprovisionGraceHours, linodePlan: config.linode.plan }
  const shown = relative(process.cwd(), outDir) || '.'
  const reason = buildReason(opts)
  if (cli.ifMissing && reason === null) {
    io.stderr.write(`marketing: ${shown} is up to date\n`)
    return 0
  }
  const started = performance.now()
  const manifest = buildSite(opts)
  io.stderr.write(`marketing: built ${Object.keys(manifest.pages).length} pages into ${shown} for ${manifest.publicBaseUrl}` +
    ` (${reason ?? 'rebuild requested'}; ${Math.round(performance.now() - started)} ms)\n`)
  return 0
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2))
}
