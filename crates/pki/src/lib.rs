//! X.509 for fleetca: identifiers and tenant policy, key files, the [`Signer`] trait, CA
//! creation, issuance from a CSR (lint, then sign), and CRLs.
//!
//! Profiles follow RFC 5280 and the CA/Browser Forum TLS Baseline Requirements (BR) §7.1.
//! No I/O happens here beyond reading and writing key files (`keys::load_key_pem`,
//! `keys::write_key_pem`).
#![forbid(unsafe_code)]

pub mod ca;
pub mod cert_info;
pub mod crl;
pub mod csr;
pub mod ct;
mod error;
mod extensions;
pub mod identifier;
pub mod issue;
pub mod keys;
pub mod ocsp;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod policy;
mod serial;
pub mod signer;
#[cfg(test)]
mod signer_suite;

pub use ca::{
    check_imported_issuing_ca, check_imported_issuing_ca_at, create_issuing_ca, create_root,
    create_root_with_subject, subca_csr, CaProfile, CaSubject, CaTrust, ImportError, Validity,
};
pub use cert_info::{der_to_pem, not_after_of, pem_to_ders, serial_of, spki_der_of};
pub use crl::{build_crl, RevokedEntry};
pub use csr::{parse_csr, CsrInfo};
pub use error::PkiError;
pub use identifier::{DnsName, Identifier};
pub use issue::{IssueError, IssueRequest, IssuedCert, Issuer, LeafOptions};
pub use keys::{generate, key_type_of, load_key_pem, write_key_pem, KeyType};
pub use policy::{Permitted, PolicyError};
pub use signer::{FileSigner, RcgenSigner, Signer};

/// A DER-encoded X.509 certificate (RFC 5280 §4.1).
pub type CertDer = Vec<u8>;
