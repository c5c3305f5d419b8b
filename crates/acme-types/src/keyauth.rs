//! Key authorizations and the values challenges publish (RFC 8555 §8.1,
//! §8.3, §8.4; RFC 8737 §3).

use crate::b64;
use crate::crypto::digest;
use crate::jwk::Jwk;

/// `token || '.' || base64url(JWK thumbprint)` (RFC 8555 §8.1); the http-01
/// response body (§8.3).
pub fn key_authorization(token: &str, jwk: &Jwk) -> String {
    format!("{token}.{}", jwk.thumbprint())
}

/// The dns-01 TXT record value: base64url(SHA-256(key authorization))
/// (RFC 8555 §8.4).
pub fn dns01_txt_value(key_authorization: &str) -> String {
    b64::encode(digest::digest(&digest::SHA256, key_authorization.as_bytes()).as_ref())
}

/// The SHA-256 of the key authorization that the tls-alpn-01 certificate's
/// acmeIdentifier extension carries (RFC 8737 §3).
pub fn tls_alpn01_digest(key_authorization: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, key_authorization.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rfc7638_jwk() -> Jwk {
        Jwk::from_json(&json!({
            "kty": "RSA",
            "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        }))
        .unwrap()
    }

    #[test]
    fn key_authorization_format() {
        let ka = key_authorization(
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
            &rfc7638_jwk(),
        );
        assert_eq!(
            ka,
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn dns01_value_is_base64url_sha256() {
        // RFC 8555 §8.4 shows no full digest, so check against a known
        // SHA-256 vector: SHA-256("abc") (FIPS 180-2 B.1).
        assert_eq!(
            dns01_txt_value("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        let v = dns01_txt_value("token.thumb");
        assert_eq!(v.len(), 43);
        assert!(!v.contains('='));
    }

    #[test]
    fn tls_alpn_digest_matches_dns_value() {
        let d = tls_alpn01_digest("abc");
        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(b64::encode(&d), dns01_txt_value("abc"));
    }
}
