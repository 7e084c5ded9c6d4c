// deploy/Dockerfile and .dockerignore, read as Docker reads them (no daemon here to build
// with): the stages, a Node 24 base, production dependencies only in the image, a non-root
// user, the health check, no secrets, and every COPY source present and inside the context.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string): string => readFileSync(`${ROOT}${path}`, 'utf8')

interface Instruction { op: string, args: string, line: number }
interface Stage { base: string, name: string, body: Instruction[] }

/** Instructions with continuation lines joined and comments dropped. */
function parseDockerfile (text: string): Instruction[] {
  const out: Instruction[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const start = i
    let line = lines[i]!
    if (/^\s*(#|$)/.test(line)) continue
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1).trimEnd()
      i++
      // A comment inside a continued instruction is dropped; the continuation goes on.
      while (/^\s*#/.test(lines[i]!) && i + 1 < lines.length) i++
      line += ` ${lines[i]!.trim()}`
    }
    const m = /^\s*(\w+)\s+(.*)$/.exec(line)
    if (m === null) throw new Error(`line ${start + 1}: not an instruction: ${line}`)
    out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start + 1 })
  }
  return out
}

function stages (instructions: Instruction[]): { globalArgs: Map<string, string>, stages: Stage[] } {
  const globalArgs = new Map<string, string>()
  const list: Stage[] = []
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!
      list.push({ base: m[1]!, name: m[2] ?? String(list.length), body: [] })
    } else if (list.length === 0) {
      if (ins.op !== 'ARG') throw new Error(`${ins.op} before the first FROM`)
      const [name, value = ''] = ins.args.split('=')
      globalArgs.set(name!, value)
    } else {
      list.at(-1)!.body.push(ins)
    }
  }
  return { globalArgs, stages: list }
}

const dockerfile = stages(parseDockerfile(read('deploy/Dockerfile')))
const byName = new Map(dockerfile.stages.map((s) => [s.name, s]))
const stage = (name: string): Stage => {
  const s = byName.get(name)
  if (s === undefined) throw new Error(`no stage ${name}`)
  return s
}
const runs = (s: Stage): string[] => s.body.filter((i) => i.op === 'RUN').map((i) => i.args)
const resolveBase = (base: string): string => base.replace(/\$\{(\w+)\}/g, (_m, n: string) => dockerfile.globalArgs.get(n) ?? '')

/** COPY/ADD sources and options. */
function copies (s: Stage): Array<{ from: string | undefined, sources: string[], dest: string }> {
  return s.body.filter((i) => i.op === 'COPY' || i.op === 'ADD').map((i) => {
    const words = i.args.split(/\s+/)
    const from = words.find((w) => w.startsWith('--from='))?.slice(7)
    const paths = words.filter((w) => !w.startsWith('--'))
    return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! }
  })
}

/** .dockerignore semantics: later patterns win, `!` re-includes, a matched directory excludes its contents. */
function ignoredBy (patterns: string[]): (path: string) => boolean {
  const rules = patterns.map((raw) => {
    const negate = raw.startsWith('!')
    const p = (negate ? raw.slice(1) : raw).replace(/\/+$/, '').replace(/^\/+/, '')
    const source = p.split(/(\*\*|\*|\?)/).map((part) => {
      if (part === '**') return '.*'
      if (part === '*') return '[^/]*'
      if (part === '?') return '[^/]'
      return part.replace(/[.+^${}()|[\]\\]/g, '\\$&')
    }).join('')
    return { negate, re: new RegExp(`^${source}$`) }
  })
  return (path: string) => {
    const parts = path.split('/')
    let ignored = false
    for (const { negate, re } of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (re.test(parts.slice(0, n).join('/'))) {
          ignored = !negate
          break
        }
      }
    }
    return ignored
  }
}
const dockerignore = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
const ignored = ignoredBy(dockerignore)

