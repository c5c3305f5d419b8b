//! dns-01 (RFC 8555 §8.4): a TXT record at `_acme-challenge.<name>` holding
//! base64url(SHA-256(key authorization)).

use base64::Engine as _;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::dns::DnsFailure;
use super::{ChallengeKind, Inner, Target, ValidationError, ValidationRecord};

/// The TXT value expected for `key_authorization`.
pub(crate) fn expected_txt(key_authorization: &str) -> String {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

pub(crate) async fn validate(
    inner: &Inner,
    name: &str,
    key_authorization: &str,
) -> Result<ValidationRecord, ValidationError> {
    let qname = format!("_acme-challenge.{name}");
    let expected = expected_txt(key_authorization);
    let mut record = ValidationRecord::new(ChallengeKind::Dns01, &Target::Dns(name.to_string()));
    record.hostname = qname.clone();
    check_txt(inner, &qname, &expected).await?;
    Ok(record)
}

/// A TXT record at `qname` must hold exactly `expected`.
pub(crate) async fn check_txt(
    inner: &Inner,
    qname: &str,
    expected: &str,
) -> Result<(), ValidationError> {
    let rdatas = match inner.resolver.lookup(qname, RecordType::TXT).await {
        Ok(r) => r,
        Err(DnsFailure::NxDomain) | Err(DnsFailure::NoData) => {
            return Err(ValidationError::Unauthorized(format!(
                "no TXT record found at {qname}; expected one with the value {expected}"
            )));
        }
        Err(DnsFailure::Failed(e)) => {
            return Err(ValidationError::Dns(format!(
                "TXT lookup for {qname} failed: {e}"
            )));
        }
    };
    let mut found = 0usize;
    for d in &rdatas {
        if let RData::TXT(txt) = d {
            let value: Vec<u8> = txt
                .txt_data
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            if value == expected.as_bytes() {
                return Ok(());
            }
            found += 1;
        }
    }
    // The values found are not repeated: a split-horizon resolver may hold internal data.
    Err(ValidationError::IncorrectResponse(format!(
        "{found} TXT record(s) found at {qname} but none has the expected value {expected}"
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn digest_vector() {
        // RFC 8555 §8.4 example key authorization is not published with its digest; check the
        // encoding shape instead: 32 bytes -> 43 base64url characters without padding.
        let v = super::expected_txt("token.thumbprint");
        assert_eq!(v.len(), 43);
        assert!(!v.contains('='));
        assert!(!v.contains('+') && !v.contains('/'));
    }
}
