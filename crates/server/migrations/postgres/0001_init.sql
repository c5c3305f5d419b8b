-- fleetca schema v1 for PostgreSQL: the SQLite schema with BIGINT for every integer (so one
-- query text decodes to i64 on both backends) and BYTEA for DER.
CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    jwk_thumbprint TEXT NOT NULL,
    jwk           TEXT NOT NULL,
    contact       TEXT NOT NULL,   -- JSON array of URIs
    status        TEXT NOT NULL,
    tos_agreed    BIGINT NOT NULL,
    eab_kid       TEXT,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX accounts_key ON accounts(tenant, jwk_thumbprint);

CREATE TABLE orders (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    status        TEXT NOT NULL,   -- pending | processing | valid | invalid ('ready' is derived)
    expires       BIGINT NOT NULL,
    identifiers   TEXT NOT NULL,   -- JSON array of {type, value}
    error         TEXT,            -- JSON problem document
    cert_id       TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX orders_by_account ON orders(account_id, created_at, id);

CREATE TABLE authzs (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    ident_type    TEXT NOT NULL,
    ident_value   TEXT NOT NULL,
    wildcard      BIGINT NOT NULL,
    status        TEXT NOT NULL,   -- pending | valid | invalid | deactivated | revoked ('expired' is derived)
    expires       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX authzs_reuse ON authzs(account_id, ident_type, ident_value, wildcard, expires);

CREATE TABLE order_authzs (
    order_id      TEXT NOT NULL REFERENCES orders(id),
    authz_id      TEXT NOT NULL REFERENCES authzs(id),
    position      BIGINT NOT NULL,
    PRIMARY KEY (order_id, authz_id)
);
CREATE INDEX order_authzs_by_authz ON order_authzs(authz_id);

CREATE TABLE challenges (
    id            TEXT PRIMARY KEY,
    authz_id      TEXT NOT NULL REFERENCES authzs(id),
    type          TEXT NOT NULL,
    token         TEXT NOT NULL,
    status        TEXT NOT NULL,   -- pending | processing | valid | invalid
    validated_at  BIGINT,
    error         TEXT,            -- JSON problem document
    record        TEXT             -- JSON validation record (what the VA contacted)
);
CREATE INDEX challenges_by_authz ON challenges(authz_id);
CREATE INDEX challenges_by_status ON challenges(status);

CREATE TABLE certificates (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    serial        TEXT NOT NULL,   -- lower-case hex, no leading 00
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    order_id      TEXT NOT NULL REFERENCES orders(id),
    der           BYTEA NOT NULL,
    names         TEXT NOT NULL,   -- JSON array of {type, value}
    not_before    BIGINT NOT NULL,
    not_after     BIGINT NOT NULL,
    issued_at     BIGINT NOT NULL,
    revoked_at    BIGINT,
    revocation_reason BIGINT
);
CREATE UNIQUE INDEX certificates_serial ON certificates(tenant, serial);
CREATE INDEX certificates_revoked ON certificates(tenant, revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE crls (
    tenant        TEXT PRIMARY KEY,
    crl_number    BIGINT NOT NULL,
    der           BYTEA NOT NULL,
    this_update   BIGINT NOT NULL,
    next_update   BIGINT NOT NULL
);
