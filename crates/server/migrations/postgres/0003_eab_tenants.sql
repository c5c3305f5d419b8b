-- fleetca schema: External Account Binding keys (RFC 8555 §7.3.4) and the admin audit log.
-- Times are UNIX seconds (UTC), as in 0001.

-- One row per CA-issued EAB credential. The HMAC key itself is never stored in clear: the
-- MAC check needs the key, so it is sealed with AES-256-GCM under the data directory's
-- `eab.key` (nonce || ciphertext || tag, AAD = tenant and kid), see ra/eab.rs.
CREATE TABLE eab_keys (
    kid           TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    sealed_key    BYTEA NOT NULL,
    max_uses      BIGINT NOT NULL,   -- accounts this key may create (1 = single-use)
    uses          BIGINT NOT NULL DEFAULT 0,
    expires_at    BIGINT,            -- NULL = no expiry
    revoked_at    BIGINT,
    created_at    BIGINT NOT NULL,
    CHECK (uses <= max_uses)
);
CREATE INDEX eab_keys_by_tenant ON eab_keys(tenant, created_at);

-- The binding JWS each account was created with, returned in the account object (§7.1.2).
CREATE TABLE eab_bindings (
    account_id    TEXT PRIMARY KEY REFERENCES accounts(id),
    kid           TEXT NOT NULL REFERENCES eab_keys(kid),
    binding       TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX eab_bindings_by_kid ON eab_bindings(kid);

-- Append-only record of operator state changes (CLI now, admin API later).
CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor         TEXT NOT NULL,      -- e.g. cli:alice
    action        TEXT NOT NULL,      -- e.g. eab.create, eab.revoke, account.deactivate
    tenant        TEXT,
    object        TEXT,               -- the kid, account id or serial acted on
    before_json   TEXT,
    after_json    TEXT
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
