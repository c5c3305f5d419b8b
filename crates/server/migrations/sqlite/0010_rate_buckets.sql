-- Rate-limit buckets kept in the database (see sa/rate.rs). A single SQLite node keeps its
-- buckets in memory; the table exists so both engines carry the same schema and the store's
-- tests run on both.
CREATE TABLE rate_buckets (
    tenant      TEXT NOT NULL,
    lim         TEXT NOT NULL,
    subject     TEXT NOT NULL,
    tokens      REAL NOT NULL,
    at_ms       INTEGER NOT NULL,
    full_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (tenant, lim, subject)
);
CREATE INDEX rate_buckets_full_at ON rate_buckets(full_at_ms);
