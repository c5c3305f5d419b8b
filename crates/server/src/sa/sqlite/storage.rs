//! [`Storage`] on SQLite: the issuance path on the writer thread (`writes.rs`, run by
//! `batch.rs`) and the inline readers (`reads.rs`); the rest through the sqlx code both
//! engines share (`sa::sqlx_storage`), with the writer thread parked meanwhile.

use super::{reads, writes, SqliteStorage};
use crate::sa::lifecycle::OrderLifecycle;
use crate::sa::sqlx_storage::SqlxStorage;
use crate::sa::{
    AccountRecord, AncestorAuthz, AuthzRecord, CertRecord, ChallengeOutcome, ChallengeRecord,
    ClaimAtRead, CrlRecord, GuardedSpend, Lease, Nonce, OrderClaim, OrderRecord, RevokedEntry,
    SaError, Storage, StoredIdentifier,
};
use async_trait::async_trait;

#[async_trait]
impl Storage for SqliteStorage {
    async fn insert_account(&self, acct: &AccountRecord) -> Result<(), SaError> {
        SqlxStorage::insert_account(self, acct).await
    }

    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, SaError> {
        self.reads().read(|c| reads::get_account(c, id))
    }

    async fn get_account_by_key(
        &self,
        tenant: &str,
        thumbprint: &str,
    ) -> Result<Option<AccountRecord>, SaError> {
        SqlxStorage::get_account_by_key(self, tenant, thumbprint).await
    }

    async fn update_account_contact(&self, id: &str, contact: &[String]) -> Result<(), SaError> {
        SqlxStorage::update_account_contact(self, id, contact).await
    }

    async fn try_deactivate_account(&self, id: &str) -> Result<bool, SaError> {
        SqlxStorage::try_deactivate_account(self, id).await
    }

    async fn try_change_account_key(
        &self,
        id: &str,
        old_thumbprint: &str,
        new_thumbprint: &str,
        new_jwk: &str,
    ) -> Result<bool, SaError> {
        SqlxStorage::try_change_account_key(self, id, old_thumbprint, new_thumbprint, new_jwk).await
    }

    async fn insert_order(
        &self,
        order: &OrderRecord,
        new_authzs: &[AuthzRecord],
        lifecycle: Option<&OrderLifecycle>,
    ) -> Result<(), SaError> {
        let (o, a, lc) = (order.clone(), new_authzs.to_vec(), lifecycle.cloned());
        self.batch()
            .run(move |c| writes::insert_order(c, &o, &a, lc.as_ref()))
            .await
    }

    async fn get_order(&self, id: &str) -> Result<Option<OrderRecord>, SaError> {
        self.reads().read(|c| reads::get_order(c, id))
    }

