//! The certificate authority role: the only server code that holds a CA signer. It issues
//! end-entity certificates through `pki` (which re-checks policy and lints before the real
//! key signs) and publishes CRLs and OCSP answers. The front end never sees it: the RA calls
//! it to finalize and revoke, and the front end asks [`status::StatusHandle`] for the CRLs
//! and OCSP answers the CA signed.

pub mod crl_shard;
pub mod ocsp;
pub mod ocsp_signer;
pub mod profile;
pub mod status;
pub mod tls_cert;

#[cfg(test)]
mod tests;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::sa::{CrlRecord, Storage};
use acme_types::problem::ProblemType;
use pki::identifier::Identifier;
use pki::issue::{IssueError, IssueRequest, Issuer, LeafOptions};
use pki::policy::Permitted;
use pki::signer::Signer;
use profile::{CertProfile, DEFAULT_PROFILE};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How long a CRL is valid (BR §4.9.7: at most 10 days for subscriber certificates); it is
/// re-signed well before that: soon after a revocation (see [`status::CRL_PUBLISH_INTERVAL`]) and
/// when half of this has passed.
pub const CRL_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// A certificate just signed.
pub struct Issued {
    /// DER.
    pub der: Vec<u8>,
    /// Serial as lower-case hex.
    pub serial_hex: String,
    /// notBefore (UNIX seconds).
    pub not_before: i64,
    /// notAfter (UNIX seconds).
    pub not_after: i64,
}

/// One issuing CA: its certificate, signer, policy and chains. A tenant has one active CA and,
/// after `fleetca tenant rollover`, retired ones that still answer for what they issued.
pub struct IssuingCa {
    /// The CA's id: names its CRL, OCSP and caIssuers URLs and its stored CRLs. The tenant's
    /// first CA has the tenant's name; later ones `<tenant>_g<N>` (see `commands::rollover`).
    name: String,
    /// The tenant whose certificates (`certificates.tenant`) this CA signs.
    tenant: String,
    issuer: Issuer,
    signer: Arc<dyn Signer>,
    cert_der: Vec<u8>,
    /// Chains after the leaf, as PEM: [0] issuing CA (+ outside intermediates), [1] the same
    /// plus the root, when the root is known.
    chains: Vec<String>,
    root_der: Option<Vec<u8>>,
    root_crl: Option<Vec<u8>>,
    backdate: Duration,
    crl_lock: tokio::sync::Mutex<()>,
    profiles: Vec<CertProfile>,
    ocsp_url: String,
    /// Number of CRL shards new certificates are spread over (0: the single CRL only).
    crl_shards: u32,
    /// Delegated OCSP responder (RFC 6960 §4.2.2.2), when configured; see [`ocsp_signer`].
    /// Replaced only when `serve` re-issues it (a third of its validity left).
    ocsp_responder: std::sync::RwLock<Option<Arc<ocsp_signer::OcspResponder>>>,
}

/// Everything needed to build an [`IssuingCa`].
pub struct IssuingCaParts {
    /// The CA's id (the tenant name for its first CA); names the CRL and caIssuers files.
    pub name: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The `pki` issuer (certificate, signer, profile).
    pub issuer: Issuer,
    /// The same signer, for CRLs.
    pub signer: Arc<dyn Signer>,
    /// The issuing CA certificate.
    pub cert_der: Vec<u8>,
    /// Certificates between the issuing CA and the root (public trust), DER.
    pub intermediates: Vec<Vec<u8>>,
    /// The root, when fleetca knows it.
    pub root_der: Option<Vec<u8>>,
    /// The root's CRL, when fleetca made the root.
    pub root_crl: Option<Vec<u8>>,
    /// End-entity lifetime.
    pub lifetime: Duration,
    /// How far notBefore is set in the past, for devices whose clocks run slow.
    pub backdate: Duration,
    /// CRL shards new certificates are spread over (0: the single CRL only; at most
    /// [`crl_shard::MAX_CRL_SHARDS`]); see [`crl_shard`].
    pub crl_shards: u32,
    /// The delegated OCSP responder, when the CA has one (see [`ocsp_signer::current`]).
    pub ocsp_responder: Option<ocsp_signer::OcspResponder>,
}

