// Picking and opening the store: a SQLite path this user cannot use is a setting (the server
// exits 78 naming DATABASE_URL), a passing I/O error is not.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore, settingRefusal, sqliteSettingProblem } from '../../api/store/index.ts'

const PG = { poolSize: 2, statementTimeoutMs: 5000 }

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-open-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** What openStore throws for `path`. */
async function openError (path: string): Promise<unknown> {
  return await openStore({ databaseUrl: `sqlite:${path}`, pg: PG }).then(async (s) => { await s.close() }, (e: unknown) => e)
}

/** node:sqlite's error for a result code, as it throws them. */
function sqliteError (errcode: number, message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_SQLITE_ERROR', errcode, errstr: message })
}

t.test('a SQLite path that cannot work is refused as a setting, naming the file', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'junk'), 'not a database, but long enough to have a header'.repeat(100))
  const cases = [
    { what: 'a directory', path: dir, says: /: unable to open database file \(SQLITE_CANTOPEN: it names a directory/ },
    { what: 'a file that is not a database', path: join(dir, 'junk'), says: /: file is not a database \(SQLITE_NOTADB/ },
    { what: 'a file where a directory should be', path: join(dir, 'junk', 'sub', 'x.db'), says: /: ENOTDIR: .*\(its directory cannot be created/ },
    { what: 'a file as the directory', path: join(dir, 'junk', 'x.db'), says: /: EEXIST: .*\(its directory cannot be created/ }
  ]
  for (const c of cases) {
    const err = await openError(c.path)
    const refusal = settingRefusal(err)
    t.equal(refusal?.variable, 'DATABASE_URL', `${c.what}: a setting (${String(err)})`)
    t.ok(refusal?.message.startsWith(`DATABASE_URL: ${c.path}: `), `${c.what}: names the file`)
    t.match(refusal?.message, c.says, `${c.what}: says why`)
  }
})

t.test('which SQLite and file-system errors are settings: the path or its permissions, never a passing I/O error', async (t) => {
  t.match(sqliteSettingProblem(sqliteError(8, 'attempt to write a readonly database')), /^SQLITE_READONLY: this user may not write the file/)
  t.match(sqliteSettingProblem(sqliteError(1032, 'attempt to write a readonly database')), /^SQLITE_READONLY/, 'an extended code (READONLY_DBMOVED)')
  t.match(sqliteSettingProblem(sqliteError(14, 'unable to open database file')), /^SQLITE_CANTOPEN/)
  t.match(sqliteSettingProblem(sqliteError(26, 'file is not a database')), /^SQLITE_NOTADB/)
  t.match(sqliteSettingProblem(new Error('migration 001_initial.sql failed', { cause: sqliteError(8, 'attempt to write a readonly database') })), /^SQLITE_READONLY/, 'behind a migration failure')
  for (const code of ['EACCES', 'ENOTDIR', 'EISDIR']) {
    t.match(sqliteSettingProblem(Object.assign(new Error(code), { code, syscall: 'mkdir' })), /^its directory cannot be created/, code)
  }
  t.equal(sqliteSettingProblem(sqliteError(10, 'disk I/O error')), null, 'SQLITE_IOERR: restarting may help')
  t.equal(sqliteSettingProblem(sqliteError(266, 'disk I/O error')), null, 'SQLITE_IOERR_READ')
  t.equal(sqliteSettingProblem(sqliteError(13, 'database or disk is full')), null, 'SQLITE_FULL')
  t.equal(sqliteSettingProblem(sqliteError(5, 'database is locked')), null, 'SQLITE_BUSY')
  t.equal(sqliteSettingProblem(Object.assign(new Error('EIO'), { code: 'EIO' })), null, 'EIO')
  t.equal(settingRefusal(new Error('/x/ctfhive.db: disk I/O error', { cause: sqliteError(10, 'disk I/O error') })), null, 'the server exits 1 for it')
})
