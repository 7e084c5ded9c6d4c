#!/usr/bin/env node
// `ctfhive`: the operator commands, working directly on the store named by DATABASE_URL.
// The operations are the /admin API's own (api/tenants/admin.ts); this file only parses
// arguments and prints. Jobs it queues are run by the server's workers, not by this process.
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { ConfigError, DEFAULT_AUDIT_SECRET, DEFAULT_SECRET_KEY, isLoopback, loadConfig, type Config } from '../api/config.ts'
import { isAppError } from '../api/errors.ts'
import { FakeExecutor } from '../api/provisioning/fake.ts'
import { JobRunner } from '../api/provisioning/jobs.ts'
import { absentSqliteFile, openStore, settingRefusal } from '../api/store/index.ts'
import { NotCtfhiveDatabase, aheadWarning } from '../api/store/migrations.ts'
import { EVENT_OUTCOMES, type EventOutcome, type Store } from '../api/store/store.ts'
import { TenantAdmin, MAX_PAGE, parseEventCursor, parseTenantCursor, type TenantRecord } from '../api/tenants/admin.ts'
import { parseAuditAnchor } from '../api/provisioning/audit.ts'
import { STATES, type TenantState } from '../api/tenants/lifecycle.ts'
import { TenantService } from '../api/tenants/service.ts'
import { DEFAULT_EVENT_DAYS, DEFAULT_ORDER_DAYS, MIN_EVENT_DAYS, MIN_ORDER_DAYS, Retention } from '../api/tenants/retention.ts'
import { BANNED_CHARACTER } from '../api/tenants/name.ts'
import type { Io } from './stripe-bootstrap.ts'
import { renderTable } from './table.ts'
import { isMain, refuseRepeated, runCli } from './cli-output.ts'

type Env = Record<string, string | undefined>

export const USAGE = `Usage: ctfhive <command> [options]        (npx ctfhive …)

Commands:
  tenants [--state S] [--limit N] [--offset N | --after C]
                                                 list tenants, newest first;
                                                 S: ${STATES.join(', ')};
                                                 C: the cursor a page prints for the next
  tenant <id>                                    one tenant with its events, audit entries, jobs
  retry <id>                                     re-queue a failed provisioning, resize or teardown
  welcome-link <id>                              the buyer's welcome link, for support to send
                                                 them (a bearer link: it opens their CTF's
                                                 administrator password); SECRET_KEY and
                                                 PUBLIC_BASE_URL must be the server's
  audit verify [--anchor SEQ:MAC]                walk the audit chain, report the first bad seq
                                                 and the head; with a head printed earlier, also
                                                 that the chain still reaches it unchanged
  events [--limit N] [--outcome O] [--after C]
                                                 Stripe events, the last received first;
                                                 O: ${EVENT_OUTCOMES.join(', ')};
                                                 C: the cursor a page prints for the next
  replay <event-id>                              run a stored event through the webhook rules
                                                 again, as <event-id>:replay:<n>
  export                                         every tenant as JSON
  erase <id>                                     forget a former buyer on their request: name,
                                                 emails and event payloads blanked (refused
                                                 while a subscription, server or job runs)
  prune [--event-days N] [--order-days N] [--dry-run]
                                                 retention: blank the payloads (the buyer's
                                                 email) of Stripe events
                                                 received over N days ago (default ${DEFAULT_EVENT_DAYS},
                                                 at least ${MIN_EVENT_DAYS}), and remove orders never paid
                                                 for made over N days ago (default ${DEFAULT_ORDER_DAYS},
                                                 at least ${MIN_ORDER_DAYS}); --dry-run only counts

Options: --json (machine-readable output), -h/--help. Each command takes only the options
shown with it (and --json); any other is refused.
Works on the store named by DATABASE_URL. Run it with the server's whole environment (its env
file): PROVISION_AUDIT_SECRET must be the server's, welcome-link signs with SECRET_KEY under
PUBLIC_BASE_URL, and replay acts as the server would (BASE_DOMAIN, STRIPE_SECRET_KEY,
DEPROVISION_GRACE_HOURS).
Exit status: 0 done, 1 failed (not found, conflict, store error; for audit verify a broken
chain, or a key that does not match it), 2 bad usage or configuration (DATABASE_URL naming no
database, a wrong password, a file that is not SQLite; PROVISION_AUDIT_SECRET unset for an
existing chain; retry or replay under a key that does not match it).
`

