//! fleetca-agent: the on-device ACME (RFC 8555) client. It keeps a valid
//! certificate and key for the device's names in an out-dir, generating keys
//! on the device and installing each new set with one atomic symlink swap.

#![forbid(unsafe_code)]

pub mod acme;
pub mod boot;
pub mod cbor;
pub mod challenge;
pub mod commands;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod hooks;
pub mod http;
pub mod install;
pub mod jitter;
pub mod journal;
pub mod keys;
pub mod log;
pub mod outcome;
#[cfg(test)]
mod power_cut;
pub mod rollback;
pub mod schedule;
pub mod state;
pub mod timefmt;
pub mod tls;
