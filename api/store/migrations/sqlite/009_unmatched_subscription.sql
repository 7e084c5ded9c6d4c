-- An event answered `unmatched` keeps the subscription it names, until a tenant takes that
-- subscription on: a Payment Link's subscription and invoice events arrive before the
-- checkout that adopts it, and are applied then, in the same transaction (service.ts).
-- NULL for every other event, so the partial index costs the webhook's usual path nothing.
-- Events an older release left unmatched are not back-filled: the operator API replays one.
ALTER TABLE stripe_events ADD COLUMN unmatched_subscription TEXT;
CREATE INDEX stripe_events_unmatched ON stripe_events (unmatched_subscription) WHERE unmatched_subscription IS NOT NULL;
