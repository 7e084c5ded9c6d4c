// The token in a welcome link: proof that the holder came back from this tenant's checkout.
// It gates what only the buyer may see (setup details), so it is an HMAC under SECRET_KEY.
import { createHmac, timingSafeEqual } from 'node:crypto'

export function welcomeToken (secretKey: string, tenantId: string): string {
  return createHmac('sha256', secretKey).update(`welcome:${tenantId}`).digest('hex').slice(0, 40)
}

export function verifyWelcomeToken (secretKey: string, tenantId: string, token: string): boolean {
  const expected = Buffer.from(welcomeToken(secretKey, tenantId))
  const given = Buffer.from(token)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

export function welcomePath (secretKey: string, tenantId: string): string {
  return `/welcome?tenant=${tenantId}&token=${welcomeToken(secretKey, tenantId)}`
}
