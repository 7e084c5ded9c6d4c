-- A never-paid tenant canceled by a failed or expired checkout: the billing status it had
-- then (pending or past_due), kept so that a payment made after all voids the cancellation
-- whatever the order the events arrive in. NULL for every other tenant.
ALTER TABLE tenants ADD COLUMN soft_cancel_from TEXT;
