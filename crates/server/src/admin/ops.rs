//! Operator actions shared by the command line (`fleetca eab|account|cert|renew-early`) and
//! the admin API: each changes state together with its audit-log entry, naming the actor
//! (`cli:<user>` or `token:<id>`). Callers check that a named tenant exists first.

use crate::ca::IssuingCa;
use crate::clock::SystemClock;
use crate::ids::new_id;
use crate::ra::{generate_hmac_key, EabKeyring};
use crate::sa::{
    AdminAccount, AdminCert, AuditEntry, CertSelector, CoveragePolicy, CoverageState, Database,
    EabKeyRecord,
};
use anyhow::Context;
use serde_json::json;

/// Width of the "renew now" window of `renew-early`, which ends when the operator acts: a
/// window wholly in the past makes every ARI client renew at its next poll (RFC 9773 §4.2).
/// Kept equal to `commands::renew`'s.
pub const RENEW_EARLY_WINDOW_SECS: i64 = 3600;

/// Now, in UNIX seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A freshly created EAB credential; `hmac_key` (base64url) is shown once and never stored.
pub struct NewEab {
    /// Key id.
    pub kid: String,
    /// base64url HMAC key.
    pub hmac_key: String,
    /// What was stored (sealed key).
    pub record: EabKeyRecord,
}

/// Creates an EAB credential of `tenant` usable `uses` times, expiring after `expires`.
pub async fn create_eab(
    db: &dyn Database,
    keyring: &EabKeyring,
    tenant: &str,
    uses: u32,
    expires: Option<std::time::Duration>,
    actor: &str,
) -> anyhow::Result<NewEab> {
    if uses == 0 {
        anyhow::bail!("uses must be at least 1");
    }
    let now = now_unix();
    let kid = format!("eab_{}", new_id());
    let hmac_key = generate_hmac_key()?;
    let record = EabKeyRecord {
        kid: kid.clone(),
        tenant: tenant.to_string(),
        sealed_key: keyring.seal(tenant, &kid, &hmac_key)?,
        max_uses: i64::from(uses),
        uses: 0,
        expires_at: expires
            .map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
        revoked_at: None,
        created_at: now,
    };
    let audit = AuditEntry {
        at: now,
        actor: actor.to_string(),
        action: "eab.create".into(),
        tenant: Some(tenant.to_string()),
        object: Some(kid.clone()),
        before: None,
        after: Some(record.summary_json().to_string()),
    };
    db.insert_eab_key(&record, &audit).await?;
    Ok(NewEab {
        kid,
        hmac_key: acme_types::b64::encode(&hmac_key),
        record,
    })
}

/// Revokes an EAB credential; false if no unrevoked credential has `kid`.
pub async fn revoke_eab(db: &dyn Database, kid: &str, actor: &str) -> anyhow::Result<bool> {
    let audit = AuditEntry {
        at: now_unix(),
        actor: actor.to_string(),
        action: "eab.revoke".into(),
        tenant: None,
        object: Some(kid.to_string()),
        before: None,
        after: None,
    };
    Ok(db.revoke_eab_key(kid, audit.at, &audit).await?)
}

/// A credential's state for listings: `usable`, `revoked`, `expired` or `used`.
pub fn eab_status(k: &EabKeyRecord, now: i64) -> &'static str {
    match k.check_usable(now) {
        Ok(()) => "usable",
        Err(crate::sa::EabUnusable::Revoked) => "revoked",
        Err(crate::sa::EabUnusable::Expired) => "expired",
        Err(crate::sa::EabUnusable::UsedUp) => "used",
    }
}

/// A credential as listings show it (never the key).
pub fn eab_json(k: &EabKeyRecord, now: i64) -> serde_json::Value {
    let mut j = k.summary_json();
    j["status"] = json!(eab_status(k, now));
    j
}

/// Deactivates a valid account (RFC 8555 §7.3.6 effect); `None` if none was valid.
pub async fn deactivate_account(
    db: &dyn Database,
    id: &str,
    actor: &str,
) -> anyhow::Result<Option<AdminAccount>> {
    let audit = AuditEntry {
        at: now_unix(),
        actor: actor.to_string(),
        action: "account.deactivate".into(),
        tenant: None,
        object: Some(id.to_string()),
        before: None,
        after: None,
    };
    Ok(db.deactivate_account_audited(id, &audit).await?)
}

/// `valid`, `revoked` or `expired` at `now`.
pub fn cert_status(c: &AdminCert, now: i64) -> &'static str {
    if c.revoked_at.is_some() {
        "revoked"
    } else if c.not_after < now {
        "expired"
    } else {
        "valid"
    }
}

