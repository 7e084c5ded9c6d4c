// A real HTTP server playing Linode API v4 for wire-level tests: instances (label uniqueness,
// status progression, boot, resize), Cloud Firewalls (fake-linode-firewalls.ts), domains and records,
// what the settings check reads (profile,
// grants, regions, images, types), bearer auth, paging, X-Filter, request bodies checked
// against schemas cut from the OpenAPI spec, and faults (429, 5xx, slow and lost replies).
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fakeFirewalls, type FakeFirewall } from './fake-linode-firewalls.ts'

type Schema = Record<string, any>
const fixture = (name: string): Schema => JSON.parse(readFileSync(new URL(`../fixtures/linode/${name}.schema.json`, import.meta.url), 'utf8'))
export const schemas = {
  instanceCreate: fixture('instance-create'),
  instanceResize: fixture('instance-resize'),
  recordCreate: fixture('domain-record-create'),
  recordUpdate: fixture('domain-record-update')
}

/** The JSON Schema subset the cut schemas use; a request body must not carry readOnly fields. */
export function validateSchema (schema: Schema, value: unknown, at = ''): string[] {
  const where = at === '' ? 'body' : at
  if (value === null) return schema.nullable === true ? [] : [`${where}: must not be null`]
  const errors: string[] = []
  const t = schema.type as string | undefined
  const actual = Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value
  if (t !== undefined && t !== actual && !(t === 'number' && actual === 'integer')) return [`${where}: must be ${t}, got ${actual}`]
  if (schema.enum !== undefined && !schema.enum.includes(value)) errors.push(`${where}: must be one of ${schema.enum.join(', ')}`)
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${where}: shorter than ${schema.minLength}`)
    if (schema.maxLength !== undefined && value.length > schema.maxLength) errors.push(`${where}: longer than ${schema.maxLength}`)
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) errors.push(`${where}: does not match ${schema.pattern}`)
    if (schema.format === 'byte' && !/^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value)) errors.push(`${where}: not base64`)
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${where}: below ${schema.minimum}`)
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${where}: above ${schema.maximum}`)
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${where}: fewer than ${schema.minItems} items`)
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push(`${where}: more than ${schema.maxItems} items`)
    if (schema.uniqueItems === true && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) errors.push(`${where}: items not unique`)
    if (schema.items !== undefined) value.forEach((v, i) => errors.push(...validateSchema(schema.items, v, `${where}[${i}]`)))
  }
  if (actual === 'object') {
    const obj = value as Record<string, unknown>
    for (const k of schema.required ?? []) if (!(k in obj)) errors.push(`${at === '' ? k : `${at}.${k}`}: required`)
    for (const [k, v] of Object.entries(obj)) {
      const sub = schema.properties?.[k]
      const path = at === '' ? k : `${at}.${k}`
      if (sub === undefined) {
        if (schema.additionalProperties === false) errors.push(`${path}: unknown property`)
      } else if (sub.readOnly === true) {
        errors.push(`${path}: read-only`)
      } else {
        errors.push(...validateSchema(sub, v, path))
      }
    }
  }
  for (const part of schema.allOf ?? []) errors.push(...validateSchema({ type: t, ...part }, value, at))
  return errors
}

export interface FakeInstance {
  id: number
  label: string
  status: string
  type: string
  region: string
  image: string | null
  tags: string[]
  ipv4: string[]
  ipv6: string
  created: string
  updated: string
  has_user_data: boolean
  /** GETs of this instance so far: drives the status progression (and a resize's). */
  gets: number
  /** MB its data takes on disk: a resize to a type whose disk is smaller is refused. */
  diskUsed: number
  /** The type a resize under way moves it to. */
  resizeTo?: string
  /** The resize under way ends with the server running as before (Linode gave up on it). */
  resizeFails?: boolean
}
export interface FakeRecord { id: number, type: string, name: string, target: string, ttl_sec: number, priority: number, weight: number, port: number }
export interface FakeDomain { id: number, domain: string, type: 'master', status: 'active', records: Map<number, FakeRecord> }