class UsageError extends Error {}

/** Each command with the options it takes besides --json and --help; any other is a usage error. */
const COMMAND_OPTIONS: Record<string, readonly string[]> = {
  tenants: ['state', 'limit', 'offset', 'after'],
  tenant: [],
  retry: [],
  'welcome-link': [],
  audit: ['anchor'],
  events: ['limit', 'outcome', 'after'],
  replay: [],
  export: [],
  erase: [],
  prune: ['event-days', 'order-days', 'dry-run']
}
const COMMANDS = Object.keys(COMMAND_OPTIONS)
/** The commands that write nothing to the store. */
const READING_COMMANDS = new Set(['tenants', 'tenant', 'welcome-link', 'audit', 'events', 'export'])
const TENANT_ID = /^[0-9a-f]{32}$/

function intOption (value: string | undefined, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`)
  return Number(value)
}

function one (positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one ${what}`)
  return positionals[0]!
}

/**
 * The one tenant id a command takes. A malformed one is a typo, not a tenant that is gone (the
 * operator API answers 400 for it); one copied in upper case is the same id, as in the API.
 */
function tenantId (positionals: string[]): string {
  const id = one(positionals, 'tenant id')
  const lower = id.toLowerCase()
  if (TENANT_ID.test(lower)) return lower
  throw new UsageError(`a tenant id is 32 hex characters, got ${forTerminal(JSON.stringify(id))}`)
}

const dash = (v: string | null | undefined): string => (v === null || v === undefined || v === '' ? '-' : v)

/** A Stripe `created` (unix seconds) as ISO 8601; 0, which no event has, as a dash. */
const unixIso = (s: number): string => (s === 0 ? '-' : new Date(s * 1000).toISOString())

function tenantRows (tenants: readonly TenantRecord[]): string[][] {
  return tenants.map((x) => [x.tenant_id, x.state, x.plan, x.name, x.fqdn, x.created_at])
}

/**
 * Text for the operator's terminal: names and errors come from buyers and older releases, and a
 * control character (U+009B is CSI), a line separator or a bidirectional override among them
 * would act on the terminal or reorder the line. Each character a name may not hold
 * (api/tenants/name.ts) is shown as its code; newlines stay.
 */
export function forTerminal (text: string): string {
  return text.replace(BANNED_CHARACTER, (c) => c === '\n' ? c : `\\u{${c.codePointAt(0)!.toString(16)}}`)
}

function describeTenant (x: TenantRecord): string {
  const fields: Array<[string, string]> = [
    ['tenant', x.tenant_id], ['name', x.name], ['email', dash(x.email)], ['plan', x.plan],
    ['state', `${x.state} (billing ${x.billing}, infra ${x.infra})`], ['fqdn', x.fqdn],
    ['subscription', dash(x.subscription_id)], ['customer', dash(x.customer_id)],
    ['server', `${dash(x.server_id)} ${dash(x.ipv4)}`], ['error', dash(x.error)],
    ['created', x.created_at], ['paid', dash(x.paid_at)], ['ready', dash(x.ready_at)], ['canceled', dash(x.canceled_at)]
  ]
  return fields.map(([k, v]) => `${`${k}:`.padEnd(14)}${v}`).join('\n') + '\n'
}

interface Ctx {
  admin: TenantAdmin
  retention: Retention
  json: boolean
  out: (text: string) => void
  /** PROVISION_AUDIT_SECRET is unset or the development default (allowed: NODE_ENV is development here). */
  defaultAuditKey: boolean
  secretKey: string
  defaultSecretKey: boolean
  publicBaseUrl: string
  /** PUBLIC_BASE_URL is unset: publicBaseUrl is the development default. */
  publicBaseUrlUnset: boolean
  /** The server settings a replay acts on that this environment leaves unset (BASE_DOMAIN, STRIPE_SECRET_KEY). */
  replayUnset: string[]
  warn: (text: string) => void
}

/**
 * What makes a link under this PUBLIC_BASE_URL one the buyer cannot open (the development
 * default, or another loopback address), or null. Nothing stored says the server's address.
 */
