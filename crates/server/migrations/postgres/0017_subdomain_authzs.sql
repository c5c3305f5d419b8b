-- RFC 9444 (ACME for subdomains). An authorization made with `subdomainAuthAllowed: true`
-- (newAuthz, or for an order's `ancestorDomain`) offers dns-01 only (§4.1); once valid, it
-- lets its account have names below it authorized without a challenge.
ALTER TABLE authzs ADD COLUMN subdomain_auth_allowed BIGINT NOT NULL DEFAULT 0;
-- An authorization granted that way names the ancestor authorization (its id). It has no
-- challenge, never outlives the ancestor, is never reused by another order and is deactivated
-- with the ancestor. No foreign key: `fleetca migrate` copies rows in any order.
ALTER TABLE authzs ADD COLUMN ancestor_authz TEXT;
CREATE INDEX authzs_ancestor_authz ON authzs(ancestor_authz) WHERE ancestor_authz IS NOT NULL;
