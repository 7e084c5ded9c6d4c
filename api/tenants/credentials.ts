// The buyer's first admin credential, for the holder of the signed welcome link only: read by
// the JSON route and by the welcome page for visitors without JavaScript. The server publishes
// it sealed to a key derived from SECRET_KEY; it is opened here, per request, never stored or
// logged in clear.
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import { AppError } from '../errors.ts'
import type { Executor } from '../provisioning/executor.ts'
import { openCredentialEnvelope } from '../provisioning/cloud-init.ts'
import { serverSpecFor } from '../provisioning/provision.ts'
import { serverOnline } from './lifecycle.ts'
import type { TenantService } from './service.ts'
import { verifyWelcomeToken } from './welcome-token.ts'

export interface AdminCredential {
  tenant_id: string
  login_url: string
  admin_name: string
  admin_email: string
  password: string
}

export interface CredentialDeps {
  config: Config
  tenants: TenantService
  executor: Executor
  log: FastifyBaseLogger
}

/** The credential, or an AppError saying why not (a bad token, not live yet, not published). */
export async function adminCredential (deps: CredentialDeps, id: string, token: string): Promise<AdminCredential> {
  const { config, tenants, executor, log } = deps
  if (!verifyWelcomeToken(config.secretKey, id, token)) throw new AppError('forbidden', 'This link is not valid for this tenant.')
  const tenant = await tenants.getTenant(id)
  if (tenant === undefined) throw new AppError('tenant_not_found', `No tenant has the id ${id}.`)
  // While its server runs: a past-due CTF, or a canceled one until its teardown, too. The
  // buyer may need to sign in to export their data, and CTFd here sends no reset mail.
  if (!serverOnline(tenant)) {
    throw new AppError('tenant_not_ready', tenant.readyAt !== null && tenant.infra !== 'ready'
      ? 'The CTF is not online now (torn down, or being set up again), so neither is its credential.'
      : 'The CTF is not live yet; the credential appears once it is.')
  }
  const fetchEnvelope = executor.fetchCredentialEnvelope?.bind(executor)
  if (fetchEnvelope === undefined) {
    throw new AppError('credential_unavailable', `The ${executor.name} executor makes no real server, so there is no administrator credential.`)
  }
  const { fqdn, url } = tenants.statusOf(tenant)
  const envelope = await fetchEnvelope(fqdn)
  if (envelope === undefined) throw new AppError('credential_unavailable', 'The server has not published its credential yet; try again shortly.')
  let password: string
  try {
    password = openCredentialEnvelope(config.secretKey, id, envelope)
  } catch (err) {
    // The usual cause after a restore or a move: seals and welcome tokens both derive from
    // SECRET_KEY, and nothing at start can tell that it is not the one the server was set up under.
    log.warn({ tenant: id, reason: (err as Error).message },
      'credential envelope did not open: most likely this server runs with another SECRET_KEY than the one the tenant\'s server was set up under (after a restore or a move, restore the env file too)')
    throw new AppError('credential_unreadable', 'The credential the server published could not be opened.')
  }
  // The address the server was set up with (a made-up one when none was known then); for a
  // server made before the tenant kept it, the one it would have been given.
  const adminEmail = tenant.adminEmail ?? serverSpecFor(tenant, config).adminEmail
  return { tenant_id: id, login_url: `${url}login`, admin_name: 'admin', admin_email: adminEmail, password }
}
