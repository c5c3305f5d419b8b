//! fleetca: a technically constrained ACME (RFC 8555) issuing CA for device fleets.
//!
//! Roles follow Boulder's split, as modules of one binary: [`wfe`] (HTTP, JWS, nonces),
//! [`ra`] (ACME state machine and policy), [`va`] (proof of control), [`ca`] (signing),
//! [`sa`] (storage). Data flows down; nothing below `wfe` knows HTTP, nothing outside `sa`
//! writes SQL, nothing outside `ca` (and `init`) touches a CA private key.
#![forbid(unsafe_code)]

pub mod admin;
pub mod archive;
pub mod bench;
pub mod ca;
pub mod clock;
pub mod commands;
pub mod ct;
pub mod datadir;
pub mod error;
pub mod ids;
pub mod listener;
pub mod metrics;
pub mod ra;
pub mod sa;
pub mod tenant;
pub mod testing;
pub mod va;
pub mod wfe;
