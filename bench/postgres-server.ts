// A throwaway PostgreSQL for the benchmark. Unlike the test helper's server (fsync off, for
// speed), this one keeps PostgreSQL's durable defaults — fsync, synchronous_commit,
// full_page_writes on — so its figures compare fairly with SQLite at synchronous=FULL.
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from '../tests/helpers/server-process.ts'
import { findPostgresBin } from '../tests/helpers/postgres.ts'

export interface BenchPostgres {
  url: string
  version: string
  stop (): void
}

function owner (): { uid: number, gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  return { uid: id('-u'), gid: id('-g') }
}

function run (bin: string, args: string[], asPostgres: boolean): void {
  const [cmd, argv] = asPostgres ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args]
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 120_000, cwd: tmpdir() })
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')}: ${r.stderr || r.stdout}`)
}

/** Starts a durable PostgreSQL with one database, or returns undefined when none is installed. */
export async function startBenchPostgres (): Promise<BenchPostgres | undefined> {
  const bin = findPostgresBin()
  if (bin === undefined) return undefined
  const who = owner()
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-bench-pg-'))
  if (who !== undefined) chownSync(dir, who.uid, who.gid)
  const data = join(dir, 'data')
  // --no-sync only skips initdb's own final flush; the running server keeps fsync on.
  run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], who !== undefined)
  const port = await freePort()
  run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60', '-o',
    `-p ${port} -c listen_addresses='127.0.0.1' -k ${dir} -c max_connections=100`, 'start'], who !== undefined)
  let stopped = false
  const stop = (): void => {
    if (stopped) return
    stopped = true
    process.removeListener('exit', stop)
    try {
      run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], who !== undefined)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  process.on('exit', stop)
  const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` })
  await admin.connect()
  try {
    await admin.query('CREATE DATABASE ctfhive_bench')
    const settings = await admin.query<{ name: string, setting: string }>(
      "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'server_version') ORDER BY name")
    const version = settings.rows.map((r) => `${r.name}=${r.setting}`).join(', ')
    return { url: `postgres://postgres@127.0.0.1:${port}/ctfhive_bench`, version, stop }
  } catch (err) {
    stop()
    throw err
  } finally {
    await admin.end()
  }
}
