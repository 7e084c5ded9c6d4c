// Request bodies, decoded strictly. Bytes that are not UTF-8 and percent-escapes that do not
// decode are the client's mistake (a 400 that says so), never text stored with U+FFFD or a
// literal "%FF" in it. Valid JSON with a key that could reach a prototype (`__proto__`,
// `constructor.prototype`) is refused by name, not reported as bad JSON.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { AppError } from './errors.ts'

const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** A body that would not decode: on a path without a route, the miss is the answer instead. */
export class BodyError extends AppError {}

/**
 * The app's body parsers, inherited by every plugin that keeps them: strict JSON, and no
 * `text/plain` (no route takes it; a form is added where one is taken, the webhook takes
 * every type as bytes).
 */
export function useStrictBodies (app: FastifyInstance): void {
  app.removeContentTypeParser('text/plain')
  // Fastify's own: secure-json-parse, refusing prototype keys.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request: FastifyRequest, body: Buffer, done) => {
    let text: string
    try {
      text = UTF8.decode(body)
    } catch {
      done(new BodyError('invalid_json', 'The body is not valid UTF-8.'), undefined)
      return
    }
    parseJson(request, text, (err, value) => {
      if (err === null) {
        done(null, value)
        return
      }
      if (text !== '' && parses(text)) {
        done(new BodyError('invalid_request', 'The body has a key that is not accepted: __proto__, or constructor with a prototype.'), undefined)
        return
      }
      done(err, undefined)
    })
  })
}

function parses (text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/**
 * An `application/x-www-form-urlencoded` body (for @fastify/formbody's `parser`): `+` is a
 * space, a repeated name gives an array (as the schema then refuses it), and the result has no
 * prototype. Browsers percent-encode every byte that is not ASCII, so a raw byte that is not
 * UTF-8 (decoded as U+FFFD) or an escape that does not decode to UTF-8 is refused.
 */
export function parseForm (text: string): Record<string, string | string[]> {
  if (text.includes('\uFFFD')) throw new BodyError('invalid_request', 'The form body is not valid UTF-8.')
  const fields: Record<string, string | string[]> = Object.create(null)
  let count = 0
  for (const pair of text.split('&')) {
    if (pair === '') continue
    // Our forms have a handful of fields: tens of thousands (a 64 KiB body of `a&a&…`) only
    // cost the event loop before the schema refuses them, and come before the rate limit.
    if (++count > MAX_FORM_FIELDS) throw new BodyError('invalid_request', `The form body has more than ${MAX_FORM_FIELDS} fields.`)
    const eq = pair.indexOf('=')
    const name = decodeField(eq === -1 ? pair : pair.slice(0, eq))
    const value = decodeField(eq === -1 ? '' : pair.slice(eq + 1))
    const seen = fields[name]
    if (seen === undefined) fields[name] = value
    else if (Array.isArray(seen)) seen.push(value)
    else fields[name] = [seen, value]
  }
  return fields
}

/** Far more than any form of ours posts. */
export const MAX_FORM_FIELDS = 100

function decodeField (raw: string): string {
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '))
  } catch {
    throw new BodyError('invalid_request', 'The form body has a percent-escape that is not valid UTF-8.')
  }
}
