//! Server-side parsing and verification of ACME request JWSs (RFC 8555 §6.2-§6.5,
//! RFC 7515 flattened JSON serialization).
//!
//! [`Jws::parse`] enforces the structural rules of RFC 8555 §6.2; the caller
//! then picks the key (the embedded `jwk` for newAccount and revocation by
//! certificate key, the account key named by `kid` otherwise), calls
//! [`Jws::verify`], checks [`ProtectedHeader::url`] against the request URL
//! (§6.4) and redeems the nonce from [`Jws::require_nonce`] (§6.5).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_json::Value;

use crate::b64;
use crate::jwk::{Jwk, JwkError, SUPPORTED_ALGORITHMS};
use crate::problem::ProblemType;
use crate::wire::KeyChange;

/// Why a request JWS was refused; [`JwsError::problem_type`] names the ACME
/// problem to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// The JWS breaks a structural rule (RFC 8555 §6.2, RFC 7515).
    #[error("malformed JWS: {0}")]
    Malformed(String),
    /// `alg` is absent from the supported set, `none`, a MAC, or does not fit
    /// the key (RFC 8555 §6.2).
    #[error("bad signature algorithm: {0}")]
    BadSignatureAlgorithm(String),
    /// The signature does not verify.
    #[error("JWS signature verification failed")]
    BadSignature,
    /// The embedded `jwk` is unusable (RFC 8555 §6.2, §6.7 `badPublicKey`).
    #[error("bad JWS public key: {0}")]
    BadPublicKey(#[from] JwkError),
    /// The `nonce` header parameter is missing (RFC 8555 §6.5).
    #[error("bad nonce: {0}")]
    BadNonce(String),
}

impl JwsError {
    /// The ACME error type for this failure. An invalid signature is
    /// `malformed`, as in Boulder and Pebble; the server may choose
    /// `unauthorized` instead.
    pub fn problem_type(&self) -> ProblemType {
        match self {
            JwsError::Malformed(_) | JwsError::BadSignature => ProblemType::Malformed,
            JwsError::BadSignatureAlgorithm(_) => ProblemType::BadSignatureAlgorithm,
            JwsError::BadPublicKey(_) => ProblemType::BadPublicKey,
            JwsError::BadNonce(_) => ProblemType::BadNonce,
        }
    }
}

fn malformed(msg: impl Into<String>) -> JwsError {
    JwsError::Malformed(msg.into())
}

/// A flattened JSON JWS before its header is interpreted (RFC 7515 §7.2.2).
#[derive(Deserialize)]
struct RawJws {
    protected: Option<String>,
    payload: Option<String>,
    signature: Option<String>,
    header: Option<IgnoredAny>,
    signatures: Option<IgnoredAny>,
}

/// The decoded parts of a flattened JWS, shared with the EAB verifier.
pub(crate) struct Flattened {
    pub(crate) protected_b64: String,
    pub(crate) protected: Vec<u8>,
    pub(crate) payload_b64: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

impl Flattened {
    fn from_raw(raw: RawJws) -> Result<Self, JwsError> {
        // RFC 8555 §6.2: no multiple signatures, no unprotected header.
        if raw.signatures.is_some() {
            return Err(malformed(
                "general JWS serialization (\"signatures\") is not allowed; use the flattened form",
            ));
        }
        if raw.header.is_some() {
            return Err(malformed("the JWS unprotected \"header\" is not allowed"));
        }
        let protected_b64 = raw
            .protected
            .ok_or_else(|| malformed("missing \"protected\""))?;
        let payload_b64 = raw
            .payload
            .ok_or_else(|| malformed("missing \"payload\""))?;
        let signature_b64 = raw
            .signature
            .ok_or_else(|| malformed("missing \"signature\""))?;
        let protected =
            b64::decode(&protected_b64).map_err(|e| malformed(format!("\"protected\": {e}")))?;
        let payload =
            b64::decode(&payload_b64).map_err(|e| malformed(format!("\"payload\": {e}")))?;
        let signature =
            b64::decode(&signature_b64).map_err(|e| malformed(format!("\"signature\": {e}")))?;
        if signature.is_empty() {
            return Err(malformed("empty \"signature\""));
        }
        Ok(Self {
            protected_b64,
            protected,
            payload_b64,
            payload,
            signature,
        })
    }

