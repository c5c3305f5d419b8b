//! Public JSON Web Keys (RFC 7517) for the key types ACME accounts use:
//! EC P-256/P-384 (RFC 7518 §6.2), RSA (RFC 7518 §6.3) and Ed25519 (RFC 8037 §2).
//!
//! A [`Jwk`] is only built from validated input, holds decoded bytes, and
//! compares by key material, so two JWKs that differ only in optional members
//! (`kid`, `use`, ...) are equal.

use der::asn1::{AnyRef, BitStringRef, UintRef};
use der::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use spki::{AlgorithmIdentifierRef, ObjectIdentifier, SubjectPublicKeyInfoRef};

use crate::b64;
use crate::crypto::{digest, signature};
use crate::jws::JwsError;

/// JWS algorithms this crate verifies and signs with (RFC 8555 §6.2 requires
/// ES256 and EdDSA support; RS256 and ES384 are common in clients).
pub const SUPPORTED_ALGORITHMS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// Smallest RSA modulus accepted, in bits (CA/B Forum BR §6.1.5).
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const RSA_MAX_BITS: usize = 8192;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Members that only a private or symmetric key carries (RFC 7518 §6.2.2,
/// §6.3.2, §6.4; RFC 8037 §2). A client that sends one has leaked its key.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a JWK or SubjectPublicKeyInfo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// The JWK is not a JSON object (RFC 7517 §4).
    #[error("JWK must be a JSON object")]
    NotAnObject,
    /// A required member is absent (RFC 7517 §4.1, RFC 7518 §6).
    #[error("JWK is missing the {0:?} member")]
    MissingMember(&'static str),
    /// A member is not a string or not strict base64url.
    #[error("JWK member {member:?} is invalid: {reason}")]
    InvalidMember {
        /// The member name.
        member: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The JWK carries private key material.
    #[error("JWK contains the private key member {0:?}; send only the public key")]
    PrivateMember(String),
    /// A `kty` other than EC, RSA or OKP.
    #[error("unsupported JWK key type {0:?}")]
    UnsupportedKeyType(String),
    /// A curve other than P-256, P-384 or Ed25519.
    #[error("unsupported curve {0:?}")]
    UnsupportedCurve(String),
    /// A coordinate or key of the wrong length (RFC 7518 §6.2.1.2: full size).
    #[error("JWK member {member:?} must be {expected} bytes, got {actual}")]
    InvalidLength {
        /// The member name.
        member: &'static str,
        /// The required length.
        expected: usize,
        /// The decoded length.
        actual: usize,
    },
    /// The point is not on the curve or the key is otherwise not loadable.
    #[error("public key is not a valid point on its curve")]
    InvalidPoint,
    /// An integer with leading zero octets (RFC 7518 §2 base64urlUInt).
    #[error("JWK member {0:?} has leading zero octets")]
    NonMinimalInteger(&'static str),
    /// An RSA modulus outside the accepted size or not odd.
    #[error("RSA modulus of {0} bits is not accepted (need {RSA_MIN_BITS}..={RSA_MAX_BITS}, odd)")]
    RsaModulus(usize),
    /// An RSA public exponent that is even, below 3 or above 2^33-1.
    #[error("RSA public exponent is not accepted (need odd, >= 3, < 2^33)")]
    RsaExponent,
    /// The SubjectPublicKeyInfo DER could not be parsed or encoded.
    #[error("SubjectPublicKeyInfo: {0}")]
    Spki(String),
}

/// An elliptic curve for ECDSA JWKs (RFC 7518 §6.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// NIST P-256, used with ES256.
    P256,
    /// NIST P-384, used with ES384.
    P384,
}

impl EcCurve {
    /// The `crv` value (RFC 7518 §6.2.1.1).
    pub fn name(&self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    /// The coordinate length in bytes (RFC 7518 §6.2.1.2).
    pub fn coordinate_len(&self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    /// The JWS algorithm that goes with this curve (RFC 7518 §3.4).
    pub fn alg(&self) -> &'static str {
        match self {
            Self::P256 => "ES256",
            Self::P384 => "ES384",
        }
    }

    fn verification(&self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Self::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        }
    }

    fn oid(&self) -> ObjectIdentifier {
        match self {
            Self::P256 => OID_P256,
            Self::P384 => OID_P384,
        }
    }
}

/// An Octet Key Pair curve (RFC 8037 §2). Only Ed25519 is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OkpCurve {
    /// Ed25519, used with EdDSA (RFC 8037 §3.1).
    Ed25519,
}

impl OkpCurve {
    /// The `crv` value (RFC 8037 §2).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ed25519 => "Ed25519",
        }
    }
}

