-- Tenants: two facts (billing, infra) plus what the executor made; `state` is derived, not stored.
CREATE TABLE tenants (
  id             TEXT PRIMARY KEY,
  name           TEXT NOT NULL,
  email          TEXT NOT NULL DEFAULT '',
  plan           TEXT NOT NULL,
  slug           TEXT NOT NULL UNIQUE,
  billing        TEXT NOT NULL,
  infra          TEXT NOT NULL,
  subscription_id TEXT,
  customer_id    TEXT,
  billing_at     INTEGER NOT NULL DEFAULT 0,
  plan_at        INTEGER NOT NULL DEFAULT 0,
  error          TEXT,
  server_id      TEXT,
  ipv4           TEXT,
  dns_record_id  TEXT,
  created_at     TEXT NOT NULL,
  updated_at     TEXT NOT NULL,
  paid_at        TEXT,
  ready_at       TEXT,
  canceled_at    TEXT
) STRICT;
CREATE INDEX tenants_billing ON tenants (billing);

-- The durable subscription → tenant index (survives restarts, shared by every process).
CREATE TABLE subscriptions (
  subscription_id TEXT PRIMARY KEY,
  tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
) STRICT;
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id);

-- Every verified event, recorded in the same transaction as its effect (exactly once).
CREATE TABLE stripe_events (
  id       TEXT PRIMARY KEY,
  type     TEXT NOT NULL,
  created  INTEGER NOT NULL,
  received TEXT NOT NULL,
  outcome  TEXT NOT NULL,
  tenant   TEXT,
  payload  TEXT NOT NULL
) STRICT;
CREATE INDEX stripe_events_tenant ON stripe_events (tenant);

CREATE TABLE jobs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  kind        TEXT NOT NULL,
  tenant      TEXT NOT NULL,
  status      TEXT NOT NULL,
  step        TEXT NOT NULL DEFAULT '',
  attempts    INTEGER NOT NULL DEFAULT 0,
  run_after   INTEGER NOT NULL,
  lease_until INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  last_error  TEXT,
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
) STRICT;
-- At most one live job of a kind per tenant.
CREATE UNIQUE INDEX jobs_live ON jobs (tenant, kind) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_due ON jobs (status, run_after);

CREATE TABLE audit_log (
  seq      INTEGER PRIMARY KEY,
  at       TEXT NOT NULL,
  tenant   TEXT NOT NULL,
  action   TEXT NOT NULL,
  detail   TEXT NOT NULL,
  prev_mac TEXT NOT NULL,
  mac      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_tenant ON audit_log (tenant);
