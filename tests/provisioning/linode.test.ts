import t from 'tap'
import fc from 'fast-check'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { inspect } from 'node:util'
import { ExecutorError } from '../../api/provisioning/executor.ts'
import { LinodeExecutor, TENANT_BODY_MAX, defaultHealthFetch, serverLabel, tenantTag, type LinodeExecutorOptions } from '../../api/provisioning/linode.ts'
import { LinodeApiError } from '../../api/provisioning/linode-api.ts'
import { CREDENTIAL_PATH, userDataBuilder } from '../../api/provisioning/cloud-init.ts'
import { schemas, startFakeLinode, validateSchema, type FakeLinodeOptions } from '../helpers/fake-linode.ts'
import { firewallSchemas } from '../helpers/fake-linode-firewalls.ts'
import { caught } from '../helpers/caught.ts'
import { startLinodeExecutor } from '../helpers/linode-executor.ts'
import { ACME_SPEC } from '../helpers/server-spec.ts'

const SECRET = 'test-secret-key-for-linode-executor-0123456789'
const spec = ACME_SPEC
const TAG = `tenant:${spec.tenantId}`
interface T { teardown: (fn: () => unknown) => void }

function setup (t: T, opts: { fake?: FakeLinodeOptions, exec?: Partial<LinodeExecutorOptions> } = {}) {
  return startLinodeExecutor(t, { fake: opts.fake, exec: { userData: userDataBuilder(SECRET, { acmeStaging: true }), ...opts.exec } })
}

const emptyPage = { status: 200, body: { data: [], page: 1, pages: 1, results: 0 } }

t.test('happy path: create, running, DNS, health', async (t) => {
  const { fake, executor } = await setup(t)
  const { server, adopted, firewall } = await executor.createOrAdopt(spec)
  t.equal(adopted, false)
  t.equal(server.label, 'ctf-acme')
  t.equal(server.status, 'provisioning')
  t.match(server.ipv4, /^203\.0\.113\.\d+$/, 'the public address, not the private one')
  t.equal(fake.instances.size, 1)

  const post = fake.requests.find((r) => r.method === 'POST' && r.path === '/linode/instances')!.body as Record<string, any>
  t.same(post.tags, ['ctfhive', TAG])
  t.equal(post.type, 'g6-standard-2')
  t.equal(post.booted, true)
  t.ok(post.root_pass.length >= 32, 'a long generated root password')
  t.match(Buffer.from(post.metadata.user_data, 'base64').toString(), /^#cloud-config\n/)
  t.notOk(JSON.stringify(server).includes(post.root_pass), 'the root password is never returned')
  const [fw] = [...fake.firewalls.values()]
  t.same([post.firewall_id, firewall, [...fw!.linodes]], [fw!.id, { id: String(fw!.id), status: 'enabled' }, [Number(server.id)]], 'made behind the Cloud Firewall')
  const filters = fake.requests.filter((r) => r.method === 'GET').map((r) => r.headers['x-filter'])
  t.same(filters, ['{"label":"ctf-acme"}', `{"tags":"${TAG}"}`, '{"label":"ctfhive-tenants"}'], 'the server looked up by label and by tenant tag, then the firewall, before creating')
  t.ok(fake.requests.every((r) => r.headers.authorization === `Bearer ${fake.token}`))

  t.equal((await executor.getServer(server.id))?.status, 'booting')
  const running = (await executor.getServer(server.id))!
  t.equal(running.status, 'running')
  t.equal(running.ipv4, server.ipv4)

  const recordId = await executor.ensureDnsRecord(spec, running.ipv4!)
  const zone = [...fake.domains.values()][0]!
  t.same([...zone.records.values()].map((r) => [String(r.id), r.type, r.name, r.target, r.ttl_sec]), [[recordId, 'A', 'acme', running.ipv4, 300]])

  const urls: string[] = []
  const healthy = new LinodeExecutor({
    token: fake.token, apiBase: fake.url, region: 'us-east', image: 'linode/debian12', userData: () => '',
    healthFetch: async (url) => { urls.push(url); return { status: 200, body: 'OK' } }
  })
  t.equal(await healthy.checkHealth(spec.fqdn), true)
  t.same(urls, ['https://acme.ctfhive.test/healthcheck'])
  const down = new LinodeExecutor({ token: 'x', apiBase: fake.url, region: 'r', image: 'i', userData: () => '', healthFetch: async () => ({ status: 500, body: 'ERR' }) })
  t.equal(await down.checkHealth(spec.fqdn), false)
  const unreachable = new LinodeExecutor({ token: 'x', apiBase: fake.url, region: 'r', image: 'i', userData: () => '', healthFetch: async () => { throw new Error('ECONNREFUSED') } })
  t.equal(await unreachable.checkHealth(spec.fqdn), false)
})

t.test('the credential envelope is fetched from the tenant server', async (t) => {
  const envelope = '{"v":1,"epk":"a","iv":"b","ct":"c","mac":"d"}'
  const seen: string[] = []
  const executor = new LinodeExecutor({
    token: 'x', apiBase: 'http://127.0.0.1:1', region: 'r', image: 'i', userData: () => '',
    healthFetch: async (url) => { seen.push(url); return seen.length === 1 ? { status: 404, body: '' } : { status: 200, body: `${envelope}\n` } }
  })
  t.equal(await executor.fetchCredentialEnvelope(spec.fqdn), undefined, 'not there yet')
  t.equal(await executor.fetchCredentialEnvelope(spec.fqdn), envelope)
  t.equal(seen[0], `https://acme.ctfhive.test${CREDENTIAL_PATH}`)
  const failing = new LinodeExecutor({ token: 'x', apiBase: 'http://127.0.0.1:1', region: 'r', image: 'i', userData: () => '', healthFetch: async () => { throw new Error('timeout') } })
  t.equal(await failing.fetchCredentialEnvelope(spec.fqdn), undefined)
})

t.test('a tenant server\'s answer is read up to 64 KiB and no further: an endless one cannot fill our memory', async (t) => {
  let sent = 0
  const endless = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    const more = (): void => { while (!res.destroyed && res.write(Buffer.alloc(16384, 0x61))) sent += 16384 }
    res.on('drain', more)
    more()
  })
  await new Promise<void>((resolve) => endless.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { endless.closeAllConnections(); endless.close() })
  const { port } = endless.address() as AddressInfo
  const got = await defaultHealthFetch(`http://127.0.0.1:${port}/.well-known/ctfhive/admin-credential.json`, 20_000)
  t.equal(got.status, 200)
  t.equal(got.body.length, TENANT_BODY_MAX, 'cut at the limit')
  t.ok(sent < 64 * 1024 * 1024, `the server could send only what the sockets buffer (${sent} bytes)`)
})

