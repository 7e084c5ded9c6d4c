// .ci/run: CI recognises only its last line, "N passed, N failed" (DESIGN §13). Run the real
// script on a copy, with `npm` and `dpkg` played by stubs on PATH, so nothing is installed.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const RUN = fileURLToPath(new URL('../../.ci/run', import.meta.url))

/** Runs a copy of .ci/run whose `npm test` prints `testOutput` and exits `testCode`. */
function ciRun (t: Test, opts: { testOutput: string, testCode: number, ciCode?: number }): { lastLine: string, code: number | null, stdout: string } {
  const dir = t.testdir({ '.ci': {}, bin: {} })
  copyFileSync(RUN, join(dir, '.ci', 'run'))
  chmodSync(join(dir, '.ci', 'run'), 0o755)
  mkdirSync(join(dir, 'bin'), { recursive: true })
  writeFileSync(join(dir, 'test-output'), opts.testOutput)
  const stub = (name: string, body: string): void => {
    writeFileSync(join(dir, 'bin', name), `#!/usr/bin/env bash\n${body}\n`)
    chmodSync(join(dir, 'bin', name), 0o755)
  }
  stub('dpkg', 'exit 0') // every package "installed": no apt-get
  stub('npm', `case "$1" in
  ci) exit ${opts.ciCode ?? 0} ;;
  test) cat "${join(dir, 'test-output')}"; exit ${opts.testCode} ;;
esac
exit 9`)
  const r = spawnSync('bash', [join(dir, '.ci', 'run')], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}` },
    timeout: 30_000
  })
  const lines = r.stdout.trimEnd().split('\n')
  return { lastLine: lines[lines.length - 1]!, code: r.status, stdout: r.stdout }
}

t.test('a green run ends with its counts', async (t) => {
  const r = ciRun(t, { testOutput: 'ok 1 - a\n# { total: 12, pass: 12 }\n', testCode: 0 })
  t.equal(r.lastLine, '12 passed, 0 failed')
  t.equal(r.code, 0)
  t.match(r.stdout, /ok 1 - a/, "the tests' own output is shown")
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
})
