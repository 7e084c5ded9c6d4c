import t from 'tap'
import { ExecutorError, type ServerSpec } from '../../api/provisioning/executor.ts'
import { FIREWALL_LABEL, LOOKUP_CAP, attachUnprotected, rulesAsMade, tenantFirewallRules, type FirewallRules } from '../../api/provisioning/linode-firewall.ts'
import { LinodeApi } from '../../api/provisioning/linode-api.ts'
import { validateSchema, type FakeLinode } from '../helpers/fake-linode.ts'
import { firewallSchemas } from '../helpers/fake-linode-firewalls.ts'
import { caught } from '../helpers/caught.ts'
import { startLinodeExecutor, testExecutor } from '../helpers/linode-executor.ts'

interface T { teardown: (fn: () => unknown) => void }

const spec = (n: number): ServerSpec => ({
  tenantId: `tenant${n}`,
  slug: `acme${n}`,
  fqdn: `acme${n}.ctfhive.test`,
  plan: 'standard',
  serverType: 'g6-standard-2',
  tenantName: `Acme ${n}`,
  adminEmail: 'owner@acme.test'
})

const setup = (t: T) => startLinodeExecutor(t)

const ours = (fake: FakeLinode) => fake.addFirewall({ label: FIREWALL_LABEL, tags: ['ctfhive'], rules: { ...tenantFirewallRules(), version: 1 } })
const behind = (fake: FakeLinode, serverId: string | number): number[] =>
  [...fake.firewalls.values()].filter((f) => f.linodes.has(Number(serverId))).map((f) => f.id)

t.test('the rules: web, HTTP/3, ICMP and DHCP replies in; everything out; valid for the API', async (t) => {
  const rules = tenantFirewallRules()
  t.same([rules.inbound_policy, rules.outbound_policy, rules.outbound], ['DROP', 'ACCEPT', []])
  t.same(rules.inbound.map((r) => [r.protocol, r.ports ?? null, r.action]), [['TCP', '80, 443', 'ACCEPT'], ['UDP', '443', 'ACCEPT'], ['ICMP', null, 'ACCEPT'], ['UDP', '68, 546', 'ACCEPT']])
  t.ok(rules.inbound.every((r) => r.addresses.ipv4?.[0] === '0.0.0.0/0' && r.addresses.ipv6?.[0] === '::/0'), 'from everywhere, IPv4 and IPv6')
  t.same(validateSchema(firewallSchemas.create, { label: FIREWALL_LABEL, tags: ['ctfhive'], rules }), [])
  // The cut schema catches what the API would refuse.
  t.same(validateSchema(firewallSchemas.create, { label: 'xy', rules: { inbound_policy: 'MAYBE', inbound: [{ protocol: 'TCP' }] } }),
    ['label: shorter than 3', 'rules.outbound_policy: required', 'rules.inbound_policy: must be one of ACCEPT, DROP', 'rules.inbound[0].action: required', 'rules.inbound[0].addresses: required'])
})

t.test('rulesAsMade: labels, descriptions, spacing and address order aside, any change counts', async (t) => {
  const copy = (): FirewallRules => JSON.parse(JSON.stringify(tenantFirewallRules()))
  t.equal(rulesAsMade(copy()), true)
  const relabelled = copy()
  relabelled.inbound[0]!.label = 'https'
  relabelled.inbound[0]!.ports = '80,443'
  delete relabelled.inbound[1]!.description
  relabelled.inbound[2]!.addresses = { ipv6: ['::/0'], ipv4: ['0.0.0.0/0'] }
  t.equal(rulesAsMade(relabelled), true)
  const changes: Array<(r: FirewallRules) => void> = [
    (r) => { r.inbound_policy = 'ACCEPT' },
    (r) => { r.outbound_policy = 'DROP' },
    (r) => { r.inbound.push({ protocol: 'TCP', ports: '22', addresses: { ipv4: ['0.0.0.0/0'] }, action: 'ACCEPT' }) },
    (r) => { r.inbound[0]!.ports = '443' },
    (r) => { r.inbound[0]!.addresses.ipv4 = ['198.51.100.0/24'] },
    (r) => { r.inbound.reverse() },
    (r) => { r.outbound.push({ protocol: 'TCP', ports: '25', addresses: { ipv4: ['0.0.0.0/0'] }, action: 'DROP' }) }
  ]
  for (const change of changes) {
    const r = copy()
    change(r)
    t.equal(rulesAsMade(r), false, change.toString())
  }
  t.equal(rulesAsMade(undefined), false)
})