t.test('the default health fetch wants real TLS: plain HTTP is not healthy', async (t) => {
  const fake = await startFakeLinode(t)
  const host = new URL(fake.url).host
  const executor = new LinodeExecutor({ token: 'x', apiBase: fake.url, region: 'r', image: 'i', userData: () => '', healthTimeoutMs: 2000 })
  t.equal(await executor.checkHealth(host), false)
})

t.test('a create whose reply is lost is adopted: exactly one server', async (t) => {
  for (const fault of [{ drop: 'after' as const }, { status: 502, apply: true }, { status: 503, apply: true, headers: { 'x-maintenance-mode': 'all' } }]) {
    const { fake, executor } = await setup(t)
    fake.inject({ method: 'POST', path: '/linode/instances', fault })
    const { server, adopted } = await executor.createOrAdopt(spec)
    t.equal(adopted, true, `adopted after ${JSON.stringify(fault)}`)
    t.equal(fake.instances.size, 1)
    t.equal(fake.count('POST', '/linode/instances'), 1, 'never a second POST once the first one landed')
    t.equal(server.id, String([...fake.instances.keys()][0]))
  }
})

t.test('a 2xx create reply that is not an instance (a proxy\'s `{}`) is taken as a lost reply: the server is adopted', async (t) => {
  for (const body of [{}, { id: 'abc', label: 'ctf-acme', status: 'provisioning' }, null]) {
    const { fake, executor } = await setup(t)
    fake.inject({ method: 'POST', path: '/linode/instances', fault: { status: 200, body, apply: true } })
    const { server, adopted } = await executor.createOrAdopt(spec)
    const made = [...fake.instances.values()]
    t.equal(made.length, 1, `${JSON.stringify(body)}: one server`)
    t.same([server.id, server.label, adopted], [String(made[0]!.id), 'ctf-acme', true], `${JSON.stringify(body)}: the one Linode made, found by its label`)
    t.equal(fake.count('POST', '/linode/instances'), 1, 'never a second create')
    t.ok(await executor.getServer(server.id), 'its id reads back')
  }
})

t.test('an unclear create that lands between the label and the tag lookups is adopted, not refused', async (t) => {
  const { fake, executor } = await setup(t)
  fake.inject({ method: 'POST', path: '/linode/instances', fault: { status: 502 } })
  // The server Linode was still making appears as the lookup by tag after the failed POST
  // arrives, when the one by label has just found nothing.
  let landed = 0
  const land = (): void => {
    const byTag = String(fake.requests.at(-1)?.headers['x-filter']).includes('"tags"')
    if (byTag && fake.count('POST', '/linode/instances') === 1 && landed++ === 0) fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG], status: 'provisioning' })
  }
  fake.inject({ method: 'GET', path: '/linode/instances', times: 10, fault: { before: land } })
  const { server, adopted } = await executor.createOrAdopt(spec)
  t.equal(landed, 1, 'it landed during the lookup by tag')
  t.same([adopted, server.id], [true, String([...fake.instances.keys()][0])], "the tenant's own server")
  t.equal(fake.instances.size, 1)
  t.equal(fake.count('POST', '/linode/instances'), 1, 'no second create')
})

