-- Admin API bearer tokens (docs/admin.md), moved from DIR/admin-tokens.json into the database
-- so every node sharing it accepts the same tokens. Only the SHA-256 of a token is stored.
CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    scopes      TEXT NOT NULL,     -- comma-separated: read, write, admin
    label       TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
