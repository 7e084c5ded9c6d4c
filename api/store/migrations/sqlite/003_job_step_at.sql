-- When a job entered its current step (epoch ms): the health check's own deadline counts from
-- the DNS step, however many attempts the wait takes. Jobs of an older release get their last
-- change, which is no earlier than their step's start.
ALTER TABLE jobs ADD COLUMN step_at INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET step_at = CAST(round(unixepoch(updated_at, 'subsec') * 1000) AS INTEGER);
