import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { appendAudit, auditMac, canonicalJson, parseAuditAnchor, verifyAuditChain, verifyStoredChain, GENESIS_MAC, type AuditAnchor } from '../../api/provisioning/audit.ts'
import { StoreError, type AuditEntry, type StoreOps } from '../../api/store/store.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import { buildTestApp, tempDbPath } from '../helpers/build-app.ts'

const SECRET = 'audit-test-secret'

t.test('canonical JSON sorts keys at every depth and drops undefined', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: null }], c: 'x' }, u: undefined }), '{"a":{"c":"x","d":[2,{"y":null,"z":1}]},"b":1}')
  t.equal(canonicalJson('s'), '"s"')
  t.equal(canonicalJson(null), 'null')
})

t.test('details with values JSON turns into something else still verify once stored', async (t) => {
  const store = new SqliteStore({ path: ':memory:' })
  t.teardown(() => store.close())
  const when = new Date('2026-11-23T10:00:00.000Z')
  t.equal(canonicalJson({ when }), '{"when":"2026-11-23T10:00:00.000Z"}', 'a Date as JSON.stringify writes it')
  await store.transaction((tx) => appendAudit(tx, SECRET, 't1', 'x.happened', { when, n: Number.NaN, list: [undefined, 1] }))
  t.match(verifyAuditChain(SECRET, await store.listAudit({})), { ok: true, entries: 1 })
})

t.test('the MAC covers every field and the previous MAC', async (t) => {
  const e = { seq: 1, at: '2026-01-01T00:00:00.000Z', tenant: 'a'.repeat(32), action: 'server.created', detail: { server: '1' } }
  const mac = auditMac(SECRET, GENESIS_MAC, e)
  t.match(mac, /^[0-9a-f]{64}$/)
  t.not(auditMac(SECRET, '1'.repeat(64), e), mac, 'prev_mac')
  t.not(auditMac(SECRET, GENESIS_MAC, { ...e, seq: 2 }), mac, 'seq')
  t.not(auditMac(SECRET, GENESIS_MAC, { ...e, at: '2026-01-01T00:00:00.001Z' }), mac, 'at')
  t.not(auditMac(SECRET, GENESIS_MAC, { ...e, tenant: 'b'.repeat(32) }), mac, 'tenant')
  t.not(auditMac(SECRET, GENESIS_MAC, { ...e, action: 'server.adopted' }), mac, 'action')
  t.not(auditMac(SECRET, GENESIS_MAC, { ...e, detail: { server: '2' } }), mac, 'detail')
  t.not(auditMac('other', GENESIS_MAC, e), mac, 'secret')
  t.equal(auditMac(SECRET, GENESIS_MAC, { ...e, detail: { server: '1' } }), mac, 'deterministic')
})

async function chainOf (n: number): Promise<{ store: SqliteStore, path: string }> {
  const path = tempDbPath()
  const store = new SqliteStore({ path })
  for (let i = 0; i < n; i++) await appendAudit(store, SECRET, `${i % 3}`.repeat(32), `step.${i}`, { i })
  return { store, path }
}

t.test('an intact chain verifies; concurrent appends stay one chain', async (t) => {
  const { store } = await chainOf(5)
  t.teardown(() => store.close())
  await Promise.all(Array.from({ length: 20 }, (_, i) => appendAudit(store, SECRET, 'f'.repeat(32), 'parallel', { i })))
  const verdict = await verifyStoredChain(store, SECRET)
  t.same(verdict, { ok: true, entries: 25, lastSeq: 25, lastMac: (await store.listAudit({ afterSeq: 24 }))[0]!.mac }, 'the head: the last entry\'s MAC')
  const first = (await store.listAudit({ limit: 1 }))[0]!
  t.equal(first.prevMac, GENESIS_MAC)
  t.equal(first.seq, 1)
  t.notOk((await verifyStoredChain(store, 'wrong-secret')).ok, 'a wrong secret fails')
})

