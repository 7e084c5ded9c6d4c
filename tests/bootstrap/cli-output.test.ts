import t from 'tap'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { isMain, refuseRepeated } from '../../bootstrap/cli-output.ts'
import { buildTestApp } from '../helpers/build-app.ts'
import { runWithClosedStdout } from '../helpers/cli-io.ts'
import { deliver, invoice, makeEvent } from '../helpers/stripe-events.ts'

const AUDIT = 'audit-secret-for-cli-output-tests-0123456789'
const script = (name: string): string => fileURLToPath(new URL(`../../bootstrap/${name}.ts`, import.meta.url))

t.test('ctfhive: a reader gone before the output (`| head`) ends the run quietly, with its own status', async (t) => {
  const { app, config } = await buildTestApp(t, { env: { PROVISION_AUDIT_SECRET: AUDIT } })
  for (let i = 0; i < 3; i++) await deliver(app, makeEvent('invoice.paid', invoice({ subscription: `sub_epipe_${i}` })))
  const env = { DATABASE_URL: config.databaseUrl, PROVISION_AUDIT_SECRET: AUDIT }
  for (const argv of [['events', '--limit', '500'], ['events', '--json'], ['export']]) {
    const r = await runWithClosedStdout(script('ctfhive'), argv, env)
    t.same(r, { code: 0, signal: null, stderr: '' }, `ctfhive ${argv.join(' ')}: no stack trace, exit 0`)
  }
  // A failure keeps its status and its error line; only the JSON body on stdout is lost.
  const missing = await runWithClosedStdout(script('ctfhive'), ['tenant', 'f'.repeat(32), '--json'], env)
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^error: .*\n$/)
  t.notMatch(missing.stderr, /EPIPE/)
})

t.test('every operator CLI takes a closed stdout calmly', async (t) => {
  for (const name of ['stripe-bootstrap', 'live-smoke', 'linode-check', 'migrate-sqlite-to-postgres']) {
    const r = await runWithClosedStdout(script(name), ['--help'], {})
    t.same(r, { code: 0, signal: null, stderr: '' }, `${name} --help`)
  }
})

t.test('isMain: Node 24.2+ says it; on 24.0 and 24.1 (no import.meta.main) the script path does, through a symlink too', async (t) => {
  const meta = (url: string, main?: boolean): ImportMeta => ({ url, ...(main === undefined ? {} : { main }) }) as unknown as ImportMeta
  t.equal(isMain(meta(import.meta.url, false)), false, 'import.meta.main is believed when Node has it')
  t.equal(isMain(meta('file:///elsewhere.ts', true)), true)
  // tap runs this file as the script (argv[1]).
  t.equal(isMain(meta(import.meta.url)), true, 'without import.meta.main: this file is the script')
  t.equal(isMain(meta(new URL('../../bootstrap/ctfhive.ts', import.meta.url).href)), false, 'and another module is not')
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-ismain-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const link = join(dir, 'ctfhive')
  symlinkSync(fileURLToPath(import.meta.url), link)
  const script = process.argv[1]
  t.teardown(() => { process.argv[1] = script! })
  process.argv[1] = link
  t.equal(isMain(meta(import.meta.url)), true, 'run through a bin symlink')
  process.argv[1] = join(dir, 'missing')
  t.equal(isMain(meta(import.meta.url)), false, 'a script path that does not exist is not this module')
})

t.test('refuseRepeated: an option that takes a value, given twice, is refused; a repeated flag is not', async (t) => {
  const options = { 'base-url': { type: 'string' }, plan: { type: 'string', short: 'p' }, json: { type: 'boolean' } } as const
  const tokens = (args: string[]) => parseArgs({ args, options, strict: true, tokens: true }).tokens
  t.throws(() => { refuseRepeated(tokens(['--base-url', 'https://a.org', '--base-url', 'https://b.org'])) }, { message: '--base-url given twice' })
  t.throws(() => { refuseRepeated(tokens(['--plan=solo', '-p', 'pro'])) }, { message: '--plan given twice' }, 'inline values and short names count, named by the long name')
  t.throws(() => { refuseRepeated(tokens(['--plan', '', '--plan', ''])) }, { message: '--plan given twice' }, 'an empty value too')
  t.doesNotThrow(() => { refuseRepeated(tokens(['--json', '--json', '--plan', 'solo', '--base-url', 'https://a.org'])) })
  t.doesNotThrow(() => { refuseRepeated(tokens([])) })
})
