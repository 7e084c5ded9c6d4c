import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { LinodeApi } from '../../api/provisioning/linode-api.ts'
import { tenantFirewallRules } from '../../api/provisioning/linode-firewall.ts'
import { linodePreflight, logLinodePreflight, preflightApi, preflightSettings, type PreflightSettings } from '../../api/provisioning/linode-preflight.ts'
import { testConfig } from '../helpers/build-app.ts'
import { startFakeLinode, type FakeLinode } from '../helpers/fake-linode.ts'

interface T { teardown: (fn: () => unknown) => void }

const settings: PreflightSettings = {
  region: 'us-east',
  image: 'linode/debian12',
  baseDomain: 'ctfhive.test',
  olderDomains: [],
  serverTypes: [{ plan: 'standard', type: 'g6-standard-2' }, { plan: 'pro', type: 'g6-standard-4' }]
}

function api (fake: FakeLinode, token = fake.token): LinodeApi {
  return new LinodeApi({ token, apiBase: fake.url, sleep: async () => {}, maxAttempts: 2, requestTimeoutMs: 2000, maxRetryAfterMs: 1000 })
}

async function run (t: T, change: (fake: FakeLinode) => void = () => {}, s: Partial<PreflightSettings> = {}) {
  const fake = await startFakeLinode(t, { domains: ['ctfhive.test'] })
  change(fake)
  const checks = await linodePreflight(api(fake), { ...settings, ...s })
  const by = (name: string) => checks.find((c) => c.check === name)
  return { fake, checks, by }
}

t.test('good settings pass every check, reading only', async (t) => {
  const { fake, checks } = await run(t)
  t.same(checks.map((c) => [c.check, c.result]), [
    ['token', 'pass'], ['user rights', 'pass'], ['servers', 'pass'], ['region', 'pass'], ['image', 'pass'],
    ['type g6-standard-2 (standard)', 'pass'], ['type g6-standard-4 (pro)', 'pass'], ['DNS zone', 'pass'], ['firewall', 'pass'], ['servers behind it', 'pass']
  ])
  t.match(checks[0]!.got, 'user ctfhive-ops')
  t.equal(checks[1]!.got, 'unrestricted user')
  t.equal(checks[5]!.got, '2 CPU, 4 GB')
  t.match(checks.at(-3)!.got, /^zone \d+, active$/)
  t.equal(checks.at(-2)!.got, 'none yet: made at the first provisioning')
  t.equal(checks.at(-1)!.got, '0 tenant servers, none exposed')
  t.same(fake.requests.filter((r) => r.method !== 'GET'), [], 'nothing but GETs')
  t.ok(fake.requests.some((r) => r.path === '/images/linode/debian12'), 'the image id keeps its slash')
})

t.test('a rejected token stops at the first check', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctfhive.test'] })
  const checks = await linodePreflight(api(fake, 'wrong-token-0123456789'), settings)
  t.same(checks, [{ check: 'token', expected: 'accepted', got: '401 Invalid Token', result: 'fail' }])
  t.equal(fake.requests.length, 1)
  t.notMatch(JSON.stringify(checks), /wrong-token/, 'the token is never in a result')
})

t.test('region: unknown, or without Metadata, fails; an outage warns', async (t) => {
  t.match((await run(t, () => {}, { region: 'mars-1' })).by('region'), { result: 'fail', got: 'no such region (LINODE_REGION)' })
  t.match((await run(t, () => {}, { region: 'ap-south' })).by('region'), { result: 'fail', got: 'lacks Metadata (LINODE_REGION)' })
  t.match((await run(t, (f) => { f.catalogue.regions.get('us-east')!.capabilities = ['Linodes', 'Metadata'] })).by('region'), { result: 'fail', got: 'lacks Cloud Firewall (LINODE_REGION)' })
  t.match((await run(t, (f) => { f.catalogue.regions.get('us-east')!.status = 'outage' })).by('region'), { result: 'warn', got: 'status outage' })
})

