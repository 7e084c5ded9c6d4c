// The checkout rate limit's counters, kept in the store (@fastify/rate-limit's custom store
// contract), so every instance on one database counts the same hits: with N instances a client
// still gets the limit once, not N times. A client this process already saw over the limit is
// refused here until its window ends, without a store write: a flood from one address costs
// no more writes than the limit allows.
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { RateCount, Store } from '../store/store.ts'

type Done = Parameters<FastifyRateLimitStore['incr']>[1]
/** What the plugin gives `child` at run time: the route's merged options (its types say otherwise). */
interface RouteParams { routeInfo?: { method?: string | string[], url?: string } }

/** Clients over the limit remembered per route; the oldest is forgotten first (it then costs one write). */
const REMEMBERED = 10_000

export function storeRateLimit (store: Store): FastifyRateLimitStoreCtor {
  return class StoreRateLimit implements FastifyRateLimitStore {
    private readonly prefix: string
    private readonly over = new Map<string, RateCount>()

    constructor (params: unknown = {}) {
      const { method, url } = (params as RouteParams).routeInfo ?? {}
      // Per route: each route's limit counts its own hits.
      this.prefix = url === undefined ? '' : `${[method].flat().join(',')} ${url} `
    }

    incr (key: string, done: Done, timeWindow: number, max: number): void {
      const k = this.prefix + key
      const now = Date.now()
      const known = this.over.get(k)
      if (known !== undefined && known.resetAt > now) {
        known.count++
        done(null, { current: known.count, ttl: known.resetAt - now })
        return
      }
      this.over.delete(k)
      store.countHit(k, timeWindow, now).then((hit) => {
        if (hit.count > max) this.remember(k, hit)
        done(null, { current: hit.count, ttl: Math.max(0, hit.resetAt - Date.now()) })
      }, (err: unknown) => { done(err instanceof Error ? err : new Error(String(err))) })
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