t.test('stages: deps, build, prod-deps, proxy, and the app last (the default target)', async (t) => {
  t.same(dockerfile.stages.map((s) => s.name), ['deps', 'build', 'prod-deps', 'proxy', 'app'])
  const major = read('.node-version').trim()
  const tested = JSON.parse(read('package-lock.json')).packages['node_modules/node'].version as string
  t.ok(tested.startsWith(`${major}.`), `the locked Node ${tested} is the major .node-version says`)
  t.equal(resolveBase('${NODE_IMAGE}'), `node:${tested}-bookworm-slim`, 'the image runs the Node the tests ran on, not a floating tag')
  for (const name of ['deps', 'prod-deps', 'app']) t.equal(stage(name).base, '${NODE_IMAGE}', `${name} runs on the Node base`)
  t.equal(stage('build').base, 'deps', 'build starts from the full dependencies')
  t.match(stage('proxy').base, /^caddy:2\.\d+/, 'proxy is a pinned Caddy 2 minor')
})

t.test('npm ci with every dependency for the build, production only for the image', async (t) => {
  const depsRun = runs(stage('deps')).join('\n')
  t.match(depsRun, /npm ci\b/)
  t.notMatch(depsRun, /--omit=dev/, 'the build gets dev dependencies')
  t.match(depsRun, /rm -f node_modules\/\.bin\/node/, "the `node` dev dependency's shim cannot shadow the base image's Node 24")
  t.match(runs(stage('build')).join('\n'), /npm run build/)
  t.match(runs(stage('build')).join('\n'), /apt-get install .*mkdocs mkdocs-material/, 'MkDocs from Debian builds the docs')
  t.match(runs(stage('prod-deps')).join('\n'), /npm ci --omit=dev/)
  const appCopies = copies(stage('app'))
  const modules = appCopies.filter((c) => c.sources.some((s) => s.includes('node_modules')))
  t.same(modules.map((c) => c.from), ['prod-deps'], 'node_modules come only from prod-deps')
  const built = appCopies.filter((c) => c.from === 'build').flatMap((c) => c.sources)
  t.ok(built.includes('/app/marketing'), 'the marketing build is in the image')
  t.ok(built.includes('/app/docs-site/site'), 'the docs are in the image')
  const proxyCopies = copies(stage('proxy'))
  t.ok(proxyCopies.some((c) => c.from === 'build' && c.sources.includes('/app/docs-site/site')), 'the proxy serves the same docs')
  t.ok(proxyCopies.some((c) => c.from === undefined && c.sources.includes('deploy/Caddyfile')), 'with deploy/Caddyfile')
})