t.test('an append refuses to chain to an entry another key wrote, or one altered since', async (t) => {
  // Two instances started on an empty chain, so the start-up key check let both through.
  const path = tempDbPath()
  const store = new SqliteStore({ path })
  t.teardown(() => store.close())
  await appendAudit(store, SECRET, 'a'.repeat(32), 'tenant.created', { plan: 'solo' })
  const refused = await appendAudit(store, 'other-instance-key', 'b'.repeat(32), 'tenant.created', { plan: 'pro' }).then(() => undefined, (e: unknown) => e)
  t.ok(refused instanceof StoreError, 'the second key is refused')
  t.match((refused as Error).message, /last entry \(seq 1\) does not verify under PROVISION_AUDIT_SECRET/)
  t.notMatch((refused as Error).message, /other-instance-key|audit-test-secret/, 'the message names no key')
  t.equal((await store.listAudit({})).length, 1, 'nothing was appended')
  t.match(await verifyStoredChain(store, SECRET), { ok: true, entries: 1 }, 'the chain still holds under its key')

  // An entry altered in the database stops appends too, as it stops the server's start.
  const other = await chainOf(2)
  t.teardown(() => other.store.close())
  const db = new DatabaseSync(other.path)
  db.exec("UPDATE audit_log SET action = 'edited' WHERE seq = 2")
  db.close()
  const afterEdit = await appendAudit(other.store, SECRET, 'a'.repeat(32), 'step', {}).then(() => undefined, (e: unknown) => e)
  t.match((afterEdit as Error).message, /seq 2\) does not verify/)
  t.equal((await other.store.listAudit({})).length, 2)
})

t.test('two servers on one database with different keys: the second one\'s writes fail with a 500 and change nothing', async (t) => {
  const path = tempDbPath(t)
  const lines: Array<Record<string, unknown>> = []
  const first = await buildTestApp(t, { env: { DATABASE_URL: `sqlite:${path}`, PROVISION_AUDIT_SECRET: 'first-key' } })
  const second = await buildTestApp(t, { env: { DATABASE_URL: `sqlite:${path}`, PROVISION_AUDIT_SECRET: 'second-key' }, logLines: lines })
  const checkout = (app: typeof first.app, name: string) => app.inject({ method: 'POST', url: '/billing/checkout', payload: { plan: 'standard', name, email: 'ops@acme.test' } })
  t.equal((await checkout(first.app, 'First CTF')).statusCode, 200)
  const r = await checkout(second.app, 'Second CTF')
  t.equal(r.statusCode, 500)
  t.same(r.json(), { error: 'store_unavailable', message: 'Our database did not answer; try again in a moment.' }, 'no key or chain detail in the body')
  t.equal(await first.store.countTenants(), 1, 'the second tenant was not made')
  t.ok(lines.some((l) => /does not verify under PROVISION_AUDIT_SECRET/.test(String((l.err as { message?: unknown } | undefined)?.message))), 'the log says why')
  t.notOk(JSON.stringify(lines).includes('first-key') || JSON.stringify(lines).includes('second-key'), 'and names no key')
  t.equal((await checkout(first.app, 'Third CTF')).statusCode, 200, 'the server with the chain\'s key goes on')
  t.match(await verifyStoredChain(first.store, 'first-key'), { ok: true, entries: 2 })
})

t.test('tampering is detected: modified, removed, reordered, inserted', async (t) => {
  const tamper = async (sql: string[]): Promise<ReturnType<typeof verifyAuditChain>> => {
    const { store, path } = await chainOf(6)
    await store.close()
    const db = new DatabaseSync(path)
    for (const q of sql) db.exec(q)
    db.close()
    const again = new SqliteStore({ path })
    t.teardown(() => again.close())
    return verifyStoredChain(again, SECRET)
  }
  const edited = await tamper([`UPDATE audit_log SET detail = '{"i":99}' WHERE seq = 3`])
  t.match(edited, { ok: false, badSeq: 3, problem: 'modified' })
  const action = await tamper([`UPDATE audit_log SET action = 'server.destroyed' WHERE seq = 4`])
  t.match(action, { ok: false, badSeq: 4, problem: 'modified' })
  const removed = await tamper(['DELETE FROM audit_log WHERE seq = 2'])
  t.match(removed, { ok: false, badSeq: 3, problem: 'removed' })
  const removedAndRenumbered = await tamper(['DELETE FROM audit_log WHERE seq = 2', 'UPDATE audit_log SET seq = seq - 1 WHERE seq > 2'])
  t.match(removedAndRenumbered, { ok: false, badSeq: 2, problem: 'removed' })
  const tail = await tamper(['DELETE FROM audit_log WHERE seq = 1'])
  t.match(tail, { ok: false, badSeq: 2, problem: 'removed' })
  const swapped = await tamper([
    'UPDATE audit_log SET seq = -4 WHERE seq = 4', 'UPDATE audit_log SET seq = 4 WHERE seq = 5', 'UPDATE audit_log SET seq = 5 WHERE seq = -4'
  ])
  t.match(swapped, { ok: false, badSeq: 4, problem: 'reordered' })
  // An edit that leaves no JSON is named like any other, not a crash of every reader.
  const garbled = await tamper([`UPDATE audit_log SET detail = 'not json' WHERE seq = 5`])
  t.same(garbled, { ok: false, entries: 6, badSeq: 5, problem: 'modified', reason: 'its detail is not JSON' })
  // Rows stored below seq 1 are read too, not skipped by a walk starting after 0.
  const below = await tamper(['INSERT INTO audit_log SELECT 0, at, tenant, \'server.destroyed\', detail, prev_mac, mac FROM audit_log WHERE seq = 2',
    'INSERT INTO audit_log SELECT -5, at, tenant, action, detail, prev_mac, mac FROM audit_log WHERE seq = 3'])
  t.match(below, { ok: false, entries: 8, badSeq: -5, problem: 'inserted' })
})