t.test('a create that timed out but landed later still leaves one server', async (t) => {
  // The timeout applies to every call, so it leaves room for a loaded machine; the late
  // twin lands well after it, and the wait covers the time until it has.
  const { fake, executor } = await setup(t, { exec: { requestTimeoutMs: 500 } })
  fake.inject({ method: 'POST', path: '/linode/instances', fault: { delayMs: 1500 } })
  const { server } = await executor.createOrAdopt(spec)
  await new Promise((resolve) => setTimeout(resolve, 1600))
  t.equal(fake.instances.size, 1, 'label uniqueness turned the late twin away')
  t.equal(server.id, String([...fake.instances.keys()][0]))
})

t.test('a create dropped before it landed is simply made again', async (t) => {
  const { fake, executor, sleeps } = await setup(t)
  fake.inject({ method: 'POST', path: '/linode/instances', fault: { drop: 'before' } })
  const { adopted } = await executor.createOrAdopt(spec)
  t.equal(adopted, false)
  t.equal(fake.instances.size, 1)
  t.equal(fake.count('POST', '/linode/instances'), 2)
  t.equal(sleeps.length, 1, 'one backoff before the next try')
})

t.test('a label already held with this tenant tag is adopted', async (t) => {
  const { fake, executor } = await setup(t)
  const existing = fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG], status: 'running' })
  const { server, adopted } = await executor.createOrAdopt(spec)
  t.same([adopted, server.id, server.status], [true, String(existing.id), 'running'])
  t.equal(fake.count('POST', '/linode/instances'), 0)
})

t.test('"Label must be unique" leads to the lookup and adoption', async (t) => {
  const { fake, executor } = await setup(t)
  fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG] })
  // The first lookups miss (a twin made it a moment later), so the POST meets the duplicate label.
  fake.inject({ method: 'GET', path: '/linode/instances', times: 2, fault: emptyPage })
  const { adopted } = await executor.createOrAdopt(spec)
  t.equal(adopted, true)
  t.equal(fake.count('POST', '/linode/instances'), 1)
  t.equal(fake.instances.size, 1)
})

t.test('a label held by a server without this tenant tag is a hard error', async (t) => {
  const { fake, executor } = await setup(t)
  fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', 'tenant:ffffffffffffffffffffffffffffffff'] })
  const err = await caught(executor.createOrAdopt(spec))
  t.ok(err instanceof ExecutorError)
  t.equal((err as ExecutorError).retryable, false)
  t.match(err.message, /held by server \d+, which is not tagged tenant:0123/)
  t.equal(fake.count('POST', '/linode/instances'), 0)

  fake.inject({ method: 'GET', path: '/linode/instances', times: 2, fault: emptyPage })
  const viaPost = await caught(executor.createOrAdopt(spec))
  t.equal((viaPost as ExecutorError).retryable, false, 'also when the duplicate shows up only at the POST')
  t.equal(fake.instances.size, 1, 'no second server')
})

t.test('a tenant server under another label is never doubled', async (t) => {
  const { fake, executor } = await setup(t)
  fake.addInstance({ label: 'ctf-acme-old', tags: ['ctfhive', TAG] })
  const err = await caught(executor.createOrAdopt(spec))
  t.match(err.message, /tenant already has Linode \d+ labelled ctf-acme-old/)
  t.equal(fake.count('POST', '/linode/instances'), 0)
})

t.test('a server of this tenant still being deleted is not adopted', async (t) => {
  const { fake, executor } = await setup(t)
  fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG], status: 'deleting' })
  const err = await caught(executor.createOrAdopt(spec))
  t.ok(err instanceof ExecutorError)
  t.equal((err as ExecutorError).retryable, true, 'a later attempt makes the new server')
  t.match(err.message, /still being deleted/)
  t.equal(fake.count('POST', '/linode/instances'), 0)

  fake.instances.clear()
  const { adopted } = await executor.createOrAdopt(spec)
  t.equal(adopted, false, 'once it is gone, a new server is made')
})

t.test('an aborted signal cancels the HTTP call in flight; the call rejects with its reason', async (t) => {
  // A Linode that never answers, and tells when the client hangs up.
  const arrived = Promise.withResolvers<void>()
  const hungUp = Promise.withResolvers<void>()
  const requests: string[] = []
  const silent = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`)
    res.on('close', () => { hungUp.resolve() })
    arrived.resolve()
  })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => { silent.closeAllConnections(); silent.close(resolve) }))
  const executor = new LinodeExecutor({
    token: 'x', apiBase: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/v4`, region: 'r', image: 'i', userData: () => '',
    // Longer than the bound below, so only the abort can hang up within it.
    sleep: async () => {}, requestTimeoutMs: 30_000
  })
  const controller = new AbortController()
  const call = caught(executor.getServer('42', controller.signal))
  await arrived.promise
  const reason = new Error('the worker is stopping')
  controller.abort(reason)
  // Bounded, so a request left open fails here instead of hanging until tap's timeout.
  const giveUp = new AbortController()
  const onWire = await Promise.race([
    hungUp.promise.then(() => 'hung up'),
    delay(10_000, 'still open after 10 s', { signal: giveUp.signal })
  ])
  giveUp.abort()
  t.equal(onWire, 'hung up', 'the request was cancelled on the wire')
  t.equal(await call, reason, 'the abort reason itself, not a retryable network error')
  t.same(requests, ['GET /v4/linode/instances/42'], 'not retried')
  t.equal(await caught(executor.destroyServer('42', controller.signal)), reason, 'an aborted signal sends nothing more')
  t.equal(requests.length, 1)
})