t.test('image: unknown, not available or without cloud-init fails; deprecated or private warns', async (t) => {
  t.match((await run(t, () => {}, { image: 'linode/nope' })).by('image'), { result: 'fail', got: 'no such image (LINODE_IMAGE)' })
  t.match((await run(t, () => {}, { image: 'linode/arch' })).by('image'), { result: 'fail', got: /no cloud-init/ })
  t.match((await run(t, (f) => { f.catalogue.images.get('linode/debian12')!.status = 'creating' })).by('image'), { result: 'fail', got: 'status creating (LINODE_IMAGE)' })
  t.match((await run(t, () => {}, { image: 'linode/debian11' })).by('image'), { result: 'warn', got: 'deprecated, end of life 2026-07-01' })
  const priv = (regions?: Array<{ region: string, status: string }>) => (f: FakeLinode) => {
    f.catalogue.images.set('private/123', { status: 'available', capabilities: [], is_public: false, deprecated: false, eol: null, ...(regions === undefined ? {} : { regions }) })
  }
  t.match((await run(t, priv(), { image: 'private/123' })).by('image'), { result: 'warn', got: /private image: make sure it runs cloud-init/ })
  t.match((await run(t, priv([{ region: 'us-east', status: 'available' }]), { image: 'private/123' })).by('image'), { result: 'warn', got: /private image/ })
  t.match((await run(t, priv([{ region: 'eu-west', status: 'available' }]), { image: 'private/123' })).by('image'), { result: 'fail', got: 'not available in us-east (not stored there) (LINODE_IMAGE)' })
  t.match((await run(t, priv([{ region: 'us-east', status: 'replicating' }]), { image: 'private/123' })).by('image'), { result: 'fail', got: 'not available in us-east (replicating) (LINODE_IMAGE)' })
})

t.test('image: a token without images:read_only passes for a public image, fails naming the scope for a private one', async (t) => {
  // The scopes the docs ask for (linodes, domains, firewall): Linode refuses GET /images/… sent with that token.
  const fake = await startFakeLinode(t, { domains: ['ctfhive.test'], noImagesScope: true })
  const checks = await linodePreflight(api(fake), settings)
  t.match(checks.find((c) => c.check === 'image'), { result: 'pass', got: 'available, cloud-init' })
  t.equal(checks.filter((c) => c.result !== 'pass').length, 0, 'every check passes')
  const read = fake.requests.find((r) => r.path === '/images/linode/debian12')
  t.equal(read?.headers.authorization, undefined, 'a public image is read without the token')

  fake.catalogue.images.set('private/123', { status: 'available', capabilities: [], is_public: false, deprecated: false, eol: null })
  const priv = (await linodePreflight(api(fake), { ...settings, image: 'private/123' })).find((c) => c.check === 'image')
  t.match(priv, { result: 'fail', got: '401 Your OAuth token is not authorized to use this endpoint. (a private image: the token needs the images:read_only scope) (LINODE_IMAGE)' })
  t.equal(fake.requests.findLast((r) => r.path === '/images/private/123')?.headers.authorization, `Bearer ${fake.token}`, 'a private image is read with it')
  t.notMatch(JSON.stringify(priv), fake.token)

  const forbidden = await run(t, (f) => {
    f.catalogue.images.set('private/123', { status: 'available', capabilities: [], is_public: false, deprecated: false, eol: null })
    f.inject({ path: '/images/private/123', fault: { status: 403, body: { errors: [{ reason: 'Unauthorized' }] } } })
  }, { image: 'private/123' })
  t.match(forbidden.by('image'), { result: 'fail', got: /^403 Unauthorized \(a private image: the token needs the images:read_only scope, and a restricted user a grant on the image\)/ })
})

t.test('server types: unknown or sold out fails; below CTFd’s 2 cores warns; one check per type', async (t) => {
  const { by, checks } = await run(t, (f) => { f.catalogue.availability.get('us-east')!.push({ plan: 'g6-standard-6', available: false }) }, {
    serverTypes: [{ plan: 'solo', type: 'g6-standard-1' }, { plan: 'standard', type: 'g6-bogus' }, { plan: 'pro', type: 'g6-standard-6' }, { plan: 'max', type: 'g6-standard-6' }]
  })
  t.match(by('type g6-standard-1 (solo)'), { result: 'warn', got: "1 CPU, 2 GB: below CTFd's minimum of 2 cores" })
  t.match(by('type g6-bogus (standard)'), { result: 'fail', got: 'no such type (plan catalogue or LINODE_PLAN)' })
  t.match(by('type g6-standard-6 (pro, max)'), { result: 'fail', got: 'sold out in us-east' })
  t.equal(checks.filter((c) => c.check.startsWith('type ')).length, 3)

  const unknown = await run(t, (f) => { f.inject({ path: '/regions/us-east/availability', times: 2, fault: { status: 500 } }) })
  t.match(unknown.by('type g6-standard-2 (standard)'), { result: 'warn', got: '2 CPU, 4 GB; availability not known' })
})

