-- fleetca schema v1. Times are UNIX seconds (UTC) so the same schema maps onto PostgreSQL BIGINT.
CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    jwk_thumbprint TEXT NOT NULL,
    jwk           TEXT NOT NULL,
    contact       TEXT NOT NULL,   -- JSON array of URIs
    status        TEXT NOT NULL,
    tos_agreed    INTEGER NOT NULL,
    eab_kid       TEXT,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX accounts_key ON accounts(tenant, jwk_thumbprint);

CREATE TABLE orders (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    status        TEXT NOT NULL,   -- pending | processing | valid | invalid ('ready' is derived)
    expires       INTEGER NOT NULL,
    identifiers   TEXT NOT NULL,   -- JSON array of {type, value}
    error         TEXT,            -- JSON problem document
    cert_id       TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX orders_by_account ON orders(account_id, created_at, id);

CREATE TABLE authzs (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    ident_type    TEXT NOT NULL,
    ident_value   TEXT NOT NULL,
    wildcard      INTEGER NOT NULL,
    status        TEXT NOT NULL,   -- pending | valid | invalid | deactivated | revoked ('expired' is derived)
    expires       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX authzs_reuse ON authzs(account_id, ident_type, ident_value, wildcard, expires);

CREATE TABLE order_authzs (
    order_id      TEXT NOT NULL REFERENCES orders(id),
    authz_id      TEXT NOT NULL REFERENCES authzs(id),
    position      INTEGER NOT NULL,
    PRIMARY KEY (order_id, authz_id)
);
CREATE INDEX order_authzs_by_authz ON order_authzs(authz_id);

CREATE TABLE challenges (
    id            TEXT PRIMARY KEY,
    authz_id      TEXT NOT NULL REFERENCES authzs(id),
    type          TEXT NOT NULL,
    token         TEXT NOT NULL,
    status        TEXT NOT NULL,   -- pending | processing | valid | invalid
    validated_at  INTEGER,
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
    der           BLOB NOT NULL,
    names         TEXT NOT NULL,   -- JSON array of {type, value}
    not_before    INTEGER NOT NULL,
    not_after     INTEGER NOT NULL,
    issued_at     INTEGER NOT NULL,
    revoked_at    INTEGER,
    revocation_reason INTEGER
);
CREATE UNIQUE INDEX certificates_serial ON certificates(tenant, serial);
CREATE INDEX certificates_revoked ON certificates(tenant, revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE crls (
    tenant        TEXT PRIMARY KEY,
    crl_number    INTEGER NOT NULL,
    der           BLOB NOT NULL,
    this_update   INTEGER NOT NULL,
    next_update   INTEGER NOT NULL
);