t.test('made once, on first need, and shared by every server after', async (t) => {
  const { fake, executor } = await setup(t)
  const first = await executor.createOrAdopt(spec(1))
  const second = await executor.createOrAdopt(spec(2))
  t.equal(fake.firewalls.size, 1)
  const [fw] = [...fake.firewalls.values()]
  t.same([fw!.label, fw!.tags, fw!.rules.inbound_policy], [FIREWALL_LABEL, ['ctfhive'], 'DROP'])
  t.same([first.firewall, second.firewall], [{ id: String(fw!.id), status: 'enabled' }, { id: String(fw!.id), status: 'enabled' }])
  t.same([behind(fake, first.server.id), behind(fake, second.server.id)], [[fw!.id], [fw!.id]])
  t.equal(fake.count('POST', '/networking/firewalls'), 1)
  t.equal(fake.count('GET', '/networking/firewalls'), 2, 'looked up afresh for each server (a change in the console is seen)')

  // Another process finds it instead of making a second one.
  const { executor: other } = testExecutor(fake)
  t.equal((await other.createOrAdopt(spec(3))).firewall?.id, String(fw!.id))
  t.equal(fake.count('POST', '/networking/firewalls'), 1)
})

t.test('a firewall of ours made earlier (or edited by an operator) is used as it is', async (t) => {
  const { fake, executor } = await setup(t)
  const fw = fake.addFirewall({ label: FIREWALL_LABEL, tags: ['ctfhive', 'prod'], rules: { ...tenantFirewallRules(), inbound_policy: 'ACCEPT', version: 3 } })
  const { server, firewall } = await executor.createOrAdopt(spec(1))
  t.equal(firewall?.id, String(fw.id))
  t.same(behind(fake, server.id), [fw.id])
  t.equal(fake.count('POST', '/networking/firewalls'), 0)
  t.equal(fw.rules.inbound_policy, 'ACCEPT', 'its rules are left alone')
})

t.test('a firewall with our label but not our tag is never used: no server is made', async (t) => {
  const { fake, executor } = await setup(t)
  fake.addFirewall({ label: FIREWALL_LABEL, tags: ['someone-else'] })
  const err = await caught(executor.createOrAdopt(spec(1)))
  t.ok(err instanceof ExecutorError)
  t.equal((err as ExecutorError).retryable, false)
  t.match(err.message, /labelled ctfhive-tenants but not tagged ctfhive; refusing to use it/)
  t.equal(fake.instances.size, 0)
  t.equal(fake.count('POST'), 0)
})

t.test('two processes making it at once: the loser finds the winner’s', async (t) => {
  const { fake, executor, logs } = await setup(t)
  const winner = ours(fake)
  // The loser looked before the winner's create landed.
  fake.inject({ method: 'GET', path: '/networking/firewalls', fault: { status: 200, body: { data: [], page: 1, pages: 1, results: 0 } } })
  const { firewall } = await executor.createOrAdopt(spec(1))
  t.equal(firewall?.id, String(winner.id))
  t.equal(fake.firewalls.size, 1)
  t.equal(fake.count('POST', '/networking/firewalls'), 1, 'its create was refused: the label is taken')
  t.match(logs, [/firewall create unclear; looking the label up/])
})

t.test('a create whose reply is lost is found, not made twice', async (t) => {
  const { fake, executor } = await setup(t)
  fake.inject({ method: 'POST', path: '/networking/firewalls', fault: { status: 502, apply: true } })
  const { firewall } = await executor.createOrAdopt(spec(1))
  t.equal(fake.firewalls.size, 1)
  t.equal(firewall?.id, String([...fake.firewalls.keys()][0]))
  t.equal(fake.count('POST', '/networking/firewalls'), 1)
})