t.test('an abort cuts a retry wait short', async (t) => {
  const waiting = Promise.withResolvers<void>()
  // A long wait, cleared at the end, so only the abort can end the call in time.
  let timer: NodeJS.Timeout | undefined
  t.teardown(() => clearTimeout(timer))
  const sleep = (): Promise<void> => new Promise((resolve) => { timer = setTimeout(resolve, 3000); waiting.resolve() })
  const { fake, executor } = await setup(t, { exec: { sleep } })
  fake.inject({ method: 'GET', path: '/linode/instances/42', fault: { status: 503 } })
  const controller = new AbortController()
  const call = caught(executor.getServer('42', controller.signal))
  await waiting.promise
  const reason = new Error('the attempt exceeded its cap')
  controller.abort(reason)
  t.equal(await call, reason)
  t.equal(fake.count('GET'), 1, 'no second try')
})

t.test('health checks pass the signal on and rethrow an abort instead of answering false', async (t) => {
  const seen: Array<AbortSignal | undefined> = []
  const executor = new LinodeExecutor({
    token: 'x', apiBase: 'http://127.0.0.1:1', region: 'r', image: 'i', userData: () => '',
    healthFetch: async (_url, _ms, signal) => { seen.push(signal); throw signal?.reason ?? new Error('timeout') }
  })
  t.equal(await executor.checkHealth(spec.fqdn), false, 'a failed fetch is just not healthy')
  const controller = new AbortController()
  const reason = new Error('stopping')
  controller.abort(reason)
  t.equal(await caught(executor.checkHealth(spec.fqdn, controller.signal)), reason)
  t.equal(await caught(executor.fetchCredentialEnvelope(spec.fqdn, controller.signal)), reason)
  t.same(seen, [undefined, controller.signal, controller.signal])
})

t.test('429 honours Retry-After', async (t) => {
  const { fake, executor, sleeps } = await setup(t)
  fake.inject({ method: 'POST', path: '/linode/instances', fault: { status: 429, headers: { 'retry-after': '7' }, body: { errors: [{ reason: 'Too many requests' }] } } })
  const { adopted } = await executor.createOrAdopt(spec)
  t.equal(adopted, false)
  t.same(sleeps, [7000], 'slept exactly what Retry-After asked')
  t.equal(fake.count('POST', '/linode/instances'), 2, 'a 429 was not applied, so the POST is safely repeated')
  t.equal(fake.instances.size, 1)

  const id = [...fake.instances.keys()][0]!
  fake.inject({ method: 'GET', path: `/linode/instances/${id}`, fault: { status: 429, headers: { 'retry-after': '3600' } } })
  const err = await caught(executor.getServer(String(id)))
  t.equal((err as ExecutorError).retryable, true, 'an hour-long Retry-After goes back to the job runner')
  t.same(sleeps, [7000], 'without sleeping')
})

t.test('5xx and network errors are retried with backoff, then succeed', async (t) => {
  const { fake, executor, sleeps, logs } = await setup(t)
  const inst = fake.addInstance({ label: 'ctf-acme', tags: [TAG], status: 'running' })
  fake.inject({ method: 'GET', path: `/linode/instances/${inst.id}`, fault: { status: 503, headers: { 'x-maintenance-mode': 'all' }, body: {} } })
  fake.inject({ method: 'GET', path: `/linode/instances/${inst.id}`, fault: { status: 500 } })
  fake.inject({ method: 'GET', path: `/linode/instances/${inst.id}`, fault: { drop: 'before' } })
  const server = await executor.getServer(String(inst.id))
  t.equal(server?.status, 'running')
  t.equal(sleeps.length, 3)
  t.ok(sleeps[0]! >= 500 && sleeps[0]! <= 1000 && sleeps[1]! >= 1000 && sleeps[1]! <= 2000 && sleeps[2]! >= 2000 && sleeps[2]! <= 4000, `exponential with jitter: ${sleeps.join(', ')}`)
  t.equal(logs.length, 3, 'each retry is logged')
})

