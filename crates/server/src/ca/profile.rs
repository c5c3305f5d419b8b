//! Certificate profiles (draft-aaron-acme-profiles): named sets of lifetime and extensions a
//! newOrder may ask for. The client picks a name; everything the name stands for comes from
//! here, never from the order or the CSR.

use std::time::Duration;

/// The profile used when a newOrder names none.
pub const DEFAULT_PROFILE: &str = "default";
/// The short-lived profile.
pub const SHORTLIVED_PROFILE: &str = "shortlived";
/// Lifetime of `shortlived` certificates: 160 hours, so that with the notBefore backdate
/// (1 hour) the validity period stays under BR §1.6.1's 7-day (604,800 s) bound for
/// Short-lived Subscriber Certificates issued after 2026-03-15.
pub const SHORTLIVED_LIFETIME: Duration = Duration::from_secs(160 * 3600);

/// One certificate profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertProfile {
    /// Name clients send in newOrder `profile` and see in the directory's `meta.profiles`.
    pub name: String,
    /// Human-readable description for `meta.profiles`.
    pub description: String,
    /// Time from issuance to notAfter (notBefore is backdated separately).
    pub lifetime: Duration,
    /// Put the CRL distribution point in the certificate (RFC 5280 §4.2.1.13).
    pub crl_dp: bool,
    /// Put the OCSP responder URL in authorityInformationAccess (RFC 5280 §4.2.2.1).
    pub ocsp: bool,
}

/// The profiles every issuing CA offers: `default` with the tenant's configured lifetime and
/// both revocation pointers, and `shortlived` without any (BR §4.9.1.1 and §7.1.2.11.2 let a
/// Short-lived Subscriber Certificate go without CRL and OCSP pointers).
pub fn standard_profiles(default_lifetime: Duration) -> Vec<CertProfile> {
    vec![
        CertProfile {
            name: DEFAULT_PROFILE.into(),
            description: format!(
                "{}-day certificates with CRL and OCSP pointers",
                default_lifetime.as_secs() / 86400
            ),
            lifetime: default_lifetime,
            crl_dp: true,
            ocsp: true,
        },
        CertProfile {
            name: SHORTLIVED_PROFILE.into(),
            description: "160-hour certificates without revocation pointers (BR short-lived)"
                .into(),
            lifetime: SHORTLIVED_LIFETIME,
            crl_dp: false,
            ocsp: false,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortlived_stays_under_seven_days_with_backdate() {
        let p = standard_profiles(Duration::from_secs(30 * 86400));
        let short = p.iter().find(|p| p.name == SHORTLIVED_PROFILE).unwrap();
        let with_backdate = short.lifetime + Duration::from_secs(3600 + 1);
        assert!(with_backdate <= Duration::from_secs(7 * 86400));
        assert!(!short.crl_dp && !short.ocsp);
        assert!(p[0].crl_dp && p[0].ocsp && p[0].name == DEFAULT_PROFILE);
    }
}