    async fn list_order_ids(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, SaError> {
        SqlxStorage::list_order_ids(self, account_id, after, limit).await
    }

    async fn try_claim_order(&self, order_id: &str, claim: &OrderClaim) -> Result<bool, SaError> {
        let (id, claim) = (order_id.to_string(), claim.clone());
        self.batch()
            .run(move |c| writes::try_claim_order(c, &id, &claim))
            .await
    }

    async fn claim_order_spending(
        &self,
        at: &ClaimAtRead<'_>,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<OrderRecord>, bool), SaError> {
        crate::sa::spent_already(nonce)?;
        let (id, tenant, account) = (
            at.order_id.to_string(),
            at.tenant.to_string(),
            at.account_id.to_string(),
        );
        let (now, validated_since, claim) = (at.now, at.validated_since, at.claim.clone());
        let (order, claimed) = self
            .batch()
            .run(move |c| {
                let at = ClaimAtRead {
                    order_id: &id,
                    tenant: &tenant,
                    account_id: &account,
                    now,
                    validated_since,
                    claim: &claim,
                };
                writes::claim_order_at_read(c, &at)
            })
            .await?;
        Ok((GuardedSpend::Spent, order, claimed))
    }

    async fn store_certificate(
        &self,
        order_id: &str,
        token: &str,
        cert: &CertRecord,
        cert_lifecycle: Option<(&str, Option<u32>)>,
    ) -> Result<bool, SaError> {
        let (id, token, cert) = (order_id.to_string(), token.to_string(), cert.clone());
        let lc = cert_lifecycle.map(|(p, s)| (p.to_string(), s));
        self.batch()
            .run(move |c| {
                let lc = lc.as_ref().map(|(p, s)| (p.as_str(), *s));
                writes::store_certificate(c, &id, &token, &cert, lc)
            })
            .await
    }

    async fn release_order_claim(&self, order_id: &str, token: &str) -> Result<bool, SaError> {
        SqlxStorage::release_order_claim(self, order_id, token).await
    }

    async fn release_stale_order_claims(&self, now: i64) -> Result<Vec<String>, SaError> {
        SqlxStorage::release_stale_order_claims(self, now).await
    }

    async fn get_authz(&self, id: &str) -> Result<Option<AuthzRecord>, SaError> {
        self.reads().read(|c| reads::get_authz(c, id))
    }

    async fn find_reusable_authz(
        &self,
        account_id: &str,
        ident: &StoredIdentifier,
        wildcard: bool,
        _now: i64,
        min_expires: i64,
    ) -> Result<Option<String>, SaError> {
        self.reads()
            .read(|c| reads::find_reusable_authz(c, account_id, ident, wildcard, min_expires))
    }

    async fn insert_authz(&self, authz: &AuthzRecord) -> Result<(), SaError> {
        let a = authz.clone();
        self.batch()
            .run(move |c| writes::insert_authzs(c, std::slice::from_ref(&a)))
            .await
    }

    async fn subdomain_ancestor_authzs(
        &self,
        tenant: &str,
        account_id: &str,
        now: i64,
    ) -> Result<Vec<AncestorAuthz>, SaError> {
        self.reads()
            .read(|c| reads::subdomain_ancestor_authzs(c, tenant, account_id, now))
    }

    async fn try_deactivate_authz(&self, id: &str) -> Result<bool, SaError> {
        SqlxStorage::try_deactivate_authz(self, id).await
    }

    async fn has_valid_authzs(
        &self,
        account_id: &str,
        authzs: &[(StoredIdentifier, bool)],
        now: i64,
    ) -> Result<bool, SaError> {
        SqlxStorage::has_valid_authzs(self, account_id, authzs, now).await
    }

    async fn try_start_challenge(
        &self,
        challenge_id: &str,
        lease: &Lease,
    ) -> Result<bool, SaError> {
        let (id, lease) = (challenge_id.to_string(), lease.clone());
        self.batch()
            .run(move |c| writes::try_start_challenge(c, &id, &lease))
            .await
    }

    async fn renew_challenge_lease(
        &self,
        challenge_id: &str,
        lease: &Lease,
    ) -> Result<bool, SaError> {
        let (id, lease) = (challenge_id.to_string(), lease.clone());
        self.batch()
            .run(move |c| writes::renew_challenge_lease(c, &id, &lease))
            .await
    }

    async fn finish_challenge(
        &self,
        challenge_id: &str,
        outcome: ChallengeOutcome,
    ) -> Result<(), SaError> {
        let id = challenge_id.to_string();
        let give_back = outcome.give_back.clone();
        self.batch()
            .run(move |c| writes::finish_challenge(c, &id, &outcome))
            .await?;
        // Not kept here in production (a single SQLite node keeps its buckets in memory, see
        // `Database::rate_store`), but honoured when asked: after the outcome, on its own.
        if let Some(g) = give_back {
            crate::sa::RateStore::rate_apply(
                self,
                &g.tenant,
                &g.buckets,
                g.now_ms,
                crate::sa::RateOp::Adjust(1.0),
            )
            .await?;
        }
        Ok(())
    }

    async fn claim_stale_challenges(
        &self,
        now: i64,
        lease: &Lease,
        limit: u32,
    ) -> Result<Vec<String>, SaError> {
        SqlxStorage::claim_stale_challenges(self, now, lease, limit).await
    }

    async fn get_challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, SaError> {
        self.reads().read(|c| reads::get_challenge(c, id))
    }

    async fn get_authz_by_challenge(
        &self,
        challenge_id: &str,
    ) -> Result<Option<AuthzRecord>, SaError> {
        self.reads()
            .read(|c| reads::get_authz_by_challenge(c, challenge_id))
    }

    async fn get_cert(&self, id: &str) -> Result<Option<CertRecord>, SaError> {
        self.reads().read(|c| reads::get_cert(c, id))
    }

    async fn get_cert_by_serial(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<Option<CertRecord>, SaError> {
        SqlxStorage::get_cert_by_serial(self, tenant, serial).await
    }

    async fn try_revoke_cert(
        &self,
        id: &str,
        at: i64,
        reason: Option<u8>,
    ) -> Result<bool, SaError> {
        SqlxStorage::try_revoke_cert(self, id, at, reason).await
    }

    async fn revoked_certs(
        &self,
        tenant: &str,
        issuer: &str,
        not_after_min: i64,
    ) -> Result<Vec<RevokedEntry>, SaError> {
        SqlxStorage::revoked_certs(self, tenant, issuer, not_after_min).await
    }

    async fn get_crl(&self, tenant: &str) -> Result<Option<CrlRecord>, SaError> {
        SqlxStorage::get_crl(self, tenant).await
    }

    async fn store_crl(&self, tenant: &str, crl: &CrlRecord) -> Result<(), SaError> {
        SqlxStorage::store_crl(self, tenant, crl).await
    }
}