t.test('5xx forever ends in a retryable ExecutorError after bounded attempts', async (t) => {
  const { fake, executor, sleeps } = await setup(t)
  fake.inject({ method: 'GET', path: '/linode/instances/42', times: 100, fault: { status: 500, body: { errors: [{ reason: 'Internal error' }] } } })
  const err = await caught(executor.getServer('42'))
  t.ok(err instanceof LinodeApiError)
  t.equal((err as ExecutorError).retryable, true)
  t.equal(err.message, 'Linode API 500: Internal error (GET /linode/instances/42)')
  t.equal(fake.count('GET'), 5)
  t.equal(sleeps.length, 4)
})

t.test('a 400 errors body becomes a readable, non-retryable error', async (t) => {
  const { fake, executor } = await setup(t)
  fake.inject({
    method: 'POST',
    path: '/linode/instances',
    fault: { status: 400, body: { errors: [{ field: 'type', reason: 'A valid plan type by that ID was not found' }, { reason: 'Region is sold out' }] } }
  })
  const err = await caught(executor.createOrAdopt(spec))
  t.equal(err.message, 'Linode API 400: type: A valid plan type by that ID was not found; Region is sold out (POST /linode/instances)')
  t.equal((err as ExecutorError).retryable, false)
  t.same((err as LinodeApiError).reasons, [{ field: 'type', reason: 'A valid plan type by that ID was not found' }, { reason: 'Region is sold out' }])
  t.equal(fake.count('POST', '/linode/instances'), 1)
})

t.test('getServer: 404 is undefined; ids are numeric', async (t) => {
  const { fake, executor } = await setup(t)
  t.equal(await executor.getServer('999999'), undefined)
  t.equal((await caught(executor.getServer('1/../../account')) as ExecutorError).retryable, false, 'ids are numeric')
  t.equal((await caught(executor.bootServer('1/../../account')) as ExecutorError).retryable, false, 'for a boot too')
  t.equal(fake.requests.length, 1, 'a bad id never reaches the API')
})

t.test('bootServer: boots a server that is off; busy or gone is a decline, not an error', async (t) => {
  const { fake, executor, logs } = await setup(t)
  const off = fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG], status: 'offline' })
  t.equal(await executor.bootServer(String(off.id)), true)
  const boot = fake.requests.find((r) => r.method === 'POST')!
  t.same([boot.path, boot.body], [`/linode/instances/${off.id}/boot`, {}])
  t.equal(off.status, 'booting', 'Linode boots it')
  t.equal((await executor.getServer(String(off.id)))?.status, 'running')

  t.equal(await executor.bootServer(String(off.id)), false, 'already running: Linode says busy')
  t.equal(await executor.bootServer('999999'), false, 'gone')
  t.match(logs, [/"status":400.*linode declined the boot/, /"status":404.*linode declined the boot/])

  fake.inject({ method: 'POST', path: `/linode/instances/${off.id}/boot`, times: 1, fault: { status: 503 } })
  off.status = 'offline'
  t.equal(await executor.bootServer(String(off.id)), true, 'a 5xx is retried')
  t.equal(fake.count('POST', `/linode/instances/${off.id}/boot`), 4, 'boot, busy, 503, boot')
  fake.inject({ method: 'POST', path: `/linode/instances/${off.id}/boot`, times: 1, fault: { status: 401, body: { errors: [{ reason: 'Invalid Token' }] } } })
  off.status = 'offline'
  const denied = await caught(executor.bootServer(String(off.id)))
  t.equal((denied as ExecutorError).retryable, false, 'other refusals fail the attempt as usual')
  t.equal(off.status, 'offline')
})

t.test('resizeServer: a warm resize whose disks Linode resizes; the server runs as the new type after resizing', async (t) => {
  const { fake, executor } = await setup(t, { fake: { getsPerStep: 2 } })
  const server = fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG], status: 'running', type: 'g6-standard-1' })
  await executor.resizeServer(String(server.id), 'g6-standard-4')
  const asked = fake.requests.filter((r) => r.method === 'POST')
  t.same(asked.map((r) => [r.path, r.body]), [[`/linode/instances/${server.id}/resize`, { type: 'g6-standard-4', allow_auto_disk_resize: true, migration_type: 'warm' }]])
  t.same(validateSchema(schemas.instanceResize, asked[0]!.body), [], 'the body validates against the spec')
  t.match(await executor.getServer(String(server.id)), { status: 'resizing', type: 'g6-standard-1' }, 'Linode moves it')
  t.match(await executor.getServer(String(server.id)), { status: 'running', type: 'g6-standard-4' }, 'then it runs as the new type')
  await executor.resizeServer(String(server.id), 'g6-standard-4')
  t.equal(fake.count('POST'), 1, 'already of the type: nothing asked')
})

