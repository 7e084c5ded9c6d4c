// Two processes opening one new SQLite file at the same moment (two servers started together,
// or a server and the CLI): the one that does not create the file must wait for the other's
// lock, not fail with "database is locked"; and the schema is migrated once.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { SqliteStore } from '../../api/store/sqlite.ts'
import { migrationFiles } from '../../api/store/migrations.ts'
import { reapWithThisProcess } from '../helpers/child-reaper.ts'

const STORE = new URL('../../api/store/sqlite.ts', import.meta.url).href
const MIGRATIONS = fileURLToPath(new URL('../../api/store/migrations/sqlite', import.meta.url))
const ROUNDS = 10

// Imports the store first (so the import's time does not spread the two apart), then for each
// line [path, at]: spins until `at` and opens the store there, answering one JSON line.
const OPENER = `
const { SqliteStore } = await import(process.argv[1])
const { createInterface } = await import('node:readline')
console.log('ready')
for await (const line of createInterface({ input: process.stdin })) {
  const [path, at] = JSON.parse(line)
  while (Date.now() < at) {}
  try {
    const store = new SqliteStore({ path })
    await store.close()
    console.log(JSON.stringify({ ok: true }))
  } catch (err) {
    console.log(JSON.stringify({ ok: false, error: err.message }))
  }
}
`

interface Opener {
  child: ChildProcess
  next (): Promise<string>
}

function startOpener (): Opener {
  const child = spawn(process.execPath, ['--input-type=module', '-e', OPENER, STORE], { stdio: ['pipe', 'pipe', 'inherit'] })
  reapWithThisProcess(child)
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  return {
    child,
    async next () {
      const r = await lines.next()
      if (r.done === true) throw new Error(`opener exited (${String(child.exitCode)})`)
      return String(r.value)
    }
  }
}

t.test('two processes opening a new file at once both open it, and it is migrated once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-open-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const openers = [startOpener(), startOpener()]
  t.teardown(async () => {
    for (const o of openers) {
      if (o.child.exitCode !== null) continue
      o.child.stdin!.end()
      await once(o.child, 'exit')
    }
  })
  for (const o of openers) t.equal(await o.next(), 'ready')

  const expected = migrationFiles(MIGRATIONS).map((f) => Number.parseInt(f, 10))
  const failures: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const path = join(dir, `round-${round}.db`)
    // Both get the same moment a little ahead, so each is spinning when it comes.
    const line = JSON.stringify([path, Date.now() + 40]) + '\n'
    for (const o of openers) o.child.stdin!.write(line)
    for (const o of openers) {
      const answer = JSON.parse(await o.next()) as { ok: boolean, error?: string }
      if (!answer.ok) failures.push(`round ${round}: ${answer.error ?? ''}`)
    }
    const db = new DatabaseSync(path, { readOnly: true })
    try {
      const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all().map((r) => Number(r.version))
      t.same(versions, expected, `round ${round}: each migration recorded once`)
    } finally {
      db.close()
    }
  }
  t.same(failures, [], `all ${ROUNDS * 2} opens succeed`)
})

// The race above hits this only now and then, so it is also made to happen: another
// connection holds the write lock (RESERVED) of a file in rollback-journal mode, as the
// process creating the file does for a moment. SQLite then answers `journal_mode = WAL` with
// SQLITE_BUSY at once, without waiting in the busy handler. The holder is a worker thread,
// so it lets go while the opening (synchronous) constructor waits.
const HOLDER = `
const { DatabaseSync } = require('node:sqlite')
const { parentPort, workerData } = require('node:worker_threads')
const db = new DatabaseSync(workerData.path)
db.exec('BEGIN IMMEDIATE')
parentPort.postMessage('held')
setTimeout(() => { db.exec('COMMIT'); db.close() }, workerData.holdMs)
`

/** A migrated CTFHive file switched back to a rollback journal, as a new file starts out. */
async function rollbackJournalFile (t: Test): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-open-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'store.db')
  await new SqliteStore({ path }).close()
  const db = new DatabaseSync(path)
  db.exec('PRAGMA journal_mode = DELETE')
  db.close()
  return path
}

async function holdWriteLock (t: Test, path: string, holdMs: number): Promise<void> {
  const worker = new Worker(HOLDER, { eval: true, workerData: { path, holdMs } })
  t.teardown(() => worker.terminate())
  await once(worker, 'message')
}

t.test('opening waits for another connection\'s write lock before switching to WAL', async (t) => {
  const path = await rollbackJournalFile(t)
  await holdWriteLock(t, path, 200)
  const store = new SqliteStore({ path })
  t.teardown(() => store.close())
  t.equal((await store.schema()).pending.length, 0)
  const db = new DatabaseSync(path, { readOnly: true })
  t.teardown(() => { db.close() })
  t.same(db.prepare('PRAGMA journal_mode').get(), { journal_mode: 'wal' })
})

t.test('a lock held past the busy timeout still fails the open, as "database is locked"', async (t) => {
  const path = await rollbackJournalFile(t)
  await holdWriteLock(t, path, 1000)
  const started = Date.now()
  t.throws(() => new SqliteStore({ path, busyTimeoutMs: 100 }), { message: /database is locked/ })
  t.ok(Date.now() - started >= 100, 'after the busy timeout')
})
