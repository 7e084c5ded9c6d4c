// What a tenant's name may hold. The name is shown in public (the status route, the welcome
// page, the CTF's own title) and in operators' terminals (admin API, ctfhive), so it carries:
// - no control characters: C0 and DEL (PostgreSQL's text refuses NUL) and C1 (U+009B is a
//   terminal's CSI);
// - no line or paragraph separators, and no lone surrogates;
// - no bidirectional embeddings, overrides or isolates (they make the rest of a line read
//   reversed);
// - at least one letter, digit, punctuation mark or symbol: a name of invisible characters
//   names nothing.
// Both patterns need the u flag (Ajv sets it), which also reads a surrogate pair as one code point.

const BANNED = '\\p{Cc}\\p{Cs}\\p{Zl}\\p{Zp}\\u202a-\\u202e\\u2066-\\u2069'
const VISIBLE = '\\p{L}\\p{N}\\p{P}\\p{S}'

/** The checkout schema's pattern for `name`. */
export const NAME_PATTERN = `^(?=.*[${VISIBLE}])[^${BANNED}]*$`

const BANNED_RUN = new RegExp(`[${BANNED}]+`, 'gu')
/** One character a name may not hold (global: for replacing each). */
export const BANNED_CHARACTER = new RegExp(`[${BANNED}]`, 'gu')
const HAS_VISIBLE = new RegExp(`[${VISIBLE}]`, 'u')

/** As long as a name may be at checkout, in characters (code points). */
export const NAME_MAX_LENGTH = 80

/**
 * A name Stripe handed us (a session's metadata, up to 500 characters), made to follow the
 * rules above: each run of banned characters becomes one space, the name is cut to the
 * checkout's length, and a name left with nothing visible is no name.
 */
export function cleanName (v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined
  const clean = [...v.replace(BANNED_RUN, ' ').trim()].slice(0, NAME_MAX_LENGTH).join('').trimEnd()
  return HAS_VISIBLE.test(clean) ? clean : undefined
}
