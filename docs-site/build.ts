#!/usr/bin/env node
// Builds the documentation with Debian's `mkdocs` (and `mkdocs-material`) into DOCS_SITE_DIR
// (docs-site/site by default), for the public address in PUBLIC_BASE_URL, then writes a .br
// and .gz next to every text file so the app can serve them precompressed.
//   node docs-site/build.ts [--if-missing] [--out DIR]
// --if-missing builds only when DIR is absent or was built from other sources or for another
// address. Without mkdocs installed it says so on one line and exits 0, so `npm start` still
// works; /docs/ then answers 503 until the docs are built. With --if-missing a failing build
// (mkdocs without mkdocs-material, say) is reported and exits 0 too, the docs left as they were.
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, extname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stripVTControlCharacters } from 'node:util'
import { DOCS_CADDY_FILE, DOCS_MANIFEST_FILE } from '../api/web/docs.ts'
import { contentSecurityPolicy } from '../api/web/headers.ts'
import { buildCli, writeCompressedVariants } from '../api/web/static-build.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const CONFIG_FILE = join(HERE, 'mkdocs.yml')
export const MANIFEST_FILE = DOCS_MANIFEST_FILE
const COMPRESSIBLE = new Set(['.html', '.css', '.js', '.json', '.xml', '.svg', '.txt', '.map'])

export interface DocsBuildOptions {
  outDir: string
  /** The marketing site's origin (PUBLIC_BASE_URL); the docs live under /docs/ there. */
  publicBaseUrl: string
  /** The mkdocs command (default: `mkdocs` on PATH). */
  mkdocs?: string
}

interface DocsManifest {
  version: 1
  builtAt: string
  sourceHash: string
  publicBaseUrl: string
  /** CSP hashes of the inline scripts the theme writes (one per page depth), for the server. */
  inlineScriptHashes: string[]
}

const INLINE_SCRIPT = /<script(?![^>]*\bsrc=)(?![^>]*\btype="application\/(?:ld\+)?json")[^>]*>([\s\S]*?)<\/script>/g

/** 'sha256-…' of every distinct inline script in the built HTML. */
export function inlineScriptHashes (dir: string): string[] {
  const hashes = new Set<string>()
  for (const file of walk(dir)) {
    if (!file.endsWith('.html')) continue
    for (const m of readFileSync(file, 'utf8').matchAll(INLINE_SCRIPT)) {
      hashes.add(`sha256-${createHash('sha256').update(m[1]!).digest('base64')}`)
    }
  }
  return [...hashes].sort()
}

function walk (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    return e.isDirectory() ? walk(path) : [path]
  }).sort()
}

/**
 * The docs' CSP with this build's script hashes as a Caddyfile directive: Caddy serves /docs
 * itself in production and imports this, so it sends what the app's own route would.
 */
export function caddyPolicySnippet (hashes: readonly string[]): string {
  // The docs policy does not depend on the domain (only the marketing site's form-action does).
  const policy = contentSecurityPolicy({ baseDomain: 'unused.invalid' }, 'docs', { scriptHashes: hashes })
  return `# Written by docs-site/build.ts with this build's inline-script hashes; imported by deploy/Caddyfile.\nheader Content-Security-Policy "${policy}"\n`
}

/** A digest of mkdocs.yml, the pages, the overrides and the address baked into the build. */
export function sourceHash (publicBaseUrl: string): string {
  const h = createHash('sha256')
  for (const file of [CONFIG_FILE, ...walk(join(HERE, 'docs')), ...walk(join(HERE, 'overrides'))]) {
    h.update(`${relative(HERE, file)}\0`).update(readFileSync(file)).update('\0')
  }
  return h.update(publicBaseUrl).digest('hex')
}

/** Why `outDir` must be (re)built, or null when it is up to date. */
export function buildReason (opts: Pick<DocsBuildOptions, 'outDir' | 'publicBaseUrl'>): string | null {
  let manifest: DocsManifest
  try {
    manifest = JSON.parse(readFileSync(join(opts.outDir, MANIFEST_FILE), 'utf8')) as DocsManifest
  } catch {
    return 'not built yet'
  }
  if (!existsSync(join(opts.outDir, 'index.html'))) return 'index.html is missing'
  if (manifest.publicBaseUrl !== opts.publicBaseUrl) return `built for ${manifest.publicBaseUrl}, not ${opts.publicBaseUrl}`
  if (manifest.sourceHash !== sourceHash(opts.publicBaseUrl)) return 'sources changed'
  return null
}

