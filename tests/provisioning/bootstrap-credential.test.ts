// The first-boot script is re-run by systemd after any failure or reboot. These tests run the
// real bootstrap.sh under sh, stop it dead at each command in turn (before it, then after it),
// run it again, and check that the buyer can still open the admin password CTFd was set up with.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parse } from 'yaml'
import { buildCloudConfig, credentialKeyPair, openCredentialEnvelope } from '../../api/provisioning/cloud-init.ts'
import { ACME_SPEC } from '../helpers/server-spec.ts'

const SECRET = 'control-plane-secret-key-0123456789-abcdef'
const config = buildCloudConfig({
  fqdn: ACME_SPEC.fqdn, tenantName: ACME_SPEC.tenantName, adminEmail: ACME_SPEC.adminEmail,
  credentialPublicKey: credentialKeyPair(SECRET, ACME_SPEC.tenantId).publicKeyPem
})

// Stand-ins for what a test cannot run; CTFd keeps the first password it is set up with.
const FAKE: Record<string, string> = {
  dpkg: 'exit 0',
  'apt-get': 'exit 0',
  systemctl: 'exit 0',
  'docker-compose': 'exit 0',
  sleep: 'exit 0',
  sync: 'exit 0',
  python3: `if [ -e "$ROOT/ctfd-password" ]; then echo 'ctfd-setup: setup is done'; exit 0; fi
  [ -s "$3" ] || exit 1
  cp "$3" "$ROOT/ctfd-password"`
}
// Real tools, wrapped only to count the call and cut the run there.
const REAL = ['install', 'openssl', 'tr', 'mv', 'chmod', 'touch', 'rm', 'cp', 'cat', 'ln']

// Each call is numbered (under a lock: pipelines run two at once); at call $CUT_AT the bootstrap
// is killed, before the command runs or just after, as a reboot or power cut would.
function wrapper (name: string, body: string): string {
  return `#!/bin/sh
PATH=/usr/bin:/bin
# A subshell, so a stand-in's exit does not end the wrapper.
run () (
  ${body}
)
exec 9>>"$ROOT/calls"
flock 9
printf '%s\\n' "${name} $*" >&9
n=0
while read -r _; do n=$((n + 1)); done < "$ROOT/calls"
exec 9>&-
[ "$n" = "\${CUT_AT:-}" ] || { run "$@"; exit $?; }
printf '%s\\n' "${name} $*" > "$ROOT/cut"
[ "$CUT_WHEN" = before ] || run "$@" || true
read -r pid < "$ROOT/pid"
kill -KILL "$pid"
exit 1
`
}

/** The cloud-config's files as the test writes them: each path and its text moved under `root`. */
function placed (root: string): Array<{ path: string, content: string }> {
  const at = (p: string): string => p.replaceAll('/opt/ctfhive', join(root, 'opt/ctfhive')).replaceAll('/etc/ctfhive', join(root, 'etc/ctfhive'))
    .replaceAll('/var/lib/ctfhive', join(root, 'var')).replaceAll('/etc/caddy', join(root, 'caddy'))
  // A path the bootstrap names goes where its wrapped tools look; any other (systemd units, apt
  // settings) is kept under root as it is, so a run never writes over the host's own files.
  return (parse(config) as { write_files: Array<{ path: string, content: string }> }).write_files
    .map((f) => ({ path: at(f.path) !== f.path ? at(f.path) : join(root, f.path), content: at(f.content) }))
}

