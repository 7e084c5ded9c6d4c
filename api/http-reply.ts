// Reading an upstream's reply (Stripe, Linode): the same two rules for both clients.

/** Retry-After, in seconds or as an HTTP-date, as ms from now; null when absent or unreadable. */
export function parseRetryAfter (value: string | undefined): number | null {
  if (value === undefined) return null
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000
  // Every HTTP-date form begins with the day's name; Date.parse alone takes "-5" for a year.
  if (!/^[A-Za-z]{3}/.test(value.trim())) return null
  const at = Date.parse(value)
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now())
}

/**
 * The body as text, or null once it passes `cap` bytes: leaving the loop destroys the body,
 * which aborts the request and closes the connection, so the rest is never read (an endless
 * body from a misbehaving server would otherwise grow the process without bound).
 */
export async function readCapped (body: AsyncIterable<Buffer>, cap: number): Promise<string | null> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > cap) return null
    chunks.push(chunk)
  }
  // TextDecoder drops a BOM and replaces bad UTF-8, as undici's body.text() does.
  return new TextDecoder().decode(Buffer.concat(chunks, size))
}
