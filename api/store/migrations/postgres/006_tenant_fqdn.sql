-- The tenant's address, stored when it is made and settled when its first server is queued:
-- changing BASE_DOMAIN later moves new tenants only, and teardown still finds an older
-- tenant's DNS record in the zone it was made in.
-- Rows made before this migration (or by an older release after it) get
-- `<slug>.<BASE_DOMAIN>` when the service starts (Store.assignFqdns); until then readers
-- fall back to the same. Unique, like the slug it begins with.
ALTER TABLE tenants ADD COLUMN fqdn TEXT;
CREATE UNIQUE INDEX tenants_fqdn ON tenants (fqdn);
