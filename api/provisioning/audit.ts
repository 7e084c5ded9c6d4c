// The tamper-evident audit chain. Each entry's MAC covers the previous entry's MAC, so
// editing, removing or reordering a row breaks every MAC after it.
// mac = HMAC-SHA256(secret, prev_mac | seq | at | tenant | action | canonicalJSON(detail))
import { createHmac, timingSafeEqual } from 'node:crypto'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { StoreError, type AuditEntry, type StoreOps } from '../store/store.ts'
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

/**
 * Appends one step; `detail` must hold no secrets (ids, states, reasons only). Refuses (a
 * StoreError: the transaction rolls back) to chain to an entry that does not verify under
 * `secret`: two instances started on an empty chain with different keys would otherwise break
 * it for good at the second one's first entry, which no start-up check can see coming.
 */
export function appendAudit (ops: StoreOps, secret: string, tenant: string, action: string, detail: Record<string, unknown> = {}): Promise<AuditEntry> {
  const at = new Date(ops.now()).toISOString()
  return ops.appendAudit({ at, tenant, action, detail }, (prevMac, seq, prev) => {
    if (prev !== undefined && !entryVerifies(secret, prev)) {
      throw new StoreError(`the audit chain's last entry (seq ${prev.seq}) does not verify under PROVISION_AUDIT_SECRET: ` +
        'another instance writes the chain with another key, or the entry was altered (run ctfhive audit verify); nothing was appended')
    }
    return auditMac(secret, prevMac, { seq, at, tenant, action, detail })
  })
}

export type AuditProblem = 'modified' | 'removed' | 'reordered' | 'inserted' | 'truncated'

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

