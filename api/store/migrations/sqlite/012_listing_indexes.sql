-- The tenant listing and export (newest first, then by id, a page after another) read along
-- this index, in its very order, and seek to where the page before ended: no longer a scan and
-- a sort of every tenant per page. Written when a tenant is made only: no update sets created_at
-- or id (TenantPatch has neither), so a renewal's update of the row leaves it alone.
CREATE INDEX tenants_created ON tenants (created_at DESC, id);
-- A tenant's jobs, in id order (listJobs, in webhook transactions, teardown and resize): jobs
-- are kept for good, and jobs_live holds only the live ones. Written when a job is queued only.
CREATE INDEX jobs_tenant ON jobs (tenant, id);