/// A public JWK. Construct it with [`Jwk::from_json`], [`Jwk::from_spki_der`]
/// or from an [`crate::sign::AccountKey`]; those validate the key. Values
/// built by hand are checked again by [`Jwk::verify`], which never panics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Jwk {
    /// `kty: EC` (RFC 7518 §6.2): affine coordinates, big-endian, full length.
    Ec {
        /// The curve.
        crv: EcCurve,
        /// The x coordinate.
        x: Vec<u8>,
        /// The y coordinate.
        y: Vec<u8>,
    },
    /// `kty: RSA` (RFC 7518 §6.3): modulus and exponent, big-endian, minimal.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// `kty: OKP` (RFC 8037 §2).
    Okp {
        /// The curve.
        crv: OkpCurve,
        /// The public key.
        x: Vec<u8>,
    },
}

fn b64_member(obj: &Map<String, Value>, member: &'static str) -> Result<Vec<u8>, JwkError> {
    let s = obj
        .get(member)
        .ok_or(JwkError::MissingMember(member))?
        .as_str()
        .ok_or_else(|| JwkError::InvalidMember {
            member,
            reason: "not a string".into(),
        })?;
    b64::decode(s).map_err(|e| JwkError::InvalidMember {
        member,
        reason: e.to_string(),
    })
}

fn str_member<'a>(obj: &'a Map<String, Value>, member: &'static str) -> Result<&'a str, JwkError> {
    obj.get(member)
        .ok_or(JwkError::MissingMember(member))?
        .as_str()
        .ok_or_else(|| JwkError::InvalidMember {
            member,
            reason: "not a string".into(),
        })
}

/// Bit length of a big-endian unsigned integer without leading zeros.
fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// RSAPublicKey (RFC 8017 §A.1.1).
#[derive(der::Sequence)]
struct RsaPublicKeyDer<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