t.test('a 2xx create reply that is not a firewall (a proxy\'s `{}`) is taken as a lost reply: the firewall is found', async (t) => {
  const { fake, executor } = await setup(t)
  fake.inject({ method: 'POST', path: '/networking/firewalls', fault: { status: 200, body: {}, apply: true } })
  const { server, firewall } = await executor.createOrAdopt(spec(1))
  t.equal(fake.firewalls.size, 1, 'one firewall')
  t.equal(firewall?.id, String([...fake.firewalls.keys()][0]), 'the one Linode made, found by its label')
  t.same(behind(fake, server.id), [Number(firewall?.id)], 'the server is behind it')
  t.equal(fake.count('POST', '/networking/firewalls'), 1, 'never made twice')
})

t.test('a token refused for firewalls (401) or a user without the grant (403): a clear, final error, and no server', async (t) => {
  const { fake, executor } = await setup(t)
  fake.inject({ path: '/networking/firewalls', fault: { status: 401, body: { errors: [{ reason: 'Your OAuth token is not authorized to use this endpoint.' }] } } })
  const err = await caught(executor.createOrAdopt(spec(1)))
  t.equal((err as ExecutorError).retryable, false)
  t.match(err.message, /^Linode refused the token for Cloud Firewalls \(an invalid token, or one without the firewall:read_write scope\): Linode API 401/)
  t.equal(fake.instances.size, 0)
  t.notMatch(err.message, fake.token)

  fake.inject({ method: 'POST', path: '/networking/firewalls', fault: { status: 403, body: { errors: [{ reason: 'Unauthorized' }] } } })
  const denied = await caught(executor.createOrAdopt(spec(1)))
  t.equal((denied as ExecutorError).retryable, false)
  t.match(denied.message, /^the Linode user may not manage the Cloud Firewall \(a restricted user needs add_firewalls, and read_write on ctfhive-tenants and on the server\): Linode API 403: Unauthorized/)
  t.equal(fake.instances.size, 0)
})

t.test('a firewall the user cannot see (taken label, empty listing): a final error naming the grant', async (t) => {
  const { fake, executor } = await setup(t)
  ours(fake)
  // A restricted user without a grant on it: Linode lists only what the user may see.
  fake.inject({ method: 'GET', path: '/networking/firewalls', times: 10, fault: { status: 200, body: { data: [], page: 1, pages: 1, results: 0 } } })
  const err = await caught(executor.createOrAdopt(spec(1)))
  t.equal((err as ExecutorError).retryable, false)
  t.equal(err.message, 'a Linode firewall labelled ctfhive-tenants exists, but this token\'s user cannot see it: grant the user read_write on it, or rename it if it is not ours')
  t.equal(fake.count('POST', '/networking/firewalls'), 1, 'one create, not a loop of them')
  t.equal(fake.instances.size, 0)
})

t.test('a listing not shaped as Linode documents it: a failed call, or its odd items skipped, never a crash', async (t) => {
  {
    const { fake, executor } = await setup(t)
    fake.inject({ method: 'GET', path: '/networking/firewalls', times: 50, fault: { status: 200, body: { data: 'x', page: 1, pages: 1 } } })
    const err = await caught(executor.createOrAdopt(spec(1)))
    t.ok(err instanceof ExecutorError, `data not a list: an ExecutorError (${err.message})`)
    t.equal(fake.instances.size, 0, 'and no server')
  }
  {
    const { fake, executor } = await setup(t)
    fake.inject({ method: 'GET', path: '/networking/firewalls', times: 1, fault: { status: 200, body: { data: [{}, null, 7], page: 1, pages: 1, results: 3 } } })
    const made = await executor.createOrAdopt(spec(2))
    t.ok(made.server.id, 'items that are not firewalls (no label, not objects) are skipped: ours is made, and the server behind it')
    t.equal(fake.count('POST', '/networking/firewalls'), 1)
  }
})