t.test('DNS zone: missing, secondary, or not writable by a restricted user fails', async (t) => {
  t.match((await run(t, () => {}, { baseDomain: 'other.test' })).by('DNS zone'), { result: 'fail', got: /no zone/ })
  t.match((await run(t, (f) => { (f.domains.values().next().value as { type: string }).type = 'slave' })).by('DNS zone'), { result: 'fail', got: /secondary/ })
  t.match((await run(t, (f) => { (f.domains.values().next().value as { status: string }).status = 'disabled' })).by('DNS zone'), { result: 'warn', got: /disabled$/ })

  const restricted = (addLinodes: boolean, permissions: string | null) => (f: FakeLinode) => {
    f.catalogue.grants = { global: { add_linodes: addLinodes }, domain: [{ id: [...f.domains.keys()][0]!, permissions }] }
  }
  const ok = await run(t, restricted(true, 'read_write'))
  t.match(ok.by('user rights'), { result: 'fail', got: /^restricted user with add_linodes: only an unrestricted user may tag servers/ }, 'Linode refuses tags from a restricted user')
  t.match(ok.by('DNS zone'), { result: 'pass' })
  const readOnly = await run(t, restricted(false, 'read_only'))
  t.match(readOnly.by('user rights'), { result: 'fail', got: /^restricted user without add_linodes/ })
  t.match(readOnly.by('DNS zone'), { result: 'fail', got: /needs read_write/ })
})

t.test('older tenant domains: each zone checked like BASE_DOMAIN\'s, a problem only a warning', async (t) => {
  t.same(preflightSettings({ ...testConfig(), baseDomain: 'CTFhive.test' }, ['ctfhive.test', 'Old.test', 'old.test', 'a.test']).olderDomains, ['a.test', 'old.test'],
    'BASE_DOMAIN\'s own left out, each once, lowercase, sorted')
  const both = await run(t, (f) => { f.domains.set(900, { id: 900, domain: 'old.test', type: 'master', status: 'active', records: new Map() }) }, { olderDomains: ['old.test', 'lost.test'] })
  t.match(both.by('DNS zone old.test'), { result: 'pass', got: 'zone 900, active' })
  t.match(both.by('DNS zone lost.test'), { result: 'warn', got: /^no zone: tenants made under it have no DNS records/ })
  t.match(both.by('DNS zone'), { result: 'pass' })
  const readOnly = await run(t, (f) => {
    f.domains.set(900, { id: 900, domain: 'old.test', type: 'master', status: 'active', records: new Map() })
    f.catalogue.grants = { global: { add_linodes: true }, domain: [{ id: [...f.domains.keys()][0]!, permissions: 'read_write' }, { id: 900, permissions: 'read_only' }] }
  }, { olderDomains: ['old.test'] })
  t.match(readOnly.by('DNS zone old.test'), { result: 'warn', got: /needs read_write/ }, 'teardown could not remove their records')
  t.match(readOnly.by('DNS zone'), { result: 'pass' })
})

