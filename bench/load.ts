// Drives autocannon programmatically: every request gets a fresh signed body, and every
// response is matched to the event id it answers, so the acknowledged ids can be checked
// against the store afterwards.
import { createRequire } from 'node:module'
import type { SignedBody } from './stripe-bodies.ts'

interface AutocannonRequest {
  method?: string
  path?: string
  body?: string
  headers?: Record<string, string>
  setupRequest?: (req: AutocannonRequest, context: Record<string, unknown>) => AutocannonRequest
  onResponse?: (status: number, body: string, context: Record<string, unknown>) => void
}

interface Histogram { average: number, p50: number, p90: number, p99: number, p99_9: number, max: number, total: number }

interface AutocannonResult {
  requests: Histogram & { sent: number }
  latency: Histogram
  duration: number
  errors: number
  timeouts: number
  non2xx: number
  '2xx': number
}

type Autocannon = (opts: {
  url: string | string[]
  connections: number
  duration: number
  pipelining?: number
  timeout?: number
  requests: AutocannonRequest[]
}) => Promise<AutocannonResult>

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

export interface LoadResult {
  /** 2xx answers per second over the run. */
  rps: number
  p50: number
  p90: number
  p99: number
  max: number
  total: number
  non2xx: number
  errors: number
  timeouts: number
  /** Event ids answered 2xx. */
  acked: string[]
  /** A few non-2xx answers, for the report. */
  failures: Array<{ status: number, body: string }>
}

export async function drive (opts: { urls: string[], path: string, connections: number, durationS: number, next: () => SignedBody }): Promise<LoadResult> {
  const acked: string[] = []
  const failures: Array<{ status: number, body: string }> = []
  const result = await autocannon({
    url: opts.urls,
    connections: opts.connections,
    duration: opts.durationS,
    pipelining: 1,
    timeout: 10,
    requests: [{
      method: 'POST',
      path: opts.path,
      // With pipelining 1 a client has one request in flight, and the context given to
      // onResponse is the one its request was built with: the id travels in it.
      setupRequest: (req, context) => {
        const b = opts.next()
        context.id = b.id
        return { ...req, body: b.body, headers: b.headers }
      },
      onResponse: (status, body, context) => {
        if (status >= 200 && status < 300) acked.push(String(context.id))
        else if (failures.length < 5) failures.push({ status, body: body.slice(0, 300) })
      }
    }]
  })
  return {
    rps: result['2xx'] / Math.max(result.duration, 0.001),
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    acked,
    failures
  }
}
