-- "The most recent events" (admin) reads this backwards instead of sorting the whole table.
-- received only grows, so each batch of webhooks appends to the same leaf: it costs little
-- on the write path, unlike an index that new events enter at many places.
CREATE INDEX stripe_events_received ON stripe_events (received);
