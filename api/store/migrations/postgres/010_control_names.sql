-- An older release's checkout took any name of 1 to 80 characters, control characters
-- included. Only part of today's rule (tenants/name.ts) is applied, as in the SQLite twin:
-- each run of C0 controls and DEL becomes one space, spaces at the ends are trimmed, and a
-- name left empty is the default one. (NUL never got here: PostgreSQL's text refuses it; the SQLite twin of this
-- migration removes it before db:to-postgres copies the names.)
UPDATE tenants SET name = coalesce(nullif(btrim(regexp_replace(name, '[\x01-\x1f\x7f]+', ' ', 'g'), ' '), ''), 'ctfhive-event')
WHERE name ~ '[\x01-\x1f\x7f]';
