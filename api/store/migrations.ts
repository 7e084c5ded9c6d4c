// The schema's version, as both adapters see it: the migration files this release ships, and
// which of them a database has applied. The server applies what is missing when it starts; the
// operator CLI only looks (store/index.ts), so a tool of another release never changes the
// schema under a running server.
import { readdirSync } from 'node:fs'
import { StoreError } from './store.ts'

export interface SchemaStatus {
  /** The database has a migrations table: CTFHive made it (or at least began to). */
  initialized: boolean
  /** This release's migrations the database has not applied, by file name. */
  pending: string[]
  /** Versions the database has applied that this release does not ship (a newer release ran). */
  unknown: number[]
}

/** The migration files in `dir` (`NNN_name.sql`), in order. */
export function migrationFiles (dir: string): string[] {
  return readdirSync(dir).filter((f) => /^\d+_.+\.sql$/.test(f)).sort()
}

/** `applied`: the versions in the database's migrations table; undefined when it has none. */
export function schemaStatusOf (files: string[], applied: number[] | undefined): SchemaStatus {
  const done = new Set(applied)
  const known = new Set(files.map((f) => Number.parseInt(f, 10)))
  return {
    initialized: applied !== undefined,
    pending: files.filter((f) => !done.has(Number.parseInt(f, 10))),
    unknown: [...done].filter((v) => !known.has(v)).sort((a, b) => a - b)
  }
}

/** A database CTFHive did not set up: DATABASE_URL names the wrong one (the server exits 78). */
export class NotCtfhiveDatabase extends StoreError {}
/** A database this release's migrations have not all reached: its server has not started on it yet. */
export class SchemaBehind extends StoreError {}
/** A database a newer release migrated: what those migrations added, this release does not know. */
export class SchemaAhead extends StoreError {}

/** Versions as the migration files are numbered (14 as 014). */
export function versionList (versions: number[]): string {
  return versions.map((v) => String(v).padStart(3, '0')).join(', ')
}

/**
 * A database holding `tables` (those of the schema the store uses) is another application's:
 * it has tables, and schema_migrations is not among them. An empty one is CTFHive's to set up.
 */
export function holdsOtherTables (tables: string[]): boolean {
  return tables.length > 0 && !tables.includes('schema_migrations')
}

/** `tables` for a message: the first five, then how many more. */
export function tableList (tables: string[]): string {
  return tables.length > 5 ? `${tables.slice(0, 5).join(', ')} and ${tables.length - 5} more` : tables.join(', ')
}

/**
 * For the server, before it migrates: creating its tables beside another application's (a
 * wrong DATABASE_URL) would mix the two, so that database is refused with nothing changed.
 */
export function refuseOtherApplication (tables: string[]): void {
  if (holdsOtherTables(tables)) {
    throw new NotCtfhiveDatabase(`this is not a CTFHive database: it holds other tables (${tableList(tables)}) and no schema_migrations table, and was left as it is: point DATABASE_URL at CTFHive's database, or at an empty one to start anew`)
  }
}

/**
 * For a process that must not migrate (the operator CLI): a database CTFHive never set up (a
 * wrong DATABASE_URL) or one this release's server has not migrated yet is refused.
 */
export function refuseUnlessCurrent (status: SchemaStatus): void {
  if (!status.initialized) {
    throw new NotCtfhiveDatabase('this is not a CTFHive database (it has no schema_migrations table): check DATABASE_URL; the server creates the schema when it first starts')
  }
  if (status.pending.length > 0) {
    throw new SchemaBehind(`the database's schema is behind this release (not applied: ${status.pending.join(', ')}); start the server of this release once, which applies them`)
  }
}

/**
 * For a tool that writes by this release's column lists (the copy to PostgreSQL): on a database
 * a newer release migrated, it would leave out what those migrations added, and say nothing.
 * `which` names the database; `tool` is that release's command to use instead.
 */
export function refuseAhead (status: SchemaStatus, which: string, tool: string): void {
  if (status.unknown.length > 0) {
    throw new SchemaAhead(`${which} has migrations this release does not know (${versionList(status.unknown)}): a newer release migrated it, and this release would leave out what they added; use that release's ${tool}`)
  }
}

/** The one line a process that may run on such a database (after a rollback) says about it; null when current. */
export function aheadWarning (status: SchemaStatus): string | null {
  return status.unknown.length > 0
    ? `the database has migrations this release does not know (${versionList(status.unknown)}): a newer release migrated it`
    : null
}
