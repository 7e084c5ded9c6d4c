// Cloud Firewalls for the fake Linode (fake-linode.ts): create (label unique, body checked
// against the schema cut from the spec), list, get, devices (add, list), a server's
// firewalls, and `firewall_id` at server create. A server has one firewall at a time;
// deleting a server removes its device.
import { readFileSync } from 'node:fs'

type Schema = Record<string, any>
type Reason = { field?: string, reason: string }
const fixture = (name: string): Schema => JSON.parse(readFileSync(new URL(`../fixtures/linode/${name}.schema.json`, import.meta.url), 'utf8'))
export const firewallSchemas = { create: fixture('firewall-create'), deviceCreate: fixture('firewall-device-create') }

export interface FakeFirewall {
  id: number
  label: string
  status: 'enabled' | 'disabled' | 'deleted'
  tags: string[]
  rules: { inbound_policy: string, outbound_policy: string, inbound: unknown[], outbound: unknown[], version: number }
  created: string
  updated: string
  /** Server ids behind it. */
  linodes: Set<number>
}

export interface FirewallContext {
  nextId: () => number
  now: () => string
  instanceExists: (id: number) => boolean
  instanceLabel: (id: number) => string
  /** The request body's schema errors. */
  bodyErrors: (schema: Schema, body: unknown) => Reason[]
  fail: (status: number, errors: Reason[]) => never
  page: (items: unknown[], query: Record<string, string>) => unknown
  filtered: <T extends object>(kind: string, items: T[], filter: string | string[] | undefined) => T[]
}

export interface FakeFirewalls {
  firewalls: Map<number, FakeFirewall>
  add: (fields: Partial<FakeFirewall> & { label: string }) => FakeFirewall
  /** Routes under /networking/firewalls and GET /linode/instances/{id}/firewalls; undefined: not one of these. */
  handle: (method: string, seg: string[], body: any, query: Record<string, string>, filter: string | string[] | undefined) => [number, unknown] | undefined
  /** Checks `firewall_id` of a server create; returns the firewall to attach the new server to. */
  forCreate: (firewallId: unknown) => FakeFirewall | undefined
  attach: (fw: FakeFirewall, linodeId: number) => void
  /** A deleted server leaves every firewall. */
  detachEverywhere: (linodeId: number) => void
}

export function fakeFirewalls (ctx: FirewallContext): FakeFirewalls {
  const firewalls = new Map<number, FakeFirewall>()

  function add (fields: Partial<FakeFirewall> & { label: string }): FakeFirewall {
    const fw: FakeFirewall = {
      id: ctx.nextId(), status: 'enabled', tags: [], created: ctx.now(), updated: ctx.now(), linodes: new Set(),
      rules: { inbound_policy: 'ACCEPT', outbound_policy: 'ACCEPT', inbound: [], outbound: [], version: 1 },
      ...fields
    }
    firewalls.set(fw.id, fw)
    return fw
  }
  // As the spec (October 2024) has it: devices are listed apart, not in the firewall object.
  const view = ({ linodes: _linodes, ...fw }: FakeFirewall): Record<string, unknown> => ({ ...fw, rules: { ...fw.rules, fingerprint: 'abcdef01' } })
  const deviceView = (fw: FakeFirewall, id: number): Record<string, unknown> =>
    ({ id: id * 10, created: fw.created, updated: fw.updated, entity: { id, type: 'linode', label: ctx.instanceLabel(id), url: `/v4/linode/instances/${id}` } })
  // The spec: "A service can have one assigned Firewall at a time" (enabled or not).
  function attach (fw: FakeFirewall, linodeId: number): void {
    const other = [...firewalls.values()].find((f) => f.status !== 'deleted' && f.linodes.has(linodeId))
    if (other !== undefined) ctx.fail(400, [{ reason: `Linode ${linodeId} is already assigned to firewall ${other.id}` }])
    fw.linodes.add(linodeId)
  }

  function handle (method: string, seg: string[], body: any, query: Record<string, string>, filter: string | string[] | undefined): [number, unknown] | undefined {
    if (seg[0] === 'linode' && seg[1] === 'instances' && seg[3] === 'firewalls' && seg.length === 4 && method === 'GET') {
      const id = Number(seg[2])
      if (!ctx.instanceExists(id)) ctx.fail(404, [{ reason: 'Not found' }])
      return [200, ctx.page([...firewalls.values()].filter((f) => f.linodes.has(id)).map(view), query)]
    }
    if (seg[0] !== 'networking' || seg[1] !== 'firewalls') return undefined
    if (seg.length === 2 && method === 'GET') return [200, ctx.page(ctx.filtered('firewalls', [...firewalls.values()], filter).map(view), query)]
    if (seg.length === 2 && method === 'POST') {
      const errors = ctx.bodyErrors(firewallSchemas.create, body)
      if (errors.length > 0) ctx.fail(400, errors)
      if ([...firewalls.values()].some((f) => f.label.toLowerCase() === String(body.label).toLowerCase())) ctx.fail(400, [{ field: 'label', reason: 'Label must be unique among your Firewalls' }])
      const fw = add({ label: body.label, tags: body.tags ?? [], rules: { inbound: [], outbound: [], ...body.rules, version: 1 } })
      for (const id of body.devices?.linodes ?? []) attach(fw, id)
      return [200, view(fw)]
    }
    const fw = firewalls.get(Number(seg[2]))
    if (fw === undefined) return undefined
    if (seg.length === 3 && method === 'GET') return [200, view(fw)]
    if (seg.length === 4 && seg[3] === 'devices' && method === 'GET') return [200, ctx.page([...fw.linodes].map((id) => deviceView(fw, id)), query)]
    if (seg.length === 4 && seg[3] === 'devices' && method === 'POST') {
      const errors = ctx.bodyErrors(firewallSchemas.deviceCreate, body)
      if (errors.length > 0) ctx.fail(400, errors)
      if (body.type !== 'linode' || !ctx.instanceExists(body.id)) ctx.fail(400, [{ field: 'id', reason: 'Not found' }])
      attach(fw, body.id)
      return [200, deviceView(fw, body.id)]
    }
    return undefined
  }

  return {
    firewalls,
    add,
    handle,
    forCreate: (firewallId) => {
      if (firewallId === undefined) return undefined
      const fw = firewalls.get(Number(firewallId))
      if (fw === undefined || fw.status === 'deleted') ctx.fail(400, [{ field: 'firewall_id', reason: 'Firewall not found' }])
      return fw
    },
    attach,
    detachEverywhere: (linodeId) => { for (const fw of firewalls.values()) fw.linodes.delete(linodeId) }
  }
}