/** A server's files under `root`, with every tool the bootstrap calls wrapped; returns the bootstrap runner. */
function server (root: string): (env: Record<string, string>) => ReturnType<typeof spawnSync> {
  const files = placed(root)
  const outside = files.filter((f) => !f.path.startsWith(`${root}/`)).map((f) => f.path)
  if (outside.length > 0) throw new Error(`would write outside the test root: ${outside.join(', ')}`)
  for (const f of files) {
    mkdirSync(dirname(f.path), { recursive: true })
    writeFileSync(f.path, f.content, { mode: 0o755 })
  }
  mkdirSync(join(root, 'caddy'))
  const bin = join(root, 'bin')
  mkdirSync(bin)
  for (const [name, body] of Object.entries(FAKE)) writeFileSync(join(bin, name), wrapper(name, body), { mode: 0o755 })
  for (const name of REAL) writeFileSync(join(bin, name), wrapper(name, `${name} "$@"`), { mode: 0o755 })
  const seal = join(root, 'opt/ctfhive/seal.sh')
  writeFileSync(`${seal}.real`, readFileSync(seal), { mode: 0o755 })
  writeFileSync(seal, wrapper('seal.sh', `sh "${seal}.real" "$@"`), { mode: 0o755 })
  writeFileSync(join(root, 'calls'), '')
  // exec keeps the pid, so the wrappers kill the bootstrap itself and nothing else.
  return (env) => spawnSync('sh', ['-c', 'echo $$ > "$ROOT/pid"; exec sh "$ROOT/opt/ctfhive/bootstrap.sh"'],
    { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin`, ROOT: root, ...env } })
}

function has (bin: string, args = ['--version']): boolean {
  return spawnSync(bin, args, { stdio: 'ignore' }).error === undefined
}
const missing = ['openssl', 'flock'].filter((bin) => !has(bin))
// Under CI=true a missing tool fails the test instead of skipping it.
const skip = process.platform !== 'linux' ? 'needs sh' : missing.length > 0 && process.env.CI !== 'true' ? `needs ${missing.join(', ')}` : false

t.test('every file the cloud-config writes is placed under the test root, none at its real path', async (t) => {
  const root = join(tmpdir(), 'ctfhive-bootstrap-placed')
  const files = placed(root)
  t.ok(files.some((f) => f.path.endsWith('/etc/systemd/system/ctfhive-bootstrap.service')), 'the systemd units are among them')
  t.same(files.filter((f) => !f.path.startsWith(`${root}/`)).map((f) => f.path), [], 'none is outside the root')
})

for (const when of ['before', 'after'] as const) {
  t.test(`a bootstrap cut off ${when} any command ends, when run again, with the sealed password in CTFd`, { skip }, async (t) => {
    t.same(missing, [], 'openssl and flock are installed')
    const parent = mkdtempSync(join(tmpdir(), 'ctfhive-bootstrap-'))
    t.teardown(() => rmSync(parent, { recursive: true, force: true }))
    const cuts: string[] = []
    for (let n = 1; n < 200; n++) {
      const root = join(parent, `${when}-${n}`)
      const run = server(root)
      const first = run({ CUT_AT: String(n), CUT_WHEN: when })
      if (!existsSync(join(root, 'cut'))) {
        t.equal(first.status, 0, `no call ${n}: the uncut run completes (${String(first.stderr)})`)
        break
      }
      const cut = readFileSync(join(root, 'cut'), 'utf8').trim().replaceAll(root, '')
      cuts.push(cut)
      t.test(`cut ${when} ${cut}`, async (t) => {
        t.equal(first.signal, 'SIGKILL', 'the first run was stopped dead')
        const again = run({})
        t.equal(again.status, 0, `the run again completes: ${String(again.stderr)}`)
        const envelope = join(root, 'var/public/admin-credential.json')
        t.ok(existsSync(envelope), 'the sealed credential is published')
        t.ok(existsSync(join(root, 'ctfd-password')), 'CTFd was set up')
        if (existsSync(envelope) && existsSync(join(root, 'ctfd-password'))) {
          t.equal(openCredentialEnvelope(SECRET, ACME_SPEC.tenantId, readFileSync(envelope, 'utf8')), readFileSync(join(root, 'ctfd-password'), 'utf8'),
            'the envelope holds the password CTFd was set up with')
          t.equal(statSync(envelope).mode & 0o777, 0o644, 'Caddy can read it')
        }
        t.same(readdirSync(join(root, 'etc/ctfhive')).filter((f) => f.startsWith('admin.pass')), [], 'no clear password is left')
        t.ok(existsSync(join(root, 'etc/ctfhive/bootstrap.done')))
      })
    }
    // The points where the old script lost the password, or kept it in clear, are among those cut
    // (which of openssl and tr, running at once, is counted first varies).
    const points = when === 'before'
      ? [/^seal\.sh /, /^mv \S*\/envelope\.new \S*\/admin-credential\.json$/, /^python3 /, /^rm /]
      : [/^(openssl rand -base64|tr) /, /^seal\.sh /, /^python3 /, /^touch \S*\/setup\.done$/]
    for (const point of points) t.ok(cuts.some((c) => point.test(c)), `cut ${when} ${String(point)}`)
  })
}