t.test('an entry whose detail is not JSON is read with its text, on both kinds of listing', async (t) => {
  const { store, path } = await chainOf(3)
  await store.close()
  const db = new DatabaseSync(path)
  db.exec(`UPDATE audit_log SET detail = '{"i":' WHERE seq = 2`)
  db.close()
  const again = new SqliteStore({ path })
  t.teardown(() => again.close())
  const entries = await again.listAudit({})
  t.same(entries.map((e) => e.detail), [{ i: 0 }, { unreadable_detail: '{"i":' }, { i: 2 }])
  t.same(entries.map((e) => e.unreadable), [undefined, true, undefined])
  t.same((await again.listAudit({ tenant: '1'.repeat(32) })).map((e) => e.seq), [2], 'by tenant too')
})

t.test('verifyAuditChain on an empty chain', async (t) => {
  t.same(verifyAuditChain(SECRET, []), { ok: true, entries: 0, lastSeq: 0, lastMac: GENESIS_MAC })
})

t.test('an anchor (a head recorded earlier) finds entries cut from the end, and a rewritten chain', async (t) => {
  const { store, path } = await chainOf(6)
  const head = await verifyStoredChain(store, SECRET)
  if (!head.ok) throw new Error('the fresh chain verifies')
  const anchor = { seq: head.lastSeq, mac: head.lastMac }
  await appendAudit(store, SECRET, 'a'.repeat(32), 'step.later', {})
  t.match(await verifyStoredChain(store, SECRET, anchor), { ok: true, entries: 7, lastSeq: 7 }, 'the chain grew past it')
  t.match(await verifyStoredChain(store, SECRET, { seq: 0, mac: GENESIS_MAC }), { ok: true }, 'the empty chain\'s head')
  await store.close()

  const cut = async (sql: string): Promise<SqliteStore> => {
    const db = new DatabaseSync(path)
    db.exec(sql)
    db.close()
    const again = new SqliteStore({ path })
    t.teardown(() => again.close())
    return again
  }
  const shorter = await cut('DELETE FROM audit_log WHERE seq >= 6')
  t.match(await verifyStoredChain(shorter, SECRET), { ok: true, lastSeq: 5 }, 'without the anchor a shorter chain verifies')
  t.same(await verifyStoredChain(shorter, SECRET, anchor), {
    ok: false, entries: 5, badSeq: 6, problem: 'truncated', reason: 'the chain ends at seq 5, before the anchor\'s seq 6: entries were removed from its end'
  })
  t.match(await verifyStoredChain(await cut('DELETE FROM audit_log'), SECRET, anchor), { ok: false, entries: 0, badSeq: 1, problem: 'truncated' }, 'the whole table emptied')

  // Written anew, with the key, past the anchor: every MAC holds, but seq 6 is another entry.
  const rewritten = new SqliteStore({ path })
  t.teardown(() => rewritten.close())
  for (let i = 0; i < 7; i++) await appendAudit(rewritten, SECRET, 'b'.repeat(32), 'step.forged', { i })
  t.match(await verifyStoredChain(rewritten, SECRET), { ok: true, lastSeq: 7 })
  t.same(await verifyStoredChain(rewritten, SECRET, anchor), {
    ok: false, entries: 7, badSeq: 6, problem: 'modified', reason: 'seq 6 is not the entry the anchor recorded: the chain was rewritten up to there'
  })
})

