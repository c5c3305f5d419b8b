//! device-attest-01 (draft-ietf-acme-device-attest §5): the device proves its
//! manufacturer-assigned identity (`permanent-identifier`, §3) by signing the challenge's key
//! authorization with its attestation key, the key its birth certificate (802.1AR IDevID
//! style) certifies, and sending a WebAuthn `packed` attestation object (WebAuthn §8.2, with
//! `x5c`) as `{"attObj": base64url(CBOR)}`.
//!
//! Per §5 the key authorization *is* _attToBeSigned_ (it replaces WebAuthn's
//! `authenticatorData || clientDataHash`), so `sig` covers exactly its bytes and carries the
//! account-key thumbprint, binding the attestation to this challenge and account; `authData`
//! "SHOULD be omitted" and is.

use std::path::Path;

use x509_parser::prelude::*;

use crate::cbor::Encoder;
use crate::error::{AgentError, Result};
use crate::keys;

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs::{rand, signature};
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring::{rand, signature};

/// The ACME challenge type.
pub const DEVICE_ATTEST_01: &str = "device-attest-01";
/// The ACME identifier type it proves.
pub const PERMANENT_IDENTIFIER: &str = "permanent-identifier";

/// OID of the X.520 `serialNumber` subject attribute.
const OID_SERIAL_NUMBER: &str = "2.5.4.5";
/// OID of the RFC 4043 PermanentIdentifier otherName (`id-on-permanentIdentifier`).
const OID_PERMANENT_IDENTIFIER: &str = "1.3.6.1.5.5.7.8.3";

enum Key {
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

/// The device's attestation key, its certificate chain and the identifier it attests.
pub struct DeviceAttestation {
    key: Key,
    /// COSE algorithm of `sig` (IANA COSE Algorithms: -7 ES256, -35 ES384, -8 EdDSA, -257 RS256).
    alg: i64,
    /// Birth certificate first, then its issuers (WebAuthn §8.2 `x5c`).
    x5c: Vec<Vec<u8>>,
    permanent_id: String,
}

impl std::fmt::Debug for DeviceAttestation {
    /// Never shows key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAttestation")
            .field("alg", &self.alg)
            .field("permanent_id", &self.permanent_id)
            .field("chain_len", &self.x5c.len())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "aws-lc-rs")]
