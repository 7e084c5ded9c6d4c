// The marketing site from its build directory: every page of SITE_PAGES at its clean URL,
// assets and images by @fastify/static with their precompressed variants. Three pages also
// answer with server-filled markup for visitors without JavaScript: /register after a failed
// form post or with a chosen plan, /login after a bad address, /welcome with the order's state.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { domainToASCII } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { PAID_PLANS } from '../plans.ts'
import { PROGRESS_TEXT, loginError, loginTarget, progressOf, registerError, siteValues } from './buyer-text.ts'
import { contentSecurityPolicy, isHiddenBuildFile, redirectToCleanUrl, refusalsAreMisses, requestPath, sendUnavailable, setHtmlHeaders, setStaticHeaders } from './headers.ts'
import { MANIFEST_FILE, SITE_PAGES } from './site-pages.ts'
import { adminSection, describedBy, escapeHtml, fieldError, fieldValue, formAlert, planInput, progressBlock, welcomeHeading, type AdminSection } from './slots.ts'
import { adminCredential } from '../tenants/credentials.ts'
import { verifyWelcomeToken } from '../tenants/welcome-token.ts'
import { DNS_LABEL, addressUnder, tenantFqdn } from '../tenants/address.ts'
import { isAppError } from '../errors.ts'
import { decodeTyped, mayReadTyped, typedCookie } from './typed-values.ts'

export interface MarketingOptions {
  /** The build directory (marketing/dist by default). */
  distDir: string
}

const DEFAULT_PLAN = 'standard'
const TENANT_ID = /^[0-9a-f]{32}$/
/** The sign-in field's maxlength: a whole host name. */
const ADDRESS_MAX = 253

type Query = Record<string, string | string[] | undefined>

function one (query: Query, key: string): string | undefined {
  const v = query[key]
  return Array.isArray(v) ? v[0] : v
}

/** Replaces `from` with `to` once; the build wrote `from`, so its absence is a bug. */
function swap (html: string, from: string, to: string): string {
  const at = html.indexOf(from)
  if (at < 0) throw new Error(`the built page lacks ${from.slice(0, 60)}`)
  return html.slice(0, at) + to + html.slice(at + from.length)
}

/** The first `max` UTF-16 units, without the half of a character a cut there would leave (URIError when encoded). */
function cutTo (text: string, max: number): string {
  const cut = text.slice(0, max)
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut
}

/**
 * A form that came back refused, for visitors without script (the script does the same):
 * the title says so first, and the control at fault takes the focus, so a screen reader
 * reads its message (aria-describedby) as the page opens.
 */
function errorTitle (html: string): string {
  return swap(html, '<title>', '<title>Error: ')
}

function focusControl (html: string, field: string): string {
  // The plan's message belongs to its fieldset, which cannot take the focus: its checked choice does.
  const control = field === 'plan' ? /<input type="radio" name="plan" [^>]*\bchecked>/ : new RegExp(`<input id="${field}" [^>]*>`)
  const found = control.exec(html)
  if (found === null) throw new Error(`the built page lacks the ${field} control`)
  return swap(html, found[0], found[0].replace(/^<input /, '<input autofocus '))
}

/**
 * A host as DNS has it: browsers show an IDN BASE_DOMAIN (given in its xn-- form) in Unicode,
 * and that is what a buyer copies. Text that is no host stays as it is, to be refused.
 */
function asciiHost (host: string): string {
  if (/^[\x21-\x7e]*$/.test(host)) return host
  return domainToASCII(host) || host
}

/**
 * What an address typed at sign-in names: "acme-1a2b3c" (a label alone), or a host, from
 * "acme-1a2b3c.ctfhive.us" or a full URL. Whether the host is one of ours needs the tenant.
 */
