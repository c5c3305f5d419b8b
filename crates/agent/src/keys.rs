//! Keys made on the device: the ACME account key and the certificate key,
//! and the CSR (RFC 2986) for the order's names. Private keys never leave
//! this module except as PEM written 0600 by [`crate::fsutil`].

use std::path::Path;

use acme_types::sign::{AccountKey, AccountKeyKind};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use crate::config::{AccountKeyType, KeyType};
use crate::error::{AgentError, Result};
use crate::fsutil;

/// File name of the account key inside the state dir.
pub const ACCOUNT_KEY_FILE: &str = "account.key";

/// Whether this build can generate RSA keys (only with the `aws-lc-rs`
/// feature: ring has no RSA key generation).
pub const RSA_KEYGEN: bool = cfg!(feature = "aws-lc-rs");

fn no_rsa(what: &str) -> AgentError {
    AgentError::Config(format!(
        "{what}: this build uses ring, which cannot generate RSA keys; \
         use p256/p384, or build fleetca-agent with --features aws-lc-rs"
    ))
}

/// Generates a certificate key of `kind`.
pub fn generate_cert_key(kind: KeyType) -> Result<KeyPair> {
    let r = match kind {
        KeyType::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 | KeyType::Rsa3072 => return generate_rsa(kind),
    };
    r.map_err(|e| AgentError::Key(format!("generating certificate key: {e}")))
}

#[cfg(feature = "aws-lc-rs")]
fn generate_rsa(kind: KeyType) -> Result<KeyPair> {
    let size = match kind {
        KeyType::Rsa3072 => rcgen::RsaKeySize::_3072,
        _ => rcgen::RsaKeySize::_2048,
    };
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        .map_err(|e| AgentError::Key(format!("generating certificate key: {e}")))
}

#[cfg(not(feature = "aws-lc-rs"))]
fn generate_rsa(_kind: KeyType) -> Result<KeyPair> {
    Err(no_rsa("--key-type rsa2048/rsa3072"))
}

/// Parses a PKCS#8 PEM certificate key (with the agent's PEM reader, not
/// rcgen's, so that one PEM codec is linked).
pub fn parse_cert_key(pem: &str) -> Result<KeyPair> {
    let der = pem_decode(pem, "PRIVATE KEY")
        .ok_or_else(|| AgentError::Key("certificate key: not a PKCS#8 PEM key".into()))?;
    KeyPair::try_from(der.as_slice()).map_err(|e| AgentError::Key(format!("certificate key: {e}")))
}

/// A certificate key as PKCS#8 PEM.
pub fn cert_key_pem(key: &KeyPair) -> String {
    pem_encode("PRIVATE KEY", &key.serialize_der())
}

/// A DER CSR for `names` signed by `key` (names go in subjectAltName; the
/// subject is empty, as RFC 8555 §7.4 allows).
pub fn build_csr(key: &KeyPair, names: &[String]) -> Result<Vec<u8>> {
    let mut params = CertificateParams::new(names.to_vec())
        .map_err(|e| AgentError::Config(format!("invalid domain name: {e}")))?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(key)
        .map_err(|e| AgentError::Key(format!("building CSR: {e}")))?;
    Ok(csr.der().to_vec())
}

fn parse_account_key(pem: &str) -> Option<AccountKey> {
    AccountKey::from_pkcs8_der(&pem_decode(pem, "PRIVATE KEY")?).ok()
}

/// The account key in `state_dir`, if there is a usable one (read-only).
pub fn read_account_key(state_dir: &Path) -> Option<AccountKey> {
    parse_account_key(&std::fs::read_to_string(state_dir.join(ACCOUNT_KEY_FILE)).ok()?)
}

