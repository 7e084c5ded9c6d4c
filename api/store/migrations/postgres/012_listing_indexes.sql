-- The tenant listing and export (newest first, then by id, a page after another) read along
-- this index, in its very order (both columns COLLATE "C", as the ORDER BY), and start where
-- the page before ended: no longer a scan and a sort of every tenant per page. No update sets
-- created_at or id (TenantPatch has neither), so it never keeps a renewal's update of the row
-- from being a HOT one, which writes no index.
CREATE INDEX tenants_created ON tenants (created_at DESC, id);
-- A tenant's jobs, in id order (listJobs, in webhook transactions, teardown and resize): jobs
-- are kept for good, and jobs_live holds only the live ones. Written by the jobs' own writes
-- (queued, or a step that moves it along jobs_due already), never by a renewal.
CREATE INDEX jobs_tenant ON jobs (tenant, id);
