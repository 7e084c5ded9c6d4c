// .ci/run: CI recognises only its last line, "N passed, N failed" (DESIGN §13). Run the real
// script on a copy, with `npm`, `dpkg`, `apt-get` and the PostgreSQL cluster tools played by
// stubs on PATH, so nothing is installed and no real cluster is touched.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const RUN = fileURLToPath(new URL('../../.ci/run', import.meta.url))

interface CiOptions {
  testOutput: string
  testCode: number
  ciCode?: number
  /** Packages `dpkg -s` calls missing; none by default. */
  missing?: string[]
  /** `apt-get install`'s exit status. */
  aptCode?: number
  /** PostgreSQL clusters ("version name") before the run, and those installing postgresql creates. */
  clusters?: string[]
  newClusters?: string[]
  env?: Record<string, string>
}

interface CiResult {
  lastLine: string
  code: number | null
  stdout: string
  /** Lines the stubs recorded: apt-get's and pg_ctlcluster's arguments, npm ci's arguments. */
  aptCalls: string[]
  stopped: string[]
  npmCiArgs: string
  /** CI as `npm test` saw it. */
  testCI: string
  /** Where apt-get's output went, and what the run left in its TMPDIR. */
  aptLog: string
  tmpDir: string
  leftInTmp: string[]
}

function read (file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : ''
}

function lines (file: string): string[] {
  return read(file).split('\n').filter((l) => l !== '')
}