t.test('firewall: ours and as made passes; disabled or edited warns; someone else’s, or not usable, fails', async (t) => {
  const ours = (fields: Record<string, unknown> = {}) => (f: FakeLinode) => {
    f.addFirewall({ label: 'ctfhive-tenants', tags: ['ctfhive'], rules: { ...tenantFirewallRules(), version: 1 }, ...fields })
  }
  const made = await run(t, ours())
  t.match(made.by('firewall'), { result: 'pass', got: /^firewall \d+, enabled$/ })
  t.same(made.fake.requests.filter((r) => r.path.startsWith('/networking/')).map((r) => [r.method, r.path.replace(/\d+/, 'N'), r.headers['x-filter']]),
    [['GET', '/networking/firewalls', '{"label":"ctfhive-tenants"}'], ['GET', '/networking/firewalls/N/devices', undefined]])
  t.match((await run(t, ours({ status: 'disabled' }))).by('firewall'), { result: 'warn', got: /^firewall \d+ is disabled: it filters nothing$/ })
  const edited = { ...tenantFirewallRules(), inbound_policy: 'ACCEPT', version: 4 }
  t.match((await run(t, ours({ rules: edited }))).by('firewall'), { result: 'warn', got: /rules edited \(version 4\); they must still admit TCP 80 and 443/ })
  t.match((await run(t, ours({ tags: [] }))).by('firewall'), { result: 'fail', got: /labelled ctfhive-tenants but not tagged ctfhive; refusing to use it/ })

  const restricted = (addFirewalls: boolean, permissions?: string) => (f: FakeLinode) => {
    const fw = permissions === undefined ? undefined : f.addFirewall({ label: 'ctfhive-tenants', tags: ['ctfhive'], rules: { ...tenantFirewallRules(), version: 1 } })
    f.catalogue.grants = {
      global: { add_linodes: true, add_firewalls: addFirewalls },
      domain: [{ id: [...f.domains.keys()][0]!, permissions: 'read_write' }],
      firewall: fw === undefined ? [] : [{ id: fw.id, permissions: permissions! }]
    }
  }
  t.match((await run(t, restricted(true))).by('firewall'), { result: 'pass', got: 'none the restricted user can see: made at the first provisioning (one that exists needs a read_write grant)' })
  t.match((await run(t, restricted(false))).by('firewall'), { result: 'fail', got: /restricted user may not make one \(add_firewalls\)/ })
  t.match((await run(t, restricted(false, 'read_write'))).by('firewall'), { result: 'pass' })
  t.match((await run(t, restricted(true, 'read_only'))).by('firewall'), { result: 'fail', got: /may not add servers to it \(needs read_write\)/ })

  const noScope = await run(t, (f) => { f.inject({ path: '/networking/firewalls', fault: { status: 401, body: { errors: [{ reason: 'Your OAuth token is not authorized to use this endpoint.' }] } } }) })
  t.match(noScope.by('firewall'), { result: 'fail', got: '401 Your OAuth token is not authorized to use this endpoint. (the token needs the firewall:read_write scope)' })
  t.equal(noScope.by('servers behind it'), undefined, 'not asked again of a token that cannot read firewalls')
  const noGrant = await run(t, (f) => { f.inject({ path: '/networking/firewalls', fault: { status: 403, body: { errors: [{ reason: 'Unauthorized' }] } } }) })
  t.match(noGrant.by('firewall'), { result: 'fail', got: '403 Unauthorized (the restricted user needs a grant on firewalls)' })
})

