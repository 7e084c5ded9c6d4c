// The Executor contract (api/provisioning/executor.ts's doc comments): what every executor
// (FakeExecutor, LinodeExecutor) must do, run unchanged on each. `makeExecutor` gives an
// executor on an empty provider, plus the few levers a test pulls from outside (the console's
// power button, a look at the DNS zone, the tenant's health page). Provider-specific behaviour
// (retries, error shapes, firewalls) stays in that executor's own tests.
import type { Test } from 'tap'
import { ExecutorError, type Executor, type ServerInfo, type ServerSpec } from '../../api/provisioning/executor.ts'
import type { FakeStep } from '../../api/provisioning/fake.ts'
import { caught } from '../helpers/caught.ts'

export interface ContractExecutor {
  executor: Executor
  /** Switches the server off, as from the provider's console. */
  powerOff: (serverId: string) => void
  /** The A record with this id (its full name and address), undefined when there is none. */
  dnsRecord: (recordId: string) => { fqdn: string, target: string } | undefined
  /** Whether the tenants' health pages answer 200 from now on. */
  setHealthy: (healthy: boolean) => void
  /** Runs `fn` while the next `step` call is at the provider (started, not yet answered). */
  duringNextCall: (step: FakeStep, fn: () => void) => void
}

export type MakeExecutor = (t: Test) => Promise<ContractExecutor>

