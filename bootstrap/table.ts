// Plain-text tables for the CLIs: left-aligned columns, a rule under the header.

export function renderTable (headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const all = [headers, ...rows]
  const widths = headers.map((_, col) => Math.max(...all.map((r) => (r[col] ?? '').length)))
  const line = (r: readonly string[]): string => r.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd()
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n'
}