/// A certificate as listings show it, with its status.
pub fn cert_json(c: &AdminCert, now: i64) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["status"] = json!(cert_status(c, now));
    v
}

/// Why an operator revocation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// It already was revoked (possibly concurrently).
    #[error("certificate {0} is already revoked")]
    AlreadyRevoked(String),
    /// Storage failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Revokes `c` with CRL `reason` (RFC 5280 §5.3.1) and re-signs its tenant's CRL with `ca`;
/// returns the new CRL number.
pub async fn revoke_cert(
    db: &dyn Database,
    ca: &IssuingCa,
    c: &AdminCert,
    reason: u8,
    actor: &str,
) -> Result<i64, RevokeError> {
    if c.revoked_at.is_some() {
        return Err(RevokeError::AlreadyRevoked(c.serial.clone()));
    }
    let at = now_unix();
    let after = AdminCert {
        revoked_at: Some(at),
        revocation_reason: Some(reason),
        ..c.clone()
    };
    let audit = AuditEntry {
        at,
        actor: actor.to_string(),
        action: "cert.revoke".into(),
        tenant: Some(c.tenant.clone()),
        object: Some(c.serial.clone()),
        before: Some(cert_json(c, at).to_string()),
        after: Some(cert_json(&after, at).to_string()),
    };
    if !db
        .revoke_cert_audited(&c.id, at, reason, &audit)
        .await
        .map_err(anyhow::Error::from)?
    {
        return Err(RevokeError::AlreadyRevoked(c.serial.clone()));
    }
    let crl = ca
        .publish_crl(db, &SystemClock)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the certificate is revoked, but re-signing the CRL failed (serve re-signs it within 5 minutes)")?;
    Ok(crl.number)
}

/// Narrows a `renew-early` selection to certificates in some coverage states
/// (docs/coverage.md), judged at `now` on the server's clock with the server's thresholds.
pub struct CoverageSelect<'a> {
    /// The wanted states.
    pub states: &'a [CoverageState],
    /// The thresholds.
    pub policy: &'a CoveragePolicy,
    /// When the states are judged.
    pub now: i64,
}

/// Moves the ARI window (RFC 9773 §4.2) of the selected unexpired certificates to
/// [now - 1 h, now]; returns their serials. `describe` names the selection in the audit log.
pub async fn renew_early(
    db: &dyn Database,
    tenant: Option<&str>,
    sel: &CertSelector,
    describe: &str,
    actor: &str,
    spread: Option<std::time::Duration>,
    coverage: Option<CoverageSelect<'_>>,
) -> anyhow::Result<Vec<String>> {
    let now = now_unix();
    let mut certs = db.select_certs(tenant, sel, now).await?;
    if let Some(cs) = &coverage {
        // Catch the coverage table up first, so a certificate issued a moment ago is judged.
        crate::ra::coverage::sync(db).await?;
        let mut keep = Vec::with_capacity(certs.len());
        for c in certs {
            let row = db.coverage_of(&c.id, cs.now, cs.policy).await?;
            if row.is_some_and(|r| cs.states.contains(&r.state)) {
                keep.push(c);
            }
        }
        certs = keep;
    }
    let ids: Vec<String> = certs.iter().map(|c| c.id.clone()).collect();
    // Without a spread the window lies wholly in the past: every client is due at its next
    // poll. With one it is [now, now + spread]: RFC 9773 §4.2 has each client pick a uniformly
    // random moment inside the window, so a fleet's renewals arrive evenly over the spread
    // instead of all at once.
    let (start, end) = match spread {
        Some(d) if !d.is_zero() => (
            now,
            now + i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4),
        ),
        _ => (now - RENEW_EARLY_WINDOW_SECS, now),
    };
    let n = db.set_renewal_overrides(&ids, start, end, now).await?;
    // The coverage table keeps the window the server answers with (its states depend on it).
    db.set_coverage_windows(&ids, start, end).await?;
    let serials: Vec<String> = certs.iter().map(|c| c.serial.clone()).collect();
    db.append_audit(&AuditEntry {
        at: now,
        actor: actor.to_string(),
        action: "cert.renew_early".into(),
        tenant: tenant.map(str::to_string),
        object: Some(describe.to_string()),
        before: None,
        after: Some(
            json!({
                "certificates": n,
                "serials": serials,
                "window": [start, end],
                "coverage_states": coverage.as_ref().map(|c| c.states.to_vec()),
            })
            .to_string(),
        ),
    })
    .await?;
    Ok(serials)
}
