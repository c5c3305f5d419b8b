//! The crate's error type.

use std::path::PathBuf;

use crate::ca::ImportError;

/// Every failure this crate reports outside issuance (issuance has [`crate::IssueError`]).
///
/// Variants keep their source so an HSM, file or parser failure still says why after it
/// crosses a trait boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A DNS name failed the syntax rules of RFC 1034 §3.5 / RFC 5890 (IDNA) / BR §3.2.2.
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidDnsName {
        /// The input as given.
        name: String,
        /// Which rule it broke.
        reason: String,
    },
    /// An IP address was not in the canonical text form RFC 8738 §3 asks for.
    #[error("invalid IP address {value:?}: {reason}")]
    InvalidIp {
        /// The input as given.
        value: String,
        /// Which rule it broke.
        reason: String,
    },
    /// A `--permit` entry was neither a DNS suffix nor a CIDR range.
    #[error("invalid permitted subtree {value:?}: {reason}")]
    InvalidPermit {
        /// The input as given.
        value: String,
        /// Which rule it broke.
        reason: String,
    },
    /// A key type name other than `p256|p384|rsa2048|rsa3072|rsa4096`.
    #[error("unknown key type {0:?} (expected p256, p384, rsa2048, rsa3072 or rsa4096)")]
    UnknownKeyType(String),
    /// rcgen refused an operation (key parsing, certificate or CRL serialization).
    #[error("{context}")]
    Rcgen {
        /// What was being done.
        context: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// Reading or writing a file failed.
    #[error("{context} {path}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `write_key_pem` never overwrites an existing key.
    #[error("refusing to overwrite existing key file {0}")]
    KeyExists(PathBuf),
    /// The key file is an ENCRYPTED PRIVATE KEY (RFC 5958 §3) and no passphrase was given.
    #[error("key file {0} is encrypted: a passphrase is required")]
    KeyEncrypted(PathBuf),
    /// Decrypting the key file failed: the passphrase is wrong or the file is damaged.
    #[error("cannot decrypt key file {path}: wrong passphrase or damaged file")]
    WrongPassphrase {
        /// The file.
        path: PathBuf,
        /// The PKCS#8/PKCS#5 error.
        #[source]
        source: pkcs8::Error,
    },
    /// The key file is not a PKCS#8 key this crate can use.
    #[error("key file {path}: {reason}")]
    KeyFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// PKCS#8 encoding or encryption failed.
    #[error("PKCS#8 encoding failed")]
    Pkcs8(#[source] pkcs8::Error),
    /// DER encoding of an extension value failed.
    #[error("DER encoding of {context} failed")]
    Der {
        /// What was being encoded.
        context: &'static str,
        /// The encoder's error.
        #[source]
        source: der::Error,
    },
    /// PEM text could not be parsed.
    #[error("invalid PEM")]
    Pem(#[source] pem::PemError),
    /// A certificate, CSR or CRL could not be parsed.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// The key's algorithm is not one this crate signs with.
    #[error("unsupported key or signature algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A signer failed to produce a signature.
    #[error("signing failed")]
    Signing(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A validity period broke RFC 5280 §4.1.2.5 or a BR §6.3.2 / §7.1.2 limit.
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),
    /// A CA profile is unusable (for example a CRL base URL that is not `http://`, BR §7.1.2.11.2).
    #[error("invalid CA profile: {0}")]
    InvalidProfile(String),
    /// A CRL entry broke RFC 5280 §5.3.1.
    #[error("invalid CRL entry: {0}")]
    InvalidCrlEntry(String),
    /// An issuing CA certificate made elsewhere failed `check_imported_issuing_ca`.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The signer's key is not the key certified by the CA certificate it was paired with.
    #[error("the signer's public key does not match the CA certificate")]
    SignerMismatch,
}

impl PkiError {
    pub(crate) fn rcgen(context: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
        move |source| PkiError::Rcgen { context, source }
    }

    pub(crate) fn der(context: &'static str) -> impl FnOnce(der::Error) -> PkiError {
        move |source| PkiError::Der { context, source }
    }

    pub(crate) fn parse<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> PkiError {
        move |e| PkiError::Parse {
            what,
            detail: e.to_string(),
        }
    }
}
