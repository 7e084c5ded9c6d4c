// The Executor: what the provisioning jobs need from an infrastructure provider. Every method
// is idempotent so a job that crashed between steps can run any step again safely. Every
// method takes the attempt's abort signal: when the worker stops or the attempt hits its
// wall-clock cap, the call in flight is cancelled and rejects with the signal's reason, so no
// abandoned attempt keeps acting on a job another worker may already hold.

export interface ServerSpec {
  tenantId: string
  /** DNS label; the server's label is `ctf-<slug>`. */
  slug: string
  fqdn: string
  plan: string
  /** Provider server type (plan catalogue, or LINODE_PLAN when set). */
  serverType: string
  tenantName: string
  adminEmail: string
}

export interface ServerInfo {
  id: string
  label: string
  status: string
  ipv4: string | null
  /** The provider's server type, when it says (an adopted server may be of another plan's; a resize changes it). */
  type?: string
}

export interface CreateResult {
  server: ServerInfo
  /** True when an existing server (from an earlier, lost try) was adopted instead of created. */
  adopted: boolean
  /** The provider firewall the server sits behind (and its status), when the executor puts it behind one. */
  firewall?: { id: string, status: string }
}

export interface Executor {
  readonly name: string
  /**
   * Creates the tenant's server, or adopts the one an earlier try made (label + tenant tag).
   * The label held by a server not of this tenant, or this tenant's server under another
   * label, is an ExecutorError no retry fixes: never adopted, never joined by a second server.
   */
  createOrAdopt (spec: ServerSpec, signal?: AbortSignal): Promise<CreateResult>
  /** The server's current state; undefined when it does not exist. */
  getServer (serverId: string, signal?: AbortSignal): Promise<ServerInfo | undefined>
  /**
   * Powers on a server that is off (`offline`): one whose boot never ran, or switched off
   * since. False when the provider declines for now (busy with the server, or it is gone).
   */
  bootServer (serverId: string, signal?: AbortSignal): Promise<boolean>
  /**
   * Asks for the server to be moved to another type, keeping its disks' data and its address.
   * Resolves once the provider has taken the request (or is found resizing it, or done: a
   * repeat after a lost reply), not when the resize ends: getServer shows that (the new type,
   * the server running again). A refusal (a disk too full for a smaller type) is an
   * ExecutorError no retry fixes.
   */
  resizeServer (serverId: string, type: string, signal?: AbortSignal): Promise<void>
  /** Creates or updates the tenant's A record; returns the record id. */
  ensureDnsRecord (spec: ServerSpec, ipv4: string, signal?: AbortSignal): Promise<string>
  /** True once https://<fqdn>/healthcheck answers 200. */
  checkHealth (fqdn: string, signal?: AbortSignal): Promise<boolean>
  /**
   * Every server carrying this tenant's tag, still running or not (not those already being
   * deleted): teardown's look for a server whose create answer was lost, so no id was kept.
   */
  findServers (spec: ServerSpec, signal?: AbortSignal): Promise<ServerInfo[]>
  /** The ids of every A record named for this tenant, the same way for lost record creates. */
  findDnsRecords (spec: ServerSpec, signal?: AbortSignal): Promise<string[]>
  /** Removes the tenant's DNS record (in the zone of its address); an unknown record counts as removed. */
  removeDnsRecord (spec: ServerSpec, recordId: string, signal?: AbortSignal): Promise<void>
  /** Destroys the server; an unknown server counts as destroyed. */
  destroyServer (serverId: string, signal?: AbortSignal): Promise<void>
  /**
   * The sealed first-admin credential the server publishes (cloud-init.ts explains the
   * scheme); undefined while it is not there. Executors without real servers omit it.
   */
  fetchCredentialEnvelope? (fqdn: string, signal?: AbortSignal): Promise<string | undefined>
}

/** A provider error worth a retry later (rate limit, 5xx, network); others fail the attempt the same way. */
export class ExecutorError extends Error {
  readonly retryable: boolean
  /**
   * Set when the provider refused for now and said how long to wait (a rate limit, maintenance):
   * the job runner waits that long and counts no attempt (jobs.ts).
   */
  readonly retryAfterMs: number | undefined
  constructor (message: string, options: { retryable: boolean, cause?: unknown, retryAfterMs?: number }) {
    super(message, { cause: options.cause })
    this.name = 'ExecutorError'
    this.retryable = options.retryable
    this.retryAfterMs = options.retryAfterMs
  }
}
