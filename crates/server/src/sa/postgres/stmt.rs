//! Statements only PostgreSQL runs: the issuance path's multi-statement transactions folded
//! into one statement each, so a write is one round trip instead of one per row plus `BEGIN`
//! and `COMMIT`. Data-modifying CTEs all run against one snapshot and their foreign-key
//! checks fire at the end of the whole statement, so the order of the parts does not matter
//! the way it does for separate statements; the statement is atomic as a transaction was.
//! Arrays are bound whole and `UNNEST`ed, one element per row.

use super::ride::{ridden, ridden_with};
use crate::sa::rows;
use std::sync::LazyLock;

/// newOrder: the order, its lifecycle row (when `$8` is not NULL), its new authorizations
/// with their challenges, and its authorization links, in one statement.
pub(crate) const INSERT_ORDER: &str = "WITH lc AS (
        INSERT INTO order_lifecycle (order_id, profile, replaces_cert_id)
        SELECT $1, $8, $9 WHERE $8 IS NOT NULL
    ), az AS (
        INSERT INTO authzs (id, tenant, account_id, ident_type, ident_value, wildcard, status, expires,
                            created_at, attested_by, derived_from, subdomain_auth_allowed, ancestor_authz)
        SELECT * FROM UNNEST($10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int8[],
                             $16::text[], $17::int8[], $18::int8[], $19::text[], $20::text[], $21::int8[], $22::text[])
    ), ch AS (
        INSERT INTO challenges (id, authz_id, type, token, status)
        SELECT * FROM UNNEST($23::text[], $24::text[], $25::text[], $26::text[], $27::text[])
    ), o AS (
        INSERT INTO orders (id, tenant, account_id, status, expires, identifiers, error, cert_id, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)
    )
    INSERT INTO order_authzs (order_id, authz_id, position)
    SELECT $1, l.authz_id, l.n - 1 FROM UNNEST($28::text[]) WITH ORDINALITY AS l(authz_id, n)";

/// newAuthz: an authorization outside an order with its challenges, in one statement.
pub(crate) const INSERT_AUTHZ: &str = "WITH az AS (
        INSERT INTO authzs (id, tenant, account_id, ident_type, ident_value, wildcard, status, expires,
                            created_at, attested_by, derived_from, subdomain_auth_allowed, ancestor_authz)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    )
    INSERT INTO challenges (id, authz_id, type, token, status)
    SELECT c.id, $1, c.type, c.token, c.status FROM UNNEST($14::text[], $15::text[], $16::text[], $17::text[])
        AS c(id, type, token, status)";

/// finalize, step 3: if `$3` still holds the order, it becomes valid with certificate `$1`,
/// stored with its lifecycle row (when `$12` is not NULL); returns whether it was held.
pub(crate) const STORE_CERTIFICATE: &str = "WITH held AS (
        UPDATE orders SET status = 'valid', cert_id = $1, claim_token = NULL, claim_until = NULL
        WHERE id = $2 AND status = 'processing' AND claim_token = $3
        RETURNING id
    ), lc AS (
        INSERT INTO cert_lifecycle (cert_id, profile, crl_shard)
        SELECT $1, $12, $13 FROM held WHERE $12 IS NOT NULL
    ), cert AS (
        INSERT INTO certificates (id, tenant, serial, account_id, order_id, der, names, not_before,
                                  not_after, issued_at, issuer)
        SELECT $1, $4, $5, $6, $7, $8, $9, $10, $11, $14, $15 FROM held
    )
    SELECT COUNT(*) FROM held";

/// Validation finished: the processing challenge `$5` gets status `$1`; its pending
/// authorization follows (with expiry `$7` when valid), and only if that moved, the pending
/// authorizations it attests.
pub(crate) const FINISH_CHALLENGE: &str = "WITH ch AS (
        UPDATE challenges SET status = $1, validated_at = $2, error = $3, record = $4
        WHERE id = $5 AND status = 'processing'
        RETURNING authz_id
    ), az AS (
        UPDATE authzs SET status = $1, expires = CASE WHEN $6 THEN $7 ELSE expires END
        WHERE status = 'pending' AND id = (SELECT authz_id FROM ch)
        RETURNING id
    )
    UPDATE authzs SET status = $1, expires = CASE WHEN $6 THEN $7 ELSE expires END
    WHERE status = 'pending' AND attested_by = (SELECT id FROM az)";