t.test('the app stage: non-root, health check, HOST, and the server as the command', async (t) => {
  const body = stage('app').body
  const users = body.filter((i) => i.op === 'USER').map((i) => i.args)
  t.ok(users.length > 0, 'a USER is set')
  t.notMatch(users.at(-1)!, /^(root|0)(:|$)/, `runs as ${users.at(-1)}`)
  const user = users.at(-1)!.split(':')[0]!
  t.ok(runs(stage('app')).some((r) => r.includes(`chown ${user}:${user} /app/data`)), 'it owns only its data directory')
  t.ok(body.some((i) => i.op === 'VOLUME' && i.args.includes('/app/data')), 'which is a volume')
  const health = body.filter((i) => i.op === 'HEALTHCHECK')
  t.equal(health.length, 1)
  t.match(health[0]!.args, /CMD \["node", "-e", .*\/healthz/, 'a node-based check of /healthz')
  t.notMatch(health[0]!.args, /curl|wget/, 'no curl in the slim image')
  const env = body.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ')
  t.match(env, /\bHOST=0\.0\.0\.0\b/)
  t.match(env, /\bNODE_ENV=production\b/)
  const cmds = body.filter((i) => i.op === 'CMD')
  t.same(cmds.map((i) => JSON.parse(i.args)), [['node', 'api/server.ts']])
  t.ok(existsSync(`${ROOT}api/server.ts`))
})

// The settings marketing/build.ts writes into the pages (its manifest records them): an image
// built without one shows the default, and the app warns at every start.
const SITE_SETTINGS = ['PUBLIC_BASE_URL', 'BASE_DOMAIN', 'CONTACT_DOMAIN', 'DEPROVISION_GRACE_HOURS', 'LINODE_PLAN']

t.test('the build stage takes every setting the pages are built with', async (t) => {
  const args = stage('build').body.filter((i) => i.op === 'ARG').map((i) => i.args.split('=')[0])
  t.same([...args].sort(), [...SITE_SETTINGS].sort())
  const compose = read('deploy/compose.yaml')
  const block = compose.slice(compose.indexOf('x-build-args:'), compose.indexOf('\nx-app:'))
  for (const name of SITE_SETTINGS) t.match(block, new RegExp(`\\n  ${name}: \\$\\{${name}:-`), `compose passes ${name} from .env`)
})

t.test('no secret is baked into the image', async (t) => {
  const all = dockerfile.stages.flatMap((s) => s.body)
  for (const ins of all.filter((i) => i.op === 'ENV' || i.op === 'ARG')) {
    t.notMatch(ins.args, /(SECRET|TOKEN|PASSWORD|PRIVATE|STRIPE_|_KEY)\w*=/i, `line ${ins.line}: ${ins.op} ${ins.args.split('=')[0]}`)
  }
  const sources = dockerfile.stages.flatMap((s) => copies(s).filter((c) => c.from === undefined).flatMap((c) => c.sources))
  t.notOk(sources.some((s) => s === '.' || s.startsWith('.env')), 'never the whole context or an env file')
  for (const secret of ['.env', '.env.production', 'data/ctfhive.db', 'data/ctfhive.db-wal', 'api/x.log']) {
    t.ok(ignored(secret), `${secret} stays out of the build context`)
  }
})

t.test('every COPY source exists and is inside the build context', async (t) => {
  const sources = dockerfile.stages.flatMap((s) => copies(s).filter((c) => c.from === undefined).flatMap((c) => c.sources))
  t.ok(sources.length >= 6)
  for (const source of sources) {
    t.ok(existsSync(`${ROOT}${source}`), `${source} exists`)
    t.notOk(ignored(source), `${source} is not excluded by .dockerignore`)
  }
  for (const stageName of dockerfile.stages.flatMap((s) => copies(s).map((c) => c.from)).filter((f) => f !== undefined)) {
    t.ok(byName.has(stageName), `--from=${stageName} names a stage`)
  }
})

t.test('.dockerignore keeps build output, dependencies and history out', async (t) => {
  for (const path of ['node_modules/fastify/package.json', '.git/HEAD', 'marketing/dist/index.html', 'docs-site/site/index.html', 'tests/server.test.ts', 'coverage/x', '.tap/x', 'deploy/compose.yaml']) {
    t.ok(ignored(path), `${path} ignored`)
  }
  for (const path of ['package.json', 'package-lock.json', 'api/server.ts', 'marketing/build.ts', 'deploy/Caddyfile', 'bootstrap/ctfhive.ts']) {
    t.notOk(ignored(path), `${path} kept`)
  }
})

t.test('the parser itself', async (t) => {
  const parsed = parseDockerfile('# c\nFROM a AS b\nRUN x \\\n  # inner comment\n  && y\n\nCMD ["z"]\n')
  t.same(parsed, [
    { op: 'FROM', args: 'a AS b', line: 2 },
    { op: 'RUN', args: 'x && y', line: 3 },
    { op: 'CMD', args: '["z"]', line: 7 }
  ])
  t.throws(() => parseDockerfile('FROM a\n-- nonsense\n'), /line 2/)
  const match = ignoredBy(['data/', '**/*.db', 'deploy/*', '!deploy/Caddyfile'])
  t.ok(match('data/x/y'))
  t.ok(match('a/b/c.db'))
  t.ok(match('deploy/x'))
  t.notOk(match('deploy/Caddyfile'))
  t.notOk(match('api/data.ts'))
})
