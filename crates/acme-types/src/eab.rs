//! External account binding (RFC 8555 §7.3.4): an HMAC JWS inside the
//! newAccount payload that binds the new account key to a CA-issued key id.
//!
//! [`verify_eab`] does the whole check with a synchronous key lookup; a server
//! with an async store can call [`ParsedEab::parse`], look up
//! [`ParsedEab::kid`], then [`ParsedEab::verify_mac`].

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::b64;
use crate::crypto::hmac;
use crate::jwk::Jwk;
use crate::jws::Flattened;
use crate::problem::ProblemType;

/// Why an external account binding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EabError {
    /// Not a flattened JWS, bad base64url, bad header JSON, missing `kid`/`url`,
    /// or a payload that is not a JWK.
    #[error("malformed externalAccountBinding: {0}")]
    Malformed(String),
    /// `alg` is not HS256, HS384 or HS512 (§7.3.4: MUST be a MAC algorithm).
    #[error("externalAccountBinding \"alg\" {0:?} is not HS256, HS384 or HS512")]
    UnsupportedAlgorithm(String),
    /// A `nonce` is present (§7.3.4: MUST NOT be).
    #[error("externalAccountBinding must not have a \"nonce\"")]
    NoncePresent,
    /// The `url` differs from the outer JWS's (§7.3.4).
    #[error("externalAccountBinding \"url\" does not match the request URL")]
    UrlMismatch,
    /// The payload is a different key from the outer JWS's `jwk` (§7.3.4).
    #[error("externalAccountBinding payload is not the account key")]
    KeyMismatch,
    /// No MAC key is known for `kid`.
    #[error("unknown externalAccountBinding key id {0:?}")]
    UnknownKeyId(String),
    /// The MAC does not verify.
    #[error("externalAccountBinding MAC verification failed")]
    BadMac,
}

impl EabError {
    /// The ACME error type: `malformed` for structural faults, `unauthorized`
    /// for a binding that is well formed but not valid.
    pub fn problem_type(&self) -> ProblemType {
        match self {
            EabError::Malformed(_)
            | EabError::UnsupportedAlgorithm(_)
            | EabError::NoncePresent
            | EabError::UrlMismatch => ProblemType::Malformed,
            EabError::KeyMismatch | EabError::UnknownKeyId(_) | EabError::BadMac => {
                ProblemType::Unauthorized
            }
        }
    }
}

/// The MAC algorithm of an EAB JWS (RFC 7518 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EabAlgorithm {
    /// HMAC SHA-256.
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
}

impl EabAlgorithm {
    /// The JWS `alg` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }

    /// Parses a JWS `alg` name; `None` for anything but HS256/HS384/HS512.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::HS256),
            "HS384" => Some(Self::HS384),
            "HS512" => Some(Self::HS512),
            _ => None,
        }
    }

    fn hmac(&self) -> hmac::Algorithm {
        match self {
            Self::HS256 => hmac::HMAC_SHA256,
            Self::HS384 => hmac::HMAC_SHA384,
            Self::HS512 => hmac::HMAC_SHA512,
        }
    }
}

/// Builds the EAB JWS a client puts in `externalAccountBinding` (RFC 8555
/// §7.3.4): protected `{alg, kid, url}`, payload the account's public JWK,
/// MAC with `hmac_key`.
pub fn eab_jws(kid: &str, hmac_key: &[u8], url: &str, outer_jwk: &Jwk, alg: EabAlgorithm) -> Value {
    let mut protected = Map::new();
    protected.insert("alg".into(), Value::String(alg.name().into()));
    protected.insert("kid".into(), Value::String(kid.into()));
    protected.insert("url".into(), Value::String(url.into()));
    let protected_b64 = b64::encode(Value::Object(protected).to_string().as_bytes());
    let payload_b64 = b64::encode(outer_jwk.to_json().to_string().as_bytes());
    let key = hmac::Key::new(alg.hmac(), hmac_key);
    let tag = hmac::sign(&key, format!("{protected_b64}.{payload_b64}").as_bytes());
    let mut out = Map::new();
    out.insert("protected".into(), Value::String(protected_b64));
    out.insert("payload".into(), Value::String(payload_b64));
    out.insert("signature".into(), Value::String(b64::encode(tag.as_ref())));
    Value::Object(out)
}

#[derive(Deserialize)]
struct EabHeader {
    alg: Option<String>,
    kid: Option<String>,
    url: Option<String>,
    nonce: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
}