/** Whether an entry's MAC is the one `secret` gives its content and the MAC before it. */
function entryVerifies (secret: string, e: AuditEntry): boolean {
  return macEquals(auditMac(secret, e.prevMac, e), e.mac)
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

interface Break { badSeq: number, problem: AuditProblem, reason: string }

/**
 * The walk over the chain in stored order, one entry at a time. It keeps only the previous
 * MAC, the next seq and the anchor's entry, so a stored chain of any length is verified in
 * pages. A prev_mac that is not the previous entry's MAC (`'link'`) is told apart by where
 * it points (`linkBreak`), which needs the other entries' MACs: a second pass finds them.
 */
class ChainWalk {
  private prevMac = GENESIS_MAC
  private expectedSeq = 1
  private anchorMac: string | undefined
  private readonly secret: string
  private readonly anchor: AuditAnchor | undefined

  constructor (secret: string, anchor: AuditAnchor | undefined) {
    this.secret = secret
    this.anchor = anchor
  }

  /** Undefined while the chain holds. */
  step (e: AuditEntry): Break | 'link' | undefined {
    // Appends start at 1: a row below it was put there by hand.
    if (e.seq < 1) return { badSeq: e.seq, problem: 'inserted', reason: `seq ${e.seq} is below 1, where the chain starts: the entry was added outside the chain` }
    if (e.seq !== this.expectedSeq) {
      if (e.seq > this.expectedSeq) return { badSeq: e.seq, problem: 'removed', reason: `expected seq ${this.expectedSeq}, found ${e.seq}: entries are missing` }
      return { badSeq: e.seq, problem: 'reordered', reason: `seq ${e.seq} appears after seq ${this.expectedSeq - 1}` }
    }
    if (!macEquals(e.prevMac, this.prevMac)) return 'link'
    if (e.unreadable === true) return { badSeq: e.seq, problem: 'modified', reason: 'its detail is not JSON' }
    if (!entryVerifies(this.secret, e)) return { badSeq: e.seq, problem: 'modified', reason: 'content does not match its MAC' }
    // Seqs run 1, 2, 3, … while the chain holds: this is the entry an anchor at this seq names.
    if (this.anchor !== undefined && e.seq === this.anchor.seq) this.anchorMac = e.mac
    this.prevMac = e.mac
    this.expectedSeq++
    return undefined
  }

  /** The verdict on a chain of `entries` that held to its end. */
  finish (entries: number): AuditVerdict {
    const lastSeq = this.expectedSeq - 1
    const anchor = this.anchor
    if (anchor !== undefined) {
      if (lastSeq < anchor.seq) return { ok: false, entries, badSeq: lastSeq + 1, problem: 'truncated', reason: `the chain ends at seq ${lastSeq}, before the anchor's seq ${anchor.seq}: entries were removed from its end` }
      // Seq 0 is the empty chain's head.
      const mac = anchor.seq === 0 ? GENESIS_MAC : this.anchorMac!
      if (!macEquals(mac, anchor.mac)) return { ok: false, entries, badSeq: anchor.seq, problem: 'modified', reason: `seq ${anchor.seq} is not the entry the anchor recorded: the chain was rewritten up to there` }
    }
    return { ok: true, entries, lastSeq, lastMac: this.prevMac }
  }
}

/**
 * The second pass after a break at position `index`: counts every entry (a verdict gives the
 * chain's length) and, for a broken link, finds the entries whose MAC is the bad prev_mac.
 */
class BreakScan {
  entries = 0
  /** The last entry before the break with that MAC (the genesis MAC is seq 0's). */
  earlier: number | undefined
  /** The last entry anywhere with that MAC. */
  later: number | undefined
  /** Another entry with the broken entry's own MAC: the broken one is a copy of it. */
  original: number | undefined
  private readonly mac: string | undefined
  private readonly ownMac: string | undefined
  private readonly index: number

  constructor (mac: string | undefined, index: number, ownMac?: string) {
    this.mac = mac
    this.ownMac = ownMac
    this.index = index
    if (mac === GENESIS_MAC) this.earlier = 0
  }

  add (e: AuditEntry): void {
    if (this.mac !== undefined && e.mac === this.mac) {
      if (this.entries < this.index) this.earlier = e.seq
      this.later = e.seq
    }
    if (this.ownMac !== undefined && this.entries !== this.index && e.mac === this.ownMac) this.original ??= e.seq
    this.entries++
  }
}

/** Why the entry at `index` does not chain to the entry before it. */
function linkBreak (secret: string, e: AuditEntry, index: number, scan: BreakScan): Break {
  const bad = (problem: AuditProblem, reason: string): Break => ({ badSeq: e.seq, problem, reason })
  if (scan.original !== undefined) return bad('inserted', `a copy of seq ${scan.original} was inserted`)
  if (scan.earlier !== undefined) return bad('removed', `prev_mac points at seq ${scan.earlier}, not seq ${e.seq - 1}: entries were removed`)
  if (scan.later !== undefined && index > 0) return bad('reordered', `prev_mac points at seq ${scan.later}, which comes later`)
  // prev_mac names no entry we hold. If the entry is intact under its original seq, the rows
  // before it were removed (and the rest renumbered); otherwise prev_mac itself was edited.
  const shift = originalShift(secret, e)
  if (shift !== undefined) return bad('removed', `the entry before seq ${e.seq} is missing${shift > 0 ? ` (seq renumbered by ${shift})` : ''}`)
  return bad('modified', 'prev_mac does not match the previous entry')
}

function brokenVerdict (secret: string, found: Break | 'link', e: AuditEntry, index: number, scan: BreakScan): AuditVerdict {
  return { ok: false, entries: scan.entries, ...(found === 'link' ? linkBreak(secret, e, index, scan) : found) }
}

/**
 * Walks the chain in stored order and reports the first bad entry and why:
 * - `removed`: a gap in seq, or an entry whose prev_mac is an earlier entry's MAC (rows deleted);
 * - `reordered`: seq out of order, or prev_mac naming a later entry;
 * - `modified`: the entry's content no longer matches its MAC, or its prev_mac matches no entry.
 */
export function verifyAuditChain (secret: string, entries: readonly AuditEntry[], anchor?: AuditAnchor): AuditVerdict {
  const walk = new ChainWalk(secret, anchor)
  for (const [i, e] of entries.entries()) {
    const found = walk.step(e)
    if (found === undefined) continue
    const scan = new BreakScan(found === 'link' ? e.prevMac : undefined, i, found === 'link' ? e.mac : undefined)
    for (const x of entries) scan.add(x)
    return brokenVerdict(secret, found, e, i, scan)
  }
  return walk.finish(entries.length)
}

/** Entries per read when the stored chain is verified. */
export const VERIFY_PAGE = 1000

/** The stored chain in seq order, a page at a time, giving the event loop a turn between pages. */
async function * auditPages (ops: StoreOps, pageSize: number): AsyncGenerator<AuditEntry[]> {
  // From the very first row: one stored at seq 0 or below must be seen, not skipped.
  let after: number | undefined
  for (;;) {
    const page = await ops.listAudit({ afterSeq: after, limit: pageSize })
    yield page
    if (page.length < pageSize) return
    after = page[page.length - 1]!.seq
    // Each page costs a MAC per entry: a long chain would hold every request and timer of
    // the server for seconds.
    await nextTurn()
  }
}

/**
 * verifyAuditChain on the stored chain, read in pages: the same verdicts, holding one page
 * at a time (and a second pass over the pages after a break).
 */
export async function verifyStoredChain (ops: StoreOps, secret: string, anchor?: AuditAnchor, opts: { pageSize?: number } = {}): Promise<AuditVerdict> {
  const pageSize = opts.pageSize ?? VERIFY_PAGE
  const walk = new ChainWalk(secret, anchor)
  let index = 0
  for await (const page of auditPages(ops, pageSize)) {
    for (const e of page) {
      const found = walk.step(e)
      if (found !== undefined) {
        const scan = new BreakScan(found === 'link' ? e.prevMac : undefined, index, found === 'link' ? e.mac : undefined)
        for await (const again of auditPages(ops, pageSize)) for (const x of again) scan.add(x)
        return brokenVerdict(secret, found, e, index, scan)
      }
      index++
    }
  }
  return walk.finish(index)
}

/**
 * Whether `secret` is the key the chain was written with, on one entry (one MAC): the last,
 * which the next append chains to, or the first. An empty chain takes any key.
 */
export async function auditKeyFits (ops: StoreOps, secret: string, entry: 'first' | 'last' = 'last'): Promise<boolean> {
  const [e] = await ops.listAudit({ limit: 1, newest: entry === 'last' })
  return e === undefined || entryVerifies(secret, e)
}