function unreachableBase (publicBaseUrl: string, unset: boolean): string | null {
  if (unset) return `PUBLIC_BASE_URL is not set (the development default, ${publicBaseUrl})`
  // As config's production check: localhost, *.localhost, 127/8, ::1 and the unspecified addresses.
  return isLoopback(new URL(publicBaseUrl).hostname) ? `PUBLIC_BASE_URL is ${publicBaseUrl}, a loopback address` : null
}

async function requireAuditKey (ctx: Ctx): Promise<void> {
  if (!(await ctx.admin.auditKeyMatches())) {
    throw new UsageError('PROVISION_AUDIT_SECRET does not match the audit chain in this database (its last entry, which the next one chains to, does not verify under it); refusing to append entries under the wrong key (set the server\'s secret)')
  }
}

async function run (command: string, positionals: string[], values: Record<string, string | boolean | undefined>, ctx: Ctx): Promise<number> {
  const { admin, json, out } = ctx
  const emit = (data: unknown, human: () => string): void => { out(json ? `${JSON.stringify(data, null, 2)}\n` : forTerminal(human())) }
  switch (command) {
    case 'tenants': {
      if (positionals.length > 0) throw new UsageError('tenants takes no arguments')
      const state = values.state as string | undefined
      if (state !== undefined && !(STATES as readonly string[]).includes(state)) throw new UsageError(`--state must be one of ${STATES.join(', ')}`)
      const after = values.after as string | undefined
      if (after !== undefined && values.offset !== undefined) throw new UsageError('give --offset or --after, not both')
      if (after !== undefined && parseTenantCursor(after) === undefined) throw new UsageError('--after takes the cursor a page of tenants printed')
      const limit = intOption(values.limit as string | undefined, 'limit', 1, MAX_PAGE, 50)
      const page = await admin.listTenants({
        state: state as TenantState | undefined,
        limit,
        offset: values.offset === undefined ? undefined : intOption(values.offset as string, 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
        after
      })
      emit(page, () => {
        const of = `of ${page.total}${state === undefined ? '' : ` ${state}`} tenants`
        const shown = after !== undefined
          ? `${page.tenants.length === 0 ? 'none' : page.tenants.length} more ${of}`
          : `${page.tenants.length === 0 ? 'none' : `${page.offset + 1}–${page.offset + page.tenants.length}`} ${of}`
        const more = page.next === null ? '' : `next page: ctfhive tenants${state === undefined ? '' : ` --state ${state}`}${values.limit === undefined ? '' : ` --limit ${limit}`} --after ${page.next}\n`
        return table(['id', 'state', 'plan', 'name', 'fqdn', 'created'], tenantRows(page.tenants)) + `${shown}\n${more}`
      })
      return 0
    }
    case 'tenant': {
      const d = await admin.showTenant(tenantId(positionals))
      emit(d, () => [
        describeTenant(d.tenant),
        `subscriptions (${d.subscriptions.length})\n` + table(['id', 'status', 'since', 'plan', 'ended', 'paid'], d.subscriptions.map((s) =>
          [s.id ?? '(none named)', s.status, unixIso(s.status_at), dash(s.plan), s.ended ? unixIso(s.ended_at) : 'no', s.paid ? 'yes' : 'no'])) +
          (d.checkout_failed === null ? '' : `checkout failed: ${d.checkout_failed.reason}\n`),
        `events (${d.events.length})\n` + table(['id', 'type', 'outcome', 'created'], d.events.map((e) => [e.id, e.type, e.outcome, unixIso(e.created)])),
        `audit (${d.audit.length})\n` + table(['seq', 'at', 'action', 'detail'], d.audit.map((a) => [String(a.seq), a.at, a.action, JSON.stringify(a.detail)])),
        `jobs (${d.jobs.length})\n` + table(['id', 'kind', 'status', 'step', 'since', 'attempts', 'last error'], d.jobs.map((j) => [String(j.id), j.kind, j.status, dash(j.step), dash(j.step_at), String(j.attempts), dash(j.last_error)]))
      ].join('\n'))
      return 0
    }
    case 'retry': {
      const id = tenantId(positionals)
      await requireAuditKey(ctx)
      const t = await admin.retry(id)
      emit(t, () => `retry queued for ${t.tenant_id} (${t.name}): state ${t.state}; the server's job runner picks it up\n`)
      return 0
    }
    case 'welcome-link': {
      const link = await ctx.admin.welcomeLink(tenantId(positionals), ctx.secretKey, ctx.publicBaseUrl)
      // Nothing stored says which key the server signs with: a link under the development
      // default opens only on a server that has no SECRET_KEY either.
      if (ctx.defaultSecretKey) ctx.warn('warning: SECRET_KEY is not set (the development default): this link opens only on a server without SECRET_KEY\n')
      const base = unreachableBase(ctx.publicBaseUrl, ctx.publicBaseUrlUnset)
      if (base !== null) ctx.warn(`warning: ${base}: this link opens only on that address, which the buyer cannot reach; set the server's PUBLIC_BASE_URL\n`)
      emit(link, () => `${link.welcome_url}\nsend it only to the buyer${link.email === '' ? '' : ` (${link.email})`}: it opens their order and their CTF's administrator password\n`)
      return 0
    }
    case 'audit': {
      if (positionals.length !== 1 || positionals[0] !== 'verify') throw new UsageError('did you mean `ctfhive audit verify`?')
      const anchorText = values.anchor as string | undefined
      const anchor = anchorText === undefined ? undefined : parseAuditAnchor(anchorText)
      if (anchorText !== undefined && anchor === undefined) throw new UsageError('--anchor takes a head as `audit verify` printed it: <seq>:<64 hex digits>')
      const v = await admin.verifyAudit(anchor)
      // Entry 1 failing under the key is far more often the wrong key than tampering: say so
      // rather than raise a false alarm. A break later than entry 1 is reported as it is: the
      // server refuses to start under a key its chain's last entry does not verify under. So
      // are entries missing or out of order at the start: found by entries that verify under
      // this key, they are no key problem, and the server's refusal sends the operator here.
      if (!v.ok && v.problem === 'modified' && v.badSeq === 1 && !(await admin.auditKeyMatches('first'))) {
        if (ctx.defaultAuditKey) {
          throw new UsageError('PROVISION_AUDIT_SECRET is not set (or is the development default), and the first entry of this database\'s audit chain does not verify under it: set the server\'s secret')
        }
        // The last entry verifying: the server's key was changed while the chain grew (a release
        // that did not check the key at start let it), which no later key repairs.
        const reason = await admin.auditKeyMatches('last')
          ? 'PROVISION_AUDIT_SECRET does not match this chain\'s first entry but matches its last: the key was changed while entries were being written, so the earlier ones are under another key, or entry 1 was altered'
          : 'PROVISION_AUDIT_SECRET does not match this chain\'s first entry: the wrong key (set the server\'s secret), or entry 1 was altered'
        emit({ ok: false, entries: v.entries, badSeq: 1, problem: 'key_mismatch', reason }, () => `audit chain NOT VERIFIED: ${reason}\n`)
        return 1
      }
      emit(v, () => v.ok
        ? `audit chain OK: ${v.entries} entries, last seq ${v.lastSeq}${anchor === undefined ? '' : `, through the anchor's seq ${anchor.seq}`}\n` +
          `head ${v.lastSeq}:${v.lastMac} (keep it away from this database: --anchor with it later proves no entry was cut from the end)\n`
        : `audit chain BROKEN at seq ${v.badSeq} (${v.problem}): ${v.reason}\n`)
      return v.ok ? 0 : 1
    }
    case 'events': {
      if (positionals.length > 0) throw new UsageError('events takes no arguments')
      const outcome = values.outcome as string | undefined
      if (outcome !== undefined && !(EVENT_OUTCOMES as readonly string[]).includes(outcome)) throw new UsageError(`--outcome must be one of ${EVENT_OUTCOMES.join(', ')}`)
      const after = values.after as string | undefined
      if (after !== undefined && parseEventCursor(after) === undefined) throw new UsageError('--after takes the cursor a page of events printed')
      const limit = intOption(values.limit as string | undefined, 'limit', 1, MAX_PAGE, 50)
      const page = await admin.listEvents({ limit, outcome: outcome as EventOutcome | undefined, after })
      emit(page, () => {
        const none = page.events.length === 0 ? `no${after === undefined ? '' : ' more'}${outcome === undefined ? '' : ` ${outcome}`} events\n` : ''
        const more = page.next === null ? '' : `next page: ctfhive events${outcome === undefined ? '' : ` --outcome ${outcome}`}${values.limit === undefined ? '' : ` --limit ${limit}`} --after ${page.next}\n`
        return table(['id', 'type', 'outcome', 'tenant', 'received'], page.events.map((e) => [e.id, e.type, e.outcome, dash(e.tenant), e.received])) + none + more
      })
      return 0
    }
    case 'replay': {
      const id = one(positionals, 'event id')
      await requireAuditKey(ctx)
      // A replay acts as the server would, with this process's settings: nothing stored says the
      // server's. Unset, they are defaults the server may not have (a first address settled under
      // ctfhive.us; no check of the event's Stripe mode).
      if (ctx.replayUnset.length > 0) ctx.warn(`warning: ${ctx.replayUnset.join(' and ')} ${ctx.replayUnset.length > 1 ? 'are' : 'is'} not set: the replay uses ${ctx.replayUnset.length > 1 ? 'their defaults' : 'its default'}, not the server's; run it with the server's whole environment (its env file)\n`)
      const r = await admin.replayEvent(id)
      emit(r, () => {
        const res = r.result
        const where = 'tenant_id' in res ? ` (tenant ${res.tenant_id}, state ${res.tenant_state})` : ''
        return `replayed ${r.event_id} (was ${r.original_outcome}) as ${r.replay_id}: ${res.status}${where}\n`
      })
      return 0
    }
    case 'export': {
      if (positionals.length > 0) throw new UsageError('export takes no arguments')
      const tenants = await admin.exportTenants()
      // Export is JSON either way: it is meant for files and other tools.
      out(`${JSON.stringify({ exported_at: new Date().toISOString(), count: tenants.length, tenants }, null, 2)}\n`)
      return 0
    }
    case 'erase': {
      const id = tenantId(positionals)
      await requireAuditKey(ctx)
      const r = await ctx.retention.erase(id)
      emit(r, () => `erased ${r.tenant_id}: name, email and the CTF administrator's email blanked, and the payloads of ${r.payloads_blanked} Stripe events; its address, Stripe ids and dates stay, as does the audit chain\n`)
      return 0
    }
    case 'prune': {
      if (positionals.length > 0) throw new UsageError('prune takes no arguments')
      const eventDays = intOption(values['event-days'] as string | undefined, 'event-days', MIN_EVENT_DAYS, 36_500, DEFAULT_EVENT_DAYS)
      const orderDays = intOption(values['order-days'] as string | undefined, 'order-days', MIN_ORDER_DAYS, 36_500, DEFAULT_ORDER_DAYS)
      const dryRun = values['dry-run'] === true
      // Each removal appends to the audit chain.
      if (!dryRun) await requireAuditKey(ctx)
      const r = await ctx.retention.prune({ eventDays, orderDays, dryRun })
      emit(r, () => {
        const [blank, remove] = dryRun ? ['would blank', 'would remove'] : ['blanked', 'removed']
        return `${blank} the payloads of ${r.events.blanked} Stripe events received before ${r.events.received_before}\n` +
          `${remove} ${r.orders.removed} orders never paid for, made before ${r.orders.created_before}${r.orders.removed === 0 ? '' : ':'}\n` +
          r.orders.tenant_ids.map((id) => `  ${id}\n`).join('')
      })
      return 0
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  }
}

/** A text table whose cells are escaped before they are measured, so columns stay aligned. */
function table (headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  return renderTable(headers, rows, { escape: forTerminal })
}

export async function main (argv: string[], env: Env = process.env, io: Io = process): Promise<number> {
  const out = (text: string): void => { io.stdout.write(text) }
  const err = (text: string): void => { io.stderr.write(text) }
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      tokens: true,
      options: {
        json: { type: 'boolean', default: false },
        state: { type: 'string' },
        limit: { type: 'string' },
        offset: { type: 'string' },
        after: { type: 'string' },
        outcome: { type: 'string' },
        anchor: { type: 'string' },
        'event-days': { type: 'string' },
        'order-days': { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      }
    })
    refuseRepeated(parsed.tokens)
  } catch (e) {
    err(`error: ${(e as Error).message}\n\n${USAGE}`)
    return 2
  }
  const [command, ...positionals] = parsed.positionals
  if (parsed.values.help || command === 'help') {
    out(USAGE)
    return 0
  }
  if (command === undefined || !COMMANDS.includes(command)) {
    err(`${command === undefined ? '' : `error: unknown command ${JSON.stringify(command)}\n\n`}${USAGE}`)
    return 2
  }
  // An option another command takes would otherwise be ignored in silence: `export --state
  // provisioning` would export every tenant.
  const allowed = ['json', 'help', ...COMMAND_OPTIONS[command]!]
  const stray = parsed.tokens.find((tok) => tok.kind === 'option' && !allowed.includes(tok.name))
  if (stray !== undefined && stray.kind === 'option') {
    const takes = COMMAND_OPTIONS[command]!.map((o) => `--${o}`)
    err(`error: ${stray.rawName} does not apply to \`ctfhive ${command}\` (it takes ${takes.length === 0 ? 'only --json' : `${takes.join(', ')} and --json`})\n`)
    return 2
  }

  let config: Config
  try {
    // An operator tool, not a server start: the production guard does not apply; a wrong
    // audit secret is caught before any append (requireAuditKey), and welcome-link warns
    // when it signs under the development key.
    config = loadConfig({ ...env, NODE_ENV: 'development' })
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`error: ${e.message}\n`)
      return 2
    }
    throw e
  }

  // Opening a missing SQLite file would create an empty database: a typo must not look like "no tenants".
  const absent = absentSqliteFile(config)
  if (absent !== null) {
    err(`error: no database at ${absent} (DATABASE_URL)\n`)
    return 2
  }

  let store: Store | undefined
  try {
    // Only the server migrates: a CLI of another release must not change the schema under it.
    // A reading command opens SQLite read-only: `audit verify` of a backup leaves it unchanged.
    store = await openStore(config, { migrate: false, readOnly: READING_COMMANDS.has(command) || (command === 'prune' && parsed.values['dry-run'] === true) })
    // After a rollback this release's code runs on a newer schema (as the server does, and says).
    const ahead = aheadWarning(await store.schema())
    if (ahead !== null) err(`warning: ${ahead}; what its migrations added is not shown here: use that release's ctfhive\n`)
    // Job and audit times keep to the database's clock, as the server's do (app.ts): a job
    // queued by this host's skewed clock would be due late, or be stamped in the future.
    await store.syncClock()
    // Never started: the server's workers run what this process queues.
    const jobs = new JobRunner({ store, executor: new FakeExecutor(), config, log: pino({ level: 'silent' }) })
    const tenants = new TenantService({ store, config: { ...config, webhookWaitMs: 0 }, jobs })
    const admin = new TenantAdmin({ store, tenants, auditSecret: config.auditSecret, stripeSecretKey: config.stripe.secretKey })
    return await run(command, positionals, parsed.values, {
      admin,
      retention: new Retention({ store, auditSecret: config.auditSecret }),
      json: parsed.values.json,
      out,
      warn: err,
      defaultAuditKey: config.auditSecret === DEFAULT_AUDIT_SECRET,
      secretKey: config.secretKey,
      defaultSecretKey: config.secretKey === DEFAULT_SECRET_KEY,
      publicBaseUrl: config.publicBaseUrl,
      publicBaseUrlUnset: (env.PUBLIC_BASE_URL ?? '').trim() === '',
      replayUnset: ['BASE_DOMAIN', 'STRIPE_SECRET_KEY'].filter((name) => (env[name] ?? '').trim() === '')
    })
  } catch (e) {
    if (e instanceof UsageError) {
      err(`error: ${e.message}\n`)
      return 2
    }
    // DATABASE_URL naming no database, or one it may not use, is the job's setting, not a
    // failure: a scheduled `audit verify` must not raise its alarm (exit 1) over a typo. Not
    // CTFHive's database stays a failure, as documented.
    const refusal = e instanceof NotCtfhiveDatabase ? null : settingRefusal(e)
    if (refusal !== null) {
      err(`error: ${refusal.message}\n`)
      return 2
    }
    if (isAppError(e)) {
      err(`error: ${e.message}\n`)
      if (parsed.values.json) out(`${JSON.stringify(e.toBody())}\n`)
      return 1
    }
    err(`error: ${(e as Error).message}\n`)
    return 1
  } finally {
    await store?.close()
  }
}

if (isMain(import.meta)) await runCli(main)
