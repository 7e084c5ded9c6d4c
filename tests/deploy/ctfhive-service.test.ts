// deploy/ctfhive.service: settings from EnvironmentFile=, the SQLite file in its own state
// directory, the usual hardening, and a stop that leaves room for the app's 15 s drain.
// `systemd-analyze verify` checks it where systemd is installed.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const UNIT = fileURLToPath(new URL('../../deploy/ctfhive.service', import.meta.url))

/** Section → key → every value given (systemd allows repeats). */
function parseUnit (text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const section = /^\[(\w+)\]$/.exec(line)
    if (section !== null) {
      current = new Map()
      sections.set(section[1]!, current)
      continue
    }
    const m = /^(\w+)=(.*)$/.exec(line)
    if (m === null || current === undefined) throw new Error(`not a unit line: ${line}`)
    current.set(m[1]!, [...(current.get(m[1]!) ?? []), m[2]!])
  }
  return sections
}

const unit = parseUnit(readFileSync(UNIT, 'utf8'))
const service = unit.get('Service')!
const one = (key: string): string | undefined => service.get(key)?.at(-1)

t.test('runs the server with its settings from the EnvironmentFile', async (t) => {
  t.same(service.get('EnvironmentFile'), ['/etc/ctfhive/ctfhive.env'])
  t.match(one('ExecStart'), /^\/\S*node api\/server\.ts$/)
  t.equal(one('WorkingDirectory'), '/opt/ctfhive')
  const env = (service.get('Environment') ?? []).join(' ')
  t.match(env, /\bNODE_ENV=production\b/)
  t.match(env, /\bHOST=127\.0\.0\.1\b/, 'behind a Caddy on the same host')
  t.match(env, /\bDATABASE_URL=sqlite:\/var\/lib\/ctfhive\//, 'the SQLite file lives in the state directory')
  t.match(env, /\bTRUST_PROXY=1\b/, 'Caddy on the same host is the one proxy: clients are told apart')
  // The env file overrides the unit: the example must not set what the unit sets.
  const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8').split('\n')
  for (const name of ['NODE_ENV', 'HOST', 'PORT', 'DATABASE_URL', 'TRUST_PROXY']) {
    t.notOk(example.some((l) => l.startsWith(`${name}=`)), `.env.example leaves ${name} commented out`)
    t.match(env, new RegExp(`\\b${name}=`), `the unit sets ${name}`)
  }
  t.equal(one('StateDirectory'), 'ctfhive')
  t.ok(unit.get('Install')?.get('WantedBy')?.includes('multi-user.target'))
})

t.test('the usual hardening', async (t) => {
  t.ok(one('DynamicUser') === 'yes' || (one('User') !== undefined && one('User') !== 'root'), 'not root')
  const expected: Record<string, string> = {
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    PrivateDevices: 'yes',
    ProtectKernelTunables: 'yes',
    ProtectKernelModules: 'yes',
    ProtectControlGroups: 'yes',
    RestrictNamespaces: 'yes',
    RestrictSUIDSGID: 'yes',
    LockPersonality: 'yes',
    SystemCallFilter: '@system-service',
    SystemCallArchitectures: 'native',
    CapabilityBoundingSet: '',
    // V8's JIT needs writable-then-executable memory: W^X enforcement would crash Node.
    MemoryDenyWriteExecute: 'no'
  }
  for (const [key, value] of Object.entries(expected)) t.equal(one(key), value, key)
  t.same(one('RestrictAddressFamilies')?.split(/\s+/).sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'], 'AF_NETLINK: os.networkInterfaces(), which Fastify calls to log the addresses of 0.0.0.0')
})

t.test('stop and restart: SIGTERM with room for the drain, restart on failure only', async (t) => {
  t.equal(one('KillSignal'), 'SIGTERM')
  const timeout = Number(/^(\d+)s$/.exec(one('TimeoutStopSec') ?? '')?.[1])
  t.ok(timeout > 15, `TimeoutStopSec=${one('TimeoutStopSec')} outlasts the 15 s drain`)
  t.equal(one('Restart'), 'on-failure')
  t.equal(one('RestartPreventExitStatus'), '78', 'a configuration error is not retried in a loop')
})

const verifyMissing = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).error !== undefined
  ? 'systemd-analyze is not installed (apt-get install systemd)'
  : false

// Optional even under CI: the unit's content is checked above; this adds systemd's own parser.
t.test('systemd-analyze verify accepts the unit', { skip: verifyMissing }, async (t) => {
  const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' })
  const execStart = one('ExecStart')!.split(' ')[0]!
  // The one complaint that is about this machine, not the unit: Node is elsewhere here.
  const complaints = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '')
    .filter((l) => existsSync(execStart) || !l.includes(`Command ${execStart} is not executable`))
  t.same(complaints, [], 'no warnings (unknown keys and bad values are only warnings to systemd)')
})
