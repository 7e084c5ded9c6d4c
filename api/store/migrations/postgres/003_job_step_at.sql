-- When a job entered its current step (epoch ms): the health check's own deadline counts from
-- the DNS step, however many attempts the wait takes. Jobs of an older release get their last
-- change, which is no earlier than their step's start.
ALTER TABLE jobs ADD COLUMN step_at BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET step_at = (extract(epoch FROM updated_at::timestamptz) * 1000)::bigint;
