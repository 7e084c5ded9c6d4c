import t from 'tap'
import fc from 'fast-check'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parse } from 'yaml'
import {
  CTFD_IMAGE, buildCloudConfig, credentialKeyPair, ctfName, encodeUserData, openCredentialEnvelope, userDataBuilder, type CloudConfigInput
} from '../../api/provisioning/cloud-init.ts'
import { ACME_SPEC } from '../helpers/server-spec.ts'
import { reapWithThisProcess } from '../helpers/child-reaper.ts'

const SECRET = 'control-plane-secret-key-0123456789-abcdef'
const spec = ACME_SPEC
const keys = credentialKeyPair(SECRET, spec.tenantId)
const input: CloudConfigInput = { fqdn: spec.fqdn, tenantName: spec.tenantName, adminEmail: spec.adminEmail, credentialPublicKey: keys.publicKeyPem }

interface CloudConfig { packages: string[], write_files: Array<{ path: string, permissions: string, content: string }>, runcmd: unknown[] }
function files (text: string): Record<string, string> {
  const doc = parse(text) as CloudConfig
  return Object.fromEntries(doc.write_files.map((f) => [f.path, f.content]))
}
interface Teardown { teardown: (fn: () => unknown) => void }
/** A temporary directory, removed in `t`'s teardown. */
function tempRoot (t: Teardown): string {
  const root = mkdtempSync(join(tmpdir(), 'ctfhive-cloud-init-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  return root
}
/** Writes the config's files under a temporary root (removed in `t`'s teardown), for tools to check. */
function extract (t: Teardown, text: string): string {
  const root = tempRoot(t)
  for (const [path, content] of Object.entries(files(text))) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), content, { mode: 0o755 })
  }
  return root
}
function has (bin: string): boolean {
  return spawnSync(bin, ['--version'], { stdio: 'ignore' }).error === undefined
}
const CI = process.env.CI === 'true'
/** Skips a test whose tool is missing, with a one-line reason; under CI=true it fails instead. */
function needs (bin: string, pkg = bin): { skip: string | false, missing: string | false } {
  const missing = has(bin) ? false : `${bin} is not installed (apt-get install ${pkg})`
  return { skip: CI ? false : missing, missing }
}
function requireTool (t: { fail: (m: string) => void }, need: { missing: string | false }): boolean {
  if (need.missing !== false) t.fail(`${need.missing}: required under CI=true`)
  return need.missing === false
}
const openssl = needs('openssl')
const python3 = needs('python3')
const cloudInit = needs('cloud-init')

t.test('a #cloud-config that parses and fits in user_data', async (t) => {
  const text = buildCloudConfig(input)
  t.ok(text.startsWith('#cloud-config\n'))
  const doc = parse(text) as CloudConfig
  t.same(Object.keys(doc), ['package_update', 'packages', 'ssh_pwauth', 'write_files', 'runcmd'])
  for (const pkg of ['docker.io', 'docker-compose', 'caddy', 'openssl', 'unattended-upgrades']) t.ok(doc.packages.includes(pkg), pkg)
  t.equal((doc as unknown as { ssh_pwauth: boolean }).ssh_pwauth, false, 'no SSH password login')
  t.ok(Buffer.byteLength(text) < 16 * 1024, `${Buffer.byteLength(text)} bytes`)
  const encoded = encodeUserData(text)
  t.ok(encoded.length < 16 * 1024, `${encoded.length} bytes encoded`)
  t.equal(Buffer.from(encoded, 'base64').toString('utf8'), text)
  // The bootstrap runs as a unit that retries until it succeeds, started without blocking cloud-final.
  t.same(doc.runcmd, [['systemctl', 'daemon-reload'], ['systemctl', 'enable', 'ctfhive-bootstrap.service'], ['systemctl', 'start', '--no-block', 'ctfhive-bootstrap.service']])
  const all = files(text)
  const unit = all['/etc/systemd/system/ctfhive-bootstrap.service']!
  t.match(unit, /^ExecStart=\/opt\/ctfhive\/bootstrap\.sh$/m)
  t.match(unit, /^Restart=on-failure$/m)
  t.match(unit, /^StartLimitIntervalSec=0$/m, 'it never gives up')
  t.match(unit, /^ConditionPathExists=!\/etc\/ctfhive\/bootstrap\.done$/m, 'and never runs again once done')
  t.match(all['/opt/ctfhive/bootstrap.sh']!, /touch "\$C\/bootstrap\.done"\necho 'ctfhive: bootstrap done'/, 'done is marked last')
  t.match(all['/etc/apt/apt.conf.d/20auto-upgrades']!, /Unattended-Upgrade "1"/, 'security updates, daily')
})

