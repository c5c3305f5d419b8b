-- Spent nonces shared by all nodes (RFC 8555 §6.5: each nonce is accepted once, whichever node
-- issued it) and secrets every node must agree on (the nonce MAC key).
CREATE TABLE spent_nonces (
    id       BYTEA PRIMARY KEY,
    expires  BIGINT NOT NULL
);
CREATE INDEX spent_nonces_expires ON spent_nonces(expires);

CREATE TABLE secrets (
    name     TEXT PRIMARY KEY,
    value    BYTEA NOT NULL
);