/// An EAB JWS whose structure, `url` and payload key have been checked and
/// whose MAC is still to be verified.
#[derive(Debug, Clone)]
pub struct ParsedEab {
    kid: String,
    alg: EabAlgorithm,
    signing_input: Vec<u8>,
    mac: Vec<u8>,
}

impl ParsedEab {
    /// Checks everything but the MAC (RFC 8555 §7.3.4): flattened JWS, `alg`
    /// HS256/HS384/HS512, `kid` present, no `jwk`, no `nonce`, `url` equal to
    /// `expected_url`, payload equal to `outer_jwk` (compared as parsed keys).
    pub fn parse(eab: &Value, expected_url: &str, outer_jwk: &Jwk) -> Result<ParsedEab, EabError> {
        let f = Flattened::from_value(eab).map_err(|e| EabError::Malformed(e.to_string()))?;
        let header: EabHeader = serde_json::from_slice(&f.protected)
            .map_err(|e| EabError::Malformed(format!("protected header: {e}")))?;
        let alg_name = header
            .alg
            .ok_or_else(|| EabError::Malformed("missing \"alg\"".into()))?;
        let alg =
            EabAlgorithm::from_name(&alg_name).ok_or(EabError::UnsupportedAlgorithm(alg_name))?;
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or_else(|| EabError::Malformed("missing \"kid\"".into()))?;
        if header.jwk.is_some() {
            return Err(EabError::Malformed("\"jwk\" is not allowed".into()));
        }
        if header.nonce.is_some() {
            return Err(EabError::NoncePresent);
        }
        let url = header
            .url
            .ok_or_else(|| EabError::Malformed("missing \"url\"".into()))?;
        if url != expected_url {
            return Err(EabError::UrlMismatch);
        }
        let payload: Value = serde_json::from_slice(&f.payload)
            .map_err(|e| EabError::Malformed(format!("payload: {e}")))?;
        let payload_jwk =
            Jwk::from_json(&payload).map_err(|e| EabError::Malformed(format!("payload: {e}")))?;
        if &payload_jwk != outer_jwk {
            return Err(EabError::KeyMismatch);
        }
        Ok(ParsedEab {
            kid,
            alg,
            signing_input: f.signing_input(),
            mac: f.signature,
        })
    }

    /// The CA-issued key identifier.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The MAC algorithm.
    pub fn alg(&self) -> EabAlgorithm {
        self.alg
    }

    /// Verifies the MAC in constant time with the provider's `hmac::verify`.
    pub fn verify_mac(&self, hmac_key: &[u8]) -> Result<(), EabError> {
        let key = hmac::Key::new(self.alg.hmac(), hmac_key);
        hmac::verify(&key, &self.signing_input, &self.mac).map_err(|_| EabError::BadMac)
    }
}

