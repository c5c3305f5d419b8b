//! Revocation (RFC 8555 §7.6): by the account that ordered the certificate, by an account that
//! holds valid authorizations for all its identifiers, or with the certificate's own key.

use super::statuses::identifier_type;
use super::Ra;
use crate::error::{Error, Result};
use crate::sa::{AccountRecord, StoredIdentifier};
use crate::tenant::Tenant;
use acme_types::jwk::Jwk;
use acme_types::problem::ProblemType;
use acme_types::wire::IdentifierType;

/// Who signed the revocation request.
pub enum RevokeAuth {
    /// An account (JWS with `kid`).
    Account(AccountRecord),
    /// The certificate's key pair (JWS with `jwk`).
    CertKey(Jwk),
}

/// RFC 5280 §5.3.1 reasons a subscriber may request: unspecified(0), keyCompromise(1),
/// affiliationChanged(3), superseded(4), cessationOfOperation(5), privilegeWithdrawn(9)
/// (BR §7.2.2 lists the same set for subscriber certificates).
const ALLOWED_REASONS: [u8; 6] = [0, 1, 3, 4, 5, 9];

/// The authorization that proves control of one certificate identifier (§7.6): authorizations
/// store a name without `*.` plus a wildcard flag (§7.1.4), certificates (and orders) the name
/// as issued. A `*.example.com` name needs a valid wildcard authorization of `example.com`, and
/// `example.com` a plain one: each was validated for exactly that (§7.1.3), so neither stands
/// in for the other.
fn required_authz(name: &StoredIdentifier) -> (StoredIdentifier, bool) {
    match name.value.strip_prefix("*.") {
        Some(base) if identifier_type(name) == IdentifierType::Dns => (
            StoredIdentifier {
                kind: name.kind,
                value: base.to_string(),
            },
            true,
        ),
        _ => (name.clone(), false),
    }
}

impl Ra {
    /// revokeCert (§7.6).
    pub async fn revoke(
        &self,
        tenant: &Tenant,
        auth: &RevokeAuth,
        cert_der: &[u8],
        reason: Option<i64>,
    ) -> Result<()> {
        let reason = match reason {
            None => None,
            Some(r) => match u8::try_from(r).ok().filter(|r| ALLOWED_REASONS.contains(r)) {
                // BR §7.2.2: the CRL entry carries no reasonCode for "unspecified".
                Some(0) => None,
                Some(r) => Some(r),
                None => {
                    return Err(Error::acme(
                        ProblemType::BadRevocationReason,
                        format!("reason {r} is not allowed; use one of {ALLOWED_REASONS:?}"),
                    ))
                }
            },
        };
        let serial = pki::cert_info::serial_of(cert_der)
            .map(|s| crate::ca::hex(&s))
            .map_err(|e| Error::malformed(format!("the certificate does not parse: {e}")))?;
        let cert = match self.sa.get_cert_by_serial(&tenant.name, &serial).await? {
            Some(c) if c.der == cert_der => c,
            _ => return Err(Error::not_found("certificate issued by this CA")),
        };
        match auth {
            RevokeAuth::Account(acct) => {
                let needed: Vec<_> = cert.names.iter().map(required_authz).collect();
                if acct.id != cert.account_id
                    && !self
                        .sa
                        .has_valid_authzs(&acct.id, &needed, self.clock.unix())
                        .await?
                {
                    return Err(Error::unauthorized("this account neither ordered the certificate nor holds valid authorizations for all of its identifiers"));
                }
            }
            RevokeAuth::CertKey(jwk) => {
                let spki = pki::cert_info::spki_der_of(cert_der).map_err(|e| {
                    Error::malformed(format!("the certificate does not parse: {e}"))
                })?;
                let cert_key = Jwk::from_spki_der(&spki).map_err(|_| {
                    Error::unauthorized("the certificate's key type cannot sign ACME requests")
                })?;
                if cert_key.thumbprint() != jwk.thumbprint() {
                    return Err(Error::unauthorized(
                        "the request is not signed by the certificate's key",
                    ));
                }
            }
        }
        if !self
            .sa
            .try_revoke_cert(&cert.id, self.clock.unix(), reason)
            .await?
        {
            return Err(Error::acme(
                ProblemType::AlreadyRevoked,
                "the certificate is already revoked",
            ));
        }
        tracing::info!(serial = %cert.serial, reason = ?reason, "certificate revoked");
        // The CRL of the CA that signed it, which may be a retired one (RFC 5280 §5: a CRL
        // lists certificates of its own issuer). Asked for, not signed here: the CA's
        // publisher bounds how often a burst of revocations re-signs it.
        match tenant.issuer_of(&cert) {
            Some(ca) => self.crl_requests.request(ca.id()),
            // Its directory under ca/NAME/retired/ was removed: the revocation is stored, but
            // no CRL of that CA is served any more.
            None => {
                tracing::warn!(serial = %cert.serial, issuer = %cert.issuer_id(), "revoked a certificate whose issuing CA is not loaded; no CRL re-signed")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::IdentifierKind;

    fn dns(v: &str) -> StoredIdentifier {
        StoredIdentifier {
            kind: IdentifierKind::Dns,
            value: v.into(),
        }
    }

    #[test]
    fn certificate_names_map_to_exact_authorizations() {
        assert_eq!(
            required_authz(&dns("*.example.com")),
            (dns("example.com"), true)
        );
        assert_eq!(
            required_authz(&dns("example.com")),
            (dns("example.com"), false)
        );
        let ip = StoredIdentifier {
            kind: IdentifierKind::Ip,
            value: "10.0.0.1".into(),
        };
        assert_eq!(required_authz(&ip), (ip.clone(), false));
    }
}
