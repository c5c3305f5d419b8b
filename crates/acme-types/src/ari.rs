//! ACME Renewal Information (RFC 9773): the certificate identifier and the
//! renewalInfo response object.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::b64;

/// Why an ARI certID string was refused (the server answers `malformed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AriError {
    /// Not `base64url(keyIdentifier) "." base64url(serial)`.
    #[error("malformed ARI certID: {0}")]
    Malformed(String),
}

/// A certificate identifier (RFC 9773 §4.1): the issuer's Authority Key
/// Identifier keyIdentifier and the serial number's DER INTEGER content octets
/// (two's complement, so a leading `00` when the high bit is set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertId {
    /// The AKI extension's keyIdentifier bytes.
    pub aki_keyid: Vec<u8>,
    /// The serial's DER INTEGER value bytes, without tag and length.
    pub serial: Vec<u8>,
}

impl CertId {
    /// Builds a certID from the keyIdentifier and a serial given as unsigned
    /// big-endian bytes (leading zeros are dropped, `00` added when needed).
    pub fn from_unsigned_serial(aki_keyid: &[u8], serial_unsigned: &[u8]) -> CertId {
        let trimmed = match serial_unsigned.iter().position(|&b| b != 0) {
            Some(i) => &serial_unsigned[i..],
            None => &[0u8][..],
        };
        let mut serial = Vec::with_capacity(trimmed.len() + 1);
        if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            serial.push(0);
        }
        serial.extend_from_slice(trimmed);
        CertId {
            aki_keyid: aki_keyid.to_vec(),
            serial,
        }
    }

    /// Parses `base64url(keyIdentifier) "." base64url(serial)` (RFC 9773
    /// §4.1), strictly: one dot, unpadded base64url, non-empty parts, and a
    /// serial that is a minimal, non-negative DER INTEGER value.
    pub fn parse(s: &str) -> Result<CertId, AriError> {
        let (aki, serial) = s
            .split_once('.')
            .ok_or_else(|| AriError::Malformed("missing \".\"".into()))?;
        let aki_keyid =
            b64::decode(aki).map_err(|e| AriError::Malformed(format!("keyIdentifier: {e}")))?;
        let serial =
            b64::decode(serial).map_err(|e| AriError::Malformed(format!("serial: {e}")))?;
        if aki_keyid.is_empty() {
            return Err(AriError::Malformed("empty keyIdentifier".into()));
        }
        match serial.as_slice() {
            [] => return Err(AriError::Malformed("empty serial".into())),
            [first, ..] if first & 0x80 != 0 => {
                return Err(AriError::Malformed("negative serial".into()))
            }
            [0, second, ..] if second & 0x80 == 0 => {
                return Err(AriError::Malformed(
                    "serial is not minimally encoded".into(),
                ))
            }
            _ => {}
        }
        Ok(CertId { aki_keyid, serial })
    }
}

impl fmt::Display for CertId {
    /// `base64url(keyIdentifier) "." base64url(serial)` (RFC 9773 §4.1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            b64::encode(&self.aki_keyid),
            b64::encode(&self.serial)
        )
    }
}

impl FromStr for CertId {
    type Err = AriError;

    /// Same as [`CertId::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertId::parse(s)
    }
}

/// The renewalInfo response (RFC 9773 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalInfo {
    /// When the client should renew.
    #[serde(rename = "suggestedWindow")]
    pub suggested_window: SuggestedWindow,
    /// A page explaining the window (e.g. an incident notice).
    #[serde(
        rename = "explanationURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub explanation_url: Option<String>,
}

/// A renewal window (RFC 9773 §4.2), RFC 3339 timestamps, `start` < `end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuggestedWindow {
    /// Start of the window.
    pub start: String,
    /// End of the window.
    pub end: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // RFC 9773 §4.1 example: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
    // serial 00:87:65:43:21.
    const AKI: [u8; 20] = [
        0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0, 0xAE,
        0x2C, 0xDE, 0x01, 0xC8, 0xD4,
    ];
    const EXAMPLE: &str = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";

    #[test]
    fn rfc9773_example() {
        let id = CertId {
            aki_keyid: AKI.to_vec(),
            serial: vec![0x00, 0x87, 0x65, 0x43, 0x21],
        };
        assert_eq!(id.to_string(), EXAMPLE);
        assert_eq!(CertId::parse(EXAMPLE).unwrap(), id);
        assert_eq!(
            CertId::from_unsigned_serial(&AKI, &[0x87, 0x65, 0x43, 0x21]),
            id
        );
        assert_eq!(
            CertId::from_unsigned_serial(&AKI, &[0, 0, 0x87, 0x65, 0x43, 0x21]),
            id
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ",
            ".AIdlQyE",
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.",
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ=.AIdlQyE",
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE.x",
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.h2VDIQ", // 87654321: negative
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AAE",    // 00 01: not minimal
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AI+lQyE",
        ] {
            assert!(CertId::parse(bad).is_err(), "{bad}");
        }
        assert!(CertId::parse("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AA").is_ok()); // serial 0
    }

    #[test]
    fn renewal_info_wire() {
        let v = json!({
            "suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"},
            "explanationURL": "https://ca.example/docs/ari"
        });
        let r: RenewalInfo = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
    }
}