fn ecdsa_from_pkcs8(
    alg: &'static signature::EcdsaSigningAlgorithm,
    der: &[u8],
) -> Option<signature::EcdsaKeyPair> {
    signature::EcdsaKeyPair::from_pkcs8(alg, der).ok()
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn ecdsa_from_pkcs8(
    alg: &'static signature::EcdsaSigningAlgorithm,
    der: &[u8],
) -> Option<signature::EcdsaKeyPair> {
    signature::EcdsaKeyPair::from_pkcs8(alg, der, &rand::SystemRandom::new()).ok()
}

#[cfg(feature = "aws-lc-rs")]
fn rsa_signature_len(pair: &signature::RsaKeyPair) -> usize {
    pair.public_modulus_len()
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn rsa_signature_len(pair: &signature::RsaKeyPair) -> usize {
    pair.public().modulus_len()
}

impl DeviceAttestation {
    /// Loads the attestation key (PKCS#8 PEM) and the birth certificate chain (PEM, leaf
    /// first). The key must be the leaf's. `permanent_id` overrides the identifier read from
    /// the leaf (see [`attested_identifiers`]).
    pub fn load(
        key_file: &Path,
        cert_file: &Path,
        permanent_id: Option<&str>,
    ) -> Result<DeviceAttestation> {
        let key_pem = std::fs::read_to_string(key_file).map_err(|e| AgentError::io(key_file, e))?;
        let der = keys::pem_decode(&key_pem, "PRIVATE KEY").ok_or_else(|| {
            AgentError::Key(format!("{}: not a PKCS#8 PEM key", key_file.display()))
        })?;
        let cert_pem =
            std::fs::read_to_string(cert_file).map_err(|e| AgentError::io(cert_file, e))?;
        let x5c = keys::pem_certs(&cert_pem);
        let leaf = x5c.first().ok_or_else(|| {
            AgentError::Key(format!("{}: no PEM certificate", cert_file.display()))
        })?;
        let (_, cert) = X509Certificate::from_der(leaf)
            .map_err(|e| AgentError::Key(format!("{}: certificate: {e}", cert_file.display())))?;
        let (key, alg, public) = parse_key(&der).ok_or_else(|| {
            AgentError::Key(format!(
                "{}: unsupported attestation key (P-256, P-384, Ed25519 or RSA PKCS#8)",
                key_file.display()
            ))
        })?;
        if public != cert.public_key().subject_public_key.data.as_ref() {
            return Err(AgentError::Key(format!(
                "{} is not the key of the certificate in {}",
                key_file.display(),
                cert_file.display()
            )));
        }
        let attested = attested_identifiers(&cert);
        let permanent_id = match permanent_id {
            Some(p) => {
                if !attested.iter().any(|a| a == p) {
                    crate::log::warn(format!(
                        "--permanent-id {p:?} is not in {} (it attests {attested:?}); the server \
                         will likely refuse the attestation",
                        cert_file.display()
                    ));
                }
                p.to_string()
            }
            None => attested.into_iter().next().ok_or_else(|| {
                AgentError::Config(format!(
                    "{} names no device serial (no PermanentIdentifier, no subject \
                     serialNumber); pass --permanent-id",
                    cert_file.display()
                ))
            })?,
        };
        Ok(DeviceAttestation {
            key,
            alg,
            x5c,
            permanent_id,
        })
    }

    /// The `permanent-identifier` value this device orders (draft §3.1).
    pub fn permanent_id(&self) -> &str {
        &self.permanent_id
    }

    /// The CBOR attestation object for a challenge: `{"fmt": "packed", "attStmt": {"alg",
    /// "sig", "x5c"}}`, keys in CTAP2 canonical order, `sig` over `key_authorization`.
    pub fn attestation_object(&self, key_authorization: &str) -> Result<Vec<u8>> {
        let sig = self.sign(key_authorization.as_bytes())?;
        let mut e = Encoder::new();
        e.map(2).text("fmt").text("packed").text("attStmt").map(3);
        e.text("alg").int(self.alg);
        e.text("sig").bytes(&sig);
        e.text("x5c").array(self.x5c.len());
        for c in &self.x5c {
            e.bytes(c);
        }
        Ok(e.into_bytes())
    }

    /// The challenge response payload: `{"attObj": base64url(attestation object)}`.
    pub fn response(&self, key_authorization: &str) -> Result<serde_json::Value> {
        let obj = self.attestation_object(key_authorization)?;
        Ok(serde_json::json!({ "attObj": acme_types::b64::encode(&obj) }))
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let rng = rand::SystemRandom::new();
        let failed = || AgentError::Key("signing with the attestation key failed".into());
        match &self.key {
            Key::Ecdsa(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed()),
            Key::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Key::Rsa(k) => {
                let mut sig = vec![0u8; rsa_signature_len(k)];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| failed())?;
                Ok(sig)
            }
        }
    }
}

/// The key, its COSE algorithm and its public key as it appears in a SubjectPublicKeyInfo.
fn parse_key(der: &[u8]) -> Option<(Key, i64, Vec<u8>)> {
    use signature::KeyPair;
    // WebAuthn §8.2: ECDSA signatures in a packed statement are ASN.1 DER.
    for (alg, cose) in [
        (&signature::ECDSA_P256_SHA256_ASN1_SIGNING, -7),
        (&signature::ECDSA_P384_SHA384_ASN1_SIGNING, -35),
    ] {
        if let Some(k) = ecdsa_from_pkcs8(alg, der) {
            let public = k.public_key().as_ref().to_vec();
            return Some((Key::Ecdsa(k), cose, public));
        }
    }
    if let Ok(k) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
        let public = k.public_key().as_ref().to_vec();
        return Some((Key::Ed25519(k), -8, public));
    }
    if let Ok(k) = signature::RsaKeyPair::from_pkcs8(der) {
        let public = k.public_key().as_ref().to_vec();
        return Some((Key::Rsa(k), -257, public));
    }
    None
}

