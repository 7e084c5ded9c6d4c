import t from 'tap'
import { DatabaseSync } from 'node:sqlite'
import { appendAudit, auditMac, canonicalJson, parseAuditAnchor, verifyAuditChain, verifyStoredChain, GENESIS_MAC } from '../../api/provisioning/audit.ts'
import { SqliteStore } from '../../api/store/sqlite.ts'
import { tempDbPath } from '../helpers/build-app.ts'

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

t.test('tampering is detected: modified, removed, reordered', async (t) => {
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

t.test('the stored chain is verified past its first page of 5000 entries', async (t) => {
  const store = new SqliteStore({ path: tempDbPath(t) })
  t.teardown(() => store.close())
  const secret = 'audit-secret-for-pages'
  await store.transaction(async (tx) => { for (let i = 0; i < 5002; i++) await appendAudit(tx, secret, 'a'.repeat(32), 'step', { i }) })
  const ok = await verifyStoredChain(store, secret)
  t.match(ok, { ok: true, entries: 5002, lastSeq: 5002 })
  const anchored = await verifyStoredChain(store, secret, { seq: 5002, mac: (ok as { lastMac: string }).lastMac })
  t.equal(anchored.ok, true, 'a head recorded past the first page is reached')
})