/// [`FINISH_CHALLENGE`] that also gives one token back to the buckets of tenant `$8` (limits
/// `$9`, subjects `$10`, sizes `$11`, rates `$12`, now `$13` in ms): the failed-validation
/// token a successful validation did not need, in the statement that records the success.
pub(crate) static FINISH_CHALLENGE_GIVING_BACK: LazyLock<String> = LazyLock::new(|| {
    let (head, attested) = FINISH_CHALLENGE
        .rsplit_once("\n    UPDATE authzs")
        .expect("FINISH_CHALLENGE ends with the attested authorizations' update");
    format!(
        "{head}, att AS (
        UPDATE authzs{attested}
        RETURNING 1
    )
    SELECT COUNT(*) FROM fleetca_rate_apply($8, $9, $10, $11, $12, $13, 'adjust', 1)"
    )
});

/// newOrder's reads in one statement: the account's valid authorizations that allow
/// subdomains (RFC 9444 §4.2; `kind` 'a', as `sql::stmt::SUBDOMAIN_ANCESTOR_AUTHZS` with `$1`
/// account, `$2` tenant, `$3` now), and for each wanted identifier `n` (types `$5`, values
/// `$6`, wildcards `$7`) the authorization it may reuse (`kind` 'r', as
/// `sql::stmt::REUSABLE_AUTHZ` with expiry after `$4`).
pub(crate) const NEW_ORDER_READS: &str =
    "(SELECT 'a' AS kind, id, ident_value, expires, NULL::int8 AS n
        FROM authzs WHERE account_id = $1 AND tenant = $2
        AND ident_type = 'dns' AND wildcard = 0 AND status = 'valid' AND subdomain_auth_allowed = 1
        AND expires > $3 AND ancestor_authz IS NULL AND derived_from IS NULL AND attested_by IS NULL
        ORDER BY expires DESC)
    UNION ALL
    SELECT 'r', (SELECT a.id FROM authzs a WHERE a.account_id = $1 AND a.ident_type = w.t
            AND a.ident_value = w.v AND a.wildcard = w.wc
            AND a.status IN ('valid', 'pending') AND a.expires > $4
            AND a.attested_by IS NULL AND a.derived_from IS NULL AND a.ancestor_authz IS NULL
            AND NOT EXISTS (SELECT 1 FROM authzs d WHERE d.attested_by = a.id)
            ORDER BY CASE a.status WHEN 'valid' THEN 0 ELSE 1 END, a.expires DESC LIMIT 1),
        NULL, NULL, w.n
    FROM UNNEST($5::text[], $6::text[], $7::int8[]) WITH ORDINALITY AS w(t, v, wc, n)";

/// Whether challenge `c` may start (`$1`, with its read, `ride::ridden_with`): the nonce was
/// fresh, the challenge is pending and of one of the types `$4`, and its authorization is pending,
/// unexpired at `$5` and owned by tenant `$6` and account `$7`.
const STARTABLE: &str =
    "c.id = $1 AND c.status = 'pending' AND c.type = ANY($4::text[]) AND (SELECT nonce_fresh FROM spend)
        AND EXISTS (SELECT 1 FROM authzs a WHERE a.id = c.authz_id AND a.status = 'pending'
                    AND a.expires > $5 AND a.tenant = $6 AND a.account_id = $7)";

/// Challenge POST: starts challenge `$1` with lease `$2` held by `$3` if it is [`STARTABLE`]
/// and `also` holds. The read beside it sees the rows as they were before.
fn start_challenge_step(also: &str) -> String {
    format!(
        ", started AS (
        UPDATE challenges c SET status = 'processing', lease_until = $2, lease_owner = $3
        WHERE {STARTABLE}{also}
        RETURNING 1
    )"
    )
}

/// [`start_challenge_step`] that first takes a token from the buckets `$8`..`$11` (limits,
/// subjects, sizes, rates; now `$12` in ms) of tenant `$6`, the failed-validation budget kept
/// in the database: the token is taken only if the challenge is startable (the function is
/// called per row of `startable`, which it depends on), and the challenge starts only if the
/// token was taken. `budget` holds the refusal, if any; `charged` whether the token was taken.
fn start_challenge_charging_step() -> String {
    format!(
        ", startable AS (
        SELECT $12::int8 AS at FROM challenges c WHERE {STARTABLE}
    ), budget AS (
        SELECT r.refused, r.wait
        FROM startable s CROSS JOIN LATERAL fleetca_rate_apply($6, $8, $9, $10, $11, s.at, 'take', 0) r
    ), charged AS (
        SELECT EXISTS (SELECT 1 FROM startable) AND NOT EXISTS (SELECT 1 FROM budget) AS ok
    ){}",
        start_challenge_step(" AND (SELECT ok FROM charged)")
    )
}

