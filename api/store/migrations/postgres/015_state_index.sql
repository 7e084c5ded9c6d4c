-- The admin's listing of a state (`GET /admin/tenants?state=provisioning`), a (billing, infra)
-- pair at a time, and the count of each pair: a page starts at its pair and reads along it in
-- the listing's order (created_at and id COLLATE "C", as the ORDER BY), from where the page
-- before ended, rather than filtering tenants_created or sorting what tenants_billing finds.
-- Written when billing or infra changes; a renewal's update that changes neither stays HOT.
CREATE INDEX tenants_state ON tenants (billing, infra, created_at DESC, id);