t.test('servers behind it: a tenant server behind no firewall warns, by name', async (t) => {
  let ids: Record<string, number> = {}
  const drift = (oursStatus: 'enabled' | 'disabled') => (f: FakeLinode) => {
    const fw = f.addFirewall({ label: 'ctfhive-tenants', tags: ['ctfhive'], status: oursStatus, rules: { ...tenantFirewallRules(), version: 1 } })
    const theirs = f.addFirewall({ label: 'ops-special', tags: [] })
    const server = (label: string, tags = ['ctfhive', `tenant:${label}`], status = 'running') => f.addInstance({ label, tags, status }).id
    ids = { a: server('ctf-a'), b: server('ctf-b'), c: server('ctf-c'), d: server('ctf-d', undefined, 'deleting'), e: server('not-ours', []) }
    fw.linodes.add(ids.a!)
    theirs.linodes.add(ids.b!)
  }
  const found = await run(t, drift('enabled'))
  t.match(found.by('servers behind it'), { result: 'warn', got: `1 of 3 tenant servers behind no enabled firewall: ctf-c (${ids.c}); add those behind none with npm run linode:check -- --attach-firewall` })
  const lookups = found.fake.requests.filter((r) => /^\/linode\/instances\/\d+\/firewalls$/.test(r.path)).map((r) => r.path)
  t.same(lookups, [`/linode/instances/${ids.b}/firewalls`, `/linode/instances/${ids.c}/firewalls`], 'only servers not among our devices are looked up one by one')
  t.same(found.fake.requests.filter((r) => r.method !== 'GET'), [], 'still nothing but GETs')

  const disabled = await run(t, drift('disabled'))
  const oursId = [...disabled.fake.firewalls.values()].find((f) => f.label === 'ctfhive-tenants')!.id
  t.match(disabled.by('servers behind it'), {
    result: 'warn',
    got: `2 of 3 tenant servers behind no enabled firewall: ctf-a (${ids.a}, behind disabled firewall ${oursId}), ctf-c (${ids.c}); add those behind none with npm run linode:check -- --attach-firewall, and enable the disabled firewall in the console`
  }, 'a disabled firewall protects nothing')
  const onlyDisabled = await run(t, (f) => {
    const fw = f.addFirewall({ label: 'ctfhive-tenants', tags: ['ctfhive'], status: 'disabled', rules: { ...tenantFirewallRules(), version: 1 } })
    fw.linodes.add(f.addInstance({ label: 'ctf-a', tags: ['ctfhive'], status: 'running' }).id)
  })
  t.match(onlyDisabled.by('servers behind it'), { result: 'warn', got: /^1 of 1 tenant server behind no enabled firewall: ctf-a \(\d+, behind disabled firewall \d+\); enable the firewall in the console$/ })

  // A server deleted between the listing and its own lookup is gone, not a failure.
  const racing = await run(t, (f) => {
    const id = f.addInstance({ label: 'ctf-gone', tags: ['ctfhive'], status: 'running' }).id
    f.addInstance({ label: 'ctf-here', tags: ['ctfhive'], status: 'running' })
    f.inject({ path: `/linode/instances/${id}/firewalls`, fault: { status: 404, body: { errors: [{ reason: 'Not found' }] } } })
  })
  t.match(racing.by('servers behind it'), { result: 'warn', got: /^1 of 2 tenant servers behind no enabled firewall: ctf-here \(\d+\);/ })

  const many = await run(t, (f) => { for (let i = 0; i < 27; i++) f.addInstance({ label: `ctf-n${i}`, tags: ['ctfhive'], status: 'running' }) })
  t.match(many.by('servers behind it'), { result: 'warn', got: /^20 of 27 tenant servers behind no enabled firewall: ctf-n0 \(\d+\), ctf-n1 .*ctf-n4 \(\d+\), …; 7 more not checked; add those behind none with npm run linode:check -- --attach-firewall$/ })
  t.equal(many.fake.requests.filter((r) => /^\/linode\/instances\/\d+\/firewalls$/.test(r.path)).length, 20, 'at most 20 single lookups')
  const manyCovered = await run(t, (f) => {
    const theirs = f.addFirewall({ label: 'ops-special', tags: [] })
    for (let i = 0; i < 22; i++) theirs.linodes.add(f.addInstance({ label: `ctf-m${i}`, tags: ['ctfhive'], status: 'running' }).id)
  })
  t.match(manyCovered.by('servers behind it'), { result: 'warn', got: '22 tenant servers; none exposed among those checked, 2 not checked' })

  // Any other answer to a server's own lookup is not skipped like a 404: the check could not say.
  const outage = await run(t, (f) => {
    const id = f.addInstance({ label: 'ctf-flaky', tags: ['ctfhive'], status: 'running' }).id
    f.inject({ path: `/linode/instances/${id}/firewalls`, times: 3, fault: { status: 503 } })
  })
  t.match(outage.by('servers behind it'), { result: 'unknown', got: 'could not check: 503 Injected failure' })
})

t.test('an API error fails its own check only, with Linode’s reason', async (t) => {
  const { by, checks } = await run(t, (f) => { f.inject({ path: '/linode/instances', times: 1, fault: { status: 401, body: { errors: [{ reason: 'Your OAuth token is not authorized to use this endpoint.' }] } } }) })
  t.match(by('servers'), { result: 'fail', got: '401 Your OAuth token is not authorized to use this endpoint.' })
  t.equal(checks.filter((c) => c.result === 'fail').length, 1)

  // An outage proves nothing: that check is unknown, not failed.
  const down = await run(t, (f) => { f.inject({ path: '/domains', times: 2, fault: { status: 502 } }) })
  t.match(down.by('DNS zone'), { result: 'unknown', got: 'could not check: 502 Injected failure' })
  t.equal(down.checks.filter((c) => c.result !== 'pass').length, 1)
})