t.test('resizeServer: a lost reply, or a repeat while Linode resizes, asks once', async (t) => {
  const { fake, executor, sleeps } = await setup(t, { fake: { getsPerStep: 5 } })
  const server = fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG], status: 'running', type: 'g6-standard-1' })
  fake.inject({ method: 'POST', path: `/linode/instances/${server.id}/resize`, fault: { status: 502, apply: true } })
  await executor.resizeServer(String(server.id), 'g6-standard-2')
  t.equal(server.status, 'resizing', 'Linode took it')
  await executor.resizeServer(String(server.id), 'g6-standard-2')
  t.equal(fake.count('POST', `/linode/instances/${server.id}/resize`), 1, 'one request, though its reply was lost and it was asked again')
  t.same(sleeps, [], 'no backoff: the server showed the resize under way')

  // A reply lost before Linode took it: asked again after a backoff.
  const other = fake.addInstance({ label: 'ctf-other', tags: ['ctfhive', 'tenant:other'], status: 'running', type: 'g6-standard-1' })
  fake.inject({ method: 'POST', path: `/linode/instances/${other.id}/resize`, fault: { drop: 'before' } })
  await executor.resizeServer(String(other.id), 'g6-standard-2')
  t.equal(fake.count('POST', `/linode/instances/${other.id}/resize`), 2)
  t.equal(other.status, 'resizing')
  t.equal(sleeps.length, 1)
})

t.test('resizeServer: Linode\'s refusals are final and say why; busy is asked again later; a server not ours is never resized', async (t) => {
  const { fake, executor } = await setup(t)
  const full = fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG], status: 'running', type: 'g6-standard-4', diskUsed: 60_000 })
  const refused = await caught(executor.resizeServer(String(full.id), 'g6-standard-1')) as ExecutorError
  t.equal(refused.retryable, false, 'a downsize whose data does not fit')
  t.match(refused.message, new RegExp(`^Linode refused to resize ${full.id} \\(ctf-acme\\) from g6-standard-4 to g6-standard-1: Linode API 400: The Linode has allocated more disk`))
  t.match(full, { status: 'running', type: 'g6-standard-4' }, 'left as it was')
  const unknown = await caught(executor.resizeServer(String(full.id), 'g6-nonesuch-9')) as ExecutorError
  t.same([unknown.retryable, /type: A valid plan type/.test(unknown.message)], [false, true])

  full.status = 'rebooting'
  const busy = await caught(executor.resizeServer(String(full.id), 'g6-standard-6')) as ExecutorError
  t.same([busy.retryable, /is busy/.test(busy.message)], [true, true], 'busy with a reboot: retried by the job')

  // Refused because Linode began its own host migration (or a resize not ours): no resize was
  // taken, though the server reads as migrating. Only a lost reply is taken for one under way.
  for (const status of ['migrating', 'resizing']) {
    const moving = fake.addInstance({ label: `ctf-${status}`, tags: ['ctfhive', TAG], status: 'running', type: 'g6-standard-1' })
    fake.inject({ method: 'POST', path: `/linode/instances/${moving.id}/resize`, fault: { before: () => { moving.status = status } } })
    const refusedBusy = await caught(executor.resizeServer(String(moving.id), 'g6-standard-2')) as ExecutorError
    t.match(refusedBusy, { retryable: true, message: /is busy; the resize to g6-standard-2 is asked again later: Linode API 400: Linode busy/ }, `refused while ${status}: asked again later`)
    t.match(moving, { status, type: 'g6-standard-1' })
  }

  const foreign = fake.addInstance({ label: 'someone-else', tags: [], status: 'running', type: 'g6-standard-1' })
  t.match(await caught(executor.resizeServer(String(foreign.id), 'g6-standard-2')), { retryable: false, message: /not tagged ctfhive; refusing to resize it/ })
  t.match(await caught(executor.resizeServer('999999', 'g6-standard-2')), { retryable: false, message: /does not exist/ })
  t.match(await caught(executor.resizeServer('1/../../account', 'g6-standard-2')), { retryable: false })
  t.equal(fake.count('POST', `/linode/instances/${foreign.id}`), 0, 'no request about a server not ours')
})

t.test('destroy twice: one deletion, then a 404 counts as done', async (t) => {
  const { fake, executor } = await setup(t)
  const { server } = await executor.createOrAdopt(spec)
  await executor.destroyServer(server.id)
  await executor.destroyServer(server.id)
  t.equal(fake.instances.size, 0)
  t.equal(fake.count('DELETE'), 1)
  fake.inject({ method: 'DELETE', fault: { status: 404, body: { errors: [{ reason: 'Not found' }] } } })
  const again = fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG] })
  await executor.destroyServer(String(again.id))
  t.equal(fake.count('DELETE'), 2, 'a DELETE answered 404 is done too')

  // Linode refuses to delete a server while it is cloned or a backup is restored into it.
  const busy = fake.addInstance({ label: 'ctf-busy', tags: ['ctfhive', TAG] })
  fake.inject({ method: 'DELETE', path: `/linode/instances/${busy.id}`, fault: { status: 400, body: { errors: [{ reason: 'Linode busy.' }] } } })
  t.match(await caught(executor.destroyServer(String(busy.id))), { retryable: true, message: /cannot be deleted now.*asks again later.*Linode busy/ }, 'a passing state: retried, not final')
  t.ok(fake.instances.has(busy.id))
  await executor.destroyServer(String(busy.id))
  t.notOk(fake.instances.has(busy.id), 'deleted when asked again')

  const foreign = fake.addInstance({ label: 'control-plane', tags: ['ops'] })
  const err = await caught(executor.destroyServer(String(foreign.id)))
  t.match(err.message, /not tagged ctfhive; refusing/)
  t.ok(fake.instances.has(foreign.id))
})