t.test('a create refused for its label without the field named still leads to the lookup', async (t) => {
  const { fake, executor } = await setup(t)
  const winner = ours(fake)
  fake.inject({ method: 'GET', path: '/networking/firewalls', fault: { status: 200, body: { data: [], page: 1, pages: 1, results: 0 } } })
  fake.inject({ method: 'POST', path: '/networking/firewalls', fault: { status: 400, body: { errors: [{ reason: 'Label must be unique among your Firewalls' }] } } })
  t.equal((await executor.createOrAdopt(spec(1))).firewall?.id, String(winner.id))
})

t.test('a firewall create that never gets an answer ends retryable, after bounded tries', async (t) => {
  const { fake, executor } = await setup(t)
  fake.inject({ method: 'POST', path: '/networking/firewalls', times: 10, fault: { status: 502 } })
  const err = await caught(executor.createOrAdopt(spec(1)))
  t.equal((err as ExecutorError).retryable, true)
  t.match(err.message, /^could not create or find the Linode firewall ctfhive-tenants: Linode API 502/)
  t.equal(fake.count('POST', '/networking/firewalls'), 5)
  t.equal(fake.instances.size, 0)
})

t.test('a disabled firewall: servers are still made behind it, with a warning, and it says so', async (t) => {
  const { fake, executor, logs } = await setup(t)
  const fw = fake.addFirewall({ label: FIREWALL_LABEL, tags: ['ctfhive'], status: 'disabled', rules: { ...tenantFirewallRules(), version: 1 } })
  const made = await executor.createOrAdopt(spec(1))
  t.same(made.firewall, { id: String(fw.id), status: 'disabled' })
  t.same(behind(fake, made.server.id), [fw.id])
  t.match(logs, [/ctfhive-tenants is disabled: servers behind it are not filtered/])

  // Its create's reply lost: the server found is already assigned the disabled firewall, and is
  // not added again (Linode would refuse a second assignment, and the tenant would fail).
  fake.inject({ method: 'POST', path: '/linode/instances', fault: { status: 502, apply: true } })
  const adopted = await executor.createOrAdopt(spec(2))
  t.same([adopted.adopted, adopted.firewall], [true, { id: String(fw.id), status: 'disabled' }])
  t.equal(fake.count('POST', `/networking/firewalls/${fw.id}/devices`), 0)
  t.match(logs.at(-1), /sits behind a firewall that is not enabled/)

  // Enabled again in the console: seen at the next server, not remembered from before.
  fw.status = 'enabled'
  t.same((await executor.createOrAdopt(spec(3))).firewall, { id: String(fw.id), status: 'enabled' })
})

t.test('a firewall deleted in the console is made again; one deleted between lookup and create too', async (t) => {
  const { fake, executor } = await setup(t)
  const first = await executor.createOrAdopt(spec(1))
  fake.firewalls.delete(Number(first.firewall?.id))
  const second = await executor.createOrAdopt(spec(2))
  t.equal(fake.firewalls.size, 1)
  t.not(second.firewall?.id, first.firewall?.id, 'a new firewall')
  t.same(behind(fake, second.server.id), [Number(second.firewall?.id)])
  t.equal(fake.count('POST', '/linode/instances'), 2)

  // The lookup still shows a firewall that is gone by the create: Linode refuses its id.
  const gone = { id: 999999, label: FIREWALL_LABEL, status: 'enabled', tags: ['ctfhive'] }
  fake.inject({ method: 'GET', path: '/networking/firewalls', fault: { status: 200, body: { data: [gone], page: 1, pages: 1, results: 1 } } })
  const third = await executor.createOrAdopt(spec(3))
  t.equal(third.firewall?.id, second.firewall?.id, 'looked up again: the firewall that exists')
  t.same(behind(fake, third.server.id), [Number(second.firewall?.id)])
  t.equal(fake.count('POST', '/linode/instances'), 4, 'the create refused for its firewall_id, then made')
  t.equal(fake.instances.size, 3)
})