export function typedAddress (address: string): { label: string, host?: string } | undefined {
  const host = asciiHost(address.trim().toLowerCase().replace(/^[a-z][a-z0-9+.-]*:\/\//, '').replace(/[/?#].*$/, '').replace(/:\d+$/, '').replace(/\.$/, ''))
  if (DNS_LABEL.test(host)) return { label: host }
  const dot = host.indexOf('.')
  const label = host.slice(0, dot)
  return dot > 0 && DNS_LABEL.test(label) ? { label, host } : undefined
}

/**
 * Canonical links, og:url, JSON-LD and the tenant domain are written at build time, so a site
 * built with other settings (a build run before the service's environment was loaded, an
 * image not rebuilt) advertises the wrong address; the plan cards' hardware follows LINODE_PLAN.
 * `npm start` rebuilds such a site; a server started directly says so here.
 */
function warnIfBuiltForElsewhere (app: FastifyInstance, root: string): void {
  let built: { publicBaseUrl?: unknown, baseDomain?: unknown, contactDomain?: unknown, linodePlan?: unknown }
  try {
    built = JSON.parse(readFileSync(join(root, MANIFEST_FILE), 'utf8')) as typeof built
  } catch {
    return
  }
  const { publicBaseUrl, baseDomain } = app.config
  if (built.publicBaseUrl !== publicBaseUrl || built.baseDomain !== baseDomain) {
    app.log.warn({ dir: root, built: { publicBaseUrl: built.publicBaseUrl, baseDomain: built.baseDomain }, config: { publicBaseUrl, baseDomain } },
      'the marketing site was built for another address: its canonical links are wrong; run npm run build with this environment')
  }
  // Builds made before the manifest recorded CONTACT_DOMAIN or LINODE_PLAN are not called wrong.
  const contactDomain = app.config.contactDomain
  if (built.contactDomain !== undefined && built.contactDomain !== contactDomain) {
    app.log.warn({ dir: root, built: { contactDomain: built.contactDomain }, config: { contactDomain } },
      'the marketing site was built for another CONTACT_DOMAIN: its pages name other mailboxes; run npm run build with this environment')
  }
  const linodePlan = app.config.linode.plan
  if (built.linodePlan !== undefined && built.linodePlan !== linodePlan) {
    app.log.warn({ dir: root, built: { linodePlan: built.linodePlan }, config: { linodePlan } },
      'the marketing site was built for another LINODE_PLAN: its plan cards promise other servers than tenants get; run npm run build with this environment')
  }
}

// Built pages change only when the site is rebuilt; keep each in memory until its file changes.
const builtPages = new Map<string, { mtimeMs: number, html: string }>()

/** A built page's HTML (it throws when the file is missing). */
export function readBuiltPage (path: string): string {
  const { mtimeMs } = statSync(path)
  const hit = builtPages.get(path)
  if (hit !== undefined && hit.mtimeMs === mtimeMs) return hit.html
  const html = readFileSync(path, 'utf8')
  builtPages.set(path, { mtimeMs, html })
  return html
}

export default async function marketingSite (app: FastifyInstance, opts: MarketingOptions): Promise<void> {
  const { config } = app
  const root = opts.distDir
  const built = (): boolean => existsSync(join(root, MANIFEST_FILE))
  const notBuilt = (request: FastifyRequest, reply: FastifyReply) => sendUnavailable(request, reply, config, 'site_not_built',
    `The marketing site is not built: run npm run build (it writes ${root}).`)
  if (!built()) app.log.warn({ dir: root }, 'the marketing site is not built; run npm run build')
  else warnIfBuiltForElsewhere(app, root)

  // The sign-in form leads to tenants made under an earlier BASE_DOMAIN too: the policy's
  // form-action names every domain tenants live under (they change only with a restart).
  let csp = contentSecurityPolicy(config, 'site')
  app.addHook('onReady', async () => {
    try {
      csp = contentSecurityPolicy(config, 'site', { tenantDomains: await app.store.tenantDomains() })
    } catch (err) {
      app.log.error({ err }, 'could not list the domains of tenant addresses; the sign-in form leads only to those under BASE_DOMAIN')
    }
  })

  const readPage = (file: string): string => readBuiltPage(join(root, file))

  const sendFilled = (reply: FastifyReply, html: string, opts: { noReferrer?: boolean } = {}): FastifyReply => {
    setHtmlHeaders(reply, config, csp)
    // The welcome link's token is in this page's URL: not even our own requests carry it on.
    if (opts.noReferrer === true) reply.header('referrer-policy', 'no-referrer')
    // Filled pages speak of one visitor's form or order: never stored by a cache.
    return reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff').type('text/html; charset=utf-8').send(html)
  }

  refusalsAreMisses(app)
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    preCompressed: true,
    cacheControl: false,
    dotfiles: 'ignore',
    index: false,
    suppressWarning: true,
    setHeaders: (reply, path) => { setStaticHeaders(reply, path, config, csp) }
  })

  // One URL per page: /pricing.html, /pricing/ and /index.html lead to the clean URL, and so
  // does a page's address with doubled slashes (//pricing, /pricing//: a mistyped link).
  const cleanUrls = new Map<string, string>()
  for (const page of SITE_PAGES) {
    cleanUrls.set(`/${page.file}`, page.path)
    if (page.path !== '/') cleanUrls.set(`${page.path}/`, page.path)
  }
  const pagePaths = new Set(SITE_PAGES.map((p) => p.path))
  const cleanUrlOf = (path: string): string | undefined => {
    const clean = cleanUrls.get(path)
    if (clean !== undefined || !path.includes('//')) return clean
    const single = path.replace(/\/{2,}/g, '/')
    return cleanUrls.get(single) ?? (pagePaths.has(single) ? single : undefined)
  }
  // Decided on the decoded path, the one the static server would serve: /pricing%2ehtml is
  // /pricing.html. A malformed escape goes on to the router's 400.
  app.addHook('onRequest', async (request, reply) => {
    const { path, query } = requestPath(request.url)
    if (path === undefined) return
    if (isHiddenBuildFile(path)) return reply.callNotFound()
    const clean = cleanUrlOf(path)
    if (clean === undefined) return
    return redirectToCleanUrl(reply, clean, query)
  })

  const renderRegister = (request: FastifyRequest, reply: FastifyReply, query: Query): string | undefined => {
    const plan = one(query, 'plan')
    const code = one(query, 'error')
    // What a refused form post had typed, if it came back here: read once.
    const typedAt = typedCookie(config.publicBaseUrl)
    const stored = request.cookies[typedAt.name]
    if (stored !== undefined) reply.clearCookie(typedAt.name, typedAt.options)
    const cookie = mayReadTyped(request.headers['sec-fetch-site']) ? stored : undefined
    if (plan === undefined && code === undefined) return undefined
    let html = readPage('register.html')
    if (plan !== undefined && plan !== DEFAULT_PLAN && PAID_PLANS.some((p) => p.slug === plan)) {
      html = swap(html, planInput(DEFAULT_PLAN, true), planInput(DEFAULT_PLAN, false))
      html = swap(html, planInput(plan, false), planInput(plan, true))
    }
    if (code !== undefined) {
      const e = registerError(code, one(query, 'field'))
      html = errorTitle(html)
      if (e.field === 'form') {
        html = swap(html, formAlert(), formAlert(e.message))
      } else {
        html = swap(html, fieldError(e.field), fieldError(e.field, e.message))
        html = swap(html, describedBy(e.field), describedBy(e.field, true))
        // The fieldset's description is read with the group by some screen readers only: the
        // radio that takes the focus names the message itself, as the script does.
        if (e.field === 'plan') html = html.replaceAll('<input type="radio" name="plan" ', '<input type="radio" name="plan" aria-describedby="plan-error" ')
        html = focusControl(html, e.field)
      }
      const typed = decodeTyped(cookie)
      for (const field of ['name', 'email'] as const) {
        if (typed[field] !== undefined) html = swap(html, fieldValue(field), fieldValue(field, typed[field]))
      }
    }
    return html
  }

  const renderLogin = (query: Query): string | undefined => {
    const message = loginError(one(query, 'error'))
    if (message === undefined) return undefined
    let html = swap(errorTitle(readPage('login.html')), fieldError('address'), fieldError('address', message))
    html = focusControl(swap(html, describedBy('address'), describedBy('address', true)), 'address')
    // What the buyer typed stays in the field, to correct rather than retype.
    const typed = cutTo(one(query, 'address') ?? '', ADDRESS_MAX)
    return typed === '' ? html : swap(html, fieldValue('address'), fieldValue('address', typed))
  }

  const settings = siteValues({ contactDomain: config.contactDomain, graceHours: config.deprovisionGraceHours })
  /** The admin sign-in section for a live order: a link for visitors without script, or the details once asked. */
  const adminFor = async (request: FastifyRequest, id: string, query: Query): Promise<AdminSection> => {
    const token = one(query, 'token') ?? ''
    if (!verifyWelcomeToken(config.secretKey, id, token)) return { offered: false }
    const section: AdminSection = {
      offered: true,
      noScriptHref: `/welcome?tenant=${id}&token=${encodeURIComponent(token)}&show=admin#admin-details`
    }
    if (one(query, 'show') !== 'admin') return section
    try {
      const c = await adminCredential({ config, tenants: app.tenants, executor: app.executor, log: request.log }, id, token)
      return { ...section, credential: { loginUrl: c.login_url, name: c.admin_name, email: c.admin_email, password: c.password } }
    } catch (err) {
      if (!isAppError(err)) throw err
      return { ...section, message: err.message }
    }
  }

  const renderWelcome = async (request: FastifyRequest, query: Query): Promise<string> => {
    // An id copied in upper case is the same id, as in the API (tenants/routes.ts lowercaseTenantId).
    const id = (one(query, 'tenant') ?? '').toLowerCase()
    const tenant = TENANT_ID.test(id) ? await app.tenants.getTenant(id) : undefined
    const status = tenant === undefined ? null : app.tenants.statusOf(tenant)
    // The store's clock: created_at is by it, and a PostgreSQL store's may differ from this host's.
    const progress = progressOf(status, app.store.now())
    const block = progressBlock(progress, status === null
      ? { tenant: id }
      : { url: status.url, fqdn: status.fqdn, tenant: status.tenant_id, reason: status.error ?? 'The subscription was canceled.', ...settings })
    let html = swap(readPage('welcome.html'), progressBlock({ key: 'checking', done: 0, final: false }), block)
    html = swap(html, welcomeHeading(), welcomeHeading(progress.key))
    // The title, and its Open Graph and Twitter copies, begin with the heading ("… · CTFHive").
    html = html.replaceAll(`${escapeHtml(PROGRESS_TEXT.checking.heading)} · `, `${escapeHtml(PROGRESS_TEXT[progress.key].heading)} · `)
    // Offered while the CTF runs (past due, or canceled until its teardown, too): its buyer may
    // need to sign in to export, and CTFd here sends no password-reset mail.
    if (progress.online !== true) return html
    return swap(html, adminSection(), adminSection(await adminFor(request, id, query)))
  }

  for (const page of SITE_PAGES) {
    app.get(page.path, { schema: { hide: true } }, async (request, reply) => {
      if (!built()) return notBuilt(request, reply)
      const query = request.query as Query
      let filled: string | undefined
      if (page.path === '/register') filled = renderRegister(request, reply, query)
      else if (page.path === '/login') filled = renderLogin(query)
      else if (page.path === '/welcome') {
        // Without a tenant, the order is not found: no page stays at "looking up" without script.
        filled = await renderWelcome(request, query)
        // Any query (a token, even without a tenant) makes this a page of one buyer's.
        return sendFilled(reply, filled, { noReferrer: Object.keys(query).length > 0 })
      }
      if (filled !== undefined) return sendFilled(reply, filled)
      return reply.sendFile(page.file)
    })
  }

  // The sign-in form without script: the address → that CTF's own sign-in page.
  // Only to a server that runs: a mistyped or finished CTF gets a reason, not a browser error.
  app.get('/login/go', { schema: { hide: true } }, async (request, reply) => {
    const address = cutTo((one(request.query as Query, 'address') ?? '').trim(), ADDRESS_MAX)
    const typed = typedAddress(address)
    reply.header('cache-control', 'no-store')
    const back = (code: string): FastifyReply => reply.redirect(`/login?error=${code}&address=${encodeURIComponent(address)}`, 303)
    if (typed === undefined) return back('invalid_address')
    const tenant = await app.tenants.getTenantBySlug(typed.label)
    const fqdn = tenant === undefined ? undefined : tenantFqdn(tenant, config.baseDomain)
    // Only to the tenant's own address: a host of its label under today's BASE_DOMAIN, or the
    // one it was made with (an earlier BASE_DOMAIN); any other host is not one of ours.
    if (typed.host !== undefined && typed.host !== fqdn && typed.host !== addressUnder(typed.label, config.baseDomain)) return back('invalid_address')
    const target = loginTarget(tenant)
    if (target !== 'go') return back(target)
    return reply.redirect(`https://${fqdn!}/login`, 303)
  })
}