export interface RecordedRequest {
  method: string
  path: string
  query: Record<string, string>
  headers: IncomingMessage['headers']
  body: unknown
  fault?: string
}

export type Fault =
  | { status: number, body?: unknown, headers?: Record<string, string>, /** Apply the request first (a 5xx after the effect). */ apply?: boolean }
  | { delayMs: number }
  | { drop: 'before' | 'after' }
  /** Runs as the request arrives, before it is handled: Linode's state changing meanwhile. */
  | { before: () => void }

export interface FaultRule { method?: string, path?: string | RegExp, times?: number, fault: Fault }

export interface FakeLinodeOptions {
  token?: string
  /** DNS zones that exist. */
  domains?: string[]
  /** Statuses a new instance moves through, one step per `getsPerStep` GETs. */
  statusSteps?: string[]
  getsPerStep?: number
  /** The token lacks the images:read_only scope: a GET /images/… sent with it is refused (401). */
  noImagesScope?: boolean
}

/** What the settings check reads: regions, images, server types, availability and the user's grants. */
export interface FakeCatalogue {
  regions: Map<string, { capabilities: string[], status: string }>
  images: Map<string, { status: string, capabilities: string[], is_public: boolean, deprecated: boolean, eol: string | null, regions?: Array<{ region: string, status: string }> }>
  types: Map<string, { vcpus: number, memory: number, disk: number }>
  /** Per region: the types Linode lists as (un)available there. */
  availability: Map<string, Array<{ plan: string, available: boolean }>>
  /** null: an unrestricted user (GET /profile/grants answers 204). */
  grants: { global: { add_linodes: boolean, add_firewalls?: boolean }, domain: Array<{ id: number, permissions: string | null }>, firewall?: Array<{ id: number, permissions: string | null }> } | null
}

function defaultCatalogue (): FakeCatalogue {
  const all = ['Linodes', 'Block Storage', 'Cloud Firewall', 'Metadata']
  return {
    regions: new Map([['us-east', { capabilities: all, status: 'ok' }], ['us-southeast', { capabilities: all, status: 'ok' }], ['ap-south', { capabilities: ['Linodes', 'Cloud Firewall'], status: 'ok' }]]),
    images: new Map([
      ['linode/debian12', { status: 'available', capabilities: ['cloud-init', 'distributed-sites'], is_public: true, deprecated: false, eol: '2028-06-30T04:00:00' }],
      ['linode/debian11', { status: 'available', capabilities: ['cloud-init'], is_public: true, deprecated: true, eol: '2026-07-01T04:00:00' }],
      ['linode/arch', { status: 'available', capabilities: [], is_public: true, deprecated: false, eol: null }]
    ]),
    types: new Map([['g6-nanode-1', { vcpus: 1, memory: 1024, disk: 25600 }], ['g6-standard-1', { vcpus: 1, memory: 2048, disk: 51200 }], ['g6-standard-2', { vcpus: 2, memory: 4096, disk: 81920 }], ['g6-standard-4', { vcpus: 4, memory: 8192, disk: 163840 }], ['g6-standard-6', { vcpus: 6, memory: 16384, disk: 327680 }]]),
    availability: new Map([['us-east', [{ plan: 'g6-standard-2', available: true }, { plan: 'g6-standard-4', available: true }]]]),
    grants: null
  }
}

export interface FakeLinode {
  /** Base URL including /v4, for the executor's apiBase. */
  url: string
  token: string
  requests: RecordedRequest[]
  instances: Map<number, FakeInstance>
  domains: Map<number, FakeDomain>
  firewalls: Map<number, FakeFirewall>
  catalogue: FakeCatalogue
  inject: (rule: FaultRule) => void
  addInstance: (fields: Partial<FakeInstance> & { label: string }) => FakeInstance
  addFirewall: (fields: Partial<FakeFirewall> & { label: string }) => FakeFirewall
  addRecord: (domain: string, fields: Partial<FakeRecord> & { name: string, target: string }) => FakeRecord
  /** Requests other than the given method and path prefix are ignored. */
  count: (method: string, pathPrefix?: string) => number
  close: () => Promise<void>
}

