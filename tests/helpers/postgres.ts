// A throwaway PostgreSQL for tests: PG_TEST_URL when given, else a private server made with
// initdb + pg_ctl on a temp dir and a free 127.0.0.1 port (as the `postgres` user when we
// are root), fsync off. Each caller gets fresh databases; teardown drops or stops everything.
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { ENDING_SIGNALS } from './child-reaper.ts'
import { sharedTmpdir } from './shared-tmp.ts'

interface Tap {
  teardown (fn: () => unknown): void
  plan (n: number, comment?: string): void
  fail (message: string): void
}

export interface TestPostgres {
  /** Creates an empty database and returns its URL; dropped (or stopped with the server) in teardown. */
  createDatabase (): Promise<string>
  /** The server's admin URL (database `postgres`). */
  adminUrl: string
}

const PG_LIB = '/usr/lib/postgresql'
const DIR_PREFIX = 'ctfhive-pg-'

/** The bin directory of the newest installed PostgreSQL with initdb and pg_ctl, if any. */
export function findPostgresBin (): string | undefined {
  if (!existsSync(PG_LIB)) return undefined
  const versions = readdirSync(PG_LIB).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
  for (const v of versions) {
    const bin = join(PG_LIB, v, 'bin')
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin
  }
  return undefined
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

function postgresUid (): { uid: number, gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
  return { uid, gid }
}

/** Runs a PostgreSQL binary, as `postgres` when we are root (the server refuses root). */
function runPg (bin: string, args: string[], cwd: string, asPostgres: boolean): void {
  const [cmd, argv] = asPostgres ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args]
  const r = spawnSync(cmd, argv, { cwd, encoding: 'utf8', timeout: 120_000 })
  if (r.status !== 0) throw new Error(`${bin} ${args[0] ?? ''} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`)
}

interface Server { adminUrl: string, stop (): void }

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Stops servers left behind (under `base`) by test processes that were killed outright (SIGKILL). */
function reapOrphans (base: string, bin: string, asPostgres: boolean): void {
  for (const name of readdirSync(base)) {
    if (!name.startsWith(DIR_PREFIX)) continue
    const dir = join(base, name)
    let owner: number
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'))
    } catch {
      continue
    }
    if (!Number.isInteger(owner) || owner <= 0 || alive(owner)) continue
    try {
      if (existsSync(join(dir, 'data', 'postmaster.pid'))) runPg(join(bin, 'pg_ctl'), ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop'], dir, asPostgres)
    } catch { /* already down */ }
    rmSync(dir, { recursive: true, force: true })
  }
}

async function startServer (bin: string): Promise<Server> {
  const owner = postgresUid()
  // The server runs as postgres when we are root: its dir must be one that user can enter.
  const base = owner !== undefined ? sharedTmpdir() : tmpdir()
  reapOrphans(base, bin, owner !== undefined)
  const dir = mkdtempSync(join(base, DIR_PREFIX))
  const data = join(dir, 'data')
  try {
    writeFileSync(join(dir, 'owner.pid'), String(process.pid))
    if (owner !== undefined) chownSync(dir, owner.uid, owner.gid)
    runPg(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], dir, owner !== undefined)
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  let lastError: unknown
  // The free port may be taken by someone else before the server binds it: try a few.
  for (let i = 0; i < 5; i++) {
    const port = await freePort()
    const options = [
      `-p ${port}`, "-c listen_addresses='127.0.0.1'", `-k ${dir}`, '-c fsync=off', '-c synchronous_commit=off',
      '-c full_page_writes=off', '-c shared_buffers=16MB', '-c max_connections=60'
    ].join(' ')
    try {
      runPg(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o', options, 'start'], dir, owner !== undefined)
    } catch (err) {
      lastError = err
      continue
    }
    let stopped = false
    const stop = (): void => {
      if (stopped) return
      stopped = true
      process.removeListener('exit', stop)
      try {
        runPg(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], dir, owner !== undefined)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
    // Never leave a server behind, even when the test process dies on an error or a signal.
    process.on('exit', stop)
    for (const signal of ENDING_SIGNALS) {
      process.once(signal, () => {
        stop()
        process.kill(process.pid, signal)
      })
    }
    return { adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`, stop }
  }
  rmSync(dir, { recursive: true, force: true })
  throw lastError
}

/**
 * PostgreSQL for this test file, or undefined after marking the file skipped (one-line reason),
 * or failed when CI=true demands PostgreSQL.
 */
export async function usePostgres (t: Tap): Promise<TestPostgres | undefined> {
  let adminUrl = process.env.PG_TEST_URL
  const given = adminUrl !== undefined && adminUrl !== ''
  if (!given) {
    const bin = findPostgresBin()
    if (bin === undefined) {
      const reason = `PostgreSQL is not installed (no ${PG_LIB}/*/bin/initdb) and PG_TEST_URL is not set`
      if (process.env.CI === 'true') t.fail(`${reason} (required under CI=true)`)
      else t.plan(0, reason)
      return undefined
    }
    const server = await startServer(bin)
    t.teardown(() => server.stop())
    adminUrl = server.adminUrl
  }
  const admin = adminUrl as string
  const created: string[] = []
  // A server of our own goes away whole; on a given server, drop what we made.
  if (given) t.teardown(async () => {
    if (created.length === 0) return
    const client = new pg.Client({ connectionString: admin })
    await client.connect()
    try {
      for (const name of created) await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    } finally {
      await client.end()
    }
  })
  return {
    adminUrl: admin,
    async createDatabase () {
      const name = `ctfhive_test_${randomBytes(6).toString('hex')}`
      const client = new pg.Client({ connectionString: admin })
      await client.connect()
      try {
        await client.query(`CREATE DATABASE ${name}`)
      } finally {
        await client.end()
      }
      created.push(name)
      const url = new URL(admin)
      url.pathname = `/${name}`
      return url.toString()
    }
  }
}

/** URLs of a test server it refuses as settings: a database that does not exist, a user it does not know. */
export function refusedUrls (databaseUrl: string): { noDb: URL, noUser: URL } {
  const noDb = new URL(databaseUrl)
  noDb.pathname = '/ctfhive_no_such_database'
  const noUser = new URL(databaseUrl)
  noUser.username = 'nobody_here'
  noUser.password = 'hunter2'
  return { noDb, noUser }
}