t.test('a firewall Linode refuses though it exists: a final error naming the reason', async (t) => {
  const { fake, executor } = await setup(t)
  const fw = ours(fake)
  fake.inject({ method: 'POST', path: '/linode/instances', fault: { status: 400, body: { errors: [{ field: 'firewall_id', reason: 'Cloud Firewall is not available in this region' }] } } })
  const err = await caught(executor.createOrAdopt(spec(1)))
  t.equal((err as ExecutorError).retryable, false)
  t.equal(err.message, `Linode refused firewall ${fw.id} for ctf-acme1: Linode API 400: firewall_id: Cloud Firewall is not available in this region (POST /linode/instances)`)
  t.equal(fake.instances.size, 0)
})

t.test('adopting a server made before firewalls puts it behind ours; one behind another firewall is left there', async (t) => {
  const { fake, executor } = await setup(t)
  const fw = ours(fake)
  const old = fake.addInstance({ label: 'ctf-acme1', tags: ['ctfhive', 'tenant:tenant1'], status: 'running' })
  const adopted = await executor.createOrAdopt(spec(1))
  t.same([adopted.adopted, adopted.server.id, adopted.firewall], [true, String(old.id), { id: String(fw.id), status: 'enabled' }])
  t.same(behind(fake, old.id), [fw.id])
  t.same(fake.requests.find((r) => r.method === 'POST')?.body, { id: old.id, type: 'linode' })

  const operators = fake.addFirewall({ label: 'ops-special', tags: [] })
  const special = fake.addInstance({ label: 'ctf-acme2', tags: ['ctfhive', 'tenant:tenant2'], status: 'running' })
  operators.linodes.add(special.id)
  const kept = await executor.createOrAdopt(spec(2))
  t.equal(kept.firewall?.id, String(operators.id))
  t.same(behind(fake, special.id), [operators.id], 'one firewall per server: the operator’s stays')
  t.equal(fake.count('POST', `/networking/firewalls/${fw.id}/devices`), 1)

  // Adopted again (a retry): already behind ours, nothing to add.
  t.equal((await executor.createOrAdopt(spec(1))).firewall?.id, String(fw.id))
  t.equal(fake.count('POST', `/networking/firewalls/${fw.id}/devices`), 1)
})

t.test('adding a server whose reply is lost, or to a firewall deleted meanwhile', async (t) => {
  const { fake, executor } = await setup(t)
  const fw = ours(fake)
  const old = fake.addInstance({ label: 'ctf-acme1', tags: ['ctfhive', 'tenant:tenant1'], status: 'running' })
  fake.inject({ method: 'POST', path: `/networking/firewalls/${fw.id}/devices`, fault: { status: 500, apply: true } })
  t.equal((await executor.createOrAdopt(spec(1))).firewall?.id, String(fw.id))
  t.same(behind(fake, old.id), [fw.id])
  t.equal(fake.count('POST', `/networking/firewalls/${fw.id}/devices`), 1, 'not added twice')

  fake.firewalls.delete(fw.id)
  const older = fake.addInstance({ label: 'ctf-acme2', tags: ['ctfhive', 'tenant:tenant2'], status: 'running' })
  const { firewall } = await executor.createOrAdopt(spec(2))
  t.not(firewall?.id, String(fw.id))
  t.same(behind(fake, older.id), [Number(firewall?.id)], 'behind the firewall made again')

  const later = fake.addInstance({ label: 'ctf-acme3', tags: ['ctfhive', 'tenant:tenant3'], status: 'running' })
  const migrating = `/networking/firewalls/${firewall?.id}/devices`
  fake.inject({ method: 'POST', path: migrating, fault: { status: 400, body: { errors: [{ reason: 'Linode is currently migrating' }] } } })
  const err = await caught(executor.createOrAdopt(spec(3)))
  t.equal((err as ExecutorError).retryable, true, 'a migration ends: the next attempt adds it')
  t.match(err.message, /^could not add Linode \d+ to the firewall yet: .*currently migrating/)
  t.same(behind(fake, later.id), [])
  t.equal((await executor.createOrAdopt(spec(3))).firewall?.id, firewall?.id)
  t.same(behind(fake, later.id), [Number(firewall?.id)])

  const refused = fake.addInstance({ label: 'ctf-acme4', tags: ['ctfhive', 'tenant:tenant4'], status: 'running' })
  fake.inject({ method: 'POST', path: migrating, fault: { status: 400, body: { errors: [{ field: 'id', reason: 'Invalid device' }] } } })
  const final = await caught(executor.createOrAdopt(spec(4)))
  t.equal((final as ExecutorError).retryable, false)
  t.match(final.message, /Invalid device/)
  t.same(behind(fake, refused.id), [])
})

