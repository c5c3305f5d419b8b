//! Partitioned CRLs (RFC 5280 §5.2.5): with `--crl-shards N`, each new certificate is put in
//! one of N shards at issuance (stored with it, so changing N later moves nothing), its CRL
//! distribution point names `<base>/crl/<tenant>/<shard>.crl`, and each shard's CRL carries
//! an Issuing Distribution Point with that same URL. A shard's CRL is re-signed when it is
//! fetched and its revoked set (revoked, not yet expired) has changed or half its validity
//! has passed, so only the shards that changed are re-signed and expired entries drop off.
//! The single `<base>/crl/<tenant>.crl` stays complete, for certificates issued before
//! sharding and for relying parties that want everything.

use super::{unhex, IssuingCa, CRL_VALIDITY};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::sa::{CrlRecord, LifecycleStore};
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// Highest shard number served, so URL guessing cannot make the CA sign unbounded CRLs.
pub const MAX_CRL_SHARDS: u32 = 4096;

impl IssuingCa {
    /// A shard for a new certificate, uniformly at random; `None` when not sharding.
    pub fn pick_crl_shard(&self) -> Option<u32> {
        let n = self.crl_shards;
        (n > 0).then(|| rand::random_range(0..n))
    }

    /// `<base>/crl/<tenant>/<shard>.crl`.
    pub fn crl_shard_url(&self, shard: u32) -> String {
        format!(
            "{}/crl/{}/{shard}.crl",
            self.issuer.profile().crl_base_url.trim_end_matches('/'),
            self.name
        )
    }

    /// The current CRL of one shard, re-signed first when missing, half-expired, or when its
    /// entries differ from the shard's revoked, unexpired certificates.
    pub async fn current_shard_crl(
        &self,
        store: &dyn LifecycleStore,
        clock: &dyn Clock,
        shard: u32,
    ) -> Result<CrlRecord> {
        // Anyone may ask for any shard number, and each new shard is a signature and a row:
        // only the configured shards are made. A shard beyond today's count is served only if
        // it was published before (certificates issued under an earlier, larger
        // `--crl-shards` point at it).
        if shard >= MAX_CRL_SHARDS
            || (shard >= self.crl_shards && store.get_crl_shard(&self.name, shard).await?.is_none())
        {
            return Err(Error::not_found("CRL"));
        }
        let _guard = self.crl_lock.lock().await;
        let now = clock.now();
        let entries = store
            .revoked_certs_in_shard(&self.tenant, &self.name, shard, now.unix_timestamp())
            .await?;
        let prev = store.get_crl_shard(&self.name, shard).await?;
        if let Some(p) = &prev {
            let fresh = clock.unix() < p.this_update + (p.next_update - p.this_update) / 2;
            let want: BTreeSet<Vec<u8>> = entries.iter().filter_map(|e| unhex(&e.serial)).collect();
            if fresh && crl_serials(&p.der).as_ref() == Some(&want) {
                return Ok(p.clone());
            }
        }
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
        let der = pki::crl::build_crl(
            &self.cert_der,
            self.signer.as_ref(),
            &entries,
            now,
            next,
            number as u64,
            Some(&self.crl_shard_url(shard)),
        )
        .map_err(|e| Error::Internal(Box::new(e)))?;
        let rec = CrlRecord {
            number,
            der,
            this_update: now.unix_timestamp(),
            next_update: next.unix_timestamp(),
        };
        store.store_crl_shard(&self.name, shard, &rec).await?;
        crate::metrics::crl_generated(&self.name);
        Ok(rec)
    }
}

/// The serials listed in a DER CRL, `None` if it does not parse.
fn crl_serials(der: &[u8]) -> Option<BTreeSet<Vec<u8>>> {
    let (_, crl) = x509_parser::parse_x509_crl(der).ok()?;
    Some(
        crl.iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect(),
    )
}
