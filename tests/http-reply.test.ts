import t from 'tap'
import { parseRetryAfter, readCapped } from '../api/http-reply.ts'

t.test('parseRetryAfter: seconds, an HTTP-date, or nothing usable', async (t) => {
  t.equal(parseRetryAfter('120'), 120_000)
  t.equal(parseRetryAfter(' 7 '), 7000)
  const date = parseRetryAfter(new Date(Date.now() + 30_000).toUTCString())!
  t.ok(date > 25_000 && date <= 30_000, `a date 30 s ahead: ${date}`)
  t.equal(parseRetryAfter(new Date(Date.now() - 60_000).toUTCString()), 0, 'a date past is no wait, not a negative one')
  t.equal(parseRetryAfter(undefined), null)
  t.equal(parseRetryAfter('soon'), null)
  t.equal(parseRetryAfter('-5'), null, 'not a count of seconds')
})

t.test('readCapped: the text up to the cap; null past it, with the rest left unread', async (t) => {
  async function * chunks (parts: string[], read: { n: number }) {
    for (const p of parts) {
      read.n++
      yield Buffer.from(p)
    }
  }
  const read = { n: 0 }
  t.equal(await readCapped(chunks(['\uFEFF{"a":', '1}'], read), 16), '{"a":1}', 'a BOM dropped, as body.text() drops it')
  t.equal(await readCapped(chunks(['12345', '678'], { n: 0 }), 8), '12345678', 'exactly the cap')
  const past = { n: 0 }
  t.equal(await readCapped(chunks(['12345', '6789', 'never read'], past), 8), null)
  t.equal(past.n, 2, 'stops at the chunk that passes the cap')
})
