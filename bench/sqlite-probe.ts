// Preloaded into the app process (`node --import bench/sqlite-probe.ts`) by `BENCH_SQLITE_PROBE=1
// npm run bench`: counts commits and units per commit (SAVEPOINTs between BEGIN and COMMIT),
// and times every statement, so the report can say where the writer's time goes. On exit it
// writes a JSON summary to BENCH_SQLITE_PROBE_OUT.
import { DatabaseSync, StatementSync } from 'node:sqlite'
import { writeFileSync } from 'node:fs'

interface Stat { n: number, ms: number, maxMs: number }

const stats = new Map<string, Stat>()
/** [epoch ms, transactions] of every COMMIT, so the report can keep to the measured rounds. */
const batchSizes: Array<[number, number]> = []
let units = 0

function add (key: string, ms: number): void {
  const s = stats.get(key) ?? { n: 0, ms: 0, maxMs: 0 }
  s.n++
  s.ms += ms
  s.maxMs = Math.max(s.maxMs, ms)
  stats.set(key, s)
}

function label (sql: string): string {
  if (sql.startsWith('SAVEPOINT')) return 'SAVEPOINT'
  if (sql.startsWith('RELEASE')) return 'RELEASE'
  return sql.replace(/\s+/g, ' ').slice(0, 70)
}

const exec = DatabaseSync.prototype.exec
DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
  const t0 = performance.now()
  try {
    return exec.call(this, sql)
  } finally {
    add(`exec ${label(sql)}`, performance.now() - t0)
    if (sql === 'BEGIN IMMEDIATE') units = 0
    else if (sql.startsWith('SAVEPOINT')) units++
    else if (sql === 'COMMIT') batchSizes.push([Date.now(), units])
  }
}

for (const method of ['run', 'get', 'all'] as const) {
  const original = StatementSync.prototype[method] as (...args: unknown[]) => unknown
  Object.defineProperty(StatementSync.prototype, method, {
    value: function (this: StatementSync, ...args: unknown[]) {
      const t0 = performance.now()
      try {
        return original.apply(this, args)
      } finally {
        add(`${method} ${label(this.sourceSQL)}`, performance.now() - t0)
      }
    }
  })
}

process.on('exit', () => {
  const out = process.env.BENCH_SQLITE_PROBE_OUT
  if (out === undefined) return
  writeFileSync(out, JSON.stringify({ batchSizes, stats: [...stats].map(([key, s]) => ({ key, ...s })) }))
})