/** Runs a copy of .ci/run whose `npm test` prints `testOutput` and exits `testCode`. */
function ciRun (t: Test, opts: CiOptions): CiResult {
  // Not t.testdir: its fixed path would collide between two concurrent runs of this file.
  const dir = mkdtempSync(join(tmpdir(), 'ctfhive-ci-run-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const sub of ['.ci', 'bin', 'tmp']) mkdirSync(join(dir, sub))
  copyFileSync(RUN, join(dir, '.ci', 'run'))
  chmodSync(join(dir, '.ci', 'run'), 0o755)
  writeFileSync(join(dir, 'test-output'), opts.testOutput)
  const cluster = (vc: string): string => {
    const [v, c] = vc.split(' ')
    return `${v} ${c} 5432 online postgres /var/lib/postgresql/${v}/${c} /var/log/postgresql/postgresql-${v}-${c}.log\n`
  }
  writeFileSync(join(dir, 'clusters'), (opts.clusters ?? []).map(cluster).join(''))
  const stub = (name: string, body: string): void => {
    writeFileSync(join(dir, 'bin', name), `#!/usr/bin/env bash\n${body}\n`)
    chmodSync(join(dir, 'bin', name), 0o755)
  }
  stub('dpkg', `case " ${(opts.missing ?? []).join(' ')} " in *" $2 "*) exit 1 ;; esac
exit 0`)
  stub('apt-get', `echo "$*" >>"${join(dir, 'apt-calls')}"
[ "$1" = install ] || exit 0
readlink "/proc/$$/fd/1" >"${join(dir, 'apt-log')}"
case " $* " in *" postgresql "*) printf '%s' "${(opts.newClusters ?? []).map(cluster).join('')}" >>"${join(dir, 'clusters')}" ;; esac
echo "E: apt-get says something"
exit ${opts.aptCode ?? 0}`)
  stub('pg_lsclusters', `[ "$1" = -h ] || echo "Ver Cluster Port Status Owner Data directory Log file"
cat "${join(dir, 'clusters')}"`)
  stub('pg_ctlcluster', `echo "$*" >>"${join(dir, 'pg-calls')}"`)
  stub('npm', `case "$1" in
  ci) echo "$*" >"${join(dir, 'npm-ci')}"; exit ${opts.ciCode ?? 0} ;;
  test) echo "$CI" >"${join(dir, 'npm-test-ci')}"; cat "${join(dir, 'test-output')}"; exit ${opts.testCode} ;;
esac
exit 9`)
  const r = spawnSync('bash', [join(dir, '.ci', 'run')], {
    encoding: 'utf8',
    env: { ...process.env, ...opts.env, PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}`, TMPDIR: join(dir, 'tmp') },
    timeout: 30_000
  })
  const out = r.stdout.trimEnd().split('\n')
  return {
    lastLine: out[out.length - 1]!,
    code: r.status,
    stdout: r.stdout,
    aptCalls: lines(join(dir, 'apt-calls')),
    stopped: lines(join(dir, 'pg-calls')),
    npmCiArgs: read(join(dir, 'npm-ci')).trim(),
    testCI: read(join(dir, 'npm-test-ci')).trim(),
    aptLog: read(join(dir, 'apt-log')).trim(),
    tmpDir: join(dir, 'tmp'),
    leftInTmp: readdirSync(join(dir, 'tmp'))
  }
}

const GREEN = { testOutput: '# { total: 1, pass: 1 }\n', testCode: 0 }

t.test('a green run ends with its counts', async (t) => {
  const r = ciRun(t, { testOutput: 'ok 1 - a\n# { total: 12, pass: 12 }\n', testCode: 0 })
  t.equal(r.lastLine, '12 passed, 0 failed')
  t.equal(r.code, 0)
  t.match(r.stdout, /ok 1 - a/, "the tests' own output is shown")
  t.same(r.aptCalls, [], 'nothing missing, nothing installed')
})

t.test('failed assertions are counted, and the run fails', async (t) => {
  const r = ciRun(t, { testOutput: '# { total: 10, pass: 7, fail: 3 }\n', testCode: 1 })
  t.equal(r.lastLine, '7 passed, 3 failed')
  t.equal(r.code, 1)
})

t.test('the last summary counts (tap prints one per file with -R tap, then the whole run)', async (t) => {
  const r = ciRun(t, { testOutput: '# { total: 2, pass: 2 }\n# { total: 40, pass: 39, fail: 1 }\n', testCode: 1 })
  t.equal(r.lastLine, '39 passed, 1 failed')
})

t.test('a failure without a failed assertion (type check, coverage) still fails', async (t) => {
  const typeCheck = ciRun(t, { testOutput: "api/app.ts(1,1): error TS2304: Cannot find name 'x'.\n", testCode: 2 })
  t.equal(typeCheck.lastLine, '0 passed, 1 failed', 'no summary at all')
  t.equal(typeCheck.code, 2)
  const coverage = ciRun(t, { testOutput: '# { total: 5, pass: 5 }\nERROR: Coverage for lines (97%) does not meet threshold\n', testCode: 1 })
  t.equal(coverage.lastLine, '5 passed, 1 failed', 'every assertion passed, the threshold did not')
  t.equal(coverage.code, 1)
})

t.test('npm ci failing ends the run at once', async (t) => {
  const r = ciRun(t, { testOutput: '# { total: 5, pass: 5 }\n', testCode: 0, ciCode: 1 })
  t.equal(r.lastLine, '0 passed, 1 failed')
  t.equal(r.code, 1)
  t.notMatch(r.stdout, /5 passed/, 'the tests did not run')
  t.same(r.leftInTmp, [], 'no temporary file left behind')
})

t.test('npm ci installs the dev dependencies even under NODE_ENV=production', async (t) => {
  const r = ciRun(t, { ...GREEN, env: { NODE_ENV: 'production' } })
  t.match(r.npmCiArgs, /(^| )--include=dev( |$)/)
  t.equal(r.lastLine, '1 passed, 0 failed')
})

t.test('the tests run with CI=true whatever CI the caller had', async (t) => {
  for (const ci of ['1', 'woodpecker', 'false', 'true']) {
    const r = ciRun(t, { ...GREEN, env: { CI: ci } })
    t.equal(r.testCI, 'true', `inherited CI=${ci}`)
  }
})

t.test('installing a missing package that is not postgresql leaves every cluster alone', async (t) => {
  const r = ciRun(t, { ...GREEN, missing: ['caddy'], clusters: ['15 main', '16 dev'] })
  t.match(r.stdout, /ci: installing caddy\n/)
  t.match(r.aptCalls, ['update -qq', /^install .*caddy$/])
  t.same(r.stopped, [], "the developer's clusters keep running")
  t.equal(r.lastLine, '1 passed, 0 failed')
})

t.test('installing postgresql stops only the cluster the package created', async (t) => {
  const r = ciRun(t, { ...GREEN, missing: ['caddy', 'postgresql'], clusters: ['15 main'], newClusters: ['16 main'] })
  t.same(r.stopped, ['16 main stop'])
  const fresh = ciRun(t, { ...GREEN, missing: ['postgresql'], newClusters: ['16 main'] })
  t.same(fresh.stopped, ['16 main stop'], 'no cluster before the install')
})

t.test("apt-get's output goes to a private temporary file, shown on failure and then removed", async (t) => {
  const ok = ciRun(t, { ...GREEN, missing: ['caddy'] })
  t.ok(ok.aptLog.startsWith(ok.tmpDir + '/'), `not a fixed path shared by concurrent runs: ${ok.aptLog}`)
  t.notMatch(ok.stdout, /apt-get says/, 'quiet when the install works')
  t.same(ok.leftInTmp, [])
  const failed = ciRun(t, { ...GREEN, missing: ['caddy'], aptCode: 100 })
  t.match(failed.stdout, /E: apt-get says something\nci: apt-get install failed\n/)
  t.equal(failed.lastLine, '1 passed, 0 failed', 'the run goes on to report the tests')
  t.same(failed.leftInTmp, [])
})

t.test('a run leaves no temporary file behind', async (t) => {
  const green = ciRun(t, GREEN)
  t.same(green.leftInTmp, [])
  const red = ciRun(t, { testOutput: '# { total: 3, pass: 2, fail: 1 }\nnot ok 3 - c\n', testCode: 1 })
  t.same(red.leftInTmp, [])
  t.match(red.stdout, /not ok 3 - c\n2 passed, 1 failed\n$/, 'the failure and the counts are printed first')
})
