// The schema's version, as both adapters see it: the migration files this release ships, and
// which of them a database has applied. The server applies what is missing when it starts; the
// operator CLI only looks (store/index.ts), so a tool of another release never changes the
// schema under a running server.
import { readdirSync } from 'node:fs'

export interface SchemaStatus {
  /** This release's migrations the database has not applied, by file name. */
  pending: string[]
  /** Versions the database has applied that this release does not ship (a newer release ran). */
  unknown: number[]
}

/** The migration files in `dir` (`NNN_name.sql`), in order. */
export function migrationFiles (dir: string): string[] {
  return readdirSync(dir).filter((f) => /^\d+_.+\.sql$/.test(f)).sort()
}

export function schemaStatusOf (files: string[], applied: number[]): SchemaStatus {
  const done = new Set(applied)
  const known = new Set(files.map((f) => Number.parseInt(f, 10)))
  return {
    pending: files.filter((f) => !done.has(Number.parseInt(f, 10))),
    unknown: [...done].filter((v) => !known.has(v)).sort((a, b) => a - b)
  }
}