    pub(crate) fn from_slice(body: &[u8]) -> Result<Self, JwsError> {
        let trimmed = body.trim_ascii_start();
        if !trimmed.starts_with(b"{") {
            return Err(malformed(
                "JWS must use the flattened JSON serialization (RFC 8555 §6.2); \
                 the compact serialization is not accepted",
            ));
        }
        let raw: RawJws =
            serde_json::from_slice(body).map_err(|e| malformed(format!("JWS JSON: {e}")))?;
        Self::from_raw(raw)
    }

    pub(crate) fn from_value(value: &Value) -> Result<Self, JwsError> {
        if !value.is_object() {
            return Err(malformed("JWS must be a flattened JSON object"));
        }
        let raw = RawJws::deserialize(value).map_err(|e| malformed(format!("JWS JSON: {e}")))?;
        Self::from_raw(raw)
    }

    pub(crate) fn signing_input(&self) -> Vec<u8> {
        let mut input = Vec::with_capacity(self.protected_b64.len() + 1 + self.payload_b64.len());
        input.extend_from_slice(self.protected_b64.as_bytes());
        input.push(b'.');
        input.extend_from_slice(self.payload_b64.as_bytes());
        input
    }
}

/// The protected header members before validation. Unknown members are
/// ignored; serde refuses a known member given twice.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    jwk: Option<Value>,
    kid: Option<String>,
    nonce: Option<String>,
    url: Option<String>,
    crit: Option<IgnoredAny>,
    b64: Option<IgnoredAny>,
}

/// The validated protected header of an ACME request (RFC 8555 §6.2).
///
/// Exactly one of `jwk` and `kid` is `Some`; [`ProtectedHeader::key`] gives it
/// as one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedHeader {
    /// The signature algorithm, one of [`SUPPORTED_ALGORITHMS`].
    pub alg: String,
    /// The embedded public key, already validated and matching `alg`.
    pub jwk: Option<Jwk>,
    /// The account URL (RFC 8555 §6.2, `kid`).
    pub kid: Option<String>,
    /// The anti-replay nonce, checked to be non-empty base64url (§6.5.2);
    /// whether it must be present is the caller's call ([`Jws::require_nonce`]).
    pub nonce: Option<String>,
    /// The request URL the client signed (§6.4), always present.
    pub url: String,
}

