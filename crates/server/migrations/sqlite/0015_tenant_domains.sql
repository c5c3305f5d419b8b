-- Tenant domains (issue 17): a parent domain a tenant (vendor) proved control of once per
-- reuse period, by a DNS method only (BR §3.2.2.4.7 dns-01, §3.2.2.4.22 dns-persist-01), or
-- marked vendor-owned by the operator for a private-trust tenant (method 'trusted', audited).
-- Accounts created with one of the tenant's EAB credentials get authorizations for names at
-- or below a valid domain without a challenge (ra::domains). Times are UNIX seconds.
CREATE TABLE tenant_domains (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,      -- lower-case A-labels, no trailing dot, no '*.'
    method        TEXT NOT NULL,      -- dns-01 | dns-persist-01 | trusted
    txt_name      TEXT,               -- the TXT record to publish (NULL for trusted)
    txt_value     TEXT,
    value_expires INTEGER,              -- dns-01's random value is usable until then (BR: 30 days)
    status        TEXT NOT NULL,      -- pending | valid | invalid
    validated_at  INTEGER,
    expires_at    INTEGER,              -- end of the reuse period of the last validation
    evidence      TEXT,               -- JSON: what was queried and found, CAA result
    last_checked_at INTEGER,
    last_error    TEXT,               -- JSON problem document of the last failed check
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX tenant_domains_name ON tenant_domains(tenant, name);

-- An authorization granted from a tenant domain names it (the tenant_domains id). It has no
-- challenge, is never reused by another order, and is deactivated when the domain is removed.
-- No foreign key: `fleetca migrate` copies rows in any order.
ALTER TABLE authzs ADD COLUMN derived_from TEXT;
CREATE INDEX authzs_derived_from ON authzs(derived_from) WHERE derived_from IS NOT NULL;