t.test('a 2xx read of another shape (a proxy\'s `{}`) is a retryable failure, never "no servers", "no zone" or a server', async (t) => {
  const { fake, executor } = await setup(t)
  const mine = fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG] })
  fake.addRecord('ctfhive.test', { name: 'acme', target: '198.51.100.1' })
  for (const body of [{}, { errors: [{ reason: 'upstream' }] }, { data: null }]) {
    fake.inject({ method: 'GET', path: '/linode/instances', fault: { status: 200, body } })
    t.match(await caught(executor.findServers(spec)), { retryable: true, message: /not shaped as documented/ }, `tag search answered ${JSON.stringify(body)}`)
    fake.inject({ method: 'GET', path: '/domains', fault: { status: 200, body } })
    t.match(await caught(executor.findDnsRecords(spec)), { retryable: true, message: /not shaped as documented/ }, `zone lookup answered ${JSON.stringify(body)}`)
  }
  t.same((await executor.findServers(spec)).map((s) => s.id), [String(mine.id)], 'the next search finds the server')
  t.equal((await executor.findDnsRecords(spec)).length, 1, 'and the record')

  for (const body of [{}, { id: mine.id, label: 'ctf-acme', status: 'running' }, { id: mine.id, label: 'ctf-acme', status: 'running', tags: 'ctfhive' }]) {
    fake.inject({ method: 'GET', path: `/linode/instances/${mine.id}`, fault: { status: 200, body } })
    t.match(await caught(executor.destroyServer(String(mine.id))), { retryable: true, message: /not an instance/ }, `instance read answered ${JSON.stringify(body)}: asked again later, not refused`)
    t.ok(fake.instances.has(mine.id))
  }
  fake.inject({ method: 'GET', path: `/linode/instances/${mine.id}`, fault: { status: 200, body: {} } })
  t.match(await caught(executor.getServer(String(mine.id))), { retryable: true })
  await executor.destroyServer(String(mine.id))
  t.notOk(fake.instances.has(mine.id), 'destroyed when the reply is an instance')
})

t.test('an errors list with entries that are not objects still reads as the refusal it is', async (t) => {
  const { fake, executor } = await setup(t)
  fake.inject({ method: 'POST', path: '/linode/instances', fault: { status: 400, body: { errors: [null, 'x', 7, { reason: 'Region is sold out' }] } } })
  const err = await caught(executor.createOrAdopt(spec))
  t.equal(err.message, 'Linode API 400: Region is sold out (POST /linode/instances)')
  t.equal((err as ExecutorError).retryable, false)
})

t.test('teardown lookups: every server with the tenant tag, every A record with its name', async (t) => {
  const { fake, executor } = await setup(t)
  const mine = fake.addInstance({ label: 'ctf-acme', tags: ['ctfhive', TAG] })
  const renamed = fake.addInstance({ label: 'ctf-acme-by-hand', tags: ['ctfhive', TAG] })
  fake.addInstance({ label: 'ctf-acme-old', tags: ['ctfhive', TAG], status: 'deleting' })
  fake.addInstance({ label: 'ctf-beta', tags: ['ctfhive', 'tenant:ffffffffffffffffffffffffffffffff'] })
  fake.addInstance({ label: 'not-ours', tags: [TAG] })
  t.same((await executor.findServers(spec)).map((s) => s.id).sort(), [String(mine.id), String(renamed.id)].sort(),
    'tagged ctfhive and this tenant, not already being deleted')

  const a = fake.addRecord('ctfhive.test', { name: 'acme', target: '198.51.100.1' })
  const b = fake.addRecord('ctfhive.test', { name: 'acme', target: '198.51.100.2' })
  fake.addRecord('ctfhive.test', { name: 'acme-2', target: '198.51.100.3' })
  fake.addRecord('ctfhive.test', { name: 'beta', target: '198.51.100.4' })
  t.same((await executor.findDnsRecords(spec)).sort(), [String(a.id), String(b.id)].sort())
  t.same(await executor.findDnsRecords({ ...spec, slug: 'gamma', fqdn: 'gamma.ctfhive.test' }), [])
  const { executor: noZone } = await setup(t, { fake: { domains: ['elsewhere.test'] } })
  t.same(await noZone.findDnsRecords(spec), [], 'no zone: no record in it')
})

