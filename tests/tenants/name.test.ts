import t from 'tap'
import { NAME_PATTERN, cleanName } from '../../api/tenants/name.ts'

// Escaped for the test's own messages: a raw line separator would break TAP's lines.
const shown = (s: string) => s.replace(/[^ -~]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)

t.test('the checkout pattern takes names of any script and refuses hidden or line-breaking characters', async (t) => {
  const pattern = new RegExp(NAME_PATTERN, 'u')
  for (const ok of ['Spring CTF 2026', 'Ünïcödé – 東京', 'Flag 🚩', '🚩', '42', 'zero\u200dwidth joiner', 'a b']) {
    t.ok(pattern.test(ok), `accepted: ${shown(ok)}`)
  }
  for (const bad of ['a\u0000b', 'a\nb', 'a\u007fb', 'a\u0085b', 'a\u009bb', 'x\u2028y', 'x\u2029y', 'ok\u202eevil', 'a\u202ab', 'a\u2066b', 'a\u2069b', 'lone \ud800 half', '\u200b', '\u200b\u200d', ' ', '\u0301']) {
    t.notOk(pattern.test(bad), `refused: ${shown(bad)}`)
  }
})

t.test('a name from Stripe is cleaned by the same rules', async (t) => {
  t.equal(cleanName(' evil\u0000\u0000ctf\n'), 'evil ctf', 'a run of control characters is one space')
  t.equal(cleanName('a\u009b31mred'), 'a 31mred', 'a C1 control goes too')
  t.equal(cleanName('ok\u202eevil\u2066x'), 'ok evil x', 'bidirectional overrides and isolates go')
  for (const c of ['\u202a', '\u202e', '\u2066', '\u2069']) t.equal(cleanName(`a${c}b`), 'a b', `each end of both ranges: ${shown(c)}`)
  t.equal(cleanName('x\u2028y'), 'x y', 'line separators go')
  t.equal(cleanName('Flag 🚩'), 'Flag 🚩', 'a surrogate pair is one character, kept')
  t.equal(cleanName('\u200b\u200b'), undefined, 'nothing visible is no name')
  t.equal(cleanName('\u0000\n'), undefined, 'nothing left is no name')
  t.equal(cleanName(42), undefined, 'not a string')
  t.equal(cleanName(`${'🚩'.repeat(79)} x${'y'.repeat(400)}`), `${'🚩'.repeat(79)} `.trimEnd(), 'cut to 80 characters (a flag is one), then trimmed')
  t.equal([...cleanName('n'.repeat(500))!].length, 80, 'a 500-character name from a Payment Link is cut to 80')
})