t.test('the bootstrap fails (and is run again) when the containers cannot start', { skip: process.platform !== 'linux' && 'needs sh' }, async (t) => {
  const root = extract(t, buildCloudConfig(input))
  const bin = join(root, 'bin')
  mkdirSync(bin)
  // Stand-ins: every tool succeeds except docker-compose, as when Docker Hub refuses pulls.
  for (const tool of ['dpkg', 'systemctl', 'install', 'openssl', 'python3', 'touch']) writeFileSync(join(bin, tool), '#!/bin/sh\nexit 0\n', { mode: 0o755 })
  writeFileSync(join(bin, 'docker-compose'), '#!/bin/sh\necho pulling >&2\nexit 1\n', { mode: 0o755 })
  writeFileSync(join(bin, 'sleep'), '#!/bin/sh\nexit 0\n', { mode: 0o755 })
  const script = files(buildCloudConfig(input))['/opt/ctfhive/bootstrap.sh']!.replaceAll('/opt/ctfhive', join(root, 'opt/ctfhive')).replaceAll('/etc/ctfhive', join(root, 'etc/ctfhive')).replaceAll('/var/lib/ctfhive', join(root, 'var'))
  writeFileSync(join(root, 'run.sh'), script, { mode: 0o755 })
  writeFileSync(join(root, 'opt/ctfhive/.env'), 'CTFD_SECRET_KEY=a\n')
  const res = spawnSync('sh', [join(root, 'run.sh')], { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin` } })
  t.not(res.status, 0, 'a failure, so systemd runs it again')
  t.match(res.stderr, /docker-compose up failed/)
  t.equal((res.stderr.match(/pulling/g) ?? []).length, 5, 'after five tries')
  t.notMatch(res.stdout, /bootstrap done/)
})

t.test('compose: pinned CTFd, MariaDB utf8mb4 and Redis on an internal network', async (t) => {
  const compose = parse(files(buildCloudConfig(input))['/opt/ctfhive/docker-compose.yml']!)
  const { ctfd, db, cache } = compose.services
  t.match(ctfd.image, /^ctfd\/ctfd:3\.8\.\d+$/)
  t.equal(ctfd.image, CTFD_IMAGE)
  t.same(ctfd.ports, ['127.0.0.1:8000:8000'], 'CTFd is reachable only from the server itself')
  t.match(ctfd.environment, { REVERSE_PROXY: 'true', TRUSTED_HOSTS: 'acme.ctfhive.test', SECRET_KEY: '${CTFD_SECRET_KEY}', REDIS_URL: 'redis://cache:6379' })
  t.equal(ctfd.environment.DATABASE_URL, 'mysql+pymysql://ctfd:${DB_PASSWORD}@db/ctfd')
  t.equal(db.image, 'mariadb:10.11')
  t.ok(db.command.includes('--character-set-server=utf8mb4') && db.command.includes('--collation-server=utf8mb4_unicode_ci'))
  t.match(cache.image, /^redis:/)
  t.same([db.networks, cache.networks], [['internal'], ['internal']])
  t.same(compose.networks.internal, { internal: true })
  t.notOk('ports' in db || 'ports' in cache)
  t.throws(() => buildCloudConfig({ ...input, ctfdImage: 'ctfd/ctfd:latest' }), /pinned tag/)
  t.throws(() => buildCloudConfig({ ...input, ctfdImage: 'ctfd/ctfd' }), /pinned tag/)
  t.equal(parse(files(buildCloudConfig({ ...input, ctfdImage: 'ctfd/ctfd:3.8.6' }))['/opt/ctfhive/docker-compose.yml']!).services.ctfd.image, 'ctfd/ctfd:3.8.6')
})

t.test('Caddy serves the FQDN with automatic TLS, staging CA on request', async (t) => {
  const caddy = files(buildCloudConfig(input))['/etc/ctfhive/Caddyfile']!
  t.match(caddy, /^acme\.ctfhive\.test \{\n/m)
  t.match(caddy, /reverse_proxy 127\.0\.0\.1:8000/)
  t.notMatch(caddy, /acme_ca/)
  const staging = files(buildCloudConfig({ ...input, acmeStaging: true, acmeEmail: 'ops@ctfhive.test' }))['/etc/ctfhive/Caddyfile']!
  t.match(staging, /acme_ca https:\/\/acme-staging-v02\.api\.letsencrypt\.org\/directory/)
  t.match(staging, /email ops@ctfhive\.test/)
})

t.test('no secret in clear: the same tenant always gets the same text', async (t) => {
  const build = userDataBuilder(SECRET)
  const a = build(spec)
  t.equal(build(spec), a, 'deterministic, so nothing random (no secret) was made here')
  t.not(build({ ...spec, tenantId: 'ffffffffffffffffffffffffffffffff' }), a, 'each tenant has its own key')
  const text = Buffer.from(a, 'base64').toString('utf8')
  t.notOk(text.includes(SECRET))
  const privateDer = keys.privateKey.export({ type: 'pkcs8', format: 'der' })
  for (const form of [privateDer.toString('base64'), privateDer.subarray(16).toString('base64'), privateDer.subarray(16).toString('hex')]) t.notOk(text.includes(form))
  t.notMatch(text, /PRIVATE KEY/)
  // Every credential-looking assignment is a reference or made by openssl on the server.
  const assignments = text.match(/\b\w*(PASSWORD|SECRET|_KEY|pass)\w*\b\s*[:=]\s*\S+/gi) ?? []
  t.ok(assignments.length >= 4)
  for (const a of assignments) t.match(a, /[:=]\s*(\$\{\w+\}|%s|\$\(openssl rand|ctfd\/ctfd)|password = open|pass\.|pass\w*:/, a)
  // No high-entropy token other than the public key.
  const publicB64 = keys.publicKeyPem.split('\n')[1]
  const tokens = (text.match(/[A-Za-z0-9+/=_-]{20,}/g) ?? []).filter((s) => /[A-Z]/.test(s) && /[a-z]/.test(s) && /\d/.test(s))
    .filter((s) => !/^[A-Z][A-Za-z]+=\d+$/.test(s)) // systemd settings such as StartLimitIntervalSec=0
  t.same(tokens, [publicB64])
})

t.test('setup is completed before Caddy exposes the instance', async (t) => {
  const all = files(buildCloudConfig(input))
  const lines = all['/opt/ctfhive/bootstrap.sh']!.split('\n')
  const at = (re: RegExp): number => lines.findIndex((l) => re.test(l))
  t.ok(at(/systemctl stop caddy/) >= 0 && at(/systemctl stop caddy/) < at(/docker-compose up/), 'the packaged Caddy is stopped first')
  t.ok(at(/docker-compose up/) < at(/ctfd-setup\.py/))
  t.ok(at(/seal\.sh/) < at(/ctfd-setup\.py/), 'the password is sealed before it is used')
  t.ok(at(/ctfd-setup\.py/) < at(/\/etc\/caddy\/Caddyfile/))
  t.ok(at(/\/etc\/caddy\/Caddyfile/) < at(/systemctl .*restart caddy/))
  t.ok(at(/rm -f "\$C\/admin\.pass"/) > at(/ctfd-setup\.py/), 'the clear password is removed after setup')
  t.notOk(Object.keys(all).some((p) => p.startsWith('/etc/caddy/')), 'no site config until the bootstrap installs it')
  t.match(all['/etc/ctfhive/firewall.nft']!, /policy drop;[\s\S]*tcp dport \{ 80, 443 \} accept/)
  t.notMatch(all['/etc/ctfhive/firewall.nft']!, /\b22\b/, 'no SSH')
  t.match(all['/etc/ctfhive/firewall.nft']!, /hook prerouting priority raw;[\s\S]*iif != lo ip daddr 127\.0\.0\.0\/8 drop/, "nothing from outside reaches Docker's 127.0.0.1 publish")
})

t.test('bad input is refused', async (t) => {
  t.throws(() => buildCloudConfig({ ...input, fqdn: 'not a host' }), /invalid FQDN/)
  t.throws(() => buildCloudConfig({ ...input, adminEmail: 'nope' }), /admin email/)
  t.throws(() => buildCloudConfig({ ...input, acmeEmail: 'a@b.c}\n{' }), /ACME email/)
  t.throws(() => buildCloudConfig({ ...input, credentialPublicKey: 'SECRET' }), /PEM public key/)
  t.match(buildCloudConfig({ ...input, fqdn: 'spring-ctf-1a2b3c.ctfhive.xn--p1ai' }), /spring-ctf-1a2b3c\.ctfhive\.xn--p1ai/, 'an IDN top-level domain, as the config allows')
  // The same tenant fails the same way at every attempt: the job must not retry it.
  const build = userDataBuilder('k'.repeat(40))
  t.throws(() => build({ ...ACME_SPEC, adminEmail: 'nope' }), { name: 'ExecutorError', retryable: false, message: /admin email/ })
})

t.test('a long name of emoji is cut between characters, and the setup script can send it', { skip: python3.skip }, async (t) => {
  const name = `a${'😀'.repeat(200)}`
  t.equal([...ctfName(name)].length, 128)
  t.ok(ctfName(name).isWellFormed())
  t.equal(ctfName('x\ud83d'), 'x\ufffd', 'a lone surrogate in the input is replaced')
  if (!requireTool(t, python3)) return
  const root = extract(t, buildCloudConfig({ ...input, tenantName: name }))
  // What ctfd-setup.py does with the name: json.load, then urlencode (which refuses lone surrogates).
  const res = spawnSync('python3', ['-c', 'import json, sys, urllib.parse; print(len(urllib.parse.urlencode({"n": json.load(open(sys.argv[1]))["ctf_name"]})))', join(root, 'etc/ctfhive/tenant.json')], { encoding: 'utf8' })
  t.equal(res.status, 0, res.stderr)
})

t.test('any tenant name stays inside tenant.json', async (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (name) => {
    const tenant = JSON.parse(files(buildCloudConfig({ ...input, tenantName: name }))['/etc/ctfhive/tenant.json']!)
    const expected = ctfName(name) || input.fqdn
    return tenant.ctf_name === expected && tenant.ctf_name.isWellFormed() && [...tenant.ctf_name].length <= 128 &&
      tenant.fqdn === input.fqdn && Object.keys(tenant).length === 5
  }), { numRuns: 300 })
  t.pass('300 names, each round-tripped')
})

t.test('the server-side seal opens with the tenant key only', { skip: openssl.skip }, async (t) => {
  if (!requireTool(t, openssl)) return
  const root = extract(t, buildCloudConfig(input))
  const password = 'Xy7+generated/on-the-server=='
  const sealed = spawnSync('sh', [join(root, 'opt/ctfhive/seal.sh'), join(root, 'etc/ctfhive/credential.pub.pem')], { input: password, encoding: 'utf8' })
  t.equal(sealed.status, 0, sealed.stderr)
  t.notOk(sealed.stdout.includes(password))
  t.equal(openCredentialEnvelope(SECRET, spec.tenantId, sealed.stdout), password)
  t.throws(() => openCredentialEnvelope(SECRET, 'ffffffffffffffffffffffffffffffff', sealed.stdout), /not sealed for this tenant/)
  t.throws(() => openCredentialEnvelope('another-secret', spec.tenantId, sealed.stdout), /not sealed for this tenant/)
  t.throws(() => openCredentialEnvelope(SECRET, spec.tenantId, '{"v":2}'), /unknown version/)
  t.throws(() => openCredentialEnvelope(SECRET, spec.tenantId, '{"v":1,"epk":"AA==","iv":"","ct":"","mac":""}'), /malformed/)
})

t.test('ctfd-setup.py completes setup against a CTFd look-alike', { skip: python3.skip }, async (t) => {
  if (!requireTool(t, python3)) return
  let done = false
  const posts: Array<Record<string, string>> = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      // TRUSTED_HOSTS: CTFd answers 400 to any other Host.
      if (req.headers.host !== 'acme.ctfhive.test') return res.writeHead(400).end('bad host')
      if (req.url === '/healthcheck') return res.writeHead(200).end('OK')
      if (req.url !== '/setup') return res.writeHead(404).end()
      if (done) return res.writeHead(302, { location: '/' }).end()
      if (req.method === 'GET') {
        res.writeHead(200, { 'set-cookie': 'session=s3ss; HttpOnly; Path=/; SameSite=Lax', 'content-type': 'text/html' })
        return res.end('<script>window.init = {\'csrfNonce\': "n0nce"}</script><form><input id="nonce" name="nonce" type="hidden" value="n0nce"></form>')
      }
      const form = Object.fromEntries(new URLSearchParams(body))
      posts.push(form)
      if (req.headers.cookie !== 'session=s3ss' || form.nonce !== 'n0nce') return res.writeHead(403).end()
      done = true
      res.writeHead(302, { location: '/' }).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const root = extract(t, buildCloudConfig(input))
  writeFileSync(join(root, 'admin.pass'), 'Generated-Pass-123\n')
  // The look-alike is healthy at once; a script orphaned by a killed test gives up in seconds,
  // not after the 20 minutes a real server waits for CTFd.
  const tenantFile = join(root, 'etc/ctfhive/tenant.json')
  writeFileSync(tenantFile, JSON.stringify({ ...JSON.parse(readFileSync(tenantFile, 'utf8')), wait_s: 10 }))
  const run = () => new Promise<{ code: number | null, out: string }>((resolve) => {
    const child = spawn('python3', [join(root, 'opt/ctfhive/ctfd-setup.py'), tenantFile, join(root, 'admin.pass'),
      `http://127.0.0.1:${(server.address() as AddressInfo).port}`])
    reapWithThisProcess(child)
    let out = ''
    child.stdout.on('data', (c) => { out += c })
    child.stderr.on('data', (c) => { out += c })
    child.on('close', (code) => resolve({ code, out }))
  })
  const first = await run()
  t.equal(first.code, 0, first.out)
  t.same(posts.map(({ nonce, name, email, password, ctf_name: ctfName, user_mode: mode }) => ({ nonce, name, email, password, ctfName, mode })),
    [{ nonce: 'n0nce', name: 'admin', email: 'owner@acme.test', password: 'Generated-Pass-123', ctfName: 'Acme CTF', mode: 'users' }])
  t.notOk(first.out.includes('Generated-Pass-123'), 'the password is never printed')
  const second = await run()
  t.equal(second.code, 0)
  t.match(second.out, /setup is done/)
  t.equal(posts.length, 1, 'a second run changes nothing')
})

