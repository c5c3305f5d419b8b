-- fleetca schema v2: certificate lifecycle. Profiles (draft-aaron-acme-profiles), ACME Renewal
-- Information (RFC 9773) and partitioned CRLs (RFC 5280 §5.2.5). Separate tables, so the v1
-- tables and the code that writes them are unchanged. Times are UNIX seconds (UTC).

-- The profile an order asked for and the certificate it replaces. Written just before the
-- order row (no foreign key, so a failed order insert leaves only an unreferenced row).
CREATE TABLE order_lifecycle (
    order_id          TEXT PRIMARY KEY,
    profile           TEXT NOT NULL,
    replaces_cert_id  TEXT             -- certificates.id named by `replaces` (RFC 9773 §5)
);
CREATE INDEX order_lifecycle_replaces ON order_lifecycle(replaces_cert_id)
    WHERE replaces_cert_id IS NOT NULL;

-- Per-certificate facts fixed at issuance: the profile and the CRL shard named in its CDP.
-- Written just before the certificate row, in the same way as order_lifecycle (so no foreign
-- key): a revoked certificate can then never lack its shard.
CREATE TABLE cert_lifecycle (
    cert_id    TEXT PRIMARY KEY,
    profile    TEXT NOT NULL,
    crl_shard  BIGINT             -- NULL: the tenant's unpartitioned CRL or no CDP at all
);
CREATE INDEX cert_lifecycle_shard ON cert_lifecycle(crl_shard) WHERE crl_shard IS NOT NULL;

-- Operator overrides of the ARI suggested window ("renew early", RFC 9773 §4.2).
CREATE TABLE renewal_overrides (
    cert_id       TEXT PRIMARY KEY REFERENCES certificates(id),
    window_start  BIGINT NOT NULL,
    window_end    BIGINT NOT NULL,
    set_at        BIGINT NOT NULL
);

-- One CRL per (tenant, shard) for partitioned CRLs.
CREATE TABLE crl_shards (
    tenant        TEXT NOT NULL,
    shard         BIGINT NOT NULL,
    crl_number    BIGINT NOT NULL,
    der           BYTEA NOT NULL,
    this_update   BIGINT NOT NULL,
    next_update   BIGINT NOT NULL,
    PRIMARY KEY (tenant, shard)
);
