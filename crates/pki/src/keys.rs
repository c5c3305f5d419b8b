//! CA key generation and key files (PKCS#8, RFC 5958; encrypted with PBES2, RFC 8018 §6.2).
//!
//! Key sizes and curves follow BR §6.1.5: RSA moduli of at least 2048 bits, ECDSA on
//! P-256 or P-384.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pkcs8::der::Decode;
use pkcs8::pkcs5::{pbes2, scrypt};
use pkcs8::{EncryptedPrivateKeyInfoRef, LineEnding, PrivateKeyInfoRef};
use rcgen::{KeyPair, RsaKeySize};

use crate::PkiError;

/// The key types fleetca generates and accepts (BR §6.1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// ECDSA on NIST P-256, signing with SHA-256.
    EcdsaP256,
    /// ECDSA on NIST P-384, signing with SHA-384.
    EcdsaP384,
    /// RSA with a 2048-bit modulus, PKCS#1 v1.5 with SHA-256.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
}

impl KeyType {
    /// All key types, in preference order.
    pub const ALL: [KeyType; 5] = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ];

    /// The configuration spelling (`p256`, `p384`, `rsa2048`, `rsa3072`, `rsa4096`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "p256",
            KeyType::EcdsaP384 => "p384",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
        }
    }

    /// True for the RSA types.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    /// The RSA modulus size in bits, if RSA.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| PkiError::UnknownKeyType(s.to_string()))
    }
}

/// Generates a new key pair with aws-lc-rs (RSA through `aws_lc_rs::rsa::KeyPair::generate`,
/// handed to rcgen as PKCS#8).
pub fn generate(key_type: KeyType) -> Result<KeyPair, PkiError> {
    let generated = match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
    };
    generated.map_err(PkiError::rcgen("key generation failed"))
}

/// The [`KeyType`] of an rcgen key pair, if it is one fleetca uses.
pub fn key_type_of(key: &KeyPair) -> Option<KeyType> {
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Some(KeyType::EcdsaP256)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        Some(KeyType::EcdsaP384)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        Some(KeyType::Rsa2048)
    } else {
        None
    }
}

/// PEM label of an unencrypted PKCS#8 key (RFC 7468 §10).
const LABEL_PLAIN: &str = "PRIVATE KEY";
/// PEM label of an encrypted PKCS#8 key (RFC 7468 §11).
const LABEL_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";

/// Writes `key` as PKCS#8 PEM to `path` with mode 0600, atomically and without ever
/// replacing an existing file: a temporary file in the same directory (created 0600) is
/// written and fsynced, hard-linked to `path` (which fails if `path` exists), unlinked, and
/// the directory is fsynced.
///
/// With a passphrase the key is an `ENCRYPTED PRIVATE KEY` (RFC 5958 §3) using PBES2 with
/// scrypt (log2 N = 14, r = 8, p = 1: 16 MiB, inside OpenSSL 3's 32 MiB scrypt memory limit)
/// and AES-256-CBC, so `openssl pkey` reads it.
pub fn write_key_pem(
    path: &Path,
    key: &KeyPair,
    passphrase: Option<&[u8]>,
) -> Result<(), PkiError> {
    if path.exists() {
        return Err(PkiError::KeyExists(path.to_path_buf()));
    }
    let pem = match passphrase {
        None => key.serialize_pem(),
        Some(pass) => {
            let info = PrivateKeyInfoRef::from_der(key.serialized_der())
                .map_err(|e| PkiError::Pkcs8(pkcs8::Error::Asn1(e)))?;
            let mut salt = [0u8; 16];
            let mut iv = [0u8; 16];
            fill_random(&mut salt)?;
            fill_random(&mut iv)?;
            let kdf = scrypt::Params::new(14, 8, 1)
                .map_err(|e| PkiError::UnsupportedAlgorithm(format!("scrypt parameters: {e}")))?;
            let params = pbes2::Parameters::generate_scrypt_aes256cbc(kdf, &salt, iv)
                .map_err(|e| PkiError::Pkcs8(pkcs8::Error::EncryptedPrivateKey(e)))?;
            let doc = info
                .encrypt_with_params(params, pass)
                .map_err(PkiError::Pkcs8)?;
            doc.to_pem(LABEL_ENCRYPTED, LineEnding::LF)
                .map_err(|e| PkiError::Pkcs8(pkcs8::Error::Asn1(e)))?
                .to_string()
        }
    };
    write_new_file_0600(path, pem.as_bytes())
}

fn fill_random(buf: &mut [u8]) -> Result<(), PkiError> {
    aws_lc_rs::rand::fill(buf).map_err(|e| PkiError::Signing(Box::new(e)))
}

