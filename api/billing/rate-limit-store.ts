// The checkout rate limit's counters, kept in the store (@fastify/rate-limit's custom store
// contract), so every instance on one database counts the same hits: with N instances a client
// still gets the limit once, not N times. A client this process already saw over the limit is
// refused here until its window ends, without a store write: a flood from one address costs
// each instance at most the limit plus one write per window.
import { createHash } from 'node:crypto'
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import { RATE_CLOCK_SLACK_MS, type RateCount, type Store } from '../store/store.ts'

type Done = Parameters<FastifyRateLimitStore['incr']>[1]
/** What the plugin gives `child` at run time: the route's merged options (its types say otherwise). */
interface RouteParams { routeInfo?: { method?: string | string[], url?: string } }

const noop = (): void => {}

/** Clients over the limit remembered per route; the oldest is forgotten first (it then costs one write). */
const REMEMBERED = 10_000

/**
 * Keys longer than this are stored as their digest. Behind TRUST_PROXY=true the client's
 * address is what X-Forwarded-For says, up to the header limit; PostgreSQL's index refuses a
 * key over 2704 bytes (a 500 for a client's header). An address is never this long.
 */
const KEY_MAX = 128

function storedKey (key: string): string {
  return key.length <= KEY_MAX ? key : `sha256:${createHash('sha256').update(key).digest('hex')}`
}

export function storeRateLimit (store: Store): FastifyRateLimitStoreCtor {
  return class StoreRateLimit implements FastifyRateLimitStore {
    private readonly prefix: string
    private readonly over = new Map<string, RateCount>()
    private readonly queued = new Map<string, Promise<void>>()

    constructor (params: unknown = {}) {
      const { method, url } = (params as RouteParams).routeInfo ?? {}
      // Per route: each route's limit counts its own hits.
      this.prefix = url === undefined ? '' : `${[method].flat().join(',')} ${url} `
    }

    incr (key: string, done: Done, timeWindow: number, max: number): void {
      const k = storedKey(this.prefix + key)
      // One client's hits run one after another in this process: hits that arrive together
      // would otherwise all reach the store before the first came back over the limit.
      const answered = (this.queued.get(k) ?? Promise.resolve()).then(() => this.hit(k, timeWindow, max)).then(
        (hit) => { done(null, hit) },
        (err: unknown) => { done(err instanceof Error ? err : new Error(String(err))) })
      // The queue waits for this hit however it ended; the last one out removes the key.
      const settled = answered.then(noop, noop)
      this.queued.set(k, settled)
      void settled.then(() => { if (this.queued.get(k) === settled) this.queued.delete(k) })
    }

    private async hit (k: string, timeWindow: number, max: number): Promise<{ current: number, ttl: number }> {
      // The store's clock: every instance on the database counts the same window.
      const now = store.now()
      const known = this.over.get(k)
      // Ended as the store would say (its RATE_ENDED): a window ending more than one window
      // (and a second's slack) from now began before the clock was stepped back.
      if (known !== undefined && known.resetAt > now && known.resetAt <= now + timeWindow + RATE_CLOCK_SLACK_MS) {
        known.count++
        return { current: known.count, ttl: known.resetAt - now }
      }
      this.over.delete(k)
      const hit = await store.countHit(k, timeWindow, now)
      if (hit.count > max) this.remember(k, hit)
      // At least 1 ms, so Retry-After (whole seconds, rounded up) never says 0.
      return { current: hit.count, ttl: Math.max(1, hit.resetAt - store.now()) }
    }

    child (params: unknown): StoreRateLimit {
      return new StoreRateLimit(params)
    }

    private remember (key: string, hit: RateCount): void {
      if (this.over.size >= REMEMBERED) this.over.delete(this.over.keys().next().value!)
      this.over.set(key, { ...hit })
    }
  }
}
