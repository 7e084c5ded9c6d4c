// Builds the marketing site into a temporary directory for one test file; the env it returns
// points the app at it (MARKETING_DIST_DIR), so tests never depend on, or disturb, a
// marketing/dist built by hand.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildSite, type BuildManifest } from '../../marketing/build.ts'

export const SITE_BASE = 'https://ctfhive.example'
export const SITE_DOMAIN = 'ctfhive.example'

interface Teardown { teardown (fn: () => unknown): void }

export interface BuiltSite {
  dir: string
  manifest: BuildManifest
  /** Env for buildTestApp: the build's directory, origin and domain. */
  env: Record<string, string>
}

export function buildTestSite (t: Teardown, opts: { publicBaseUrl?: string, baseDomain?: string, contactDomain?: string } = {}): BuiltSite {
  const parent = mkdtempSync(join(tmpdir(), 'ctfhive-site-'))
  t.teardown(() => rmSync(parent, { recursive: true, force: true }))
  const dir = join(parent, 'dist')
  const publicBaseUrl = opts.publicBaseUrl ?? SITE_BASE
  const baseDomain = opts.baseDomain ?? SITE_DOMAIN
  const contact: Record<string, string> = opts.contactDomain === undefined ? {} : { CONTACT_DOMAIN: opts.contactDomain }
  const manifest = buildSite({ outDir: dir, publicBaseUrl, baseDomain, contactDomain: opts.contactDomain, graceHours: 72, linodePlan: 'per-plan' })
  return { dir, manifest, env: { MARKETING_DIST_DIR: dir, PUBLIC_BASE_URL: publicBaseUrl, BASE_DOMAIN: baseDomain, LINODE_PLAN: 'per-plan', ...contact } }
}