fn write_new_file_0600(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let io = |context: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| PkiError::Io {
            context,
            path,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| PkiError::KeyFormat {
            path: path.to_path_buf(),
            reason: "not a file path".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let mut suffix = [0u8; 8];
    fill_random(&mut suffix)?;
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}",
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let result = (|| -> Result<(), PkiError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("cannot create", &tmp))?;
        f.write_all(contents).map_err(io("cannot write", &tmp))?;
        f.sync_all().map_err(io("cannot fsync", &tmp))?;
        drop(f);
        // link(2) fails with EEXIST instead of replacing, unlike rename(2).
        fs::hard_link(&tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                PkiError::KeyExists(path.to_path_buf())
            } else {
                io("cannot create", path)(e)
            }
        })?;
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    result?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("cannot fsync directory", &dir))?;
    Ok(())
}

/// Reads a PKCS#8 PEM key (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with `passphrase`).
///
/// Errors say whether the file is encrypted but no passphrase was given
/// ([`PkiError::KeyEncrypted`]), or the passphrase is wrong ([`PkiError::WrongPassphrase`]).
pub fn load_key_pem(path: &Path, passphrase: Option<&[u8]>) -> Result<KeyPair, PkiError> {
    let text = fs::read_to_string(path).map_err(|source| PkiError::Io {
        context: "cannot read key file",
        path: path.to_path_buf(),
        source,
    })?;
    let format = |reason: String| PkiError::KeyFormat {
        path: path.to_path_buf(),
        reason,
    };
    let block = pem::parse(&text).map_err(|e| format(format!("not PEM ({e})")))?;
    match block.tag() {
        LABEL_PLAIN => KeyPair::try_from(block.contents())
            .map_err(|e| format(format!("unusable PKCS#8 key ({e})"))),
        LABEL_ENCRYPTED => {
            let Some(pass) = passphrase else {
                return Err(PkiError::KeyEncrypted(path.to_path_buf()));
            };
            let info = EncryptedPrivateKeyInfoRef::from_der(block.contents())
                .map_err(|e| format(format!("malformed encrypted PKCS#8 ({e})")))?;
            let doc = info
                .decrypt(pass)
                .map_err(|source| PkiError::WrongPassphrase {
                    path: path.to_path_buf(),
                    source,
                })?;
            KeyPair::try_from(doc.as_bytes())
                .map_err(|e| format(format!("unusable PKCS#8 key after decryption ({e})")))
        }
        other => Err(format(format!(
            "PEM label {other:?} is not supported; convert to PKCS#8 (`openssl pkcs8 -topk8`)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn key_type_names_round_trip() {
        for k in KeyType::ALL {
            assert_eq!(k.to_string().parse::<KeyType>().unwrap(), k);
        }
        assert!("p521".parse::<KeyType>().is_err());
    }

    #[test]
    fn plain_key_round_trip_mode_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        let key = generate(KeyType::EcdsaP256).unwrap();
        write_key_pem(&path, &key, None).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load_key_pem(&path, None).unwrap();
        assert_eq!(loaded.public_key_raw(), key.public_key_raw());
        let other = generate(KeyType::EcdsaP256).unwrap();
        assert!(matches!(
            write_key_pem(&path, &other, None),
            Err(PkiError::KeyExists(_))
        ));
        assert_eq!(
            load_key_pem(&path, None).unwrap().public_key_raw(),
            key.public_key_raw()
        );
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        let key = generate(KeyType::EcdsaP384).unwrap();
        write_key_pem(&path, &key, Some(b"correct horse")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(matches!(
            load_key_pem(&path, None),
            Err(PkiError::KeyEncrypted(_))
        ));
        assert!(matches!(
            load_key_pem(&path, Some(b"wrong")),
            Err(PkiError::WrongPassphrase { .. })
        ));
        let loaded = load_key_pem(&path, Some(b"correct horse")).unwrap();
        assert_eq!(loaded.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn openssl_reads_our_encrypted_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        let key = generate(KeyType::EcdsaP256).unwrap();
        write_key_pem(&path, &key, Some(b"s3cret")).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-passin", "pass:s3cret", "-in"])
            .arg(&path)
            .output()
            .expect("the openssl command is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), key.public_key_pem());
    }

    #[test]
    fn loads_keys_encrypted_by_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ossl.key");
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-aes-256-cbc", "-pass", "pass:pw", "-out"])
            .arg(&path)
            .output()
            .expect("the openssl command is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(matches!(
            load_key_pem(&path, None),
            Err(PkiError::KeyEncrypted(_))
        ));
        assert!(matches!(
            load_key_pem(&path, Some(b"nope")),
            Err(PkiError::WrongPassphrase { .. })
        ));
        let key = load_key_pem(&path, Some(b"pw")).unwrap();
        assert_eq!(key_type_of(&key), Some(KeyType::EcdsaP256));
    }

    #[test]
    fn rsa_generation_and_unsupported_label() {
        let key = generate(KeyType::Rsa2048).unwrap();
        assert_eq!(key_type_of(&key), Some(KeyType::Rsa2048));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        fs::write(
            &path,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(matches!(
            load_key_pem(&path, None),
            Err(PkiError::KeyFormat { .. })
        ));
    }
}