/** A "Linode" (a proxy, a captive portal) answering every request 200 with `body` as `type`. */
async function oddLinode (t: T, type: string, body: string): Promise<LinodeApi> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': type })
    res.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return new LinodeApi({ token: 'token', apiBase: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v4`, sleep: async () => {}, maxAttempts: 2, requestTimeoutMs: 2000, maxRetryAfterMs: 1000 })
}

t.test('a malformed 2xx reply proves nothing: unknown, said as such, not "200 error" or a TypeError failing the check', async (t) => {
  const nullBody = await linodePreflight(await oddLinode(t, 'application/json', 'null'), settings)
  t.same(nullBody, [{ check: 'token', expected: 'accepted', got: 'could not check: a malformed reply from LINODE_API_BASE (Cannot read properties of null (reading \'username\'))', result: 'unknown' }])
  const html = await linodePreflight(await oddLinode(t, 'text/html', '<html>proxy login</html>'), settings)
  t.same(html, [{ check: 'token', expected: 'accepted', got: 'could not check: a reply that is not JSON (HTTP 200)', result: 'unknown' }])
  const listing = await run(t, (f) => { f.inject({ path: '/domains', times: 2, fault: { status: 200, body: { data: 'x' } } }) })
  t.match(listing.by('DNS zone'), { result: 'unknown', got: 'could not check: a listing of /domains that is not shaped as documented (HTTP 200)' })
  t.equal(listing.checks.filter((c) => c.result !== 'pass').length, 1, 'the other checks still run')
})

t.test('settings come from the config: LINODE_PLAN replaces every plan’s type', async (t) => {
  const base = testConfig({ LINODE_REGION: 'us-southeast', LINODE_IMAGE: 'linode/debian12', BASE_DOMAIN: 'CTF.Example.org' }, t)
  const s = preflightSettings(base)
  t.same([s.region, s.image, s.baseDomain], ['us-southeast', 'linode/debian12', 'ctf.example.org'])
  t.same(s.serverTypes, [{ plan: 'solo', type: 'g6-standard-1' }, { plan: 'standard', type: 'g6-standard-2' }, { plan: 'pro', type: 'g6-standard-4' }])
  t.same(preflightSettings(testConfig({ LINODE_PLAN: 'g6-standard-6' }, t)).serverTypes.map((x) => x.type), ['g6-standard-6', 'g6-standard-6', 'g6-standard-6'])
})

t.test('at server start: failures are errors, warnings warnings, a clean run one info line', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const lines: Array<[string, Record<string, unknown>, string]> = []
  const log = {
    info: (o: object, m: string) => { lines.push(['info', o as Record<string, unknown>, m]) },
    warn: (o: object, m: string) => { lines.push(['warn', o as Record<string, unknown>, m]) },
    error: (o: object, m: string) => { lines.push(['error', o as Record<string, unknown>, m]) }
  }
  const env = { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_PLAN: 'g6-standard-2' }
  await logLinodePreflight(testConfig(env, t), log)
  t.same(lines, [['info', { passed: 9, warnings: 0, failed: 0, unknown: 0 }, 'linode settings checked']])

  lines.length = 0
  const checks = await logLinodePreflight(testConfig({ ...env, LINODE_REGION: 'ap-south', LINODE_PLAN: 'per-plan' }, t), log)
  t.same(lines.map(([level, o]) => [level, o.check]), [['error', 'region'], ['warn', 'type g6-standard-1 (solo)'], ['info', undefined]])
  t.same(lines[2]![1], { passed: 9, warnings: 1, failed: 1, unknown: 0 }, 'a summary every time')
  t.match(lines[0]![2], /provisioning will fail until it is fixed \(npm run linode:check\)/)
  t.equal(checks.length, 11)
  t.notMatch(JSON.stringify(lines), fake.token, 'no token in the log')

  // Aborted at shutdown: nothing logged. Out of time: one warning.
  lines.length = 0
  const stop = new AbortController()
  stop.abort()
  t.same(await logLinodePreflight(testConfig(env, t), log, stop.signal), [])
  t.same(lines, [])
  fake.inject({ path: '/profile', fault: { delayMs: 500 } })
  t.same(await logLinodePreflight(testConfig(env, t), log, AbortSignal.timeout(50)), [])
  t.match(lines, [['warn', {}, 'linode settings could not be checked']])
})

t.test('preflightApi: few tries, so a check never hangs on a dead API', async (t) => {
  const fake = await startFakeLinode(t)
  fake.inject({ path: '/profile', times: 5, fault: { status: 503 } })
  const checks = await linodePreflight(preflightApi(testConfig({ LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url }, t)), settings)
  t.match(checks, [{ check: 'token', result: 'unknown', got: /^could not check: 503/ }])
  t.equal(checks.length, 1, 'nothing else is asked of a Linode that does not answer')
  t.equal(fake.count('GET', '/profile'), 3, 'three tries')
})
