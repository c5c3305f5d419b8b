//! A [`Storage`] that times every call into the `fleetca_db_operation_duration_seconds`
//! histogram (label `op` = method name) and delegates to the real backend. `serve` hands it to
//! the registration authority and the CAs; a new `Storage` method needs one line here.

use super::*;
use std::sync::Arc;

/// Times each call of the wrapped storage.
pub struct MeteredStorage {
    inner: Arc<dyn Storage>,
}

impl MeteredStorage {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self { inner }
    }
}

macro_rules! metered {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        #[async_trait]
        impl Storage for MeteredStorage {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    crate::metrics::timed_db(stringify!($name), self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

metered! {
    fn insert_account(&self, acct: &AccountRecord) -> Result<(), SaError>;
    fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, SaError>;
    fn get_account_by_key(&self, tenant: &str, thumbprint: &str) -> Result<Option<AccountRecord>, SaError>;
    fn update_account_contact(&self, id: &str, contact: &[String]) -> Result<(), SaError>;
    fn try_deactivate_account(&self, id: &str) -> Result<bool, SaError>;
    fn try_change_account_key(&self, id: &str, old_thumbprint: &str, new_thumbprint: &str, new_jwk: &str) -> Result<bool, SaError>;
    fn insert_order(&self, order: &OrderRecord, new_authzs: &[AuthzRecord], lifecycle: Option<&OrderLifecycle>) -> Result<(), SaError>;
    fn get_order(&self, id: &str) -> Result<Option<OrderRecord>, SaError>;
    fn list_order_ids(&self, account_id: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>, SaError>;
    fn try_claim_order(&self, order_id: &str, claim: &OrderClaim) -> Result<bool, SaError>;
    fn store_certificate(&self, order_id: &str, token: &str, cert: &CertRecord, cert_lifecycle: Option<(&str, Option<u32>)>) -> Result<bool, SaError>;
    fn release_order_claim(&self, order_id: &str, token: &str) -> Result<bool, SaError>;
    fn release_stale_order_claims(&self, now: i64) -> Result<Vec<String>, SaError>;
    fn get_authz(&self, id: &str) -> Result<Option<AuthzRecord>, SaError>;
    fn find_reusable_authz(&self, account_id: &str, ident: &StoredIdentifier, wildcard: bool, now: i64, min_expires: i64) -> Result<Option<String>, SaError>;
    fn insert_authz(&self, authz: &AuthzRecord) -> Result<(), SaError>;
    fn subdomain_ancestor_authzs(&self, tenant: &str, account_id: &str, now: i64) -> Result<Vec<AncestorAuthz>, SaError>;
    fn try_deactivate_authz(&self, id: &str) -> Result<bool, SaError>;
    fn has_valid_authzs(&self, account_id: &str, authzs: &[(StoredIdentifier, bool)], now: i64) -> Result<bool, SaError>;
    fn try_start_challenge(&self, challenge_id: &str, lease: &Lease) -> Result<bool, SaError>;
    fn renew_challenge_lease(&self, challenge_id: &str, lease: &Lease) -> Result<bool, SaError>;
    fn finish_challenge(&self, challenge_id: &str, outcome: ChallengeOutcome) -> Result<(), SaError>;
    fn claim_stale_challenges(&self, now: i64, lease: &Lease, limit: u32) -> Result<Vec<String>, SaError>;
    fn get_challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, SaError>;
    fn get_authz_by_challenge(&self, challenge_id: &str) -> Result<Option<AuthzRecord>, SaError>;
    fn get_cert(&self, id: &str) -> Result<Option<CertRecord>, SaError>;
    fn get_order_spending(&self, id: &str, nonce: &Nonce) -> Result<(GuardedSpend, Option<OrderRecord>), SaError>;
    fn get_authz_spending(&self, id: &str, nonce: &Nonce) -> Result<(GuardedSpend, Option<AuthzRecord>), SaError>;
    fn get_authz_by_challenge_spending(&self, challenge_id: &str, nonce: &Nonce) -> Result<(GuardedSpend, Option<AuthzRecord>), SaError>;
    fn get_cert_spending(&self, id: &str, nonce: &Nonce) -> Result<(GuardedSpend, Option<CertRecord>), SaError>;
    fn claim_order_spending(&self, at: &ClaimAtRead<'_>, nonce: &Nonce) -> Result<(GuardedSpend, Option<OrderRecord>, bool), SaError>;
    fn start_challenge_spending(&self, start: &ChallengeStart<'_>, nonce: &Nonce) -> Result<(GuardedSpend, Option<AuthzRecord>, StartStep), SaError>;
    fn new_order_reads_spending(&self, lookup: &OrderLookup<'_>, nonce: &Nonce) -> Result<(GuardedSpend, OrderReads), SaError>;
    fn get_cert_by_serial(&self, tenant: &str, serial: &str) -> Result<Option<CertRecord>, SaError>;
    fn try_revoke_cert(&self, id: &str, at: i64, reason: Option<u8>) -> Result<bool, SaError>;
    fn revoked_certs(&self, tenant: &str, issuer: &str, not_after_min: i64) -> Result<Vec<RevokedEntry>, SaError>;
    fn get_crl(&self, tenant: &str) -> Result<Option<CrlRecord>, SaError>;
    fn store_crl(&self, tenant: &str, crl: &CrlRecord) -> Result<(), SaError>;
}
