-- Continuous coverage (docs/coverage.md): the inputs of each certificate's coverage state,
-- copied out of `certificates` by the coverage refresher (sa::coverage::sync_coverage), never
-- by issuance, so the dashboard and the gauges read one narrow index instead of the
-- certificates table with its DER. Times are UNIX seconds (UTC).
CREATE TABLE cert_coverage (
    cert_id       TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    serial        TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    names_key     TEXT NOT NULL,     -- the sorted, lower-case "type:value" names, space-separated
    not_before    INTEGER NOT NULL,
    not_after     INTEGER NOT NULL,
    issued_at     INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,     -- the ARI window (RFC 9773 §4.2) the server answers with
    window_end    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,     -- newest of: issuance, a renewalInfo poll, a later issuance to the account
    last_poll     INTEGER,              -- newest recorded renewalInfo poll (at most one write per poll interval)
    replaced_by   TEXT,              -- the certificate that replaced it (`replaces`, or same account and names)
    revoked_at    INTEGER
);
-- Everything the state expression reads, in notAfter order: the counts are one pass over this
-- index, and the listings walk it in their sort order without touching the table.
CREATE INDEX cert_coverage_state ON cert_coverage(not_after, cert_id, tenant, revoked_at,
    not_before, window_start, window_end, last_seen, replaced_by);
-- Same account and name set: how a replacement without `replaces` is recognised.
CREATE INDEX cert_coverage_lineage ON cert_coverage(account_id, names_key, issued_at);
-- The refresher finds new certificates by issuance time (also serves /api/stats' hourly counts).
CREATE INDEX certificates_issued ON certificates(issued_at);

-- How far the refresher has read: 'issued' (newest issued_at copied), 'revoked' (newest
-- revoked_at copied).
CREATE TABLE coverage_sync (
    name  TEXT PRIMARY KEY,
    mark  INTEGER NOT NULL
);
