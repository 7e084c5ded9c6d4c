// Runs api/server.ts as a real child process (for durability tests and the benchmark):
// a free loopback port, the environment given, and a wait until /readyz answers.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { signPayload } from '../../api/billing/signature.ts'
import { reapWithThisProcess } from './child-reaper.ts'

const SERVER = fileURLToPath(new URL('../../api/server.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** Bytes of output kept per process, to explain a failed start. */
const OUTPUT_TAIL = 16 * 1024

export interface ServerProcess {
  readonly url: string
  readonly port: number
  readonly child: ChildProcess
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** The last few KB of the process's stdout and stderr. */
  output (): string
  /** SIGTERM (graceful shutdown), then SIGKILL if it has not exited within `graceMs`. */
  stop (graceMs?: number): Promise<void>
  /** SIGKILL: no shutdown code runs, as after a crash or `kill -9`. */
  kill (): Promise<void>
}

export interface StartOptions {
  /** Added to (and overriding) the defaults: HOST, PORT, LOG_LEVEL=warn, CHECKOUT_RATE_LIMIT=0. */
  env: Record<string, string>
  /** Extra node flags, e.g. `--cpu-prof`. */
  nodeArgs?: string[]
  /** How long to wait for /readyz. */
  readyTimeoutMs?: number
}

/** A port that was free a moment ago (the caller retries if another process takes it first). */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      srv.close(() => { resolve(port) })
    })
  })
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => { setTimeout(resolve, ms) })
}

async function isReady (url: string): Promise<boolean> {
  try {
    const r = await request(`${url}/readyz`, { headersTimeout: 2000, bodyTimeout: 2000 })
    await r.body.dump()
    return r.statusCode === 200
  } catch {
    return false
  }
}

function spawnServer (port: number, opts: StartOptions): ServerProcess {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    CHECKOUT_RATE_LIMIT: '0',
    ...opts.env,
    PORT: String(port)
  }
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), SERVER], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  reapWithThisProcess(child)
  let tail = ''
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    // 'close', not 'exit': by then the child's last output has been read too.
    child.once('close', (code, signal) => { resolve({ code, signal }) })
  })
  let gone = false
  void exited.then(() => { gone = true })

  const waitExit = async (ms: number): Promise<boolean> => {
    if (gone) return true
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false) }, ms) })
    try {
      return await Promise.race([exited.then(() => true), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    exited,
    output: () => tail,
    async stop (graceMs = 10_000) {
      if (gone) return
      child.kill('SIGTERM')
      if (await waitExit(graceMs)) return
      child.kill('SIGKILL')
      await exited
    },
    async kill () {
      if (gone) return
      child.kill('SIGKILL')
      await exited
    }
  }
}

/** Starts api/server.ts and resolves once /readyz answers 200. */
export async function startServer (opts: StartOptions): Promise<ServerProcess> {
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000)
  let lastOutput = ''
  // A few attempts: the free port can be taken by another process between probe and listen.
  for (let attempt = 0; attempt < 3; attempt++) {
    const server = spawnServer(await freePort(), opts)
    let exitedEarly = false
    void server.exited.then(() => { exitedEarly = true })
    while (!exitedEarly && Date.now() < deadline) {
      if (await isReady(server.url)) return server
      await sleep(50)
    }
    lastOutput = server.output()
    if (!exitedEarly) {
      await server.kill()
      throw new Error(`server did not become ready in time:\n${lastOutput}`)
    }
    if (!lastOutput.includes('EADDRINUSE')) break
  }
  throw new Error(`server exited before becoming ready:\n${lastOutput}`)
}

export interface HttpReply {
  status: number
  json: any
}

/** POSTs a JSON body (a string is sent as is) and reads the JSON answer. */
export async function postJson (url: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpReply> {
  const r = await request(url, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
    headersTimeout: 30_000,
    bodyTimeout: 30_000
  })
  const text = await r.body.text()
  let json: unknown
  try { json = JSON.parse(text) } catch { json = text }
  return { status: r.statusCode, json }
}

export async function getJson (url: string): Promise<HttpReply> {
  const r = await request(url, { headersTimeout: 30_000, bodyTimeout: 30_000 })
  const text = await r.body.text()
  let json: unknown
  try { json = JSON.parse(text) } catch { json = text }
  return { status: r.statusCode, json }
}

/** Signs `event` like Stripe and POSTs it to a running server's webhook. */
export async function deliverTo (baseUrl: string, secret: string, event: unknown): Promise<HttpReply> {
  const body = JSON.stringify(event)
  return postJson(`${baseUrl}/billing/webhook`, body, { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signPayload(secret, body) })
}
