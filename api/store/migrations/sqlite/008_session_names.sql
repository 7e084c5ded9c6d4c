-- Tenants adopted from a Checkout Session with no name of its own (a Payment Link) were named
-- after the session's whole id, which is public in the status route and earns the welcome
-- link at /billing/success. They take the name new ones get: the id's last six characters.
UPDATE tenants SET name = 'Checkout …' || substr(name, -6)
WHERE substr(name, 1, 8) IN ('cs_test_', 'cs_live_') AND length(name) >= 20 AND name NOT GLOB '*[^A-Za-z0-9_]*';
