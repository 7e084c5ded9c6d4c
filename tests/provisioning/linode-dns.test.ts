import t from 'tap'
import type { ExecutorError } from '../../api/provisioning/executor.ts'
import { caught } from '../helpers/caught.ts'
import { startLinodeExecutor as setup } from '../helpers/linode-executor.ts'
import { ACME_SPEC } from '../helpers/server-spec.ts'

const spec = ACME_SPEC

t.test('DNS: create, keep, update when the IP changes, remove twice', async (t) => {
  const { fake, executor } = await setup(t)
  const zone = [...fake.domains.values()][0]!
  const id = await executor.ensureDnsRecord(spec, '203.0.113.10')
  t.equal(await executor.ensureDnsRecord(spec, '203.0.113.10'), id, 'same IP: nothing to do')
  t.equal(fake.count('PUT'), 0)
  t.equal(await executor.ensureDnsRecord(spec, '203.0.113.20'), id, 'new IP: the same record, updated')
  t.equal(fake.count('PUT'), 1)
  t.same([...zone.records.values()].map((r) => r.target), ['203.0.113.20'])
  t.equal(fake.count('GET', '/domains') - fake.count('GET', '/domains/'), 1, 'the zone id is cached')
  t.same(fake.requests.filter((r) => r.path.endsWith('/records') && r.method === 'GET').map((r) => r.headers['x-filter']), Array(3).fill('{"name":"acme","type":"A"}'))

  await executor.removeDnsRecord(spec, id)
  await executor.removeDnsRecord(spec, id)
  t.equal(zone.records.size, 0)
  t.equal(fake.count('DELETE'), 2)
})

t.test('DNS: a zone deleted and made again is looked up afresh, not taken for "no record"', async (t) => {
  const { fake, executor } = await setup(t)
  const old = [...fake.domains.values()][0]!
  const id = await executor.ensureDnsRecord(spec, '203.0.113.10')
  // The operator re-creates the zone (and its records): every id changes.
  fake.domains.delete(old.id)
  const remade = { ...old, id: 90_001, records: new Map([[90_002, { ...old.records.get(Number(id))!, id: 90_002 }]]) }
  fake.domains.set(remade.id, remade)

  await executor.removeDnsRecord(spec, id)
  t.same(await executor.findDnsRecords(spec), ['90002'], "teardown's sweep by name searches the zone as it is now")
  await executor.removeDnsRecord(spec, '90002')
  t.equal(remade.records.size, 0, 'the live record is gone')

  // Provisioning with the stale zone id cached: the record lands in the zone that exists.
  fake.domains.delete(remade.id)
  const again = { ...old, id: 90_010, records: new Map() }
  fake.domains.set(again.id, again)
  const created = await executor.ensureDnsRecord(spec, '203.0.113.30')
  t.same([...again.records.values()].map((r) => [String(r.id), r.target]), [[created, '203.0.113.30']])

  // A record gone from a zone that still exists is simply done; the zone stays cached.
  const before = fake.count('GET', '/domains') - fake.count('GET', '/domains/')
  await executor.removeDnsRecord(spec, '123456')
  t.equal(fake.count('GET', '/domains') - fake.count('GET', '/domains/'), before, 'no new zone lookup')
})

t.test('DNS: twins from a lost create collapse to one; a lost POST is found again', async (t) => {
  const { fake, executor } = await setup(t)
  const zone = [...fake.domains.values()][0]!
  fake.addRecord('ctfhive.test', { name: 'acme', target: '198.51.100.1' })
  const right = fake.addRecord('ctfhive.test', { name: 'acme', target: '203.0.113.10' })
  fake.addRecord('ctfhive.test', { name: 'other', target: '198.51.100.9' })
  t.equal(await executor.ensureDnsRecord(spec, '203.0.113.10'), String(right.id))
  t.same([...zone.records.values()].map((r) => r.name).sort(), ['acme', 'other'])

  const other = { ...spec, slug: 'beta', fqdn: 'beta.ctfhive.test' }
  fake.inject({ method: 'POST', path: `/domains/${zone.id}/records`, fault: { drop: 'after' } })
  const id = await executor.ensureDnsRecord(other, '203.0.113.30')
  t.equal([...zone.records.values()].filter((r) => r.name === 'beta').length, 1)
  t.ok(zone.records.has(Number(id)))
})