/// The device identifiers a birth certificate attests, preferred first: the `identifierValue`
/// (with `/assigner`) of RFC 4043 PermanentIdentifier otherNames in subjectAltName, the form
/// draft-ietf-acme-device-attest §3.2 uses, then subject `serialNumber` attributes (802.1AR
/// IDevIDs carry the serial there). These are the places the fleetca server reads too.
pub fn attested_identifiers(leaf: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for gn in &san.value.general_names {
            if let GeneralName::OtherName(oid, raw) = gn {
                if oid.to_id_string() == OID_PERMANENT_IDENTIFIER {
                    out.extend(parse_permanent_identifier(raw));
                }
            }
        }
    }
    for attr in leaf.subject().iter_attributes() {
        if attr.attr_type().to_id_string() == OID_SERIAL_NUMBER {
            if let Ok(s) = attr.as_str() {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// `PermanentIdentifier ::= SEQUENCE { identifierValue UTF8String OPTIONAL, assigner OBJECT
/// IDENTIFIER OPTIONAL }` (RFC 4043 §2), possibly inside its `[0] EXPLICIT` wrapper, as
/// `value[/assigner]`.
fn parse_permanent_identifier(raw: &[u8]) -> Option<String> {
    use x509_parser::der_parser::der::{parse_der, DerObjectContent};
    let (_, outer) = parse_der(raw).ok()?;
    let items = match &outer.content {
        DerObjectContent::Sequence(items) => items.clone(),
        DerObjectContent::Unknown(any) => match parse_der(any.data).ok()?.1.content {
            DerObjectContent::Sequence(items) => items,
            _ => return None,
        },
        _ => return None,
    };
    let mut value = None;
    let mut assigner = None;
    for item in &items {
        match &item.content {
            DerObjectContent::UTF8String(s) => value = Some(s.to_string()),
            DerObjectContent::OID(o) => assigner = Some(o.to_id_string()),
            _ => {}
        }
    }
    let v = value?;
    Some(match assigner {
        Some(a) => format!("{v}/{a}"),
        None => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::value::Value;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn get<'a>(m: &'a [(Value, Value)], k: &str) -> &'a Value {
        &m.iter()
            .find(|(key, _)| key == &Value::Text(k.into()))
            .unwrap_or_else(|| panic!("no {k}"))
            .1
    }

    /// A self-issued birth certificate with subject serialNumber `serial`.
    fn birth(alg: &'static rcgen::SignatureAlgorithm, serial: &str) -> (KeyPair, String) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "router");
        p.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 5]), serial);
        let cert = p.self_signed(&key).unwrap();
        (key, cert.pem())
    }

    #[test]
    fn packed_object_signs_the_key_authorization() {
        let dir = tempfile::tempdir().unwrap();
        for (alg, cose, verify) in [
            (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                -7,
                &signature::ECDSA_P256_SHA256_ASN1 as &dyn signature::VerificationAlgorithm,
            ),
            (
                &rcgen::PKCS_ECDSA_P384_SHA384,
                -35,
                &signature::ECDSA_P384_SHA384_ASN1,
            ),
            (&rcgen::PKCS_ED25519, -8, &signature::ED25519),
        ] {
            let (key, cert_pem) = birth(alg, "SN-42");
            let kf = write(dir.path(), "key.pem", &key.serialize_pem());
            let cf = write(dir.path(), "cert.pem", &cert_pem);
            let dev = DeviceAttestation::load(&kf, &cf, None).unwrap();
            assert_eq!(dev.permanent_id(), "SN-42");
            let ka = "token.thumbprint";
            let obj = dev.attestation_object(ka).unwrap();
            let Value::Map(m) = ciborium::de::from_reader::<Value, _>(obj.as_slice()).unwrap()
            else {
                panic!("not a map")
            };
            assert_eq!(m.len(), 2, "fmt and attStmt only: authData is omitted");
            assert_eq!(get(&m, "fmt"), &Value::Text("packed".into()));
            let Value::Map(stmt) = get(&m, "attStmt") else {
                panic!("attStmt")
            };
            assert_eq!(get(stmt, "alg"), &Value::Integer(cose.into()));
            let Value::Array(x5c) = get(stmt, "x5c") else {
                panic!("x5c")
            };
            let leaf_der = keys::pem_certs(&cert_pem).remove(0);
            assert_eq!(x5c, &vec![Value::Bytes(leaf_der)]);
            let Value::Bytes(sig) = get(stmt, "sig") else {
                panic!("sig")
            };
            signature::UnparsedPublicKey::new(verify, key.public_key_raw())
                .verify(ka.as_bytes(), sig)
                .expect("sig verifies over the key authorization");
            let resp = dev.response(ka).unwrap();
            assert!(resp["attObj"].as_str().is_some_and(|s| !s.contains('=')));
        }
    }

    #[test]
    fn mismatched_key_and_missing_serial_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, cert_pem) = birth(&rcgen::PKCS_ECDSA_P256_SHA256, "SN-1");
        let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let kf = write(dir.path(), "key.pem", &other.serialize_pem());
        let cf = write(dir.path(), "cert.pem", &cert_pem);
        let e = DeviceAttestation::load(&kf, &cf, None).unwrap_err();
        assert!(e.to_string().contains("is not the key"), "{e}");

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "no serial");
        let cert = p.self_signed(&key).unwrap();
        let kf = write(dir.path(), "key.pem", &key.serialize_pem());
        let cf = write(dir.path(), "cert.pem", &cert.pem());
        let e = DeviceAttestation::load(&kf, &cf, None).unwrap_err();
        assert!(e.to_string().contains("--permanent-id"), "{e}");
        let dev = DeviceAttestation::load(&kf, &cf, Some("SN-9")).unwrap();
        assert_eq!(dev.permanent_id(), "SN-9");
    }
}
