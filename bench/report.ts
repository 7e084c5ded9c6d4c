// The benchmark's figures: one row per scenario from its measured rounds, the table, the
// issue's targets and the SQLite probe's summary.
import { readFileSync } from 'node:fs'
import type { AckCheck } from './acked-check.ts'
import type { LoadResult } from './load.ts'

export interface Round {
  load: LoadResult
  /** CPU seconds (user + system) of the server process(es), all threads and the main thread alone. */
  cpuS?: number
  mainS?: number
  /** CPU seconds of the benchmark's own process (autocannon building and signing the requests). */
  loadS?: number
}

export interface Row {
  name: string
  rounds: Round[]
  check?: AckCheck
}

/** The rows the ratios and the targets are about. */
function keyRows (rows: Row[]): { bare?: Row, sqlite?: Row } {
  return { bare: rows.find((r) => r.name.startsWith('bare')), sqlite: rows.find((r) => r.name.startsWith('webhook, SQLite')) }
}

export function fmt (n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

/** Figures over all of a row's rounds: mean req/s, median p50, worst p99, sums of failures. */
export function summary (row: Row): { rps: number, p50: number, p99: number, non2xx: number, errors: number, cpuUs?: number, mainUs?: number, loadUs?: number } {
  const rs = row.rounds
  const acked = rs.reduce((a, r) => a + r.load.acked.length, 0)
  const perReq = (pick: (r: Round) => number | undefined): number | undefined =>
    rs.some((r) => pick(r) === undefined) || acked === 0 ? undefined : rs.reduce((a, r) => a + pick(r)!, 0) * 1e6 / acked
  return {
    rps: rs.reduce((a, r) => a + r.load.rps, 0) / Math.max(1, rs.length),
    p50: median(rs.map((r) => r.load.p50)),
    p99: Math.max(...rs.map((r) => r.load.p99)),
    non2xx: rs.reduce((a, r) => a + r.load.non2xx, 0),
    errors: rs.reduce((a, r) => a + r.load.errors + r.load.timeouts, 0),
    cpuUs: perReq((r) => r.cpuS),
    mainUs: perReq((r) => r.mainS),
    loadUs: perReq((r) => r.loadS)
  }
}

/** Each round's req/s over the bare route's in the same round, then the median: drift in the machine's speed cancels. */
export function ratio (row: Row, bare: Row | undefined): number | undefined {
  if (bare === undefined) return undefined
  const per = row.rounds.map((r, i) => bare.rounds[i] === undefined ? Number.NaN : r.load.rps / bare.rounds[i]!.load.rps).filter(Number.isFinite)
  return per.length === 0 ? undefined : median(per)
}

export function table (rows: Row[]): string[] {
  const { bare } = keyRows(rows)
  const head = ['scenario', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'ratio vs bare', 'server CPU µs/req', 'main thread µs/req', 'load gen. CPU µs/req', 'acked events stored']
  const body = rows.map((r) => {
    const s = summary(r)
    const x = ratio(r, bare)
    return [
      r.name,
      fmt(s.rps),
      fmt(s.p50, 1),
      fmt(s.p99, 1),
      fmt(s.non2xx),
      fmt(s.errors),
      x === undefined ? 'n/a' : `${x.toFixed(2)}×`,
      s.cpuUs === undefined ? 'n/a' : fmt(s.cpuUs),
      s.mainUs === undefined ? 'n/a' : fmt(s.mainUs),
      s.loadUs === undefined ? 'n/a' : fmt(s.loadUs),
      r.check === undefined ? '—' : `${fmt(r.check.acked - r.check.missing - r.check.wrongOutcome)} / ${fmt(r.check.acked)}`
    ]
  })
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  return [line(head), `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...body.map(line)]
}

/** The rounds one by one, so the spread is visible. */
export function roundsLine (rows: Row[]): string {
  const { bare, sqlite } = keyRows(rows)
  if (bare === undefined || sqlite === undefined) return ''
  return `per round, SQLite webhook / bare req/s: ${sqlite.rounds.map((r, i) =>
    `${fmt(r.load.rps)} / ${fmt(bare.rounds[i]?.load.rps ?? Number.NaN)} = ${(r.load.rps / (bare.rounds[i]?.load.rps ?? Number.NaN)).toFixed(2)}×`).join('; ')}`
}

/**
 * The bound the machine puts on the ratio. The load generator shares the vCPUs, so each answer
 * costs the machine its server CPU plus the load generator's; when both scenarios keep every
 * vCPU busy, their req/s compare as the inverse of those sums, however the work is spread over
 * threads. Moving work between threads only adds to the webhook's sum.
 */
export function ceilingLine (rows: Row[]): string {
  const { bare, sqlite } = keyRows(rows)
  if (bare === undefined || sqlite === undefined) return ''
  const b = summary(bare)
  const w = summary(sqlite)
  if (b.cpuUs === undefined || b.loadUs === undefined || w.cpuUs === undefined || w.loadUs === undefined) return ''
  const bareSum = b.cpuUs + b.loadUs
  const webhookSum = w.cpuUs + w.loadUs
  return `machine bound: CPU per answer, server + load generator: bare ${fmt(b.cpuUs)} + ${fmt(b.loadUs)} = ${fmt(bareSum)} µs, SQLite webhook ${fmt(w.cpuUs)} + ${fmt(w.loadUs)} = ${fmt(webhookSum)} µs; ` +
    `with every vCPU busy and nothing lost between threads, the ratio cannot pass ${(bareSum / webhookSum).toFixed(2)}× on this machine`
}

export function targets (rows: Row[]): string[] {
  const { bare, sqlite } = keyRows(rows)
  const x = sqlite === undefined ? undefined : ratio(sqlite, bare)
  if (sqlite === undefined || x === undefined) return ['targets: not evaluated (needs the bare and SQLite scenarios)']
  const s = summary(sqlite)
  const c = sqlite.check!
  const mark = (ok: boolean): string => (ok ? 'PASS' : 'MISS')
  return [
    `${mark(x >= 0.5)}  throughput ≥ 0.5× bare: ${x.toFixed(2)}× (median of the rounds)`,
    `${mark(s.p99 <= 25)}  p99 ≤ 25 ms: ${fmt(s.p99, 1)} ms (worst round)`,
    `${mark(s.non2xx === 0 && s.errors === 0)}  zero non-2xx: ${s.non2xx} non-2xx, ${s.errors} socket errors or timeouts`,
    `${mark(c.missing === 0 && c.wrongOutcome === 0)}  every acked event stored: ${c.acked - c.missing - c.wrongOutcome} of ${c.acked} (${c.stored} bench events in stripe_events)`
  ]
}

/** What the SQLite probe saw: commit sizes in the measured rounds, statement times over the whole run. */
export function probeSummary (file: string, windows: Array<[number, number]>): string[] {
  const { batchSizes: all, stats } = JSON.parse(readFileSync(file, 'utf8')) as { batchSizes: Array<[number, number]>, stats: Array<{ key: string, n: number, ms: number, maxMs: number }> }
  const batchSizes = all.filter(([at]) => windows.some(([a, b]) => at >= a && at <= b)).map(([, n]) => n)
  const sorted = [...batchSizes].sort((a, b) => a - b)
  const q = (p: number): number => sorted[Math.floor(p * (sorted.length - 1))] ?? 0
  const units = all.reduce((a, [, n]) => a + n, 0)
  const measured = batchSizes.reduce((a, b) => a + b, 0)
  const top = [...stats].sort((a, b) => b.ms - a.ms).slice(0, 7)
  return [
    `SQLite probe, measured rounds: ${fmt(batchSizes.length)} commits (one fsync each) for ${fmt(measured)} transactions: ${(measured / Math.max(1, batchSizes.length)).toFixed(1)} per commit (p50 ${q(0.5)}, p90 ${q(0.9)}, max ${q(1)}); statement times over the whole run:`,
    ...top.map((s) => `  ${fmt(s.ms).padStart(6)} ms  ${fmt(s.n).padStart(8)} × ${(s.ms * 1000 / s.n).toFixed(1).padStart(6)} µs (max ${s.maxMs.toFixed(1)} ms)  ${s.key}` +
      (units > 0 ? `  → ${(s.ms * 1000 / units).toFixed(1)} µs per transaction` : ''))
  ]
}
