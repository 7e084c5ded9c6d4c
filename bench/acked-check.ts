// After a run: is every event that was answered 2xx in stripe_events (outcome ok)?
// Read straight from the database, after the app has stopped.
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'

export interface AckCheck {
  acked: number
  stored: number
  missing: number
  wrongOutcome: number
  /** A few missing ids, for the report. */
  examples: string[]
}

function compare (acked: string[], outcomes: Map<string, string>): AckCheck {
  let missing = 0
  let wrongOutcome = 0
  const examples: string[] = []
  for (const id of acked) {
    const outcome = outcomes.get(id)
    if (outcome === undefined) {
      missing++
      if (examples.length < 5) examples.push(id)
    } else if (outcome !== 'ok') {
      wrongOutcome++
      if (examples.length < 5) examples.push(`${id} (${outcome})`)
    }
  }
  return { acked: acked.length, stored: outcomes.size, missing, wrongOutcome, examples }
}

export function checkSqlite (path: string, prefix: string, acked: string[]): AckCheck {
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    const rows = db.prepare('SELECT id, outcome FROM stripe_events WHERE id LIKE ?').all(`${prefix}%`) as Array<{ id: string, outcome: string }>
    return compare(acked, new Map(rows.map((r) => [r.id, r.outcome])))
  } finally {
    db.close()
  }
}

export async function checkPostgres (url: string, prefix: string, acked: string[]): Promise<AckCheck> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ id: string, outcome: string }>('SELECT id, outcome FROM stripe_events WHERE id LIKE $1', [`${prefix}%`])
    return compare(acked, new Map(rows.map((r) => [r.id, r.outcome])))
  } finally {
    await client.end()
  }
}