/// Loads the account key from `state_dir`, or generates and stores one
/// (0600, atomic write). Returns the key and whether it is new. A key file
/// that does not parse cannot be repaired and would stop the agent for good:
/// it is moved aside (`account.key.corrupt`) and a new key (a new account)
/// is made.
pub fn load_or_create_account_key(
    state_dir: &Path,
    kind: AccountKeyType,
) -> Result<(AccountKey, bool)> {
    let path = state_dir.join(ACCOUNT_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(pem) => {
            if let Some(key) = parse_account_key(&pem) {
                return Ok((key, false));
            }
            let aside = state_dir.join("account.key.corrupt");
            crate::log::warn(format!(
                "{}: not a usable PKCS#8 key; moved to {} and making a new account",
                path.display(),
                aside.display()
            ));
            std::fs::rename(&path, &aside).map_err(|e| AgentError::io(&path, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AgentError::io(&path, e)),
    }
    let akind = match kind {
        AccountKeyType::P256 => AccountKeyKind::EcdsaP256,
        AccountKeyType::P384 => AccountKeyKind::EcdsaP384,
        AccountKeyType::Ed25519 => AccountKeyKind::Ed25519,
        AccountKeyType::Rsa2048 if !RSA_KEYGEN => return Err(no_rsa("--account-key-type rsa2048")),
        AccountKeyType::Rsa2048 => AccountKeyKind::Rsa2048,
    };
    let key = AccountKey::generate(akind)
        .map_err(|e| AgentError::Key(format!("generating account key: {e}")))?;
    fsutil::create_dir_private(state_dir)?;
    let pem = pem_encode("PRIVATE KEY", key.to_pkcs8_der());
    fsutil::write_atomic(&path, pem.as_bytes(), 0o600)?;
    Ok((key, true))
}

/// PEM-encodes `der` with `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64_std::encode_std;
    let b64 = encode_std(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block labelled `label`.
pub fn pem_decode(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64_std::decode_std(&b64)
}

/// All DER certificates in a PEM bundle, in order.
pub fn pem_certs(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = pem;
    let end = "-----END CERTIFICATE-----";
    while let Some(i) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(j) = rest[i..].find(end) else { break };
        if let Some(der) = pem_decode(&rest[i..i + j + end.len()], "CERTIFICATE") {
            out.push(der);
        }
        rest = &rest[i + j + end.len()..];
    }
    out
}

/// Standard base64 (RFC 4648 §4) for PEM, via the `acme-types` base64url
/// codec with the two alphabet differences mapped and padding handled here.
mod base64_std {
    pub(super) fn encode_std(der: &[u8]) -> String {
        let mut s: String = acme_types::b64::encode(der)
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        while !s.len().is_multiple_of(4) {
            s.push('=');
        }
        s
    }

    pub(super) fn decode_std(s: &str) -> Option<Vec<u8>> {
        let url: String = s
            .trim_end_matches('=')
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        acme_types::b64::decode(&url).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        for n in 0..70 {
            let data: Vec<u8> = (0..n as u8).collect();
            let pem = pem_encode("X", &data);
            assert_eq!(pem_decode(&pem, "X").unwrap(), data);
        }
    }

    #[test]
    fn csr_for_names() {
        let key = generate_cert_key(KeyType::P256).unwrap();
        let der = build_csr(&key, &["a.example".into(), "b.example".into()]).unwrap();
        assert!(der.len() > 100);
        let again = parse_cert_key(&key.serialize_pem()).unwrap();
        assert_eq!(again.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn ed25519_account_key_and_rsa_on_ring() {
        let dir = tempfile::tempdir().unwrap();
        let (k, _) = load_or_create_account_key(dir.path(), AccountKeyType::Ed25519).unwrap();
        assert_eq!(k.alg(), "EdDSA");
        if RSA_KEYGEN {
            let k = generate_cert_key(KeyType::Rsa2048).unwrap();
            assert!(build_csr(&k, &["rsa.example".into()]).is_ok());
        } else {
            let d2 = tempfile::tempdir().unwrap();
            let e = load_or_create_account_key(d2.path(), AccountKeyType::Rsa2048).unwrap_err();
            assert!(e.to_string().contains("ring"), "{e}");
            let e = generate_cert_key(KeyType::Rsa2048).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
        }
    }

    #[test]
    fn account_key_is_created_once_with_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (k1, new1) = load_or_create_account_key(dir.path(), AccountKeyType::P256).unwrap();
        let (k2, new2) = load_or_create_account_key(dir.path(), AccountKeyType::P256).unwrap();
        assert!(new1 && !new2);
        assert_eq!(k1.jwk(), k2.jwk());
        let mode = std::fs::metadata(dir.path().join(ACCOUNT_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
