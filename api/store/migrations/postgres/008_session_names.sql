-- Tenants adopted from a Checkout Session with no name of its own (a Payment Link) were named
-- after the session's whole id, which is public in the status route and earns the welcome
-- link at /billing/success. They take the name new ones get: the id's last six characters.
UPDATE tenants SET name = 'Checkout …' || right(name, 6)
WHERE name ~ '^cs_(test|live)_[A-Za-z0-9_]{12,}$';