t.test('a deleted server leaves the firewall (the fake plays Linode here)', async (t) => {
  const { fake, executor } = await setup(t)
  const { server, firewall } = await executor.createOrAdopt(spec(1))
  await executor.destroyServer(server.id)
  t.same([...fake.firewalls.get(Number(firewall?.id))!.linodes], [])
})

t.test('a server’s firewalls unreadable (a linodes grant, not a firewall one): Linode’s own error, final', async (t) => {
  const { fake, executor } = await setup(t)
  ours(fake)
  const old = fake.addInstance({ label: 'ctf-acme1', tags: ['ctfhive', 'tenant:tenant1'], status: 'running' })
  fake.inject({ path: `/linode/instances/${old.id}/firewalls`, fault: { status: 403, body: { errors: [{ reason: 'Unauthorized' }] } } })
  const err = await caught(executor.createOrAdopt(spec(1)))
  t.equal((err as ExecutorError).retryable, false)
  t.equal(err.message, `Linode API 403: Unauthorized (GET /linode/instances/${old.id}/firewalls)`)
})

t.test('adding to a firewall gone between lookup and add; adds that never get an answer', async (t) => {
  const { fake, executor } = await setup(t)
  const fw = ours(fake)
  const old = fake.addInstance({ label: 'ctf-acme1', tags: ['ctfhive', 'tenant:tenant1'], status: 'running' })
  const gone = { id: 999999, label: FIREWALL_LABEL, status: 'enabled', tags: ['ctfhive'] }
  fake.inject({ method: 'GET', path: '/networking/firewalls', fault: { status: 200, body: { data: [gone], page: 1, pages: 1, results: 1 } } })
  t.equal((await executor.createOrAdopt(spec(1))).firewall?.id, String(fw.id), 'the 404 leads to a fresh lookup')
  t.same(behind(fake, old.id), [fw.id])
  t.equal(fake.count('POST', '/networking/firewalls/999999/devices'), 1)

  const unlucky = fake.addInstance({ label: 'ctf-acme2', tags: ['ctfhive', 'tenant:tenant2'], status: 'running' })
  fake.inject({ method: 'POST', path: `/networking/firewalls/${fw.id}/devices`, times: 10, fault: { status: 503 } })
  const err = await caught(executor.createOrAdopt(spec(2)))
  t.equal((err as ExecutorError).retryable, true, 'the job tries again later')
  t.equal(err.message, `Linode API 503: Injected failure (POST /networking/firewalls/${fw.id}/devices)`)
  t.equal(fake.count('POST', `/networking/firewalls/${fw.id}/devices`), 6, 'one add before, five tries here')
  t.same(behind(fake, unlucky.id), [])
})

t.test('firewall_id refused and no firewall left: the re-lookup makes one, and the server is made behind it', async (t) => {
  const { fake, executor } = await setup(t)
  const gone = { id: 999999, label: FIREWALL_LABEL, status: 'enabled', tags: ['ctfhive'] }
  fake.inject({ method: 'GET', path: '/networking/firewalls', fault: { status: 200, body: { data: [gone], page: 1, pages: 1, results: 1 } } })
  const made = await executor.createOrAdopt(spec(1))
  t.equal(fake.firewalls.size, 1)
  const [fw] = [...fake.firewalls.values()]
  t.same(made.firewall, { id: String(fw!.id), status: 'enabled' })
  t.same(behind(fake, made.server.id), [fw!.id])
  t.same(fake.requests.filter((r) => r.method === 'POST').map((r) => [r.path, (r.body as { firewall_id?: number }).firewall_id]),
    [['/linode/instances', 999999], ['/networking/firewalls', undefined], ['/linode/instances', fw!.id]])
})

