-- The operator's listing of the events of one outcome (`ctfhive events --outcome unmatched`),
-- page after page, read backwards along this index. Partial: 'ok' events, renewals among them,
-- are most of the table and the webhook's hot path, and never enter it. SQLite uses it only for
-- a query that holds this very term (`outcome <> 'ok'`), as the listing does (*-ops.ts).
CREATE INDEX stripe_events_not_ok ON stripe_events (received, id) WHERE outcome <> 'ok';
