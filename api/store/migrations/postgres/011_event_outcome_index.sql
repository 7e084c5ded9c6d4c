-- The operator's listing of the events of one outcome (`ctfhive events --outcome unmatched`),
-- page after page, read backwards along this index. Partial: 'ok' events, renewals among them,
-- are most of the table and the webhook's hot path, and never enter it. The listing's query
-- holds this very term (`outcome <> 'ok'`), so a plan made for any outcome, prepared
-- statements' generic plans included, can use it (postgres-ops.ts).
CREATE INDEX stripe_events_not_ok ON stripe_events (received, id) WHERE outcome <> 'ok';