t.test('a server listed behind a deleted firewall counts as behind none, and is added to ours', async (t) => {
  const { fake, executor } = await setup(t)
  const fw = ours(fake)
  const old = fake.addInstance({ label: 'ctf-acme1', tags: ['ctfhive', 'tenant:tenant1'], status: 'running' })
  fake.addFirewall({ label: 'old-one', status: 'deleted' }).linodes.add(old.id)
  t.same((await executor.createOrAdopt(spec(1))).firewall, { id: String(fw.id), status: 'enabled' })
  t.ok(fw.linodes.has(old.id))
})

t.test('adding a server: 401 and 403 are final and worded for firewalls', async (t) => {
  const { fake, executor } = await setup(t)
  const fw = ours(fake)
  fake.addInstance({ label: 'ctf-acme1', tags: ['ctfhive', 'tenant:tenant1'], status: 'running' })
  for (const status of [401, 403]) {
    fake.inject({ method: 'POST', path: `/networking/firewalls/${fw.id}/devices`, fault: { status, body: { errors: [{ reason: 'Unauthorized' }] } } })
    const err = await caught(executor.createOrAdopt(spec(1)))
    t.equal((err as ExecutorError).retryable, false)
    t.match(err.message, status === 401 ? /^Linode refused the token for Cloud Firewalls/ : /^the Linode user may not manage the Cloud Firewall/)
  }
  t.same([...fw.linodes], [])
})

