//! The issuance-path writes as the SQLite writer thread runs them (see `sqlite::batch`): the
//! shared statements (`sql::stmt`), one after another on the thread's connection, inside
//! the batch's transaction. PostgreSQL folds the same writes into one statement each
//! (`postgres::stmt`); the storage suite runs against both.

use super::batch::execute;
use crate::sa::lifecycle::OrderLifecycle;
use crate::sa::sql::{insertion_order, json, stmt};
use crate::sa::{
    AuthzRecord, CertRecord, ChallengeOutcome, ClaimAtRead, OrderClaim, OrderRecord, SaError,
};
use rusqlite::Connection;

/// Everything a new order writes (see `Storage::insert_order`).
pub(in crate::sa) fn insert_order(
    c: &Connection,
    o: &OrderRecord,
    new_authzs: &[AuthzRecord],
    lifecycle: Option<&OrderLifecycle>,
) -> Result<(), SaError> {
    if let Some(lc) = lifecycle {
        execute(
            c,
            stmt::INSERT_ORDER_LIFECYCLE,
            &[&o.id, &lc.profile, &lc.replaces_cert_id],
        )?;
    }
    insert_authzs(c, new_authzs)?;
    execute(
        c,
        stmt::INSERT_ORDER,
        &[
            &o.id,
            &o.tenant,
            &o.account_id,
            &o.status.as_str(),
            &o.expires,
            &json(&o.identifiers),
            &o.created_at,
        ],
    )?;
    for (i, authz) in o.authz_ids.iter().enumerate() {
        execute(c, stmt::INSERT_ORDER_AUTHZ, &[&o.id, authz, &(i as i64)])?;
    }
    Ok(())
}

/// Finalize, step 1 (see `Storage::try_claim_order`).
pub(in crate::sa) fn try_claim_order(
    c: &Connection,
    order_id: &str,
    claim: &OrderClaim,
) -> Result<bool, SaError> {
    Ok(execute(
        c,
        stmt::CLAIM_ORDER,
        &[&order_id, &claim.token, &claim.until],
    )? == 1)
}

/// Finalize's read and, when the order is ready as [`ClaimAtRead`] says, its claim, in one
/// step on the writer (see `Storage::claim_order_spending`): answers the order as it was
/// before the claim and whether it was claimed. The writer's connection is the only one
/// whose page cache no commit invalidates, so the read costs no file reads here, and the
/// claim needs no second hand-off to this thread.
pub(in crate::sa) fn claim_order_at_read(
    c: &Connection,
    at: &ClaimAtRead<'_>,
) -> Result<(Option<OrderRecord>, bool), SaError> {
    let Some(order) = super::reads::get_order(c, at.order_id)? else {
        return Ok((None, false));
    };
    let claimed = execute(
        c,
        stmt::CLAIM_READY_ORDER,
        &[
            &at.order_id,
            &at.claim.token,
            &at.claim.until,
            &at.now,
            &at.tenant,
            &at.account_id,
            &at.validated_since,
        ],
    )? == 1;
    Ok((Some(order), claimed))
}

/// Finalize, step 3 (see `Storage::store_certificate`): nothing is written unless `token`
/// still holds the order.
pub(in crate::sa) fn store_certificate(
    c: &Connection,
    order_id: &str,
    token: &str,
    cert: &CertRecord,
    cert_lifecycle: Option<(&str, Option<u32>)>,
) -> Result<bool, SaError> {
    if execute(c, stmt::ORDER_VALID, &[&cert.id, &order_id, &token])? != 1 {
        return Ok(false);
    }
    if let Some((profile, shard)) = cert_lifecycle {
        execute(
            c,
            stmt::INSERT_CERT_LIFECYCLE,
            &[&cert.id, &profile, &shard.map(i64::from)],
        )?;
    }
    execute(
        c,
        stmt::INSERT_CERT,
        &[
            &cert.id,
            &cert.tenant,
            &cert.serial,
            &cert.account_id,
            &cert.order_id,
            &cert.der,
            &json(&cert.names),
            &cert.not_before,
            &cert.not_after,
            &cert.issued_at,
            &cert.issuer,
        ],
    )?;
    Ok(true)
}

/// Starts a validation (see `Storage::try_start_challenge`).
pub(in crate::sa) fn try_start_challenge(
    c: &Connection,
    challenge_id: &str,
    lease: &crate::sa::Lease,
) -> Result<bool, SaError> {
    Ok(execute(
        c,
        stmt::START_CHALLENGE,
        &[&challenge_id, &lease.until, &lease.owner],
    )? == 1)
}

/// Extends a lease its owner still holds (see `Storage::renew_challenge_lease`).
pub(in crate::sa) fn renew_challenge_lease(
    c: &Connection,
    challenge_id: &str,
    lease: &crate::sa::Lease,
) -> Result<bool, SaError> {
    Ok(execute(
        c,
        stmt::RENEW_CHALLENGE_LEASE,
        &[&challenge_id, &lease.owner, &lease.until],
    )? == 1)
}

/// Stores a validation's outcome with its authorization and the ones it attests (see
/// `Storage::finish_challenge`).
pub(in crate::sa) fn finish_challenge(
    c: &Connection,
    challenge_id: &str,
    o: &ChallengeOutcome,
) -> Result<(), SaError> {
    let status = if o.valid { "valid" } else { "invalid" };
    let changed = execute(
        c,
        stmt::FINISH_CHALLENGE,
        &[
            &status,
            &o.valid.then_some(o.at),
            &o.error,
            &o.record,
            &challenge_id,
        ],
    )?;
    if changed != 1 {
        return Ok(());
    }
    let moved = if o.valid {
        execute(c, stmt::AUTHZ_VALID, &[&o.authz_expires, &challenge_id])?
    } else {
        execute(c, stmt::AUTHZ_INVALID, &[&challenge_id])?
    };
    if moved == 1 {
        if o.valid {
            execute(c, stmt::ATTESTED_VALID, &[&o.authz_expires, &challenge_id])?;
        } else {
            execute(c, stmt::ATTESTED_INVALID, &[&challenge_id])?;
        }
    }
    Ok(())
}

/// New authorizations and their challenges (newOrder, newAuthz).
pub(in crate::sa) fn insert_authzs(
    c: &Connection,
    new_authzs: &[AuthzRecord],
) -> Result<(), SaError> {
    for a in insertion_order(new_authzs) {
        execute(
            c,
            stmt::INSERT_AUTHZ,
            &[
                &a.id,
                &a.tenant,
                &a.account_id,
                &a.identifier.kind.as_str(),
                &a.identifier.value,
                &(a.wildcard as i64),
                &a.status.as_str(),
                &a.expires,
                &a.created_at,
                &a.attested_by,
                &a.derived_from,
                &(a.subdomain_auth_allowed as i64),
                &a.ancestor_authz,
            ],
        )?;
        for ch in &a.challenges {
            execute(
                c,
                stmt::INSERT_CHALLENGE,
                &[
                    &ch.id,
                    &a.id,
                    &ch.kind.as_str(),
                    &ch.token,
                    &ch.status.as_str(),
                ],
            )?;
        }
    }
    Ok(())
}