t.test('anchors are read as seq:mac and nothing else', async (t) => {
  const mac = 'ab'.repeat(32)
  t.same(parseAuditAnchor(`12:${mac}`), { seq: 12, mac })
  t.same(parseAuditAnchor(`0:${GENESIS_MAC}`), { seq: 0, mac: GENESIS_MAC })
  for (const bad of ['', '12', `12:${mac}0`, `12:${mac.toUpperCase()}`, `-1:${mac}`, `01:${mac}`, ` 12:${mac}`, `1e3:${mac}`, `${'9'.repeat(16)}:${mac}`]) {
    t.equal(parseAuditAnchor(bad), undefined, JSON.stringify(bad))
  }
})

t.test('the stored chain is verified past its first page (of VERIFY_PAGE entries)', async (t) => {
  const store = new SqliteStore({ path: tempDbPath(t) })
  t.teardown(() => store.close())
  const secret = 'audit-secret-for-pages'
  await store.transaction(async (tx) => { for (let i = 0; i < 5002; i++) await appendAudit(tx, secret, 'a'.repeat(32), 'step', { i }) })
  const ok = await verifyStoredChain(store, secret)
  t.match(ok, { ok: true, entries: 5002, lastSeq: 5002 })
  const anchored = await verifyStoredChain(store, secret, { seq: 5002, mac: (ok as { lastMac: string }).lastMac })
  t.equal(anchored.ok, true, 'a head recorded past the first page is reached')
})

/** A chain of `n` real entries, and a store that serves an edited copy of it (listAudit only). */
function servedChain (n: number): { entries: AuditEntry[], serve: (edited: AuditEntry[], onRead?: () => void) => StoreOps } {
  const entries: AuditEntry[] = []
  let prevMac = GENESIS_MAC
  for (let seq = 1; seq <= n; seq++) {
    const e = { seq, at: `2026-01-01T00:00:${String(seq).padStart(2, '0')}.000Z`, tenant: `${seq % 3}`.repeat(32), action: `step.${seq}`, detail: { seq } }
    const mac = auditMac(SECRET, prevMac, e)
    entries.push({ ...e, prevMac, mac })
    prevMac = mac
  }
  const serve = (edited: AuditEntry[], onRead?: () => void): StoreOps => ({
    // As the stores read it: seq order, after a seq, at most `limit`.
    listAudit: async (f: { afterSeq?: number, limit?: number }) => {
      onRead?.()
      return edited.filter((e) => f.afterSeq === undefined || e.seq > f.afterSeq).sort((a, b) => a.seq - b.seq).slice(0, f.limit ?? 1000).map((e) => ({ ...e }))
    }
  } as unknown as StoreOps)
  return { entries, serve }
}

