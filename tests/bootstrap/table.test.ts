import t from 'tap'
import { displayWidth, renderTable } from '../../bootstrap/table.ts'

t.test('displayWidth: terminal columns, not UTF-16 units', async (t) => {
  for (const [text, width] of [
    ['', 0], ['plain ascii', 11],
    ['日本語', 6], ['한국어', 6], ['ｆｕｌｌ', 8], ['中文 mix', 8], ['\u3000', 2], ['\u{20000}', 2],
    ['e\u0301', 1], ['ä̈', 1], ['a\u200bb', 2], ['\u202eabc', 3],
    ['👍', 2], ['👨‍👩‍👧', 2], ['🇫🇷', 2], ['❤️', 2], ['✓', 1], ['Ω', 1], ['ｱ', 1],
    // As glibc's wcswidth: spacing vowel signs and conjuncts take a column per letter and sign,
    // and the soft hyphen one, though each is part of one user-perceived character.
    ['कि', 2], ['कार्यशाला CTF', 12], ['தமிழ்', 4], ['বাংলা', 5], ['\u00ad', 1]
  ] as Array<[string, number]>) {
    t.equal(displayWidth(text), width, JSON.stringify(text))
  }
})

t.test('renderTable pads by display width: wide and combining characters keep the columns aligned', async (t) => {
  const out = renderTable(['name', 'state'], [['東京CTF', 'active'], ['Cafe\u0301 🚩', 'failed'], ['plain', 'ready']])
  const lines = out.trimEnd().split('\n')
  // 東京CTF and Café 🚩 are 7 columns each (9 and 7 UTF-16 units, 8 code points).
  t.same(lines, [
    'name     state',
    '-------  ------',
    '東京CTF  active',
    'Cafe\u0301 🚩  failed',
    'plain    ready'
  ])
})

t.test('renderTable escape: cells escaped before they are measured', async (t) => {
  const escape = (s: string): string => s.replace(/[\u0080-\u009f\u202e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)
  const rows = [['evil\u009b2J', 'x'], ['ok', 'y']]
  const escaped = renderTable(['name', 'v'], rows, { escape })
  t.equal(escaped, 'name          v\n------------  -\nevil\\u{9b}2J  x\nok            y\n')
  // What a caller escaping the rendered text gets instead: the padding no longer fits.
  const after = escape(renderTable(['name', 'v'], rows))
  t.equal(after.split('\n')[2], 'evil\\u{9b}2J  x')
  t.equal(after.split('\n')[3], 'ok      y', 'misaligned: padded for the unescaped cell')
  t.equal(renderTable(['a'], [['x']], {}), renderTable(['a'], [['x']]), 'no escape: cells as given')
})

t.test('renderTable: short rows and the plain ASCII case as before', async (t) => {
  t.equal(renderTable(['id', 'kind', 'status'], [['1', 'provision', 'done'], ['22', 'teardown']]), 'id  kind       status\n--  ---------  ------\n1   provision  done\n22  teardown\n')
  t.equal(renderTable(['a', 'b'], []), 'a  b\n-  -\n')
})
