import t from 'tap'
import { main } from '../../bootstrap/linode-check.ts'
import { capture } from '../helpers/cli-io.ts'
import { startFakeLinode } from '../helpers/fake-linode.ts'

async function check (argv: string[], env: Record<string, string | undefined>) {
  const { out, io } = capture()
  const code = await main(argv, env, io)
  return { code, ...out }
}

t.test('good settings: a table of passes, exit 0', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const r = await check([], { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_PLAN: 'g6-standard-2' })
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trimEnd().split('\n')
  t.match(lines[0], /^check +expected +got +result$/)
  t.equal(lines.length, 2 + 9, 'header, rule, nine checks')
  t.ok(lines.slice(2).every((l) => l.endsWith('PASS')))
  t.match(r.stdout, /type g6-standard-2 \(solo, standard, pro\)/, 'LINODE_PLAN: one type for every plan')
  t.equal(r.stderr, 'Linode settings OK\n')
  t.notMatch(r.stdout + r.stderr, fake.token)
})

t.test('a failing setting: exit 1, the cause in the table; --json for scripts', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const env = { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_REGION: 'ap-south', LINODE_IMAGE: 'linode/arch' }
  const r = await check([], env)
  t.equal(r.code, 1)
  t.match(r.stdout, /region +ap-south: Linodes, Metadata, Cloud Firewall +lacks Metadata \(LINODE_REGION\) +FAIL/)
  t.match(r.stdout, /image .*no cloud-init.* +FAIL/)
  t.match(r.stdout, /type g6-standard-1 \(solo\) .*below CTFd's minimum of 2 cores +WARN/)
  t.equal(r.stderr, '2 checks failed: provisioning will fail until they are fixed\n')

  const j = await check(['--json'], env)
  t.equal(j.code, 1)
  const body = JSON.parse(j.stdout)
  t.equal(body.ok, false)
  t.same(body.checks.filter((c: { result: string }) => c.result === 'fail').map((c: { check: string }) => c.check), ['region', 'image'])

  const warnOnly = await check([], { ...env, LINODE_REGION: 'us-east', LINODE_IMAGE: 'linode/debian12' })
  t.equal(warnOnly.code, 0, 'warnings do not fail')
  t.equal(warnOnly.stderr, 'Linode settings OK (1 warning)\n')
})

t.test('a Linode that does not answer is not OK: exit 1, and not a wrong setting', async (t) => {
  const fake = await startFakeLinode(t, { domains: ['ctf.example.org'] })
  const env = { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: fake.url, BASE_DOMAIN: 'ctf.example.org', LINODE_PLAN: 'g6-standard-2' }
  fake.inject({ path: '/profile', times: 3, fault: { status: 503 } })
  const down = await check([], env)
  t.equal(down.code, 1)
  t.match(down.stdout, /token +accepted +could not check: 503 Injected failure +UNKNOWN/)
  t.equal(down.stderr, '1 check could not be run: Linode did not answer; run it again later\n')
  t.equal(JSON.parse((await check(['--json'], env)).stdout).ok, true, 'and OK once it answers')

  fake.inject({ path: '/profile', fault: { delayMs: 1000 } })
  const { out, io } = capture()
  t.equal(await main([], env, io, 100), 1)
  t.equal(out.stderr, 'error: Linode did not answer within 0.1 s; nothing was checked to the end\n')
  t.equal(out.stdout, '')
})

t.test('usage and configuration errors exit 2 before any call', async (t) => {
  const fake = await startFakeLinode(t)
  const none = await check([], { LINODE_API_BASE: fake.url })
  t.equal(none.code, 2)
  t.match(none.stderr, /^error: LINODE_API_TOKEN is not set/)
  const badUrl = await check([], { LINODE_API_TOKEN: fake.token, LINODE_API_BASE: 'not a url' })
  t.equal(badUrl.code, 2)
  t.match(badUrl.stderr, /LINODE_API_BASE/)
  const flag = await check(['--plan', 'x'], {})
  t.equal(flag.code, 2)
  t.match(flag.stderr, /Unknown option '--plan'.*\n\nUsage: npm run linode:check/s)
  t.equal(fake.requests.length, 0)
  const help = await check(['-h'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: npm run linode:check -- \[--json\]/)
  t.match(help.stdout, /cannot prove the token may write/)
})
