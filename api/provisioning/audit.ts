// The tamper-evident audit chain. Each entry's MAC covers the previous entry's MAC, so
// editing, removing or reordering a row breaks every MAC after it.
// mac = HMAC-SHA256(secret, prev_mac | seq | at | tenant | action | canonicalJSON(detail))
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { AuditEntry, StoreOps } from '../store/store.ts'
import { GENESIS_MAC } from '../store/rows.ts'

export { GENESIS_MAC }

/** JSON with object keys sorted at every depth, so the MAC does not depend on key order. */
export function canonicalJson (value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  // As JSON.stringify does when the detail is stored (a Date becomes its ISO string), or the
  // stored entry would not verify.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return canonicalJson((value as { toJSON: () => unknown }).toJSON())
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
}

export function auditMac (secret: string, prevMac: string, entry: Pick<AuditEntry, 'seq' | 'at' | 'tenant' | 'action' | 'detail'>): string {
  const message = [prevMac, String(entry.seq), entry.at, entry.tenant, entry.action, canonicalJson(entry.detail)].join('|')
  return createHmac('sha256', secret).update(message).digest('hex')
}

/** Appends one step; `detail` must hold no secrets (ids, states, reasons only). */
export function appendAudit (ops: StoreOps, secret: string, tenant: string, action: string, detail: Record<string, unknown> = {}): Promise<AuditEntry> {
  const at = new Date().toISOString()
  return ops.appendAudit({ at, tenant, action, detail }, (prevMac, seq) => auditMac(secret, prevMac, { seq, at, tenant, action, detail }))
}

export type AuditProblem = 'modified' | 'removed' | 'reordered' | 'truncated'

export type AuditVerdict =
  | { ok: true, entries: number, lastSeq: number, lastMac: string }
  | { ok: false, entries: number, badSeq: number, problem: AuditProblem, reason: string }

/**
 * A head of the chain recorded earlier, away from the database (`ctfhive audit verify` prints
 * it as `seq:mac`). A chain can only prove what lies before its last entry: entries cut from
 * its end, or the whole table emptied, leave a shorter chain that verifies. Checked against
 * an anchor, the chain must still reach that entry, unchanged.
 */
export interface AuditAnchor { seq: number, mac: string }

const ANCHOR = /^(0|[1-9][0-9]{0,14}):([0-9a-f]{64})$/
/** The pattern of an anchor's text, for request schemas. */
export const AUDIT_ANCHOR_PATTERN = ANCHOR.source

export function parseAuditAnchor (text: string): AuditAnchor | undefined {
  const m = ANCHOR.exec(text)
  return m === null ? undefined : { seq: Number(m[1]), mac: m[2]! }
}

function macEquals (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** How far an intact entry's seq was shifted down, if its MAC holds for some original seq. */
function originalShift (secret: string, e: AuditEntry): number | undefined {
  for (let k = 0; k <= 1000; k++) {
    if (macEquals(auditMac(secret, e.prevMac, { ...e, seq: e.seq + k }), e.mac)) return k
  }
  return undefined
}

/**
 * Walks the chain in stored order and reports the first bad entry and why:
 * - `removed`: a gap in seq, or an entry whose prev_mac is an earlier entry's MAC (rows deleted);
 * - `reordered`: seq out of order, or prev_mac naming a later entry;
 * - `modified`: the entry's content no longer matches its MAC, or its prev_mac matches no entry.
 */
export function verifyAuditChain (secret: string, entries: readonly AuditEntry[], anchor?: AuditAnchor): AuditVerdict {
  let prevMac = GENESIS_MAC
  let expectedSeq = 1
  const seenMacs = new Map<string, number>([[GENESIS_MAC, 0]])
  const allMacs = new Map(entries.map((e) => [e.mac, e.seq]))
  const broken = (badSeq: number, problem: AuditProblem, reason: string): AuditVerdict => ({ ok: false, entries: entries.length, badSeq, problem, reason })
  for (const [i, e] of entries.entries()) {
    const bad = (problem: AuditProblem, reason: string): AuditVerdict => broken(e.seq, problem, reason)
    if (e.seq !== expectedSeq) {
      if (e.seq > expectedSeq) return bad('removed', `expected seq ${expectedSeq}, found ${e.seq}: entries are missing`)
      return bad('reordered', `seq ${e.seq} appears after seq ${expectedSeq - 1}`)
    }
    if (!macEquals(e.prevMac, prevMac)) {
      const earlier = seenMacs.get(e.prevMac)
      if (earlier !== undefined) return bad('removed', `prev_mac points at seq ${earlier}, not seq ${e.seq - 1}: entries were removed`)
      const later = allMacs.get(e.prevMac)
      if (later !== undefined && i > 0) return bad('reordered', `prev_mac points at seq ${later}, which comes later`)
      // prev_mac names no entry we hold. If the entry is intact under its original seq, the rows
      // before it were removed (and the rest renumbered); otherwise prev_mac itself was edited.
      const shift = originalShift(secret, e)
      if (shift !== undefined) return bad('removed', `the entry before seq ${e.seq} is missing${shift > 0 ? ` (seq renumbered by ${shift})` : ''}`)
      return bad('modified', 'prev_mac does not match the previous entry')
    }
    if (!macEquals(auditMac(secret, e.prevMac, e), e.mac)) return bad('modified', 'content does not match its MAC')
    seenMacs.set(e.mac, e.seq)
    prevMac = e.mac
    expectedSeq++
  }
  const lastSeq = expectedSeq - 1
  if (anchor !== undefined) {
    if (lastSeq < anchor.seq) return broken(lastSeq + 1, 'truncated', `the chain ends at seq ${lastSeq}, before the anchor's seq ${anchor.seq}: entries were removed from its end`)
    // Seqs run 1, 2, 3, … here, so entry n sits at index n − 1; seq 0 is the empty chain's head.
    const mac = anchor.seq === 0 ? GENESIS_MAC : entries[anchor.seq - 1]!.mac
    if (!macEquals(mac, anchor.mac)) return broken(anchor.seq, 'modified', `seq ${anchor.seq} is not the entry the anchor recorded: the chain was rewritten up to there`)
  }
  return { ok: true, entries: entries.length, lastSeq, lastMac: prevMac }
}

/** Reads the whole chain from the store in pages and verifies it. */
export async function verifyStoredChain (ops: StoreOps, secret: string, anchor?: AuditAnchor): Promise<AuditVerdict> {
  const all: AuditEntry[] = []
  let after = 0
  for (;;) {
    const page = await ops.listAudit({ afterSeq: after, limit: 5000 })
    all.push(...page)
    if (page.length < 5000) break
    after = page[page.length - 1]!.seq
  }
  return verifyAuditChain(secret, all, anchor)
}
