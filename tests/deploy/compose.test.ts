// deploy/compose.yaml, read as Compose reads it (there is no Compose here to run it): two app
// instances on PostgreSQL behind Caddy, settings from .env, and no secret written inline.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url))
// Compose resolves the YAML merge key (<<) the way YAML 1.1 does.
const compose = parse(readFileSync(`${DEPLOY}compose.yaml`, 'utf8'), { merge: true }) as Record<string, any>
const services = compose.services as Record<string, Record<string, any>>

/** `${VAR}`, `${VAR:-default}` or `${VAR:?message}` names, in the order they appear. */
function interpolated (value: string): string[] {
  return [...value.matchAll(/\$\{(\w+)(?::?[-?][^}]*)?\}/g)].map((m) => m[1]!)
}

t.test('the services: two app instances, PostgreSQL and Caddy', async (t) => {
  t.same(Object.keys(services).sort(), ['app1', 'app2', 'caddy', 'db'])
  t.same(services.app1, services.app2, 'the instances are configured alike')
})

t.test('app instances: the image from deploy/Dockerfile, on the shared PostgreSQL', async (t) => {
  const app = services.app1!
  t.match(app.build, { context: '..', dockerfile: 'deploy/Dockerfile', target: 'app' })
  t.ok(existsSync(`${DEPLOY}${app.build.context}/${app.build.dockerfile}`), 'the Dockerfile is where the context says')
  t.equal(app.env_file, '../.env', 'settings from the repository .env')
  t.match(app.environment, { NODE_ENV: 'production', HOST: '0.0.0.0', PORT: '3000', TRUST_PROXY: '1' })
  const url = new URL(app.environment.DATABASE_URL.replace(/\$\{[^}]+\}/g, 'x'))
  t.equal(url.protocol, 'postgres:')
  t.equal(url.hostname, 'db', 'the db service')
  t.same(interpolated(app.environment.DATABASE_URL), ['POSTGRES_PASSWORD'], 'the password comes from .env')
  t.match(app.depends_on, { db: { condition: 'service_healthy' } })
  const grace = Number(/^(\d+)s$/.exec(app.stop_grace_period)?.[1])
  t.ok(grace > 15, `stop_grace_period ${app.stop_grace_period} outlasts the 15 s drain`)
  t.equal(app.read_only, true)
})

t.test('PostgreSQL: 15 or 16, a named volume, a health check, reachable only from the apps', async (t) => {
  const db = services.db!
  t.match(db.image, /^postgres:1[56]([.-]|$)/)
  const volume = (db.volumes as string[]).find((v) => v.endsWith(':/var/lib/postgresql/data'))
  t.ok(volume, 'the data directory is a volume')
  t.ok(Object.hasOwn(compose.volumes, volume!.split(':')[0]!), 'a named volume, declared')
  t.match(db.healthcheck.test.join(' '), /pg_isready -h 127\.0\.0\.1 /, 'over TCP: the first-run server listens on its socket only')
  t.same(interpolated(db.environment.POSTGRES_PASSWORD), ['POSTGRES_PASSWORD'])
  t.notOk(db.ports, 'no published port')
  t.same(db.networks, ['back'])
  t.equal(compose.networks.back.internal, true, 'the back network has no way out')
  t.ok(services.app1!.networks.includes('back'))
  t.notOk(services.caddy!.networks.includes('back'), 'Caddy cannot reach the database')
})

t.test('Caddy: the Caddyfile, ports 80 and 443, both instances upstream', async (t) => {
  const caddy = services.caddy!
  t.match(caddy.build, { context: '..', dockerfile: 'deploy/Dockerfile', target: 'proxy' })
  const mount = (caddy.volumes as string[]).find((v) => v.includes(':/etc/caddy/Caddyfile'))
  t.ok(mount, 'the Caddyfile is mounted')
  t.ok(existsSync(`${DEPLOY}${mount!.split(':')[0]}`), `${mount} exists`)
  t.ok((caddy.volumes as string[]).some((v) => v.startsWith('caddy_data:/data')), 'certificates persist')
  for (const port of ['80:80', '443:443']) t.ok(caddy.ports.includes(port), port)
  t.equal(caddy.read_only, true, 'the proxy writes only its volumes')
  t.same([caddy.cap_drop, caddy.cap_add, caddy.security_opt], [['ALL'], ['NET_BIND_SERVICE'], ['no-new-privileges:true']], 'and binds 80 and 443 with the one capability that takes')
  t.same(caddy.tmpfs, ['/tmp'])
  t.same(caddy.environment.APP_UPSTREAMS.split(/\s+/), ['app1:3000', 'app2:3000'])
  t.same(interpolated(caddy.environment.BASE_DOMAIN), ['BASE_DOMAIN'])
  // The site's host, PUBLIC_BASE_URL's (Compose cannot take a URL apart): .env names it.
  t.same(interpolated(caddy.environment.SITE_HOST), ['SITE_HOST'], 'SITE_HOST from .env')
  t.match(readFileSync(`${DEPLOY}Caddyfile`, 'utf8'), /^import site \{\$SITE_HOST\} \{\$BASE_DOMAIN:ctfhive\.us\}$/m, 'the Caddyfile serves SITE_HOST, else BASE_DOMAIN')
  t.notOk(caddy.env_file, "Caddy does not get the app's secrets")
})

t.test('no secret is written inline', async (t) => {
  const found: string[] = []
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) node.forEach((v, i) => { walk(v, `${path}[${i}]`) })
    else if (node !== null && typeof node === 'object') for (const [k, v] of Object.entries(node)) walk(v, `${path}.${k}`)
    else if (typeof node === 'string' && /(PASSWORD|SECRET|TOKEN|_KEY)\b/i.test(path)) {
      if (interpolated(node).length === 0) found.push(`${path}=${node}`)
    } else if (typeof node === 'string' && /:\/\/[^/:@\s]+:([^@$\s]+)@/.test(node)) {
      found.push(`${path}: a password in a URL`)
    }
  }
  walk(compose, '')
  t.same(found, [])
})

t.test('every service bounds its logs: Docker\'s default json-file log grows forever', async (t) => {
  for (const [name, service] of Object.entries(services)) {
    const logging = service.logging as { driver?: string, options?: Record<string, string> } | undefined
    t.ok(logging, `${name}: sets logging`)
    t.ok(logging?.driver === 'local' || logging?.driver === 'json-file', `${name}: a driver docker compose logs reads (${String(logging?.driver)})`)
    const size = /^(\d+)([kmg])$/.exec(logging?.options?.['max-size'] ?? '')
    const files = Number(logging?.options?.['max-file'])
    t.ok(size !== null && Number(size[1]) > 0, `${name}: max-size ${String(logging?.options?.['max-size'])}`)
    t.ok(Number.isInteger(files) && files >= 1 && files <= 10, `${name}: max-file ${String(logging?.options?.['max-file'])}`)
    t.equal(typeof logging?.options?.['max-file'], 'string', `${name}: options are strings, as Docker takes them`)
  }
})