t.test('every request body validates against the schemas cut from the OpenAPI spec', async (t) => {
  const { fake, executor } = await setup(t)
  const { server } = await executor.createOrAdopt(spec)
  // A server made before firewalls, adopted: it is added to the firewall.
  fake.addInstance({ label: 'ctf-older', tags: ['ctfhive', 'tenant:older'], status: 'running' })
  await executor.createOrAdopt({ ...spec, tenantId: 'older', slug: 'older' })
  await executor.ensureDnsRecord(spec, '203.0.113.10')
  await executor.ensureDnsRecord(spec, '203.0.113.11')
  await executor.destroyServer(server.id)
  const checks: Array<[string, RegExp, object]> = [
    ['POST', /^\/linode\/instances$/, schemas.instanceCreate],
    ['POST', /^\/domains\/\d+\/records$/, schemas.recordCreate],
    ['PUT', /^\/domains\/\d+\/records\/\d+$/, schemas.recordUpdate],
    ['POST', /^\/networking\/firewalls$/, firewallSchemas.create],
    ['POST', /^\/networking\/firewalls\/\d+\/devices$/, firewallSchemas.deviceCreate]
  ]
  let checked = 0
  for (const r of fake.requests) {
    const check = checks.find(([m, p]) => m === r.method && p.test(r.path))
    if (check === undefined) {
      t.equal(r.body, undefined, `${r.method} ${r.path} has no body`)
      continue
    }
    t.same(validateSchema(check[2], r.body), [], `${r.method} ${r.path}`)
    checked++
  }
  t.equal(checked, 5)
  // The validator itself catches what the spec forbids.
  t.match(validateSchema(schemas.instanceCreate, { region: 'us-east', label: 'ctf--x', tags: ['ab'], root_pass: 'short', bogus: 1 }),
    ['type: required', /^label: does not match/, 'tags[0]: shorter than 3', 'root_pass: shorter than 7', 'bogus: unknown property'])
  t.match(validateSchema(schemas.recordCreate, { type: 'A', id: 4, ttl_sec: 'x' }), ['id: read-only', 'ttl_sec: must be integer, got string'])
})

t.test('labels always satisfy the spec, or are refused', async (t) => {
  const labelSchema = schemas.instanceCreate.properties.label
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (slug) => {
    let label: string
    try {
      label = serverLabel(slug)
    } catch (err) {
      return err instanceof ExecutorError && !err.retryable
    }
    return validateSchema(labelSchema, label).length === 0 && label.startsWith('ctf-')
  }))
  t.equal(serverLabel('acme'), 'ctf-acme')
  t.equal(serverLabel('xn--bcher-kva'), 'ctf-xn-bcher-kva')
  t.equal(serverLabel('a'.repeat(63)).length, 64)
  t.throws(() => tenantTag('x'.repeat(44)), /cannot be a Linode tag/)
})

t.test('the token never appears in errors or logs', async (t) => {
  const { fake, executor, logs } = await setup(t)
  const errors: Error[] = []
  fake.inject({ method: 'GET', fault: { status: 400, body: { errors: [{ field: 'token', reason: `Token ${fake.token} is not allowed here` }] } } })
  errors.push(await caught(executor.getServer('1')))
  fake.inject({ method: 'GET', times: 5, fault: { status: 502 } })
  errors.push(await caught(executor.getServer('1')))
  const wrong = new LinodeExecutor({ token: `${fake.token}-wrong`, apiBase: fake.url, region: 'r', image: 'i', userData: () => '', sleep: async () => {} })
  errors.push(await caught(wrong.getServer('1')))
  const offline = new LinodeExecutor({ token: fake.token, apiBase: 'http://127.0.0.1:9', region: 'r', image: 'i', userData: () => '', sleep: async () => {}, maxAttempts: 2 })
  errors.push(await caught(offline.getServer('1')))
  t.match(errors.map((e) => e.message), [/token: Token \[redacted\]/, /Linode API 502/, /Linode API 401: Invalid Token/, /Linode API unreachable/])
  for (const err of errors) t.notOk(inspect(err, { depth: 10 }).includes(fake.token), err.message)
  t.notOk(logs.join('\n').includes(fake.token))
  t.notOk(inspect(executor, { depth: 10 }).includes(fake.token), 'nor in the executor as logged')
  t.notOk(JSON.stringify(executor).includes(fake.token))
  t.throws(() => new LinodeExecutor({ token: '', apiBase: fake.url, region: 'r', image: 'i', userData: () => '' }), /needs an API token/)
})

t.test('fromConfig takes what the job runner has', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctfhive.test'] })
  const executor = LinodeExecutor.fromConfig(
    { linode: { token: fake.token, apiBase: `${fake.url}/`, region: 'eu-central', plan: 'per-plan', planGivenEmpty: false, image: 'linode/debian12' } },
    { userData: userDataBuilder(SECRET) }
  )
  await executor.createOrAdopt(spec)
  t.match(fake.requests.find((r) => r.method === 'POST' && r.path === '/linode/instances')?.body, { region: 'eu-central', image: 'linode/debian12' })
})
