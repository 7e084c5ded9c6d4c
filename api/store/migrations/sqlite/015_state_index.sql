-- The admin's listing of a state (`GET /admin/tenants?state=provisioning`), a (billing, infra)
-- pair at a time, and the count of each pair: a page seeks to its pair and reads along it in
-- the listing's order (newest first, then by id), from where the page before ended. Along
-- tenants_created a rare pair cost a walk of every tenant per page and per pair, blocking the
-- server for as long. The listing's query names both columns plainly (sqlite-ops.ts).
CREATE INDEX tenants_state ON tenants (billing, infra, created_at DESC, id);