interface Teardown { teardown: (fn: () => unknown) => void }
class HttpError extends Error {
  readonly status: number
  readonly errors: Array<{ field?: string, reason: string }>
  constructor (status: number, errors: Array<{ field?: string, reason: string }>) {
    super(errors.map((e) => e.reason).join('; '))
    this.status = status
    this.errors = errors
  }
}

const FILTERABLE: Record<string, string[]> = { instances: ['id', 'label', 'tags', 'region', 'type', 'image', 'status'], domains: ['id', 'domain', 'type', 'status', 'tags'], records: ['id', 'name', 'type', 'target'], firewalls: ['id', 'label', 'tags', 'created', 'updated'] }

function bodyErrors (schema: Schema, body: unknown): Array<{ field?: string, reason: string }> {
  return validateSchema(schema, body).map((e) => {
    const i = e.indexOf(': ')
    return { field: e.slice(0, i), reason: e.slice(i + 2) }
  })
}

export async function startFakeLinode (t?: Teardown, opts: FakeLinodeOptions = {}): Promise<FakeLinode> {
  const token = opts.token ?? 'fake-linode-token-0123456789'
  const steps = opts.statusSteps ?? ['provisioning', 'booting', 'running']
  const getsPerStep = opts.getsPerStep ?? 1
  const instances = new Map<number, FakeInstance>()
  const domains = new Map<number, FakeDomain>()
  const requests: RecordedRequest[] = []
  const catalogue = defaultCatalogue()
  const rules: Array<FaultRule & { left: number }> = []
  let nextId = 1000
  const now = (): string => new Date().toISOString().slice(0, 19)
  for (const domain of opts.domains ?? []) domains.set(++nextId, { id: nextId, domain, type: 'master', status: 'active', records: new Map() })

  function addInstance (fields: Partial<FakeInstance> & { label: string }): FakeInstance {
    const id = ++nextId
    const inst: FakeInstance = {
      id, status: steps[0]!, type: 'g6-standard-2', region: 'us-east', image: 'linode/debian12', tags: [],
      ipv4: [`203.0.113.${id % 250}`, `192.168.140.${id % 250}`], ipv6: `2600:3c00::${id.toString(16)}/128`,
      created: now(), updated: now(), has_user_data: false, gets: 0, diskUsed: 4000, ...fields
    }
    instances.set(id, inst)
    return inst
  }
  function view (i: FakeInstance): Record<string, unknown> {
    const { gets: _gets, diskUsed: _used, resizeTo: _to, resizeFails: _fails, ...rest } = i
    return { ...rest, group: '', hypervisor: 'kvm', watchdog_enabled: true, specs: { disk: 81920, memory: 4096, vcpus: 2, transfer: 4000 }, alerts: {}, backups: { enabled: false } }
  }
  function page (items: unknown[], query: Record<string, string>): Record<string, unknown> {
    const size = Number(query.page_size ?? 100)
    const n = Number(query.page ?? 1)
    if (!Number.isInteger(size) || size < 25 || size > 500) throw new HttpError(400, [{ field: 'page_size', reason: 'Must be 25-500' }])
    const pages = Math.max(1, Math.ceil(items.length / size))
    return { data: items.slice((n - 1) * size, n * size), page: n, pages, results: items.length }
  }
  function filtered<T extends object> (kind: string, items: T[], header: string | string[] | undefined): T[] {
    if (typeof header !== 'string') return items
    let filter: Record<string, unknown>
    try { filter = JSON.parse(header) } catch { throw new HttpError(400, [{ reason: 'Invalid JSON in X-Filter' }]) }
    for (const k of Object.keys(filter)) if (!FILTERABLE[kind]!.includes(k)) throw new HttpError(400, [{ reason: `Cannot filter on ${k}` }])
    return items.filter((item) => Object.entries(filter).every(([k, v]) => {
      const have = (item as Record<string, unknown>)[k]
      return Array.isArray(have) ? have.includes(v) : have === v
    }))
  }

  const cloudFirewalls = fakeFirewalls({
    nextId: () => ++nextId,
    now,
    instanceExists: (id) => instances.has(id),
    instanceLabel: (id) => instances.get(id)?.label ?? '',
    bodyErrors,
    fail: (status, errors) => { throw new HttpError(status, errors) },
    page,
    filtered
  })

  function handle (method: string, path: string, query: Record<string, string>, req: IncomingMessage, body: any): [number, unknown] {
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent)
    const fw = cloudFirewalls.handle(method, seg, body, query, req.headers['x-filter'])
    if (fw !== undefined) return fw
    if (method === 'GET' && seg[0] === 'profile' && seg.length === 1) return [200, { username: 'ctfhive-ops', email: 'ops@example.com', restricted: catalogue.grants !== null }]
    if (method === 'GET' && seg[0] === 'profile' && seg[1] === 'grants' && seg.length === 2) return catalogue.grants === null ? [204, undefined] : [200, { ...catalogue.grants, linode: [] }]
    const region = method === 'GET' && seg[0] === 'regions' ? catalogue.regions.get(seg[1] ?? '') : undefined
    if (region !== undefined && seg.length === 2) return [200, { id: seg[1], label: 'Somewhere', country: 'us', site_type: 'core', ...region }]
    if (region !== undefined && seg.length === 3 && seg[2] === 'availability') return [200, (catalogue.availability.get(seg[1]!) ?? []).map((a) => ({ region: seg[1], ...a }))]
    const image = method === 'GET' && seg[0] === 'images' ? catalogue.images.get(seg.slice(1).join('/')) : undefined
    if (image !== undefined) return [200, { id: seg.slice(1).join('/'), label: seg.at(-1), size: 2500, created_by: 'linode', ...image }]
    const type = method === 'GET' && seg[0] === 'linode' && seg[1] === 'types' && seg.length === 3 ? catalogue.types.get(seg[2]!) : undefined
    if (type !== undefined) return [200, { id: seg[2], label: seg[2], class: 'standard', transfer: 4000, ...type }]
    if (seg[0] === 'linode' && seg[1] === 'instances') {
      if (seg.length === 2 && method === 'GET') return [200, page(filtered('instances', [...instances.values()], req.headers['x-filter']).map(view), query)]
      if (seg.length === 2 && method === 'POST') {
        const errors = bodyErrors(schemas.instanceCreate, body)
        if (body?.image !== undefined && body?.root_pass === undefined) errors.push({ field: 'root_pass', reason: 'root_pass is required when deploying from an image' })
        if (errors.length > 0) throw new HttpError(400, errors)
        const label = String(body.label)
        if ([...instances.values()].some((i) => i.label.toLowerCase() === label.toLowerCase())) {
          throw new HttpError(400, [{ field: 'label', reason: 'Label must be unique among your linodes' }])
        }
        const firewall = cloudFirewalls.forCreate(body.firewall_id)
        const inst = addInstance({ label, type: body.type, region: body.region, image: body.image ?? null, tags: body.tags ?? [], has_user_data: body.metadata?.user_data !== undefined })
        if (firewall !== undefined) cloudFirewalls.attach(firewall, inst.id)
        return [200, view(inst)]
      }
      const inst = instances.get(Number(seg[2]))
      if (seg.length === 3 && inst !== undefined && method === 'GET') {
        inst.gets++
        if (inst.resizeTo !== undefined) {
          // Resizing for `getsPerStep` GETs, then running again: as the new type, or as before.
          if (inst.gets >= getsPerStep) Object.assign(inst, { status: 'running', type: inst.resizeFails === true ? inst.type : inst.resizeTo, resizeTo: undefined })
          return [200, view(inst)]
        }
        const at = steps.indexOf(inst.status)
        if (at >= 0) inst.status = steps[Math.max(at, Math.min(Math.floor(inst.gets / getsPerStep), steps.length - 1))]!
        return [200, view(inst)]
      }
      if (seg.length === 4 && seg[3] === 'boot' && inst !== undefined && method === 'POST') {
        // Linode boots only a server that is off; anything else is "busy".
        if (inst.status !== 'offline') throw new HttpError(400, [{ reason: 'Linode busy.' }])
        inst.status = 'booting'
        inst.gets = Math.max(0, steps.indexOf('booting')) * getsPerStep // on from booting at the usual pace
        return [200, {}]
      }
      if (seg.length === 4 && seg[3] === 'resize' && inst !== undefined && method === 'POST') {
        const errors = bodyErrors(schemas.instanceResize, body)
        if (errors.length > 0) throw new HttpError(400, errors)
        const to = catalogue.types.get(body.type)
        if (to === undefined) throw new HttpError(400, [{ field: 'type', reason: 'A valid plan type by that ID was not found' }])
        // Linode resizes a server that is on or off, and nothing else is under way.
        if (inst.status !== 'running' && inst.status !== 'offline') throw new HttpError(400, [{ reason: 'Linode busy.' }])
        if (body.type === inst.type) throw new HttpError(400, [{ field: 'type', reason: 'Linode is already running this service plan.' }])
        const allocated = catalogue.types.get(inst.type)?.disk ?? 0
        if ((body.allow_auto_disk_resize === false ? allocated : inst.diskUsed) > to.disk) {
          throw new HttpError(400, [{ reason: 'The Linode has allocated more disk than the new service plan allows. Delete or resize disks smaller.' }])
        }
        Object.assign(inst, { status: 'resizing', resizeTo: body.type, gets: 0 })
        return [200, {}]
      }
      if (seg.length === 3 && inst !== undefined && method === 'DELETE') {
        instances.delete(inst.id)
        cloudFirewalls.detachEverywhere(inst.id)
        return [200, {}]
      }
    }
    if (seg[0] === 'domains') {
      if (seg.length === 1 && method === 'GET') {
        const list = [...domains.values()].map(({ records: _r, ...d }) => ({ ...d, soa_email: 'ops@example.com', tags: [], ttl_sec: 0 }))
        return [200, page(filtered('domains', list, req.headers['x-filter']), query)]
      }
      const domain = domains.get(Number(seg[1]))
      if (domain !== undefined && seg.length === 2 && method === 'GET') {
        const { records: _r, ...d } = domain
        return [200, { ...d, soa_email: 'ops@example.com', tags: [], ttl_sec: 0 }]
      }
      if (domain !== undefined && seg[2] === 'records') {
        if (seg.length === 3 && method === 'GET') return [200, page(filtered('records', [...domain.records.values()], req.headers['x-filter']), query)]
        if (seg.length === 3 && method === 'POST') {
          const errors = bodyErrors(schemas.recordCreate, body)
          if (errors.length > 0) throw new HttpError(400, errors)
          if (body.type === 'A' && !/^\d+\.\d+\.\d+\.\d+$/.test(body.target ?? '')) throw new HttpError(400, [{ field: 'target', reason: 'Must be a valid IPv4 address' }])
          const rec: FakeRecord = { id: ++nextId, type: body.type, name: body.name ?? '', target: body.target ?? '', ttl_sec: body.ttl_sec ?? 0, priority: 0, weight: 0, port: 0 }
          domain.records.set(rec.id, rec)
          return [200, rec]
        }
        const rec = domain.records.get(Number(seg[3]))
        if (seg.length === 4 && rec !== undefined && method === 'PUT') {
          const errors = bodyErrors(schemas.recordUpdate, body)
          if (errors.length > 0) throw new HttpError(400, errors)
          Object.assign(rec, body)
          return [200, rec]
        }
        if (seg.length === 4 && rec !== undefined && method === 'DELETE') {
          domain.records.delete(rec.id)
          return [200, {}]
        }
      }
    }
    throw new HttpError(404, [{ reason: 'Not found' }])
  }

  function takeFault (method: string, path: string): Fault | undefined {
    const rule = rules.find((r) => r.left > 0 && (r.method === undefined || r.method === method) &&
      (r.path === undefined || (typeof r.path === 'string' ? r.path === path : r.path.test(path))))
    if (rule === undefined) return undefined
    rule.left--
    return rule.fault
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', 'http://fake')
        const path = url.pathname.replace(/^\/v4/, '')
        const raw = Buffer.concat(chunks).toString('utf8')
        let body: unknown
        try { body = raw === '' ? undefined : JSON.parse(raw) } catch { body = raw }
        const method = req.method ?? 'GET'
        const rec: RecordedRequest = { method, path, query: Object.fromEntries(url.searchParams), headers: req.headers, body }
        requests.push(rec)
        const send = (status: number, payload: unknown, headers: Record<string, string> = {}): void => {
          if (res.destroyed) return
          res.writeHead(status, { 'content-type': 'application/json', ...headers })
          res.end(JSON.stringify(payload))
        }
        const fault = takeFault(method, path)
        if (fault !== undefined) rec.fault = JSON.stringify(fault)
        if (fault !== undefined && 'drop' in fault && fault.drop === 'before') return void req.socket.destroy()
        if (fault !== undefined && 'before' in fault) fault.before()
        if (fault !== undefined && 'delayMs' in fault) await new Promise((resolve) => setTimeout(resolve, fault.delayMs))
        if (fault !== undefined && 'status' in fault && fault.apply !== true) return send(fault.status, fault.body ?? { errors: [{ reason: 'Injected failure' }] }, fault.headers)
        // A public image (linode/…) is read by anyone, without a token.
        const publicRead = method === 'GET' && path.startsWith('/images/linode/') && req.headers.authorization === undefined
        if (!publicRead && req.headers.authorization !== `Bearer ${token}`) return send(401, { errors: [{ reason: 'Invalid Token' }] })
        if (!publicRead && opts.noImagesScope === true && method === 'GET' && path.startsWith('/images/')) {
          return send(401, { errors: [{ reason: 'Your OAuth token is not authorized to use this endpoint.' }] })
        }
        let result: [number, unknown]
        try {
          result = handle(method, path, rec.query, req, body)
        } catch (err) {
          if (!(err instanceof HttpError)) throw err
          result = [err.status, { errors: err.errors }]
        }
        if (fault !== undefined && 'drop' in fault) return void req.socket.destroy()
        if (fault !== undefined && 'status' in fault) return send(fault.status, fault.body ?? { errors: [{ reason: 'Injected failure' }] }, fault.headers)
        send(result[0], result[1])
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  const fake: FakeLinode = {
    url: `http://127.0.0.1:${port}/v4`,
    token,
    requests,
    instances,
    domains,
    firewalls: cloudFirewalls.firewalls,
    catalogue,
    inject: (rule) => { rules.push({ ...rule, left: rule.times ?? 1 }) },
    addInstance,
    addFirewall: cloudFirewalls.add,
    addRecord: (name, fields) => {
      const domain = [...domains.values()].find((d) => d.domain === name)
      if (domain === undefined) throw new Error(`no zone ${name}`)
      const rec: FakeRecord = { id: ++nextId, type: 'A', ttl_sec: 300, priority: 0, weight: 0, port: 0, ...fields }
      domain.records.set(rec.id, rec)
      return rec
    },
    count: (method, prefix = '') => requests.filter((r) => r.method === method && r.path.startsWith(prefix)).length,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
  t?.teardown(() => fake.close())
  return fake
}