/** The mkdocs version line, or undefined when mkdocs cannot be run. */
export function mkdocsVersion (command = 'mkdocs'): string | undefined {
  const r = spawnSync(command, ['--version'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

function compressTree (dir: string): void {
  for (const file of walk(dir)) {
    if (!COMPRESSIBLE.has(extname(file))) continue
    const content = readFileSync(file)
    if (content.length >= 1024) writeCompressedVariants(file, content)
  }
}

/**
 * What a failed mkdocs run said, without its INFO records (progress, and Python's deprecation
 * notices with their indented traceback lines) and the colours it writes even into a pipe:
 * the WARNING or ERROR lines that name the file, then its verdict.
 */
function failureOutput (output: string): string {
  let info = false
  return stripVTControlCharacters(output).split('\n').filter((line) => {
    if (line.trim() === '') return false
    if (!/^\s/.test(line)) info = /^INFO\b/.test(line)
    return !info
  }).join('\n')
}

/** What mkdocs.yml reads with !ENV: the docs' own address and the marketing site's pages they link to. */
function docsEnv (base: string): Record<string, string> {
  return {
    CTFHIVE_DOCS_URL: `${base}/docs/`,
    CTFHIVE_PUBLIC_URL: base,
    CTFHIVE_HOME_URL: `${base}/`,
    CTFHIVE_PRICING_URL: `${base}/pricing`,
    CTFHIVE_CONTACT_URL: `${base}/contact`
  }
}

/**
 * MkDocs' sitemap without its <lastmod> (the build's date on every page) and <changefreq>
 * (always daily): each rebuild would mark every page changed, and search engines that see
 * that stop trusting lastmod. Only the <loc> of each page is kept.
 */
export function undatedSitemap (xml: string): string {
  return xml.replace(/\s*<(lastmod|changefreq)>[^<]*<\/\1>/g, '')
}

/** Runs mkdocs into a fresh directory and swaps it in whole; throws with mkdocs' output on failure. */
export function buildDocs (opts: DocsBuildOptions): void {
  const outDir = resolve(opts.outDir)
  const tmp = `${outDir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  const base = opts.publicBaseUrl.replace(/\/+$/, '')
  try {
    // Not --quiet: it silences the WARNING line that names the file a strict build fails on.
    // The output is shown only when the build fails.
    const r = spawnSync(opts.mkdocs ?? 'mkdocs', ['build', '--strict', '--config-file', CONFIG_FILE, '--site-dir', tmp], {
      encoding: 'utf8',
      env: { ...process.env, ...docsEnv(base) }
    })
    if (r.error !== undefined) throw new Error(`could not run mkdocs: ${r.error.message}`)
    if (r.status !== 0) throw new Error(`mkdocs build failed (exit ${r.status}):\n${failureOutput(`${r.stderr}\n${r.stdout}`)}`)
    const manifest: DocsManifest = {
      version: 1, builtAt: new Date().toISOString(), sourceHash: sourceHash(base), publicBaseUrl: base, inlineScriptHashes: inlineScriptHashes(tmp)
    }
    writeFileSync(join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`)
    writeFileSync(join(tmp, DOCS_CADDY_FILE), caddyPolicySnippet(manifest.inlineScriptHashes))
    const sitemap = join(tmp, 'sitemap.xml')
    if (existsSync(sitemap)) {
      writeFileSync(sitemap, undatedSitemap(readFileSync(sitemap, 'utf8')))
      // MkDocs' own sitemap.xml.gz keeps the dates: compressTree writes ours (when it is worth it).
      rmSync(`${sitemap}.gz`, { force: true })
    }
    compressTree(tmp)
    const old = `${outDir}.old-${process.pid}-${randomBytes(4).toString('hex')}`
    if (existsSync(outDir)) renameSync(outDir, old)
    renameSync(tmp, outDir)
    rmSync(old, { recursive: true, force: true })
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

interface Io { stderr: { write (s: string): unknown } }

export function main (argv: string[], env: Record<string, string | undefined> = process.env, io: Io = process): number {
  const cli = buildCli('docs', 'docs-site/build.ts', argv, env, io.stderr)
  if (typeof cli === 'number') return cli
  const { config } = cli
  const outDir = resolve(cli.out ?? config.docsSiteDir)
  const shown = relative(process.cwd(), outDir) || '.'
  const reason = buildReason({ outDir, publicBaseUrl: config.publicBaseUrl })
  if (cli.ifMissing && reason === null) {
    io.stderr.write(`docs: ${shown} is up to date\n`)
    return 0
  }
  const mkdocs = env.MKDOCS ?? 'mkdocs'
  const version = mkdocsVersion(mkdocs)
  if (version === undefined) {
    io.stderr.write(`docs: not built (${reason ?? 'rebuild requested'}): mkdocs is not installed (apt-get install mkdocs mkdocs-material); /docs/ answers 503 until it is\n`)
    return 0
  }
  const started = performance.now()
  try {
    buildDocs({ outDir, publicBaseUrl: config.publicBaseUrl, mkdocs })
  } catch (err) {
    io.stderr.write(`docs: ${(err as Error).message}\n`)
    // As without mkdocs: `npm start` (--if-missing) goes on, the docs as they were (or a 503).
    // A build asked for outright fails.
    if (!cli.ifMissing) return 1
    io.stderr.write(`docs: ${shown} left as it was (${reason ?? 'rebuild requested'}); the server starts without a fresh build\n`)
    return 0
  }
  const pages = readdirSync(outDir, { recursive: true }).filter((f) => String(f).endsWith('index.html')).length
  io.stderr.write(`docs: built ${pages} pages into ${shown} for ${config.publicBaseUrl}/docs/ (${reason ?? 'rebuild requested'}; mkdocs ${/version (\S+)/.exec(version)?.[1] ?? '?'}; ${Math.round(performance.now() - started)} ms)\n`)
  return 0
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2))
}