/** Two tenants, in the zone the Linode run's fake provider holds. */
export const SPEC_A: ServerSpec = {
  tenantId: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  slug: 'alpha',
  fqdn: 'alpha.ctfhive.test',
  plan: 'standard',
  serverType: 'g6-standard-2',
  tenantName: 'Alpha CTF',
  adminEmail: 'owner@alpha.test'
}
export const SPEC_B: ServerSpec = { ...SPEC_A, tenantId: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', slug: 'bravo', fqdn: 'bravo.ctfhive.test', tenantName: 'Bravo CTF', adminEmail: 'owner@bravo.test' }

/** An id no server or record has (numeric: Linode's ids are). */
const UNKNOWN_ID = '999999'
const LARGER_TYPE = 'g6-standard-4'

/** The server, once it runs: a real one boots for a while (the fake Linode moves on per read, never on a clock). */
async function running (executor: Executor, id: string): Promise<ServerInfo> {
  for (let i = 0; i < 20; i++) {
    const s = await executor.getServer(id)
    if (s?.status === 'running') return s
  }
  throw new Error(`server ${id} never ran`)
}

/** The server once `done` holds of it (a resize shows in later reads). */
async function until (executor: Executor, id: string, done: (s: ServerInfo | undefined) => boolean): Promise<ServerInfo | undefined> {
  for (let i = 0; i < 20; i++) {
    const s = await executor.getServer(id)
    if (done(s)) return s
  }
  throw new Error(`server ${id} never reached the expected state`)
}

function isFinal (err: unknown): boolean {
  return err instanceof ExecutorError && !err.retryable
}

export function executorContract (t: Test, makeExecutor: MakeExecutor): void {
  t.test('createOrAdopt: a new server, then the same one adopted by every repeat', async (t) => {
    const { executor } = await makeExecutor(t)
    const first = await executor.createOrAdopt(SPEC_A)
    t.equal(first.adopted, false, 'made')
    t.equal(first.server.label, `ctf-${SPEC_A.slug}`, 'labelled ctf-<slug>')
    t.ok(first.server.type === undefined || first.server.type === SPEC_A.serverType, 'of the spec\'s type')
    t.match(first.server.ipv4, /^\d+\.\d+\.\d+\.\d+$/, 'with an address')
    const again = await executor.createOrAdopt(SPEC_A)
    t.equal(again.adopted, true, 'a repeat adopts')
    t.equal(again.server.id, first.server.id, 'the same server')
    t.equal(again.server.ipv4, first.server.ipv4)
    t.same((await executor.findServers(SPEC_A)).map((s) => s.id), [first.server.id], 'no second server')
  })

  t.test("createOrAdopt refuses, for good, when the tenant's server is under another label", async (t) => {
    const { executor } = await makeExecutor(t)
    const { server } = await executor.createOrAdopt(SPEC_A)
    const err = await caught(executor.createOrAdopt({ ...SPEC_A, slug: 'alpha-renamed' }))
    t.ok(isFinal(err), `a final ExecutorError: ${err.message}`)
    t.same((await executor.findServers(SPEC_A)).map((s) => [s.id, s.label]), [[server.id, server.label]], 'neither adopted under the new label nor joined by a second server')
  })

  t.test("createOrAdopt never adopts another tenant's server holding the label", async (t) => {
    const { executor } = await makeExecutor(t)
    const { server } = await executor.createOrAdopt(SPEC_A)
    const err = await caught(executor.createOrAdopt({ ...SPEC_B, slug: SPEC_A.slug }))
    t.ok(isFinal(err), `a final ExecutorError: ${err.message}`)
    t.same(await executor.findServers(SPEC_B), [], 'the other tenant got no server')
    t.same((await executor.findServers(SPEC_A)).map((s) => s.id), [server.id], 'the holder is untouched')
  })

  t.test('getServer: the server as made; undefined when it does not exist', async (t) => {
    const { executor } = await makeExecutor(t)
    const { server } = await executor.createOrAdopt(SPEC_A)
    t.match(await executor.getServer(server.id), { id: server.id, label: server.label, ipv4: server.ipv4 })
    t.equal(await executor.getServer(UNKNOWN_ID), undefined)
  })

  t.test('findServers: the tenant\'s servers, on or off, and nobody else\'s', async (t) => {
    const { executor, powerOff } = await makeExecutor(t)
    t.same(await executor.findServers(SPEC_A), [], 'none before the first create')
    const a = (await executor.createOrAdopt(SPEC_A)).server
    const b = (await executor.createOrAdopt(SPEC_B)).server
    t.not(a.id, b.id)
    powerOff(a.id)
    t.same((await executor.findServers(SPEC_A)).map((s) => s.id), [a.id], 'switched off, still found')
    t.same((await executor.findServers(SPEC_B)).map((s) => s.id), [b.id])
  })

  t.test('bootServer: powers on a server that is off; false for one that is not, or is gone', async (t) => {
    const { executor, powerOff } = await makeExecutor(t)
    const { server } = await executor.createOrAdopt(SPEC_A)
    await running(executor, server.id)
    t.equal(await executor.bootServer(server.id), false, 'a running server: declined')
    powerOff(server.id)
    t.equal((await executor.getServer(server.id))?.status, 'offline')
    t.equal(await executor.bootServer(server.id), true, 'an offline server: booted')
    t.not((await executor.getServer(server.id))?.status, 'offline', 'on its way up')
    t.equal(await executor.bootServer(UNKNOWN_ID), false, 'a server that does not exist: declined')
  })

  t.test('resizeServer: taken, shown by getServer, the address kept; a repeat passes; no server is a final error', async (t) => {
    const { executor } = await makeExecutor(t)
    const { server } = await executor.createOrAdopt(SPEC_A)
    await running(executor, server.id)
    await executor.resizeServer(server.id, LARGER_TYPE)
    const after = await until(executor, server.id, (s) => s?.type === LARGER_TYPE && s.status === 'running')
    t.equal(after?.ipv4, server.ipv4, 'the same address')
    await t.resolves(executor.resizeServer(server.id, LARGER_TYPE), 'a repeat after a lost reply passes')
    t.equal((await executor.getServer(server.id))?.type, LARGER_TYPE)
    t.same((await executor.findServers(SPEC_A)).map((s) => s.id), [server.id], 'the same server, not a new one')
    t.ok(isFinal(await caught(executor.resizeServer(UNKNOWN_ID, LARGER_TYPE))), 'nothing to resize: no retry helps')
  })

  t.test('destroyServer: gone, then not adopted; an unknown or already destroyed server counts as destroyed', async (t) => {
    const { executor } = await makeExecutor(t)
    const { server } = await executor.createOrAdopt(SPEC_A)
    const other = (await executor.createOrAdopt(SPEC_B)).server
    await executor.destroyServer(server.id)
    t.equal(await executor.getServer(server.id), undefined, 'gone')
    t.same(await executor.findServers(SPEC_A), [], 'not found any more')
    await t.resolves(executor.destroyServer(server.id), 'destroyed again: done')
    await t.resolves(executor.destroyServer(UNKNOWN_ID), 'never existed: done')
    t.ok(await executor.getServer(other.id), "another tenant's server stays")
    const next = await executor.createOrAdopt(SPEC_A)
    t.equal(next.adopted, false, 'the next create makes a new server')
    t.not(next.server.id, server.id)
  })

  t.test('DNS: ensure is idempotent and points at the address; find, update, remove; an unknown record counts as removed', async (t) => {
    const { executor, dnsRecord } = await makeExecutor(t)
    const a = (await executor.createOrAdopt(SPEC_A)).server
    const b = (await executor.createOrAdopt(SPEC_B)).server
    t.same(await executor.findDnsRecords(SPEC_A), [], 'none before the first ensure')
    const id = await executor.ensureDnsRecord(SPEC_A, a.ipv4!)
    t.same(dnsRecord(id), { fqdn: SPEC_A.fqdn, target: a.ipv4 }, "the tenant's name, at the server's address")
    t.equal(await executor.ensureDnsRecord(SPEC_A, a.ipv4!), id, 'a repeat: the same record')
    t.same(await executor.findDnsRecords(SPEC_A), [id], 'one record')
    const bId = await executor.ensureDnsRecord(SPEC_B, b.ipv4!)
    t.not(bId, id)
    t.same(await executor.findDnsRecords(SPEC_A), [id], "another tenant's record is not found for this one")

    t.equal(await executor.ensureDnsRecord(SPEC_A, b.ipv4!), id, 'a new address: the record updated')
    t.same(dnsRecord(id), { fqdn: SPEC_A.fqdn, target: b.ipv4 })
    t.same(await executor.findDnsRecords(SPEC_A), [id], 'still one record')

    await executor.removeDnsRecord(SPEC_A, id)
    t.equal(dnsRecord(id), undefined, 'removed')
    t.same(await executor.findDnsRecords(SPEC_A), [])
    await t.resolves(executor.removeDnsRecord(SPEC_A, id), 'removed again: done')
    await t.resolves(executor.removeDnsRecord(SPEC_A, UNKNOWN_ID), 'never existed: done')
    t.same(dnsRecord(bId), { fqdn: SPEC_B.fqdn, target: b.ipv4 }, "another tenant's record stays")
  })

  t.test('checkHealth: false until the health page answers 200', async (t) => {
    const { executor, setHealthy } = await makeExecutor(t)
    setHealthy(false)
    t.equal(await executor.checkHealth(SPEC_A.fqdn), false)
    setHealthy(true)
    t.equal(await executor.checkHealth(SPEC_A.fqdn), true)
  })

  t.test('an aborted signal: every method rejects with its reason and does nothing', async (t) => {
    const { executor, dnsRecord, setHealthy } = await makeExecutor(t)
    setHealthy(true)
    const { server } = await executor.createOrAdopt(SPEC_A)
    const recordId = await executor.ensureDnsRecord(SPEC_A, server.ipv4!)
    const reason = new Error('the attempt was stopped')
    const ac = new AbortController()
    ac.abort(reason)
    const s = ac.signal
    const calls: Record<string, () => Promise<unknown>> = {
      createOrAdopt: () => executor.createOrAdopt(SPEC_B, s),
      getServer: () => executor.getServer(server.id, s),
      bootServer: () => executor.bootServer(server.id, s),
      resizeServer: () => executor.resizeServer(server.id, LARGER_TYPE, s),
      ensureDnsRecord: () => executor.ensureDnsRecord(SPEC_B, server.ipv4!, s),
      checkHealth: () => executor.checkHealth(SPEC_A.fqdn, s),
      findServers: () => executor.findServers(SPEC_A, s),
      findDnsRecords: () => executor.findDnsRecords(SPEC_A, s),
      removeDnsRecord: () => executor.removeDnsRecord(SPEC_A, recordId, s),
      destroyServer: () => executor.destroyServer(server.id, s)
    }
    for (const [name, call] of Object.entries(calls)) t.equal(await caught(call()), reason, `${name}: the signal's reason`)
    t.same(await executor.findServers(SPEC_B), [], 'no server made')
    t.same(await executor.findDnsRecords(SPEC_B), [], 'no record made')
    t.ok(dnsRecord(recordId), 'no record removed')
    t.match(await executor.getServer(server.id), { id: server.id, type: SPEC_A.serverType }, 'no server resized or destroyed')
  })

  t.test('an abort while the call is at the provider: it rejects with the reason and goes no further', async (t) => {
    const { executor, duringNextCall } = await makeExecutor(t)
    const stopped = async (step: FakeStep, call: (signal: AbortSignal) => Promise<unknown>): Promise<unknown> => {
      const ac = new AbortController()
      const reason = new Error(`stopped during ${step}`)
      duringNextCall(step, () => ac.abort(reason))
      const err = await caught(call(ac.signal))
      t.equal(err, reason, `${step}: the signal's reason`)
      return err
    }
    await stopped('create', (signal) => executor.createOrAdopt(SPEC_A, signal))
    t.same(await executor.findServers(SPEC_A), [], 'no server made')

    const { server } = await executor.createOrAdopt(SPEC_A)
    await stopped('dns', (signal) => executor.ensureDnsRecord(SPEC_A, server.ipv4!, signal))
    t.same(await executor.findDnsRecords(SPEC_A), [], 'no record made')
    await stopped('destroy', (signal) => executor.destroyServer(server.id, signal))
    t.ok(await executor.getServer(server.id), 'the server is still there')
  })
}