/// Verifies an external account binding (RFC 8555 §7.3.4) and returns its
/// `kid`. `lookup_hmac_key` maps the `kid` to the CA-issued MAC key.
pub fn verify_eab(
    eab: &Value,
    expected_url: &str,
    outer_jwk: &Jwk,
    lookup_hmac_key: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> Result<String, EabError> {
    let parsed = ParsedEab::parse(eab, expected_url, outer_jwk)?;
    let key = lookup_hmac_key(parsed.kid())
        .ok_or_else(|| EabError::UnknownKeyId(parsed.kid().to_owned()))?;
    parsed.verify_mac(&key)?;
    Ok(parsed.kid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{AccountKey, AccountKeyKind};
    use serde_json::json;

    const URL: &str = "https://ca.example/acme/new-account";
    const MAC_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn key() -> AccountKey {
        AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap()
    }

    fn lookup(kid: &str) -> Option<Vec<u8>> {
        (kid == "kid-1").then(|| MAC_KEY.to_vec())
    }

    /// Re-MACs an EAB after `edit` changed its protected header or payload.
    fn forge(protected: Value, payload: &[u8], mac_key: &[u8]) -> Value {
        let p = b64::encode(protected.to_string().as_bytes());
        let pl = b64::encode(payload);
        let k = hmac::Key::new(hmac::HMAC_SHA256, mac_key);
        let tag = hmac::sign(&k, format!("{p}.{pl}").as_bytes());
        json!({"protected": p, "payload": pl, "signature": b64::encode(tag.as_ref())})
    }

    #[test]
    fn round_trip_all_algorithms() {
        let k = key();
        for alg in [
            EabAlgorithm::HS256,
            EabAlgorithm::HS384,
            EabAlgorithm::HS512,
        ] {
            let eab = eab_jws("kid-1", MAC_KEY, URL, k.jwk(), alg);
            assert_eq!(verify_eab(&eab, URL, k.jwk(), lookup).unwrap(), "kid-1");
        }
    }

    #[test]
    fn wrong_url() {
        let k = key();
        let eab = eab_jws(
            "kid-1",
            MAC_KEY,
            "https://ca.example/other",
            k.jwk(),
            EabAlgorithm::HS256,
        );
        assert_eq!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::UrlMismatch)
        );
    }

    #[test]
    fn wrong_key_payload() {
        let (k, other) = (key(), key());
        let eab = eab_jws("kid-1", MAC_KEY, URL, other.jwk(), EabAlgorithm::HS256);
        assert_eq!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::KeyMismatch)
        );
    }

    #[test]
    fn payload_with_extra_members_still_matches() {
        let k = key();
        let mut jwk = k.jwk().to_json();
        jwk["kid"] = json!("x");
        let eab = forge(
            json!({"alg": "HS256", "kid": "kid-1", "url": URL}),
            jwk.to_string().as_bytes(),
            MAC_KEY,
        );
        assert!(verify_eab(&eab, URL, k.jwk(), lookup).is_ok());
    }

    #[test]
    fn wrong_mac() {
        let k = key();
        let eab = eab_jws("kid-1", b"another key", URL, k.jwk(), EabAlgorithm::HS256);
        assert_eq!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::BadMac)
        );
        let mut eab = eab_jws("kid-1", MAC_KEY, URL, k.jwk(), EabAlgorithm::HS256);
        let mut sig = b64::decode(eab["signature"].as_str().unwrap()).unwrap();
        sig[0] ^= 1;
        eab["signature"] = json!(b64::encode(&sig));
        assert_eq!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::BadMac)
        );
    }

    #[test]
    fn unknown_kid() {
        let k = key();
        let eab = eab_jws("kid-2", MAC_KEY, URL, k.jwk(), EabAlgorithm::HS256);
        assert_eq!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::UnknownKeyId("kid-2".into()))
        );
    }

    #[test]
    fn nonce_present() {
        let k = key();
        let eab = forge(
            json!({"alg": "HS256", "kid": "kid-1", "url": URL, "nonce": "AAAA"}),
            k.jwk().to_json().to_string().as_bytes(),
            MAC_KEY,
        );
        assert_eq!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::NoncePresent)
        );
    }

    #[test]
    fn non_mac_algorithms_and_missing_kid() {
        let k = key();
        let payload = k.jwk().to_json().to_string();
        for alg in ["ES256", "none", "RS256", "hs256"] {
            let eab = forge(
                json!({"alg": alg, "kid": "kid-1", "url": URL}),
                payload.as_bytes(),
                MAC_KEY,
            );
            assert_eq!(
                verify_eab(&eab, URL, k.jwk(), lookup),
                Err(EabError::UnsupportedAlgorithm(alg.into()))
            );
        }
        let eab = forge(
            json!({"alg": "HS256", "url": URL}),
            payload.as_bytes(),
            MAC_KEY,
        );
        assert!(matches!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::Malformed(_))
        ));
        let eab = forge(
            json!({"alg": "HS256", "kid": "kid-1", "url": URL, "jwk": k.jwk().to_json()}),
            payload.as_bytes(),
            MAC_KEY,
        );
        assert!(matches!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::Malformed(_))
        ));
    }

    #[test]
    fn structural_errors() {
        let k = key();
        for bad in [
            json!("x"),
            json!({}),
            json!({"protected": "e30", "payload": "", "signature": "AA"}),
        ] {
            assert!(
                matches!(
                    verify_eab(&bad, URL, k.jwk(), lookup),
                    Err(EabError::Malformed(_))
                ),
                "{bad}"
            );
        }
        let eab = forge(
            json!({"alg": "HS256", "kid": "kid-1", "url": URL}),
            b"{}",
            MAC_KEY,
        );
        assert!(matches!(
            verify_eab(&eab, URL, k.jwk(), lookup),
            Err(EabError::Malformed(_))
        ));
    }

    #[test]
    fn problem_types() {
        assert_eq!(EabError::BadMac.problem_type(), ProblemType::Unauthorized);
        assert_eq!(
            EabError::NoncePresent.problem_type(),
            ProblemType::Malformed
        );
    }
}