/// The key a request names: embedded, or by account URL (RFC 8555 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// The `jwk` header parameter.
    Jwk(&'a Jwk),
    /// The `kid` header parameter (an account URL).
    Kid(&'a str),
}

impl ProtectedHeader {
    fn parse(protected: &[u8]) -> Result<Self, JwsError> {
        let raw: RawHeader = serde_json::from_slice(protected)
            .map_err(|e| malformed(format!("protected header: {e}")))?;

        let alg = raw
            .alg
            .ok_or_else(|| malformed("protected header is missing \"alg\""))?;
        if !SUPPORTED_ALGORITHMS.contains(&alg.as_str()) {
            return Err(JwsError::BadSignatureAlgorithm(format!(
                "\"alg\" {alg:?} is not supported; use one of {}",
                SUPPORTED_ALGORITHMS.join(", ")
            )));
        }
        // RFC 8555 §6.2: "jwk" and "kid" are mutually exclusive, one is required.
        match (&raw.jwk, &raw.kid) {
            (Some(_), Some(_)) => {
                return Err(malformed("protected header has both \"jwk\" and \"kid\""))
            }
            (None, None) => {
                return Err(malformed(
                    "protected header needs one of \"jwk\" or \"kid\"",
                ))
            }
            _ => {}
        }
        if raw.kid.as_deref() == Some("") {
            return Err(malformed("\"kid\" is empty"));
        }
        let url = raw
            .url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| malformed("protected header is missing \"url\""))?;
        // RFC 8555 §6.5.2: a nonce that is not base64url is malformed.
        if let Some(nonce) = &raw.nonce {
            if nonce.is_empty() || b64::decode(nonce).is_err() {
                return Err(malformed("\"nonce\" is not non-empty base64url"));
            }
        }
        // RFC 7515 §4.1.11: extensions we do not understand must be rejected;
        // RFC 7797 "b64" would change what is signed.
        if raw.crit.is_some() {
            return Err(malformed("\"crit\" header extensions are not supported"));
        }
        if raw.b64.is_some() {
            return Err(malformed("the \"b64\" header parameter is not supported"));
        }
        let jwk = match raw.jwk {
            Some(v) => {
                let jwk = Jwk::from_json(&v)?;
                if jwk.alg() != alg {
                    return Err(JwsError::BadSignatureAlgorithm(format!(
                        "\"alg\" {alg:?} does not match the {} key (expected {})",
                        jwk.describe(),
                        jwk.alg()
                    )));
                }
                Some(jwk)
            }
            None => None,
        };
        Ok(Self {
            alg,
            jwk,
            kid: raw.kid,
            nonce: raw.nonce,
            url,
        })
    }

    /// The key reference: `jwk` or `kid` (RFC 8555 §6.2).
    pub fn key(&self) -> Result<KeyRef<'_>, JwsError> {
        match (&self.jwk, &self.kid) {
            (Some(jwk), None) => Ok(KeyRef::Jwk(jwk)),
            (None, Some(kid)) => Ok(KeyRef::Kid(kid)),
            _ => Err(malformed(
                "protected header needs exactly one of \"jwk\" or \"kid\"",
            )),
        }
    }
}

/// A parsed, not yet verified, ACME request JWS (RFC 8555 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jws {
    /// The validated protected header.
    pub header: ProtectedHeader,
    /// The decoded payload; empty for POST-as-GET (§6.3).
    pub payload: Vec<u8>,
    protected_b64: String,
    payload_b64: String,
    signature: Vec<u8>,
}

/// The result of [`Jws::parse_inner_keychange`] (RFC 8555 §7.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerKeyChange {
    /// The new account key: the inner JWS's `jwk`, whose signature verified.
    pub new_key: Jwk,
    /// The inner payload: the account URL (already checked against the outer
    /// `kid`) and the old key (still to be compared with the key on file).
    pub key_change: KeyChange,
}

impl Jws {
    /// Parses a request body (RFC 8555 §6.2): a flattened JSON JWS with
    /// `protected`, `payload` and `signature`, strict base64url, no compact or
    /// general serialization, no unprotected `header`, a supported `alg`,
    /// exactly one of `jwk`/`kid`, and `url` present. The payload may be empty
    /// (POST-as-GET, §6.3). The nonce is checked only for encoding; call
    /// [`Jws::require_nonce`] where one is needed. The signature is not
    /// checked here: call [`Jws::verify`].
    pub fn parse(body: &[u8]) -> Result<Jws, JwsError> {
        Self::from_flattened(Flattened::from_slice(body)?)
    }

    fn from_flattened(f: Flattened) -> Result<Jws, JwsError> {
        let header = ProtectedHeader::parse(&f.protected)?;
        Ok(Jws {
            header,
            payload: f.payload,
            protected_b64: f.protected_b64,
            payload_b64: f.payload_b64,
            signature: f.signature,
        })
    }

    /// True for a POST-as-GET request: the payload is the empty string (§6.3).
    pub fn is_post_as_get(&self) -> bool {
        self.payload_b64.is_empty()
    }