t.test('cloud-init accepts the config', { skip: cloudInit.skip }, async (t) => {
  if (!requireTool(t, cloudInit)) return
  const dir = tempRoot(t)
  for (const [name, extra] of [['plain', {}], ['staging', { acmeStaging: true, acmeEmail: 'ops@ctfhive.test' }], ['odd-name', { tenantName: 'Ünïcode \u2028 \u0085 "quotes" #: {x}' }]] as const) {
    const file = join(dir, `${name}.yaml`)
    writeFileSync(file, buildCloudConfig({ ...input, ...extra }))
    const res = spawnSync('cloud-init', ['schema', '--config-file', file], { encoding: 'utf8' })
    t.equal(res.status, 0, `${name}: ${res.stdout}${res.stderr}`)
  }
})

const toolChecks: Array<{ what: string, bin: string, args: (root: string) => string[], need: { skip: string | false, missing: string | false } }> = [
  { what: 'sh -n', bin: 'sh', args: (root) => ['-n', join(root, 'opt/ctfhive/bootstrap.sh')], need: { skip: false, missing: false } },
  { what: 'sh -n seal', bin: 'sh', args: (root) => ['-n', join(root, 'opt/ctfhive/seal.sh')], need: { skip: false, missing: false } },
  { what: 'py_compile', bin: 'python3', args: (root) => ['-m', 'py_compile', join(root, 'opt/ctfhive/ctfd-setup.py')], need: python3 },
  { what: 'caddy validate', bin: 'caddy', args: (root) => ['validate', '--config', join(root, 'etc/ctfhive/Caddyfile'), '--adapter', 'caddyfile'], need: needs('caddy') },
  { what: 'nft -c', bin: 'nft', args: (root) => ['-c', '-f', join(root, 'etc/ctfhive/firewall.nft')], need: needs('nft', 'nftables') },
  {
    what: 'docker-compose config',
    bin: 'docker-compose',
    args: (root) => ['--project-directory', join(root, 'opt/ctfhive'), '-f', join(root, 'opt/ctfhive/docker-compose.yml'), 'config', '-q'],
    need: needs('docker-compose')
  }
]

t.test('the files inside pass their own tools', async (t) => {
  const root = extract(t, buildCloudConfig({ ...input, acmeStaging: true }))
  writeFileSync(join(root, 'opt/ctfhive/.env'), 'CTFD_SECRET_KEY=a\nDB_PASSWORD=b\nDB_ROOT_PASSWORD=c\n')
  for (const { what, bin, args, need } of toolChecks) {
    t.test(what, { skip: need.skip }, async (t) => {
      if (!requireTool(t, need)) return
      const res = spawnSync(bin, args(root), { encoding: 'utf8', env: { ...process.env, HOME: root, XDG_DATA_HOME: root, XDG_CONFIG_HOME: root } })
      // nft -c needs CAP_NET_ADMIN even to only check; a container may not grant it.
      if (bin === 'nft' && /Operation not permitted/.test(res.stderr)) {
        t.pass('nft -c', { skip: 'no CAP_NET_ADMIN here, so nft cannot check the ruleset' })
        return
      }
      t.equal(res.status, 0, `${what}: ${res.stderr.split('\n').slice(-3).join(' ')}`)
    })
  }
})
