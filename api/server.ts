// The only place that listens: config → store → app → listen, and graceful shutdown.
import { finished } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { loadConfig, ConfigError, listenError } from './config.ts'
import { damageRefusal, openStore, settingRefusal } from './store/index.ts'
import { buildApp } from './app.ts'
import { errorBody } from './errors.ts'
import { createLogger, maskUrl } from './logger.ts'
import { UNAVAILABLE_RETRY_AFTER_S } from './web/health.ts'
import { logLinodePreflight } from './provisioning/linode-preflight.ts'
import { auditKeyFits } from './provisioning/audit.ts'

/** How long shutdown lets requests in flight finish before it cuts them off (the grace is 15 s). */
const DRAIN_CUTOFF_MS = 10_000
/** How long the cut-off waits for its answers to be written before it closes every connection. */
const CUTOFF_WRITE_MS = 1_000

/** The requests not yet answered, kept for the drain's cut-off. */
function trackInFlight (app: FastifyInstance): Map<FastifyRequest, FastifyReply> {
  const inFlight = new Map<FastifyRequest, FastifyReply>()
  app.addHook('onRequest', (request, reply, done) => {
    inFlight.set(request, reply)
    reply.raw.once('close', () => { inFlight.delete(request) })
    done()
  })
  return inFlight
}

/**
 * The drain's end: each request still unanswered gets a 503 it may retry, rather than a
 * dropped connection, and a line naming it; then every connection left is closed.
 */
async function cutOff (app: FastifyInstance, inFlight: Map<FastifyRequest, FastifyReply>, logger: Logger): Promise<void> {
  logger.warn('requests still in flight after 10 s of shutdown are cut off')
  const body = JSON.stringify(errorBody('shutting_down', 'The server shut down before it finished this request; retry it.'))
  const written: Array<Promise<void>> = []
  for (const [request, reply] of inFlight) {
    const res = reply.raw
    if (res.writableFinished) continue
    // The path only: a query may hold the welcome token or a Checkout Session id.
    const where = { method: request.method, url: maskUrl(request.url.replace(/\?.*$/s, '')) }
    if (res.headersSent || res.destroyed) {
      request.log.warn(where, 'request cut off by the shutdown while its answer was being sent')
      continue
    }
    request.log.warn(where, 'request cut off by the shutdown: answered 503 shutting_down')
    try {
      // Its handler may still finish: Fastify must not send that answer too.
      reply.hijack()
      // A file's stream may have set its own headers (type, encoding): not this answer's.
      for (const name of res.getHeaderNames()) res.removeHeader(name)
      res.writeHead(503, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'retry-after': String(UNAVAILABLE_RETRY_AFTER_S),
        'x-request-id': request.id,
        connection: 'close'
      })
      res.end(body)
      written.push(finished(res).catch(() => {}))
    } catch {
      res.destroy()
    }
  }
  // A client that reads nothing must not hold the exit.
  await Promise.race([Promise.all(written), sleep(CUTOFF_WRITE_MS, undefined, { ref: false })])
  app.server.closeAllConnections()
}

/**
 * A setting that cannot work: one line naming the variable, and exit 78 (EX_CONFIG), which
 * the systemd unit does not restart (restarting cannot fix it).
 */
function refuseToStart (err: ConfigError): never {
  process.stderr.write(`ctfhive: configuration error: ${err.message}\n`)
  process.exit(78) // EX_CONFIG
}

export async function main (): Promise<void> {
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) refuseToStart(err)
    throw err
  }
  const logger = createLogger(config)
  let store
  try {
    store = await openStore(config, { log: logger.child({ component: 'store' }) })
  } catch (err) {
    // A wrong user, password or database name, a SQLite path this user cannot use, or another
    // application's database is a setting: exit 78, not a restart loop.
    const refusal = settingRefusal(err)
    if (refusal !== null) refuseToStart(refusal)
    // One line, as for a bad setting (the URL's password is not part of the message).
    process.stderr.write(`ctfhive: could not open the store: ${(err as Error).message}\n`)
    process.exit(1)
  }
  // Entries appended under another key than the chain's break it for good (docs: audit chain).
  // Checked on the entry the next append chains to; the key itself is never printed.
  let keyFits
  try {
    keyFits = await auditKeyFits(store, config.auditSecret)
  } catch (err) {
    // A damaged page under the chain: every restart would read it again.
    const damaged = damageRefusal(config, err)
    if (damaged !== null) {
      await store.close().catch(() => {})
      refuseToStart(damaged)
    }
    process.stderr.write(`ctfhive: could not read the audit chain: ${(err as Error).message}\n`)
    process.exit(1)
  }
  if (!keyFits) {
    await store.close().catch(() => {})
    refuseToStart(new ConfigError('PROVISION_AUDIT_SECRET', 'is not the key this database\'s audit chain was written with (its last entry does not verify under it); ' +
      'the key must never change: start with its previous value (if this is the right key, that entry was altered: run ctfhive audit verify)'))
  }
  const app = await buildApp(config, { store, logger })
  const inFlight = trackInFlight(app)
  // Idle keep-alive outlives a load balancer's 60 s; a request's headers must arrive within
  // 20 s of its first byte, the whole request within 30 s.
  app.server.keepAliveTimeout = 72_000
  app.server.headersTimeout = 20_000
  app.server.requestTimeout = 30_000

  const stopChecks = new AbortController()
  // First signal: stop accepting, finish in-flight requests, give job leases back, close the
  // store. A second signal while that runs exits at once.
  closeWithGrace({ delay: 15_000, logger }, async ({ signal, err }) => {
    if (err !== undefined) logger.error({ err }, 'shutting down after an error')
    else logger.info({ signal }, 'shutting down')
    stopChecks.abort()
    // A request still in flight when the drain is nearly over (a stalled client: Node checks
    // requestTimeout only every 30 s; a slow upstream) is cut off, so the store still closes
    // within the grace.
    const cut = setTimeout(() => { void cutOff(app, inFlight, logger) }, DRAIN_CUTOFF_MS)
    await app.close().finally(() => { clearTimeout(cut) })
    await store.close()
  })

  // Ready first (plugins loaded, the job runner started), so the catch below sees only what
  // binding HOST:PORT said.
  await app.ready()
  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (err) {
    const problem = listenError(err, config.host, config.port)
    // The job runner is running: its leases go back first.
    await app.close().catch(() => {})
    await store.close().catch(() => {})
    if (problem !== null) refuseToStart(problem)
    process.stderr.write(`ctfhive: could not listen on ${config.host} port ${config.port}: ${(err as Error).message}\n`)
    process.exit(1)
  }
  // A wrong Linode setting fails every paid tenant: say so now, not at the first payment.
  if (config.linode.token !== '') {
    const log = logger.child({ component: 'linode-check' })
    // Older tenants' zones too: their teardown and reprovisioning change records there.
    const domains = await store.tenantDomains({ withServer: true }).catch((err: unknown) => {
      log.warn({ err }, 'the zones of older tenant domains are not checked: the store did not answer')
      return []
    })
    void logLinodePreflight(config, log, AbortSignal.any([stopChecks.signal, AbortSignal.timeout(120_000)]), domains)
  }
}

await main()
