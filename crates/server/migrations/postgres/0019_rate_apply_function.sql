-- Rate-limit buckets in one round trip (`sa::rate`, PostgreSQL). One call applies an
-- operation to all of a request's buckets in the statement's own transaction:
--   'check'  refuse if any bucket is empty; write nothing;
--   'take'   take one token from every bucket, or refuse and write nothing;
--   'adjust' add p_delta tokens to every bucket, clamped to 0..size; never refuses.
-- A refusal is one row: the 0-based index (in the caller's order) of the bucket that needs
-- longest to hold a token again, and that wait in seconds. No row: done.
--
-- Existing buckets are locked (FOR UPDATE) in one order for every caller, (lim, subject), so
-- two calls cannot wait on each other, and the decision is made on the locked rows. An
-- absent bucket is a full one; it is inserted only when written, and if another call
-- inserted it first the whole statement fails with serialization_failure (40001), changing
-- nothing, and the caller runs it again (the row then exists and is locked like the others).
CREATE FUNCTION fleetca_rate_apply(
    p_tenant TEXT,
    p_lims TEXT[],
    p_subjects TEXT[],
    p_sizes DOUBLE PRECISION[],
    p_rates DOUBLE PRECISION[],
    p_now BIGINT,
    p_op TEXT,
    p_delta DOUBLE PRECISION
) RETURNS TABLE (refused INTEGER, wait DOUBLE PRECISION)
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER := cardinality(p_lims);
    ord INTEGER[];
    i INTEGER;
    t DOUBLE PRECISION[] := array_fill(0::DOUBLE PRECISION, ARRAY[n]);
    found_ BOOLEAN[] := array_fill(false, ARRAY[n]);
    cur RECORD;
    best INTEGER;
    best_wait DOUBLE PRECISION := 0;
    w DOUBLE PRECISION;
    left_ DOUBLE PRECISION;
    full_at BIGINT;
    inserted INTEGER;
BEGIN
    SELECT array_agg(k ORDER BY p_lims[k], p_subjects[k]) INTO ord
        FROM generate_subscripts(p_lims, 1) AS k;
    FOREACH i IN ARRAY ord LOOP
        SELECT b.tokens, b.at_ms INTO cur FROM rate_buckets b
            WHERE b.tenant = p_tenant AND b.lim = p_lims[i] AND b.subject = p_subjects[i]
            FOR UPDATE;
        IF FOUND THEN
            found_[i] := true;
            t[i] := LEAST(cur.tokens + GREATEST(p_now - cur.at_ms, 0) / 1000.0 * p_rates[i],
                          p_sizes[i]);
        ELSE
            t[i] := p_sizes[i];
        END IF;
    END LOOP;
    IF p_op <> 'adjust' THEN
        FOR i IN 1 .. n LOOP
            IF t[i] < 1 THEN
                w := CASE WHEN p_rates[i] > 0 THEN (1 - t[i]) / p_rates[i]
                          ELSE 'Infinity'::DOUBLE PRECISION END;
                IF best IS NULL OR w > best_wait THEN
                    best := i;
                    best_wait := w;
                END IF;
            END IF;
        END LOOP;
        IF best IS NOT NULL THEN
            refused := best - 1;
            wait := best_wait;
            RETURN NEXT;
            RETURN;
        END IF;
        IF p_op = 'check' THEN
            RETURN;
        END IF;
    END IF;
    FOREACH i IN ARRAY ord LOOP
        IF p_op = 'adjust' THEN
            left_ := LEAST(GREATEST(t[i] + p_delta, 0), p_sizes[i]);
        ELSE
            left_ := t[i] - 1;
        END IF;
        full_at := CASE WHEN p_rates[i] > 0
            THEN p_now + ceil(GREATEST(p_sizes[i] - left_, 0) / p_rates[i] * 1000)::BIGINT
            ELSE 9223372036854775807 END;
        IF found_[i] THEN
            UPDATE rate_buckets SET tokens = left_, at_ms = p_now, full_at_ms = full_at
                WHERE tenant = p_tenant AND lim = p_lims[i] AND subject = p_subjects[i];
        ELSE
            INSERT INTO rate_buckets (tenant, lim, subject, tokens, at_ms, full_at_ms)
                VALUES (p_tenant, p_lims[i], p_subjects[i], left_, p_now, full_at)
                ON CONFLICT (tenant, lim, subject) DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
            IF inserted = 0 THEN
                RAISE EXCEPTION 'rate bucket created concurrently; run again'
                    USING ERRCODE = 'serialization_failure';
            END IF;
        END IF;
    END LOOP;
    RETURN;
END
$$;
