-- The checkout rate limit's counters, shared by every instance on this database: hits per
-- client key in a fixed window. Rows of windows that ended are deleted as new windows begin.
CREATE TABLE rate_limits (
  key      TEXT PRIMARY KEY,
  count    INTEGER NOT NULL,
  reset_at BIGINT NOT NULL
);
CREATE INDEX rate_limits_reset ON rate_limits (reset_at);
