//! RFC 8555 (ACME) wire types and the JWS/JWK layer for fleetca, with no I/O.
//!
//! - [`b64`]: strict base64url (RFC 7515 §2).
//! - [`problem`]: problem documents and ACME error types (RFC 8555 §6.7).
//! - [`wire`]: directory, account, order, authorization, challenge and
//!   request objects (RFC 8555 §7).
//! - [`jwk`]: public JWKs, thumbprints, SPKI conversion, signature
//!   verification (RFC 7517, 7518, 7638, 8037).
//! - [`jws`]: server-side request JWS parsing (RFC 8555 §6.2-§6.5, §7.3.5).
//! - [`sign`]: client-side account keys and JWS signing.
//! - [`eab`]: external account binding (RFC 8555 §7.3.4).
//! - [`keyauth`]: key authorizations and challenge values (RFC 8555 §8, RFC 8737).
//! - [`ari`]: renewal information (RFC 9773).
//!
//! All cryptography goes through one private provider module: aws-lc-rs by
//! default, ring with `default-features = false, features = ["ring"]` (the
//! device agent's smaller build; ring cannot generate RSA keys, so
//! [`sign::AccountKey::generate`] returns [`sign::SignError::Generate`] for
//! RSA there). With both features on, aws-lc-rs is used.

#![forbid(unsafe_code)]

mod crypto;

pub mod ari;
pub mod b64;
pub mod eab;
pub mod jwk;
pub mod jws;
pub mod keyauth;
pub mod problem;
pub mod sign;
pub mod wire;

pub use jwk::{Jwk, JwkError};
pub use jws::{Jws, JwsError, ProtectedHeader};
pub use problem::{Problem, ProblemType};