t.test('DNS: a 2xx record create reply that is not a record (a proxy\'s `{}`) is taken as a lost reply: the record is found by name', async (t) => {
  const { fake, executor } = await setup(t)
  const zone = [...fake.domains.values()][0]!
  fake.inject({ method: 'POST', path: `/domains/${zone.id}/records`, fault: { status: 200, body: {}, apply: true } })
  const id = await executor.ensureDnsRecord(spec, '203.0.113.10')
  const made = [...zone.records.values()]
  t.same(made.map((r) => [String(r.id), r.name, r.target]), [[id, 'acme', '203.0.113.10']], 'the one record Linode made, and its id')
  t.equal(fake.count('POST', `/domains/${zone.id}/records`), 1, 'never made twice')
})

t.test('DNS: a missing zone and a malformed address are clear, non-retryable errors', async (t) => {
  const { fake, executor } = await setup(t, { fake: { domains: ['elsewhere.test'] } })
  const err = await caught(executor.ensureDnsRecord(spec, '203.0.113.10'))
  t.equal(err.message, 'Linode has no DNS zone for ctfhive.test; create it in the Domains API first')
  t.equal((err as ExecutorError).retryable, false)
  t.same(await executor.findDnsRecords(spec), [], 'no zone: no record to sweep')
  await executor.removeDnsRecord(spec, '123')
  t.equal(fake.count('DELETE'), 0, 'no zone: nothing to delete')
  for (const fqdn of ['acme', 'acme.', '-acme.ctfhive.test', 'acme..ctfhive.test', 'ac_me.ctfhive.test']) {
    const bad = await caught(executor.ensureDnsRecord({ ...spec, fqdn }, '203.0.113.10'))
    t.equal(bad.message, `${JSON.stringify(fqdn)} is not a tenant address (<label>.<zone>)`, fqdn)
    t.equal((bad as ExecutorError).retryable, false)
  }
  t.equal((await caught(executor.ensureDnsRecord(spec, '999.1.1.1')) as ExecutorError).retryable, false)
})

t.test('DNS: each address lives in its own zone, so a tenant made under an earlier BASE_DOMAIN keeps its record there', async (t) => {
  const { fake, executor } = await setup(t, { fake: { domains: ['ctfhive.test', 'old-ctfhive.test'] } })
  const [current, old] = [...fake.domains.values()]
  const earlier = { ...spec, slug: 'early', fqdn: 'Early.old-ctfhive.test.' }
  const oldId = await executor.ensureDnsRecord(earlier, '203.0.113.40')
  const newId = await executor.ensureDnsRecord(spec, '203.0.113.41')
  t.same([...old!.records.values()].map((r) => [r.name, r.target]), [['early', '203.0.113.40']], 'the record named in its own zone, case and root dot aside')
  t.same([...current!.records.values()].map((r) => [r.name, r.target]), [['acme', '203.0.113.41']])
  t.same(await executor.findDnsRecords(earlier), [oldId])
  t.same(await executor.findDnsRecords(spec), [newId])
  t.equal(fake.count('GET', '/domains') - fake.count('GET', '/domains/'), 2, 'each zone looked up once, then cached')

  // Teardown removes by the kept id in the tenant's own zone; the other zone is untouched.
  await executor.removeDnsRecord(earlier, oldId)
  t.equal(old!.records.size, 0)
  t.equal(current!.records.size, 1)
  t.same(fake.requests.filter((r) => r.method === 'DELETE').map((r) => r.path), [`/domains/${old!.id}/records/${oldId}`])
})