    /// The JWS signing input `protected || '.' || payload`, as sent (RFC 7515 §5.2).
    pub fn signing_input(&self) -> Vec<u8> {
        let mut input = Vec::with_capacity(self.protected_b64.len() + 1 + self.payload_b64.len());
        input.extend_from_slice(self.protected_b64.as_bytes());
        input.push(b'.');
        input.extend_from_slice(self.payload_b64.as_bytes());
        input
    }

    /// The decoded signature bytes.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Verifies the signature with `key` using the header's `alg` (RFC 7515 §5.2).
    pub fn verify(&self, key: &Jwk) -> Result<(), JwsError> {
        key.verify(&self.header.alg, &self.signing_input(), &self.signature)
    }

    /// Verifies with the embedded `jwk` (newAccount §7.3, revocation by
    /// certificate key §7.6); a `kid` request is malformed here.
    pub fn verify_embedded(&self) -> Result<&Jwk, JwsError> {
        let jwk = self
            .header
            .jwk
            .as_ref()
            .ok_or_else(|| malformed("this request must be signed with an embedded \"jwk\""))?;
        self.verify(jwk)?;
        Ok(jwk)
    }

    /// The nonce, or `badNonce` when it is missing (RFC 8555 §6.5).
    pub fn require_nonce(&self) -> Result<&str, JwsError> {
        self.header
            .nonce
            .as_deref()
            .ok_or_else(|| JwsError::BadNonce("the JWS has no \"nonce\" header parameter".into()))
    }

    /// Deserializes the payload as JSON; an empty (POST-as-GET) or invalid
    /// payload is malformed. Unknown fields are ignored by the wire types.
    pub fn payload_json<T: DeserializeOwned>(&self) -> Result<T, JwsError> {
        if self.is_post_as_get() {
            return Err(malformed("expected a JSON payload, got POST-as-GET"));
        }
        serde_json::from_slice(&self.payload).map_err(|e| malformed(format!("payload: {e}")))
    }

    /// Parses and verifies the inner JWS of a keyChange request (RFC 8555
    /// §7.3.5), `self` being the outer JWS. Checks: the outer uses `kid`; the
    /// inner is a valid flattened JWS with a `jwk` (not `kid`) and no `nonce`;
    /// its `url` equals the outer `url`; its signature verifies with its own
    /// `jwk`; its payload is a [`KeyChange`] whose `account` equals the outer
    /// `kid`; the new key differs from `oldKey`.
    ///
    /// Left to the server: verifying the outer JWS with the account key,
    /// comparing `oldKey` with that key, and refusing a new key already
    /// bound to another account (409).
    pub fn parse_inner_keychange(&self) -> Result<InnerKeyChange, JwsError> {
        let outer_kid = self
            .header
            .kid
            .as_deref()
            .ok_or_else(|| malformed("the outer keyChange JWS must use \"kid\""))?;
        let inner_value: Value = self.payload_json()?;
        let inner = Jws::from_flattened(Flattened::from_value(&inner_value)?)?;
        let new_key = inner
            .header
            .jwk
            .clone()
            .ok_or_else(|| malformed("the inner keyChange JWS must have a \"jwk\""))?;
        if inner.header.nonce.is_some() {
            return Err(malformed(
                "the inner keyChange JWS must not have a \"nonce\"",
            ));
        }
        if inner.header.url != self.header.url {
            return Err(malformed("inner and outer keyChange \"url\" differ"));
        }
        inner.verify(&new_key)?;
        let key_change: KeyChange = inner.payload_json()?;
        if key_change.account != outer_kid {
            return Err(malformed(
                "keyChange \"account\" does not match the outer \"kid\"",
            ));
        }
        if key_change.old_key == new_key {
            return Err(malformed("the new key is the same as the old key"));
        }
        Ok(InnerKeyChange {
            new_key,
            key_change,
        })
    }
}

#[cfg(test)]
mod tests;