t.test('a label clash on the last try, still invisible: the same final error, not a vague retryable one', async (t) => {
  const { fake, executor } = await setup(t)
  // Four lost replies that made nothing, then a clash with a firewall the user cannot see.
  fake.inject({ method: 'POST', path: '/networking/firewalls', times: 4, fault: { status: 502 } })
  fake.inject({ method: 'POST', path: '/networking/firewalls', fault: { status: 400, body: { errors: [{ field: 'label', reason: 'Label must be unique among your Firewalls' }] } } })
  const err = await caught(executor.createOrAdopt(spec(1)))
  t.equal((err as ExecutorError).retryable, false)
  t.match(err.message, /exists, but this token's user cannot see it/)
  t.equal(fake.count('POST', '/networking/firewalls'), 5)
})

function repairFor (fake: FakeLinode, logs: string[] = []) {
  const api = new LinodeApi({ token: fake.token, apiBase: fake.url, sleep: async () => {}, maxAttempts: 3, requestTimeoutMs: 2000, maxRetryAfterMs: 1000 })
  return (signal?: AbortSignal) => attachUnprotected(api, { sleep: async () => {}, maxAttempts: 3, log: { warn: (obj, msg) => { logs.push(JSON.stringify({ ...obj, msg })) } } }, signal)
}

t.test('repair: every tenant server behind no firewall is added to ours (made first); others are left alone', async (t) => {
  const { fake } = await setup(t)
  const theirs = fake.addFirewall({ label: 'ops-special', tags: [] })
  const server = (label: string, tags = ['ctfhive', `tenant:${label}`], status = 'running') => fake.addInstance({ label, tags, status }).id
  const a = server('ctf-a')
  const b = server('ctf-b')
  const c = server('ctf-c')
  server('ctf-d', undefined, 'deleting')
  const foreign = server('not-ours', [])
  theirs.linodes.add(b)

  const repair = await repairFor(fake)()
  const lookups = fake.requests.filter((r) => r.method === 'GET' && (/^\/linode\/instances\/\d+\/firewalls$/.test(r.path) || r.path === '/networking/firewalls'))
  t.equal(lookups.length, 3 + 1, 'each tenant server looked up once, the firewall once')
  const made = [...fake.firewalls.values()].find((f) => f.label === FIREWALL_LABEL)!
  t.ok(made, 'made, as at the first provisioning')
  t.same(repair.firewall, { id: made.id, status: 'enabled' })
  t.equal(repair.total, 3, 'tagged ctfhive and not being deleted')
  t.same(repair.attached.map((s) => [s.label, s.now]), [['ctf-a', made.id], ['ctf-c', made.id]])
  t.same([repair.disabled, repair.failed], [[], []])
  t.same([behind(fake, a), behind(fake, b), behind(fake, c), behind(fake, foreign)], [[made.id], [theirs.id], [made.id], []], "the operator's own choice kept; untagged servers untouched")

  const posts = fake.count('POST')
  const again = await repairFor(fake)()
  t.same([again.attached, again.total], [[], 3], 'run again: nothing left to add')
  t.equal(fake.count('POST'), posts, 'and nothing written')
})

t.test('repair: a disabled firewall is named, not bypassed; every server is looked up, past the check\'s cap', async (t) => {
  const { fake } = await setup(t)
  const fw = ours(fake)
  fw.status = 'disabled'
  const behindDisabled = fake.addInstance({ label: 'ctf-x', tags: ['ctfhive'], status: 'running' }).id
  fw.linodes.add(behindDisabled)
  for (let i = 0; i < LOOKUP_CAP + 5; i++) fake.addInstance({ label: `ctf-n${i}`, tags: ['ctfhive'], status: 'running' })
  const logs: string[] = []
  const repair = await repairFor(fake, logs)()
  t.same(repair.firewall, { id: fw.id, status: 'disabled' })
  t.same(repair.disabled.map((s) => [s.label, s.behind]), [['ctf-x', fw.id]])
  t.equal(repair.attached.length, LOOKUP_CAP + 5, 'all of them, not the first 20')
  t.equal(fw.linodes.size, LOOKUP_CAP + 6)
  t.match(logs[0], /is disabled: servers behind it are not filtered/)
})

t.test('repair: one server refused does not stop the others; a refusal of the firewall itself stops all', async (t) => {
  const { fake } = await setup(t)
  const fw = ours(fake)
  const first = fake.addInstance({ label: 'ctf-1', tags: ['ctfhive'], status: 'running' }).id
  const second = fake.addInstance({ label: 'ctf-2', tags: ['ctfhive'], status: 'running' }).id
  fake.inject({ method: 'POST', path: `/networking/firewalls/${fw.id}/devices`, times: 1, fault: { status: 400, body: { errors: [{ field: 'id', reason: 'Linode is not in a region that supports Cloud Firewalls' }] } } })
  const repair = await repairFor(fake)()
  t.same(repair.failed.map((s) => [s.id, s.error]), [[first, `Linode API 400: id: Linode is not in a region that supports Cloud Firewalls (POST /networking/firewalls/${fw.id}/devices)`]])
  t.same(repair.attached.map((s) => s.id), [second])

  fake.inject({ path: '/networking/firewalls', fault: { status: 401, body: { errors: [{ reason: 'Invalid Token' }] } } })
  const err = await caught(repairFor(fake)())
  t.match(err, { retryable: false, message: /refused the token for Cloud Firewalls/ })
})

t.test('repair: an abort stops it at once, with the signal\'s reason, not as a failed server', async (t) => {
  const { fake } = await setup(t)
  const fw = ours(fake)
  fake.addInstance({ label: 'ctf-1', tags: ['ctfhive'], status: 'running' })
  fake.addInstance({ label: 'ctf-2', tags: ['ctfhive'], status: 'running' })
  fake.inject({ method: 'POST', path: `/networking/firewalls/${fw.id}/devices`, fault: { delayMs: 1000 } })
  const ac = new AbortController()
  const pending = repairFor(fake)(ac.signal)
  while (fake.count('POST') === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  ac.abort(new Error('stopped by the operator'))
  t.equal((await caught(pending)).message, 'stopped by the operator')
  t.equal(fake.count('POST'), 1, 'the second server was not tried')
})

