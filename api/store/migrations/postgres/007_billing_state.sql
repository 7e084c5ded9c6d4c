-- A tenant's billing kept per subscription (JSON; api/tenants/billing-state.ts): the billing
-- columns become its summary, so events of two subscriptions at once settle the same in any
-- order. Rows from before stay NULL until their next event, which rebuilds it from those
-- columns; so does a row an older release changed after this migration.
ALTER TABLE tenants ADD COLUMN billing_state TEXT;
