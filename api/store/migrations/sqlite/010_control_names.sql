-- An older release's checkout took any name of 1 to 80 characters, control characters
-- included, and PostgreSQL's text refuses NUL: such a name stopped db:to-postgres. Only that
-- part of today's rule (tenants/name.ts) is applied here: each run of C0 controls and DEL
-- becomes one space, spaces at the ends are trimmed, and a name left empty is the default one.
-- The rest (C1 controls, bidirectional overrides, nothing visible) is not, as SQL cannot say it
-- for both stores alike; the operator CLI shows such characters as their codes.
WITH RECURSIVE
  dirty (id, name) AS (
    SELECT id, name FROM tenants
    WHERE instr(CAST(name AS BLOB), x'00') > 0 OR name GLOB '*[' || char(1) || '-' || char(31) || char(127) || ']*'
  ),
  -- NUL first, by cutting the bytes at each (replace() and GLOB stop at a NUL): it becomes char(1).
  cut (id, done, rest) AS (
    SELECT id, '', CAST(name AS BLOB) FROM dirty
    UNION ALL
    SELECT id, done || CAST(substr(rest, 1, instr(rest, x'00') - 1) AS TEXT) || char(1), substr(rest, instr(rest, x'00') + 1)
    FROM cut WHERE instr(rest, x'00') > 0
  ),
  -- Then every other control (code k, 32 for DEL) becomes char(1) too.
  marked (id, k, name) AS (
    SELECT id, 2, done || CAST(rest AS TEXT) FROM cut WHERE instr(rest, x'00') = 0
    UNION ALL
    SELECT id, k + 1, replace(name, char(CASE k WHEN 32 THEN 127 ELSE k END), char(1)) FROM marked WHERE k <= 32
  )
-- Each run of char(1) becomes one space: 1 → 1 2, drop 2 1, then 1 2 → ' '.
UPDATE tenants SET name = coalesce(nullif(trim(replace(replace(replace(marked.name, char(1), char(1) || char(2)), char(2) || char(1), ''), char(1) || char(2), ' '), ' '), ''), 'ctfhive-event')
FROM marked WHERE marked.id = tenants.id AND marked.k = 33;