t.test('the stored chain read in pages gets the verdicts of the whole chain, breaks at page boundaries included', async (t) => {
  const { entries, serve } = servedChain(12)
  const at = (seq: number): AuditEntry => entries[seq - 1]!
  const cases: Array<{ name: string, edit: (c: AuditEntry[]) => AuditEntry[], anchor?: AuditAnchor, expect: Record<string, unknown> }> = [
    { name: 'intact', edit: (c) => c, expect: { ok: true, entries: 12, lastSeq: 12, lastMac: at(12).mac } },
    { name: 'an anchor on a later page', edit: (c) => c, anchor: { seq: 10, mac: at(10).mac }, expect: { ok: true, entries: 12, lastSeq: 12 } },
    { name: 'an anchor on a later page naming another entry', edit: (c) => c, anchor: { seq: 10, mac: at(9).mac }, expect: { ok: false, entries: 12, badSeq: 10, problem: 'modified' } },
    { name: 'an anchor past the end', edit: (c) => c.slice(0, 9), anchor: { seq: 10, mac: at(10).mac }, expect: { ok: false, entries: 9, badSeq: 10, problem: 'truncated' } },
    { name: 'the first entry of the second page edited', edit: (c) => c.map((e) => e.seq === 5 ? { ...e, detail: { seq: 99 } } : e), expect: { ok: false, entries: 12, badSeq: 5, problem: 'modified', reason: 'content does not match its MAC' } },
    { name: 'the last entry of the first page edited', edit: (c) => c.map((e) => e.seq === 4 ? { ...e, action: 'forged' } : e), expect: { ok: false, entries: 12, badSeq: 4, problem: 'modified' } },
    { name: 'entries deleted across a boundary', edit: (c) => c.filter((e) => e.seq !== 4 && e.seq !== 5), expect: { ok: false, entries: 10, badSeq: 6, problem: 'removed' } },
    { name: 'an entry deleted, the rest renumbered', edit: (c) => c.filter((e) => e.seq !== 4).map((e) => e.seq > 4 ? { ...e, seq: e.seq - 1 } : e), expect: { ok: false, entries: 11, badSeq: 4, problem: 'removed', reason: 'the entry before seq 4 is missing (seq renumbered by 1)' } },
    { name: 'prev_mac naming an entry on an earlier page', edit: (c) => c.map((e) => e.seq === 5 ? { ...e, prevMac: at(2).mac } : e), expect: { ok: false, entries: 12, badSeq: 5, problem: 'removed', reason: 'prev_mac points at seq 2, not seq 4: entries were removed' } },
    { name: 'prev_mac naming the genesis', edit: (c) => c.map((e) => e.seq === 9 ? { ...e, prevMac: GENESIS_MAC } : e), expect: { ok: false, entries: 12, badSeq: 9, problem: 'removed', reason: 'prev_mac points at seq 0, not seq 8: entries were removed' } },
    { name: 'entries swapped across a boundary', edit: (c) => c.map((e) => e.seq === 4 ? { ...at(5), seq: 4 } : e.seq === 5 ? { ...at(4), seq: 5 } : e), expect: { ok: false, entries: 12, badSeq: 4, problem: 'reordered', reason: 'prev_mac points at seq 5, which comes later' } },
    { name: 'prev_mac naming nothing', edit: (c) => c.map((e) => e.seq === 9 ? { ...e, prevMac: '1'.repeat(64) } : e), expect: { ok: false, entries: 12, badSeq: 9, problem: 'modified', reason: 'prev_mac does not match the previous entry' } },
    { name: 'a copy inserted after its original, the rest renumbered', edit: (c) => [...c.filter((e) => e.seq <= 3), { ...at(3), seq: 4 }, ...c.filter((e) => e.seq > 3).map((e) => ({ ...e, seq: e.seq + 1 }))], expect: { ok: false, entries: 13, badSeq: 4, problem: 'inserted', reason: 'a copy of seq 3 was inserted' } },
    { name: 'a copy inserted before its original', edit: (c) => [...c.filter((e) => e.seq <= 4), { ...at(10), seq: 5 }, ...c.filter((e) => e.seq > 4).map((e) => ({ ...e, seq: e.seq + 1 }))], expect: { ok: false, entries: 13, badSeq: 5, problem: 'inserted', reason: 'a copy of seq 11 was inserted' } },
    { name: 'the last entry copied onto the end', edit: (c) => [...c, { ...at(12), seq: 13 }], expect: { ok: false, entries: 13, badSeq: 13, problem: 'inserted', reason: 'a copy of seq 12 was inserted' } },
    { name: 'a row at seq 0', edit: (c) => [{ ...at(3), seq: 0 }, ...c], expect: { ok: false, entries: 13, badSeq: 0, problem: 'inserted', reason: 'seq 0 is below 1, where the chain starts: the entry was added outside the chain' } },
    { name: 'a row below 0 with one at 0', edit: (c) => [{ ...at(3), seq: -5 }, { ...at(4), seq: 0 }, ...c], expect: { ok: false, entries: 14, badSeq: -5, problem: 'inserted' } }
  ]
  for (const c of cases) {
    const edited = c.edit(entries.map((e) => ({ ...e })))
    const whole = verifyAuditChain(SECRET, [...edited].sort((a, b) => a.seq - b.seq), c.anchor)
    t.match(whole, c.expect, `${c.name}: the whole chain's verdict`)
    for (const pageSize of [1, 3, 4, 5, 1000]) {
      t.same(await verifyStoredChain(serve(edited), SECRET, c.anchor, { pageSize }), whole, `${c.name}: the same in pages of ${pageSize}`)
    }
  }
})

t.test('the event loop gets turns while a stored chain is verified in pages', async (t) => {
  const { entries, serve } = servedChain(12)
  let turned = false
  const turnedAtRead: boolean[] = []
  const ops = serve(entries, () => { turnedAtRead.push(turned) })
  // Queued before the verification starts; it can only run when the verification yields.
  setImmediate(() => { turned = true })
  const verdict = await verifyStoredChain(ops, SECRET, undefined, { pageSize: 4 })
  t.match(verdict, { ok: true, entries: 12 })
  // Three full pages, then an empty read; the first is read at once.
  t.same(turnedAtRead, [false, true, true, true], 'a callback waiting on the event loop ran between the pages, before the verdict')
})