impl Jwk {
    /// Parses and validates a public JWK (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2).
    ///
    /// Refuses private members (`d`, `p`, `q`, ...), coordinates that are not
    /// full length (RFC 7518 §6.2.1.2), points not on the curve, RSA moduli
    /// outside 2048..=8192 bits, and exponents that are even or below 3.
    /// Optional members such as `kid`, `use` or `alg` are ignored.
    pub fn from_json(value: &Value) -> Result<Jwk, JwkError> {
        let obj = value.as_object().ok_or(JwkError::NotAnObject)?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(JwkError::PrivateMember((*m).to_owned()));
        }
        let jwk = match str_member(obj, "kty")? {
            "EC" => {
                let crv = match str_member(obj, "crv")? {
                    "P-256" => EcCurve::P256,
                    "P-384" => EcCurve::P384,
                    other => return Err(JwkError::UnsupportedCurve(other.to_owned())),
                };
                Jwk::Ec {
                    crv,
                    x: b64_member(obj, "x")?,
                    y: b64_member(obj, "y")?,
                }
            }
            "RSA" => Jwk::Rsa {
                n: b64_member(obj, "n")?,
                e: b64_member(obj, "e")?,
            },
            "OKP" => {
                let crv = match str_member(obj, "crv")? {
                    "Ed25519" => OkpCurve::Ed25519,
                    other => return Err(JwkError::UnsupportedCurve(other.to_owned())),
                };
                Jwk::Okp {
                    crv,
                    x: b64_member(obj, "x")?,
                }
            }
            other => return Err(JwkError::UnsupportedKeyType(other.to_owned())),
        };
        jwk.validate()?;
        Ok(jwk)
    }

    /// Checks the key material: lengths, curve membership, RSA size and exponent.
    pub fn validate(&self) -> Result<(), JwkError> {
        match self {
            Jwk::Ec { crv, x, y } => {
                let len = crv.coordinate_len();
                for (member, v) in [("x", x), ("y", y)] {
                    if v.len() != len {
                        return Err(JwkError::InvalidLength {
                            member,
                            expected: len,
                            actual: v.len(),
                        });
                    }
                }
                if !crate::crypto::public_key_is_valid(crv.verification(), &self.ec_point()) {
                    return Err(JwkError::InvalidPoint);
                }
            }
            Jwk::Rsa { n, e } => {
                for (member, v) in [("n", n), ("e", e)] {
                    match v.first() {
                        None => return Err(JwkError::MissingMember(member)),
                        Some(0) => return Err(JwkError::NonMinimalInteger(member)),
                        Some(_) => {}
                    }
                }
                let bits = bit_len(n);
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits)
                    || n.last().is_some_and(|b| b & 1 == 0)
                {
                    return Err(JwkError::RsaModulus(bits));
                }
                if e.len() > 5 {
                    return Err(JwkError::RsaExponent);
                }
                let e_val = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
                if e_val < 3 || e_val & 1 == 0 || e_val >= 1 << 33 {
                    return Err(JwkError::RsaExponent);
                }
            }
            Jwk::Okp {
                crv: OkpCurve::Ed25519,
                x,
            } => {
                if x.len() != 32 {
                    return Err(JwkError::InvalidLength {
                        member: "x",
                        expected: 32,
                        actual: x.len(),
                    });
                }
                if !crate::crypto::public_key_is_valid(&signature::ED25519, x) {
                    return Err(JwkError::InvalidPoint);
                }
            }
        }
        Ok(())
    }

    /// The uncompressed SEC1 point `04 || x || y` (empty for non-EC keys).
    fn ec_point(&self) -> Vec<u8> {
        match self {
            Jwk::Ec { x, y, .. } => {
                let mut p = Vec::with_capacity(1 + x.len() + y.len());
                p.push(0x04);
                p.extend_from_slice(x);
                p.extend_from_slice(y);
                p
            }
            _ => Vec::new(),
        }
    }

    /// The JWS algorithm this crate uses with this key (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn alg(&self) -> &'static str {
        match self {
            Jwk::Ec { crv, .. } => crv.alg(),
            Jwk::Rsa { .. } => "RS256",
            Jwk::Okp { .. } => "EdDSA",
        }
    }

    /// The required members as `(name, value)` in lexicographic order
    /// (RFC 7638 §3.2).
    fn members(&self) -> Vec<(&'static str, String)> {
        match self {
            Jwk::Ec { crv, x, y } => vec![
                ("crv", crv.name().to_owned()),
                ("kty", "EC".to_owned()),
                ("x", b64::encode(x)),
                ("y", b64::encode(y)),
            ],
            Jwk::Rsa { n, e } => vec![
                ("e", b64::encode(e)),
                ("kty", "RSA".to_owned()),
                ("n", b64::encode(n)),
            ],
            Jwk::Okp { crv, x } => vec![
                ("crv", crv.name().to_owned()),
                ("kty", "OKP".to_owned()),
                ("x", b64::encode(x)),
            ],
        }
    }

    /// The public JWK with only the required members, inserted in
    /// lexicographic order (RFC 7638 §3.2).
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (k, v) in self.members() {
            map.insert(k.to_owned(), Value::String(v));
        }
        Value::Object(map)
    }

    /// The RFC 7638 §3 canonical form: required members only, sorted, no
    /// whitespace. Built by hand so it does not depend on serde_json's map
    /// ordering feature. Member values are base64url or fixed names, which
    /// need no JSON escaping.
    pub fn canonical_json(&self) -> String {
        let body: Vec<String> = self
            .members()
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    /// The JWK SHA-256 thumbprint, base64url (RFC 7638 §3); ACME uses it in
    /// key authorizations (RFC 8555 §8.1).
    pub fn thumbprint(&self) -> String {
        b64::encode(digest::digest(&digest::SHA256, self.canonical_json().as_bytes()).as_ref())
    }

    /// Reads a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) for P-256/P-384
    /// (RFC 5480), RSA (RFC 3279 §2.3.1) or Ed25519 (RFC 8410), so a JWS key
    /// can be compared with a certificate's key (RFC 8555 §7.6). Parsed with
    /// the `der`/`spki` crates; the result is validated like [`Jwk::from_json`].
    pub fn from_spki_der(der_bytes: &[u8]) -> Result<Jwk, JwkError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der_bytes)
            .map_err(|e| JwkError::Spki(e.to_string()))?;
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| JwkError::Spki("subjectPublicKey has unused bits".into()))?;
        let params = spki.algorithm.parameters;
        let oid = spki.algorithm.oid;
        let jwk = if oid == OID_EC_PUBLIC_KEY {
            let curve_oid = params
                .ok_or_else(|| JwkError::Spki("EC key without curve parameters".into()))?
                .decode_as::<ObjectIdentifier>()
                .map_err(|e| JwkError::Spki(e.to_string()))?;
            let crv = if curve_oid == OID_P256 {
                EcCurve::P256
            } else if curve_oid == OID_P384 {
                EcCurve::P384
            } else {
                return Err(JwkError::UnsupportedCurve(curve_oid.to_string()));
            };
            let len = crv.coordinate_len();
            match key.split_first() {
                Some((0x04, rest)) if rest.len() == 2 * len => Jwk::Ec {
                    crv,
                    x: rest[..len].to_vec(),
                    y: rest[len..].to_vec(),
                },
                _ => {
                    return Err(JwkError::Spki(
                        "EC point must be uncompressed and full length".into(),
                    ))
                }
            }
        } else if oid == OID_RSA_ENCRYPTION {
            // RFC 3279 §2.3.1: parameters MUST be NULL.
            if !params.is_some_and(|p| p.is_null()) {
                return Err(JwkError::Spki(
                    "rsaEncryption parameters must be NULL".into(),
                ));
            }
            let rsa = RsaPublicKeyDer::from_der(key).map_err(|e| JwkError::Spki(e.to_string()))?;
            Jwk::Rsa {
                n: rsa.modulus.as_bytes().to_vec(),
                e: rsa.public_exponent.as_bytes().to_vec(),
            }
        } else if oid == OID_ED25519 {
            // RFC 8410 §3: parameters MUST be absent.
            if params.is_some() {
                return Err(JwkError::Spki("Ed25519 parameters must be absent".into()));
            }
            Jwk::Okp {
                crv: OkpCurve::Ed25519,
                x: key.to_vec(),
            }
        } else {
            return Err(JwkError::UnsupportedKeyType(oid.to_string()));
        };
        jwk.validate()?;
        Ok(jwk)
    }

    /// Encodes the key as DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7, with the
    /// algorithm identifiers of RFC 5480, RFC 3279 and RFC 8410) via `der`.
    pub fn spki_der(&self) -> Result<Vec<u8>, JwkError> {
        let spki_err = |e: der::Error| JwkError::Spki(e.to_string());
        let point;
        let rsa_der;
        let curve;
        let (algorithm, key): (AlgorithmIdentifierRef<'_>, &[u8]) = match self {
            Jwk::Ec { crv, .. } => {
                point = self.ec_point();
                curve = crv.oid();
                (
                    AlgorithmIdentifierRef {
                        oid: OID_EC_PUBLIC_KEY,
                        parameters: Some(AnyRef::from(&curve)),
                    },
                    &point,
                )
            }
            Jwk::Rsa { n, e } => {
                rsa_der = RsaPublicKeyDer {
                    modulus: UintRef::new(n).map_err(spki_err)?,
                    public_exponent: UintRef::new(e).map_err(spki_err)?,
                }
                .to_der()
                .map_err(spki_err)?;
                (
                    AlgorithmIdentifierRef {
                        oid: OID_RSA_ENCRYPTION,
                        parameters: Some(AnyRef::NULL),
                    },
                    &rsa_der,
                )
            }
            Jwk::Okp { x, .. } => (
                AlgorithmIdentifierRef {
                    oid: OID_ED25519,
                    parameters: None,
                },
                x,
            ),
        };
        SubjectPublicKeyInfoRef {
            algorithm,
            subject_public_key: BitStringRef::from_bytes(key).map_err(spki_err)?,
        }
        .to_der()
        .map_err(spki_err)
    }

    /// Verifies a JWS signature (RFC 7515 §5.2) made with `alg` over
    /// `signing_input`: ES256 with P-256 and ES384 with P-384 (raw `r || s`,
    /// RFC 7518 §3.4), RS256 with RSA (PKCS#1 v1.5, RFC 7518 §3.3), EdDSA with
    /// Ed25519 (RFC 8037 §3.1). Any other algorithm, or one that does not
    /// match the key, is [`JwsError::BadSignatureAlgorithm`] (RFC 8555 §6.2).
    pub fn verify(&self, alg: &str, signing_input: &[u8], sig: &[u8]) -> Result<(), JwsError> {
        let result = match (self, alg) {
            (Jwk::Ec { crv, .. }, "ES256" | "ES384") if crv.alg() == alg => {
                if sig.len() != 2 * crv.coordinate_len() {
                    return Err(JwsError::BadSignature);
                }
                signature::UnparsedPublicKey::new(crv.verification(), self.ec_point())
                    .verify(signing_input, sig)
            }
            (Jwk::Rsa { n, e }, "RS256") => signature::RsaPublicKeyComponents { n, e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                signing_input,
                sig,
            ),
            (
                Jwk::Okp {
                    crv: OkpCurve::Ed25519,
                    x,
                },
                "EdDSA",
            ) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, x).verify(signing_input, sig)
            }
            _ => {
                return Err(JwsError::BadSignatureAlgorithm(format!(
                    "algorithm {alg:?} is not supported with a {} key (supported: {})",
                    self.describe(),
                    SUPPORTED_ALGORITHMS.join(", ")
                )))
            }
        };
        result.map_err(|_| JwsError::BadSignature)
    }

    /// A short description like `EC P-256` for messages.
    pub fn describe(&self) -> String {
        match self {
            Jwk::Ec { crv, .. } => format!("EC {}", crv.name()),
            Jwk::Rsa { n, .. } => format!("RSA-{}", bit_len(n)),
            Jwk::Okp { crv, .. } => format!("OKP {}", crv.name()),
        }
    }
}

impl Serialize for Jwk {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Jwk::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests;
