-- Rate-limit buckets shared by every node (see sa/rate.rs): tokens left, when they were
-- counted, and when the bucket is full again (rows past that are pruned).
CREATE TABLE rate_buckets (
    tenant      TEXT NOT NULL,
    lim         TEXT NOT NULL,
    subject     TEXT NOT NULL,
    tokens      DOUBLE PRECISION NOT NULL,
    at_ms       BIGINT NOT NULL,
    full_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (tenant, lim, subject)
);
CREATE INDEX rate_buckets_full_at ON rate_buckets(full_at_ms);
