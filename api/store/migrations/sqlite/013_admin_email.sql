-- The address the CTF's first administrator was set up with, stored when its server is made:
-- the buyer's address may reach the tenant only after that (an event without one started the
-- provisioning), and the welcome page must name the one CTFd has. Null for a server made
-- before this migration: readers then fall back to the address the tenant has.
ALTER TABLE tenants ADD COLUMN admin_email TEXT;
