// pino, configured once: request ids, redaction by path, and a last line of defence that
// scrubs any configured secret value from every line before it is written.
import { pino, type DestinationStream, type Logger } from 'pino'
import { secretValues, type Config } from './config.ts'

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["stripe-signature"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["stripe-signature"]',
  'headers.cookie',
  '*.password',
  '*.root_pass',
  '*.token',
  '*.secret'
]

function escapeRegExp (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

export function createLogger (config: Pick<Config, 'logLevel'> & Parameters<typeof secretValues>[0], stream?: DestinationStream): Logger {
  const secrets = secretValues(config)
  // JSON-escaped too: a secret containing quotes or backslashes appears escaped in a line.
  const needles = [...new Set(secrets.flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]))]
  const scrub = needles.length === 0 ? null : new RegExp(needles.map(escapeRegExp).join('|'), 'g')
  const options = {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    hooks: {
      streamWrite: (line: string): string => (scrub === null ? line : line.replace(scrub, '[Redacted]'))
    }
  }
  return stream === undefined ? pino(options) : pino(options, stream)
}