impl IssuingCa {
    /// Assembles the CA.
    pub fn new(p: IssuingCaParts) -> Self {
        let pem = |d: &[u8]| pki::cert_info::der_to_pem("CERTIFICATE", d);
        let mut chain0 = pem(&p.cert_der);
        for i in &p.intermediates {
            chain0.push_str(&pem(i));
        }
        let mut chains = vec![chain0.clone()];
        if let Some(root) = &p.root_der {
            chains.push(format!("{chain0}{}", pem(root)));
        }
        let ocsp_url = format!(
            "{}/ocsp/{}",
            p.issuer.profile().crl_base_url.trim_end_matches('/'),
            p.name
        );
        Self {
            name: p.name,
            tenant: p.tenant,
            issuer: p.issuer,
            signer: p.signer,
            cert_der: p.cert_der,
            chains,
            root_der: p.root_der,
            root_crl: p.root_crl,
            profiles: profile::standard_profiles(p.lifetime),
            ocsp_url,
            crl_shards: p.crl_shards.min(crl_shard::MAX_CRL_SHARDS),
            ocsp_responder: std::sync::RwLock::new(p.ocsp_responder.map(Arc::new)),
            backdate: p.backdate,
            crl_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The CA's id (see [`IssuingCa`]); certificates record it (`CertRecord::issuer_id`).
    pub fn id(&self) -> &str {
        &self.name
    }

    /// The tenant this CA belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The names this CA may certify.
    pub fn permitted(&self) -> &Permitted {
        &self.issuer.profile().permitted
    }

    /// The issuing CA certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root certificate, if known.
    pub fn root_der(&self) -> Option<Vec<u8>> {
        self.root_der.clone()
    }

    /// The root's CRL, if fleetca made the root.
    pub fn root_crl(&self) -> Option<Vec<u8>> {
        self.root_crl.clone()
    }

    /// PEM chains to append after the leaf; index 0 is the default chain (RFC 8555 §7.4.2).
    pub fn chains(&self) -> &[String] {
        &self.chains
    }

    /// The certificate profiles this CA offers (draft-aaron-acme-profiles), `default` first.
    pub fn profiles(&self) -> &[CertProfile] {
        &self.profiles
    }

    /// The profile named `name`, if this CA offers it.
    pub fn profile(&self, name: &str) -> Option<&CertProfile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The longest validity (notAfter − notBefore + 1 s, RFC 5280 §4.1.2.5) of any profile
    /// this CA offers, with the notBefore backdate: what the CT policy counts.
    pub fn longest_validity(&self) -> Duration {
        let longest = self
            .profiles
            .iter()
            .map(|p| p.lifetime)
            .max()
            .unwrap_or_default();
        longest + self.backdate + Duration::from_secs(1)
    }

    /// The OCSP responder URL put in certificates whose profile asks for it.
    pub fn ocsp_url(&self) -> &str {
        &self.ocsp_url
    }

    /// Signs a certificate for exactly `identifiers` from `csr_der` with the `default`
    /// profile. `pki` checks the CSR, the key and the name policy again here, independently
    /// of the RA, and lints before signing.
    pub fn issue(
        &self,
        csr_der: &[u8],
        identifiers: &[Identifier],
        now: OffsetDateTime,
    ) -> Result<Issued> {
        let profile = self
            .profile(DEFAULT_PROFILE)
            .ok_or_else(|| Error::internal("no default profile"))?
            .clone();
        self.issue_with_profile(csr_der, identifiers, now, &profile)
    }

    /// [`IssuingCa::issue`] with the lifetime and revocation pointers of `profile`; nothing
    /// about validity or extensions comes from the CSR.
    pub fn issue_with_profile(
        &self,
        csr_der: &[u8],
        identifiers: &[Identifier],
        now: OffsetDateTime,
        profile: &CertProfile,
    ) -> Result<Issued> {
        self.issue_in_shard(csr_der, identifiers, now, profile, None)
    }

    /// Whether this CA's signer waits on I/O (an HSM), so signing belongs on a thread that may
    /// block.
    pub fn signer_blocks(&self) -> bool {
        self.signer.blocks()
    }

    /// [`IssuingCa::issue_with_profile`] naming CRL shard `crl_shard` (see [`crl_shard`]) in
    /// the CRL distribution point instead of the single CRL.
    pub fn issue_in_shard(
        &self,
        csr_der: &[u8],
        identifiers: &[Identifier],
        now: OffsetDateTime,
        profile: &CertProfile,
        crl_shard: Option<u32>,
    ) -> Result<Issued> {
        self.issue_leaf(csr_der, identifiers, now, profile, crl_shard, false)
    }

    /// [`IssuingCa::issue_in_shard`] as a precertificate (RFC 6962 §3.1), whose final
    /// certificate [`IssuingCa::finish_precert`] makes once logs have answered.
    pub fn issue_precert_in_shard(
        &self,
        csr_der: &[u8],
        identifiers: &[Identifier],
        now: OffsetDateTime,
        profile: &CertProfile,
        crl_shard: Option<u32>,
    ) -> Result<Issued> {
        self.issue_leaf(csr_der, identifiers, now, profile, crl_shard, true)
    }

    /// The final certificate of `precert_der` with `scts` embedded (RFC 6962 §3.3).
    pub fn finish_precert(&self, precert_der: &[u8], scts: &[pki::ct::Sct]) -> Result<Issued> {
        let issued = self
            .issuer
            .finish_precert(precert_der, scts)
            .map_err(|e| match e {
                IssueError::Internal(e @ pki::PkiError::Signing(_)) => self.signer_failed(e),
                other => Error::Internal(Box::new(other)),
            })?;
        crate::metrics::signer_available(&self.name, true);
        Ok(Issued {
            serial_hex: hex(&issued.serial),
            der: issued.der,
            not_before: issued.not_before.unix_timestamp(),
            not_after: issued.not_after.unix_timestamp(),
        })
    }

    /// The issuing CA's DER SubjectPublicKeyInfo (`issuer_key_hash`, RFC 6962 §3.2).
    pub fn spki_der(&self) -> &[u8] {
        self.issuer.spki_der()
    }

    /// What `add-pre-chain` sends after the precertificate: the issuing CA and the
    /// certificates above it (RFC 6962 §4.1).
    pub fn ct_chain(&self) -> Vec<Vec<u8>> {
        let mut chain = vec![self.cert_der.clone()];
        chain.extend(self.issuer.chain_ders().iter().cloned());
        chain
    }

    fn issue_leaf(
        &self,
        csr_der: &[u8],
        identifiers: &[Identifier],
        now: OffsetDateTime,
        profile: &CertProfile,
        crl_shard: Option<u32>,
        precert: bool,
    ) -> Result<Issued> {
        let not_before = now - self.backdate;
        let not_after = now + profile.lifetime;
        let req = IssueRequest {
            csr_der: csr_der.to_vec(),
            identifiers: identifiers.to_vec(),
            not_before,
            not_after,
        };
        let opts = LeafOptions {
            include_crl_dp: profile.crl_dp,
            crl_url: crl_shard.map(|s| self.crl_shard_url(s)),
            ocsp_url: profile.ocsp.then(|| self.ocsp_url.clone()),
        };
        let issued = if precert {
            self.issuer.issue_precert(&req, &opts)
        } else {
            self.issuer.issue_with(&req, &opts)
        };
        let issued = issued.map_err(|e| match e {
            IssueError::BadCsr(d) => Error::acme(ProblemType::BadCsr, d),
            IssueError::BadPublicKey(d) => Error::acme(ProblemType::BadPublicKey, d),
            IssueError::Policy(d) => Error::acme(ProblemType::RejectedIdentifier, d.to_string()),
            IssueError::Internal(e @ pki::PkiError::Signing(_)) => self.signer_failed(e),
            other => Error::Internal(Box::new(other)),
        })?;
        crate::metrics::signer_available(&self.name, true);
        Ok(Issued {
            serial_hex: hex(&issued.serial),
            der: issued.der,
            not_before: issued.not_before.unix_timestamp(),
            not_after: issued.not_after.unix_timestamp(),
        })
    }

    /// Re-signs and stores this CA's CRL (RFC 5280 §5) from the revoked, unexpired certificates.
    pub async fn publish_crl(&self, sa: &dyn Storage, clock: &dyn Clock) -> Result<CrlRecord> {
        let _guard = self.crl_lock.lock().await;
        let now = clock.now();
        let entries = sa
            .revoked_certs(&self.tenant, &self.name, now.unix_timestamp())
            .await?;
        let prev = sa.get_crl(&self.name).await?;
        // CRL numbers must increase (RFC 5280 §5.2.3); seconds since the epoch do across
        // restarts and nodes, and prev+1 covers two CRLs within one second.
        let number = now
            .unix_timestamp()
            .max(prev.as_ref().map_or(0, |p| p.number + 1));
        let entries: Vec<pki::crl::RevokedEntry> = entries
            .iter()
            .map(|e| {
                Ok(pki::crl::RevokedEntry {
                    serial: unhex(&e.serial).ok_or_else(|| {
                        Error::internal(format!("stored serial {:?} is not hex", e.serial))
                    })?,
                    revoked_at: OffsetDateTime::from_unix_timestamp(e.revoked_at)
                        .map_err(|e| Error::internal(e.to_string()))?,
                    reason: e.reason,
                })
            })
            .collect::<Result<_>>()?;
        let next = now + CRL_VALIDITY;
        let idp = self
            .issuer
            .crl_url()
            .map_err(|e| Error::Internal(Box::new(e)))?;
        let der = pki::crl::build_crl(
            &self.cert_der,
            self.signer.as_ref(),
            &entries,
            now,
            next,
            number as u64,
            Some(&idp),
        )
        .map_err(|e| match e {
            pki::PkiError::Signing(_) => self.signer_failed(e),
            other => Error::Internal(Box::new(other)),
        })?;
        crate::metrics::signer_available(&self.name, true);
        let rec = CrlRecord {
            number,
            der,
            this_update: now.unix_timestamp(),
            next_update: next.unix_timestamp(),
        };
        sa.store_crl(&self.name, &rec).await?;
        crate::metrics::crl_generated(&self.name);
        Ok(rec)
    }

    /// Records that the CA key could not sign and builds the error the client sees
    /// (`serverInternal` with Retry-After).
    fn signer_failed(&self, e: pki::PkiError) -> Error {
        crate::metrics::signer_available(&self.name, false);
        Error::SignerUnavailable(Box::new(e))
    }

    /// Checks, without signing, that the CA key can sign now (an HSM token may have gone),
    /// and records the answer in `fleetca_signer_available`. Blocks on the token: call it
    /// from a blocking task.
    pub fn check_signer(&self) -> std::result::Result<(), pki::PkiError> {
        let r = self.signer.check_available();
        crate::metrics::signer_available(&self.name, r.is_ok());
        r
    }

    /// The current CRL, re-signed first if none exists or half its validity has passed.
    /// While the CA key cannot sign, the stored CRL is served until its nextUpdate.
    pub async fn current_crl(&self, sa: &dyn Storage, clock: &dyn Clock) -> Result<CrlRecord> {
        let stored = sa.get_crl(&self.name).await?;
        if let Some(c) = &stored {
            if clock.unix() < c.this_update + (c.next_update - c.this_update) / 2 {
                return Ok(c.clone());
            }
        }
        match self.publish_crl(sa, clock).await {
            Err(Error::SignerUnavailable(e)) => match stored {
                Some(c) if clock.unix() < c.next_update => {
                    tracing::warn!(tenant = %self.name, error = %e, "the CA key cannot re-sign the CRL; serving the previous one until its nextUpdate");
                    Ok(c)
                }
                _ => Err(Error::SignerUnavailable(e)),
            },
            other => other,
        }
    }
}

pub use crate::ids::hex;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
