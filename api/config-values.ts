// The pieces a setting is read with: each takes the environment and a variable's name, and
// answers the value or throws a ConfigError naming the variable (config.ts puts them together).
import { statSync } from 'node:fs'

/**
 * The exit status of a process refused for a bad setting (EX_CONFIG from sysexits.h): the
 * systemd unit does not restart it, since restarting cannot fix it.
 */
export const EX_CONFIG = 78

export class ConfigError extends Error {
  readonly variable: string
  constructor (variable: string, message: string) {
    super(`${variable}: ${message}`)
    this.name = 'ConfigError'
    this.variable = variable
  }
}

export type Env = Record<string, string | undefined>

export function str (env: Env, name: string, fallback: string): string {
  const v = env[name]
  return v === undefined || v.trim() === '' ? fallback : v.trim()
}

export function int (env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name, String(fallback))
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`)
  const n = Number(raw)
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`)
  return n
}

export function num (env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name, String(fallback))
  // Decimal only: Number() would also take 0x10, 0b101 or 1e3, which int refuses for PORT.
  const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN
  if (!Number.isFinite(n) || n < min || n > max) throw new ConfigError(name, `must be a decimal number from ${min} to ${max} (like 72 or 1.5), got ${JSON.stringify(raw)}`)
  return n
}

/**
 * A URL as a message may show it: whatever stands before its last `@` (user and password) is
 * masked, parsed or not, so a mistyped URL does not put its password in a log.
 */
export function withoutUserinfo (raw: string): string {
  return raw.replace(/^((?:[a-z][a-z0-9+.-]*:)?\/\/)?.*@/is, (_m, prefix: string | undefined) => `${prefix ?? ''}***@`)
}

/** A value that must match `shape` (sent in an HTTP header, say); `what` describes it. Never echoes secrets. */
export function shaped (env: Env, name: string, fallback: string, shape: RegExp, what: string, secret = false): string {
  const v = str(env, name, fallback)
  if (v !== '' && !shape.test(v)) throw new ConfigError(name, `must be ${what}${secret ? '' : `, got ${JSON.stringify(v)}`}`)
  return v
}

export function httpUrl (env: Env, name: string, fallback: string): string {
  const raw = str(env, name, fallback)
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(name, `must be an absolute http(s) URL, got ${JSON.stringify(withoutUserinfo(raw))}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(name, `must be an http(s) URL, got ${JSON.stringify(withoutUserinfo(raw))}`)
  }
  return raw.replace(/\/+$/, '')
}

/**
 * An API's base URL: the clients append each request's path to it, so a query or fragment
 * would end up in the middle of every request's URL. `addsVersion` is the version segment the
 * client adds itself (Stripe's /v1): a base ending in it, copied from the API's docs, would
 * double it. Any other path (Linode's /v4, a proxy's prefix) is kept.
 */
export function apiBase (env: Env, name: string, fallback: string, addsVersion?: string): string {
  const raw = httpUrl(env, name, fallback)
  const url = new URL(raw)
  // Even an empty one (a bare ? or #), which URL would not show: either starts a query or fragment.
  if (/[?#]/.test(raw)) {
    throw new ConfigError(name, `must not carry a query or fragment (each request's path is appended to it), got ${JSON.stringify(withoutUserinfo(raw))}`)
  }
  if (addsVersion !== undefined && url.pathname.replace(/\/+$/, '').endsWith(addsVersion)) {
    throw new ConfigError(name, `must not end in ${addsVersion}, which the client adds itself (like https://api.stripe.com), got ${JSON.stringify(withoutUserinfo(raw))}`)
  }
  return raw
}

/**
 * A directory the server serves files from. One not built yet (ENOENT) is fine: the server
 * says so. Any other failure to look at it (a file there, no permission on a directory above
 * it, a symlink loop, a name too long) would stop the start with the static plugin's stack
 * trace instead of this line.
 */
export function directory (name: string, path: string): string {
  let stats
  try {
    stats = statSync(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return path
    // ENOTDIR: a file stands where one of its directories should be.
    if (code === 'ENOTDIR') throw new ConfigError(name, `must be a directory, and ${JSON.stringify(path)} is a file (or lies under one)`)
    throw new ConfigError(name, `${JSON.stringify(path)} cannot be read by this process (${code ?? 'error'}: ${unreadableBecause(code)})`)
  }
  if (!stats.isDirectory()) throw new ConfigError(name, `must be a directory, and ${JSON.stringify(path)} is a file (or lies under one)`)
  return path
}

/** Why a path cannot be looked at, in words, for the errors a mistyped or closed path gives. */
function unreadableBecause (code: string | undefined): string {
  switch (code) {
    case 'EACCES': case 'EPERM': return 'a directory on the way is not searchable by this user; fix its permissions or choose another directory'
    case 'ELOOP': return 'symbolic links on the way form a loop, or too long a chain'
    case 'ENAMETOOLONG': return 'the path or one of its names is too long'
    default: return 'choose a directory this process can read'
  }
}

/** localhost, *.localhost, 127.0.0.0/8, ::1 and the unspecified addresses: no buyer reaches them. */
export function isLoopback (hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '')
  return host === 'localhost' || host.endsWith('.localhost') || /^127(\.\d+){3}$/.test(host) || host === '0.0.0.0' ||
    host === '::1' || host === '::' || /^::ffff:(127\.|7f)/.test(host)
}

/**
 * A failed listen that HOST or PORT causes, worded as a bad setting (null for any other cause,
 * a DNS outage say, which a restart may cure).
 */
export function listenError (err: unknown, host: string, port: number): ConfigError | null {
  const ours = '127.0.0.1 (this machine only) or 0.0.0.0 (every interface)'
  switch ((err as NodeJS.ErrnoException | null)?.code) {
    case 'ENOTFOUND':
      return new ConfigError('HOST', `${JSON.stringify(host)} resolves to no address (ENOTFOUND): use an address of this machine, ${ours}, or a name that resolves to one`)
    case 'EADDRNOTAVAIL':
      return new ConfigError('HOST', `${host} is not an address of this machine (EADDRNOTAVAIL): use one of its own, ${ours}`)
    case 'EINVAL':
      return new ConfigError('HOST', `${host} cannot be listened on (EINVAL; a link-local IPv6 address needs its interface, like fe80::1%eth0): use one of this machine's addresses, ${ours}`)
    case 'EADDRINUSE':
      return new ConfigError('PORT', `${port} on ${host} is already in use (EADDRINUSE): stop what listens there, or choose another port`)
    case 'EACCES':
      return new ConfigError('PORT', `${port} on ${host} may not be opened by this process (EACCES): a port below 1024 needs privileges; use one from 1024 up behind a proxy`)
    default:
      return null
  }
}
