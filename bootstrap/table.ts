// Plain-text tables for the CLIs: left-aligned columns, a rule under the header.

export interface TableOptions {
  /**
   * Applied to every cell before it is measured (the CLI's terminal escaping): escaping after
   * rendering would widen cells the padding was computed for.
   */
  escape?: (cell: string) => string
}

// East Asian Wide and Fullwidth blocks outside emoji (UAX #11): Hangul Jamo, CJK radicals to
// Yi, Hangul syllables, compatibility ideographs, vertical and small forms, fullwidth forms,
// Tangut to Kana supplements, enclosed ideographs, CJK extensions B and later.
const WIDE: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f], [0x2329, 0x232a], [0x2e80, 0x303e], [0x3041, 0x33ff], [0x3400, 0x4dff],
  [0x4e00, 0x9fff], [0xa000, 0xa4cf], [0xa960, 0xa97f], [0xac00, 0xd7a3], [0xf900, 0xfaff],
  [0xfe10, 0xfe19], [0xfe30, 0xfe6f], [0xff00, 0xff60], [0xffe0, 0xffe6], [0x16fe0, 0x18dff],
  [0x1b000, 0x1b2ff], [0x1f200, 0x1f2ff], [0x20000, 0x2fffd], [0x30000, 0x3fffd]
]
// What takes no column of its own: controls, format characters (zero-width space, joiners,
// bidi marks), and marks that combine with the character before.
// The soft hyphen is a format character that terminals (wcwidth) give a column all the same.
const ZERO_WIDTH = /^(?!\u00ad)[\p{Cc}\p{Cf}\p{Mn}\p{Me}]$/u
const EMOJI = /\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F/u
const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' })

/**
 * Columns the text takes in a terminal, as wcwidth counts them: a combining accent adds
 * nothing, an emoji sequence counts once as two, wide (CJK, fullwidth) characters take two.
 */
export function displayWidth (text: string): number {
  // The common case, and the whole of most tables: printable ASCII is one column a character.
  if (/^[\x20-\x7e]*$/.test(text)) return text.length
  let width = 0
  for (const { segment } of graphemes.segment(text)) {
    if (EMOJI.test(segment)) {
      width += 2
      continue
    }
    // Code point by code point, as wcwidth: a conjunct or a spacing vowel sign (Devanagari)
    // takes a column for each letter and sign, though it is one user-perceived character.
    for (const c of segment) {
      if (ZERO_WIDTH.test(c)) continue
      const cp = c.codePointAt(0)!
      width += WIDE.some(([from, to]) => cp >= from && cp <= to) ? 2 : 1
    }
  }
  return width
}

export function renderTable (headers: readonly string[], rows: ReadonlyArray<readonly string[]>, opts: TableOptions = {}): string {
  const escape = opts.escape ?? ((cell: string) => cell)
  const [head, ...body] = [headers, ...rows].map((r) => r.map(escape))
  const widths = headers.map((_, col) => Math.max(...[head!, ...body].map((r) => displayWidth(r[col] ?? ''))))
  const line = (r: readonly string[]): string => r.map((cell, col) => cell + ' '.repeat(Math.max(0, (widths[col] ?? 0) - displayWidth(cell)))).join('  ').trimEnd()
  return [line(head!), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n') + '\n'
}