/// newOrder's reads (`NEW_ORDER_READS`) taking a token from the buckets `$8`..`$11` of tenant
/// `$2` (limits, subjects, sizes, rates; now `$12` in ms) once the nonce was fresh: the
/// per-account and per-name limits kept in the database, charged in the request's first
/// statement. The function is called per row of the fresh spend, which it depends on, so a
/// replayed nonce charges nothing. `budget` holds the refusal, if any.
pub(crate) const NEW_ORDER_CHARGING_STEP: &str = ", budget AS (
        SELECT r.refused, r.wait
        FROM (SELECT $12::int8 AS at FROM spend WHERE nonce_fresh) s
        CROSS JOIN LATERAL fleetca_rate_apply($2, $8, $9, $10, $11, s.at, 'take', 0) r
    )";

/// finalize, with its read (`ride::ridden_with`): claims order `$1` with token `$2` until
/// `$3` if the nonce was fresh and the order is ready at `$4` (pending, unexpired, every
/// authorization valid and unexpired), owned by tenant `$5` and account `$6`, and, when `$7`
/// is not NULL, every authorization was validated at or after `$7` (so no CAA recheck is due;
/// the validation time as `rows::ORDER_WITH_AUTHZS` reads it).
pub(crate) const CLAIM_ORDER_STEP: &str = ", claimed AS (
        UPDATE orders o SET status = 'processing', claim_token = $2, claim_until = $3
        WHERE o.id = $1 AND o.status = 'pending' AND o.expires > $4 AND o.tenant = $5
        AND o.account_id = $6 AND (SELECT nonce_fresh FROM spend)
        AND NOT EXISTS (
            SELECT 1 FROM order_authzs l JOIN authzs a ON a.id = l.authz_id
            WHERE l.order_id = o.id AND (a.status <> 'valid' OR a.expires <= $4
                OR ($7::int8 IS NOT NULL AND COALESCE(
                    (SELECT MAX(c.validated_at) FROM challenges c
                      WHERE c.authz_id = a.id AND c.status = 'valid'),
                    (SELECT MAX(c.validated_at) FROM challenges c
                      WHERE c.authz_id = a.attested_by AND c.status = 'valid'),
                    -1) < $7)))
        RETURNING 1
    )";

// The issuance requests' first reads with their nonce spend (`ride`); the number is the
// read's first free parameter.
pub(crate) static ORDER_SPENDING: LazyLock<String> =
    LazyLock::new(|| ridden(rows::ORDER_WITH_AUTHZS, 2));
pub(crate) static AUTHZ_SPENDING: LazyLock<String> =
    LazyLock::new(|| ridden(rows::AUTHZ_WITH_CHALLENGES, 2));
pub(crate) static AUTHZ_BY_CHALLENGE_SPENDING: LazyLock<String> =
    LazyLock::new(|| ridden(rows::AUTHZ_WITH_CHALLENGES_BY_CHALLENGE, 2));
pub(crate) static CERT_SPENDING: LazyLock<String> = LazyLock::new(|| ridden(rows::CERT_BY_ID, 2));
pub(crate) static CLAIM_ORDER_SPENDING: LazyLock<String> = LazyLock::new(|| {
    ridden_with(
        rows::ORDER_WITH_AUTHZS,
        8,
        CLAIM_ORDER_STEP,
        ", EXISTS (SELECT 1 FROM claimed) AS claimed",
    )
});
pub(crate) static START_CHALLENGE_SPENDING: LazyLock<String> = LazyLock::new(|| {
    ridden_with(
        rows::AUTHZ_WITH_CHALLENGES_BY_CHALLENGE,
        8,
        &start_challenge_step(""),
        ", EXISTS (SELECT 1 FROM started) AS started",
    )
});
pub(crate) static START_CHALLENGE_CHARGING: LazyLock<String> = LazyLock::new(|| {
    ridden_with(
        rows::AUTHZ_WITH_CHALLENGES_BY_CHALLENGE,
        13,
        &start_challenge_charging_step(),
        ", EXISTS (SELECT 1 FROM started) AS started, (SELECT ok FROM charged) AS charged,
           (SELECT refused FROM budget) AS budget_refused, (SELECT wait FROM budget) AS budget_wait",
    )
});
pub(crate) static NEW_ORDER_READS_SPENDING: LazyLock<String> =
    LazyLock::new(|| ridden(NEW_ORDER_READS, 8));
pub(crate) static NEW_ORDER_READS_CHARGING: LazyLock<String> = LazyLock::new(|| {
    ridden_with(
        NEW_ORDER_READS,
        13,
        NEW_ORDER_CHARGING_STEP,
        ", (SELECT refused FROM budget) AS budget_refused, (SELECT wait FROM budget) AS budget_wait",
    )
});
