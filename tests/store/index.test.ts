// Picking and opening the store: a SQLite path this user cannot use is a setting (the server
// exits 78 naming DATABASE_URL), a passing I/O error is not.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { damageRefusal, openStore, settingRefusal, sqliteSettingProblem } from '../../api/store/index.ts'

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

/** A CTFHive database cut to half its size, as a copy that ran out of room leaves it. */
async function truncatedDatabase (dir: string): Promise<string> {
  const path = join(dir, 'truncated.db')
  await (await openStore({ databaseUrl: `sqlite:${path}`, pg: PG })).close()
  truncateSync(path, statSync(path).size / 2)
  return path
}

t.test('a SQLite path that cannot work is refused as a setting, naming the file', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'junk'), 'not a database, but long enough to have a header'.repeat(100))
  const cases = [
    { what: 'a directory', path: dir, says: /: unable to open database file \(SQLITE_CANTOPEN: it names a directory/ },
    { what: 'a file that is not a database', path: join(dir, 'junk'), says: /: file is not a database \(SQLITE_NOTADB/ },
    { what: 'a file where a directory should be', path: join(dir, 'junk', 'sub', 'x.db'), says: /: ENOTDIR: .*\(its directory cannot be created/ },
    { what: 'a file as the directory', path: join(dir, 'junk', 'x.db'), says: /: EEXIST: .*\(its directory cannot be created/ },
    { what: 'a damaged file (truncated)', path: await truncatedDatabase(dir), says: /: database disk image is malformed \(SQLITE_CORRUPT: the file is damaged; restore it from a backup, see Backups/ }
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
  t.match(sqliteSettingProblem(sqliteError(11, 'database disk image is malformed')), /^SQLITE_CORRUPT: the file is damaged; restore it from a backup/)
  t.match(sqliteSettingProblem(new Error('migration 001_initial.sql failed', { cause: sqliteError(8, 'attempt to write a readonly database') })), /^SQLITE_READONLY/, 'behind a migration failure')
  for (const code of ['EACCES', 'ENOTDIR', 'EISDIR']) {
    t.match(sqliteSettingProblem(Object.assign(new Error(code), { code, syscall: 'mkdir' })), /^its directory cannot be created/, code)
  }
  t.match(sqliteSettingProblem(Object.assign(new Error('EROFS'), { code: 'EROFS', syscall: 'mkdir' })), /^its directory cannot be created: the file system is read-only there/)
  t.equal(sqliteSettingProblem(sqliteError(10, 'disk I/O error')), null, 'SQLITE_IOERR: restarting may help')
  t.equal(sqliteSettingProblem(sqliteError(266, 'disk I/O error')), null, 'SQLITE_IOERR_READ')
  t.equal(sqliteSettingProblem(sqliteError(13, 'database or disk is full')), null, 'SQLITE_FULL')
  t.equal(sqliteSettingProblem(sqliteError(5, 'database is locked')), null, 'SQLITE_BUSY')
  t.equal(sqliteSettingProblem(Object.assign(new Error('EIO'), { code: 'EIO' })), null, 'EIO')
  t.equal(settingRefusal(new Error('/x/ctfhive.db: disk I/O error', { cause: sqliteError(10, 'disk I/O error') })), null, 'the server exits 1 for it')
})

/**
 * A read-only file system at a new temporary directory (tmpfs, mounted ro), unmounted in
 * teardown; undefined when this process may not mount (not root, or a container without
 * CAP_SYS_ADMIN), which fails the test under CI=true.
 */
function readOnlyMount (t: Test): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-rofs-'))
  const r = process.getuid?.() === 0 ? spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m,mode=0755', 'tmpfs', dir], { encoding: 'utf8' }) : undefined
  const mounted = r?.status === 0
  t.teardown(() => {
    // Unmounted first (lazily when still busy), so the removal never reaches into the mount.
    if (mounted && spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  if (mounted) return dir
  const why = r === undefined ? 'mounting a read-only file system needs root' : `mount failed: ${(r.stderr || String(r.error)).trim()}`
  if (process.env.CI === 'true' && r !== undefined) t.fail(`${why} (required under CI=true when running as root)`)
  else t.plan(0, why)
  return undefined
}

t.test('a data directory on a read-only file system (ProtectSystem=strict) is a setting, naming EROFS, not ENOENT', async (t) => {
  const mount = readOnlyMount(t)
  if (mount === undefined) return
  for (const path of [join(mount, 'data', 'ctfhive.db'), join(mount, 'data', 'deeper', 'ctfhive.db')]) {
    const err = await openError(path)
    const refusal = settingRefusal(err)
    t.equal(refusal?.variable, 'DATABASE_URL', `a setting (exit 78): ${String(err)}`)
    t.match(refusal?.message, new RegExp(`^DATABASE_URL: ${path}: EROFS: read-only file system, mkdir '${join(mount, 'data')}' \\(its directory cannot be created: the file system is read-only there`))
  }
  t.notOk(existsSync(join(mount, 'data')), 'nothing was created')
})

t.test("a table found damaged by the start's first read (the audit chain's last entry) is a setting too; other failures are not", async (t) => {
  const path = join(tempDir(t), 'ctfhive.db')
  const config = { databaseUrl: `sqlite:${path}`, pg: PG }
  await (await openStore(config)).close()
  // audit_log's root page overwritten: the file opens, reading the table fails.
  const raw = new DatabaseSync(path)
  const root = Number(raw.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'audit_log'").get()?.rootpage)
  const pageSize = Number(raw.prepare('PRAGMA page_size').get()?.page_size)
  raw.close()
  const fd = openSync(path, 'r+')
  try { writeSync(fd, Buffer.alloc(pageSize, 0xff), 0, pageSize, (root - 1) * pageSize) } finally { closeSync(fd) }
  const store = await openStore(config)
  t.teardown(() => store.close())
  const err = await store.listAudit({ limit: 1, newest: true }).then(() => undefined, (e: unknown) => e)
  const refusal = damageRefusal(config, err)
  t.equal(refusal?.variable, 'DATABASE_URL', `a setting: ${String(err)}`)
  t.equal(refusal?.message, `DATABASE_URL: ${path}: database disk image is malformed (SQLITE_CORRUPT: the file is damaged; restore it from a backup, see Backups in the docs)`)
  t.equal(damageRefusal(config, sqliteError(10, 'disk I/O error')), null, 'an I/O error is not')
  t.equal(damageRefusal({ databaseUrl: 'postgres://x@127.0.0.1/x' }, err), null, 'nor anything on PostgreSQL')
})
