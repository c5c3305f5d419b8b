//! Strict base64url without padding (RFC 7515 §2, RFC 4648 §5), the only
//! binary-to-text encoding ACME uses (RFC 8555 §6.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A base64url string that RFC 7515 §2 does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum B64Error {
    /// A character outside the base64url alphabet: padding `=`, `+`, `/`,
    /// whitespace or anything else (RFC 7515 §2 forbids padding and line breaks).
    #[error("invalid base64url: character {0:?} at offset {1}")]
    InvalidCharacter(char, usize),
    /// The length cannot be produced by base64url (a remainder of one character).
    #[error("invalid base64url length {0}")]
    InvalidLength(usize),
    /// The last character carries bits that a canonical encoder leaves zero,
    /// so two strings would decode to the same bytes.
    #[error("non-canonical base64url: trailing bits set")]
    NonCanonical,
}

/// Encodes `bytes` as base64url without padding (RFC 7515 §2).
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding (RFC 7515 §2), rejecting padding,
/// the standard alphabet's `+` and `/`, whitespace and non-canonical trailing
/// bits, so each byte string has exactly one accepted encoding.
pub fn decode(s: &str) -> Result<Vec<u8>, B64Error> {
    // Check the alphabet ourselves so the error names the character and so the
    // rule does not depend on the engine's configuration.
    // Byte by byte: every allowed character is ASCII, and a JWS carries kilobytes of this.
    if let Some(i) = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        let c = s[i..].chars().next().unwrap_or('\u{fffd}');
        return Err(B64Error::InvalidCharacter(c, i));
    }
    if s.len() % 4 == 1 {
        return Err(B64Error::InvalidLength(s.len()));
    }
    URL_SAFE_NO_PAD.decode(s).map_err(|e| match e {
        base64::DecodeError::InvalidLastSymbol(..) => B64Error::NonCanonical,
        base64::DecodeError::InvalidLength(n) => B64Error::InvalidLength(n),
        base64::DecodeError::InvalidByte(i, b) => B64Error::InvalidCharacter(char::from(b), i),
        base64::DecodeError::InvalidPadding => B64Error::InvalidCharacter('=', s.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_lengths() {
        let data: Vec<u8> = (0..=255).collect();
        for n in 0..40 {
            let enc = encode(&data[..n]);
            assert!(!enc.contains('='));
            assert_eq!(decode(&enc).unwrap(), &data[..n]);
        }
    }

    #[test]
    fn empty_is_empty() {
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
        assert_eq!(encode(&[]), "");
    }

    #[test]
    fn rejects_padding() {
        assert!(matches!(
            decode("AQ=="),
            Err(B64Error::InvalidCharacter('=', 2))
        ));
        assert!(decode("AQAB=").is_err());
    }

    #[test]
    fn rejects_standard_alphabet() {
        assert!(matches!(
            decode("a+b/"),
            Err(B64Error::InvalidCharacter('+', 1))
        ));
        assert!(matches!(
            decode("ab/c"),
            Err(B64Error::InvalidCharacter('/', 2))
        ));
    }

    #[test]
    fn names_a_non_ascii_character_whole() {
        assert!(matches!(
            decode("AQé"),
            Err(B64Error::InvalidCharacter('é', 2))
        ));
        assert!(matches!(
            decode("€"),
            Err(B64Error::InvalidCharacter('€', 0))
        ));
    }

    #[test]
    fn rejects_whitespace() {
        assert!(decode("AQ AB").is_err());
        assert!(decode("AQAB\n").is_err());
        assert!(decode(" AQAB").is_err());
        assert!(decode("AQ\tAB").is_err());
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // "AQ" is [0x01]; "AR" sets bits a canonical encoder leaves zero.
        assert_eq!(decode("AQ").unwrap(), vec![1]);
        assert_eq!(decode("AR"), Err(B64Error::NonCanonical));
        assert_eq!(decode("AQAC"), Ok(vec![1, 0, 2]));
        assert_eq!(decode("AQB"), Err(B64Error::NonCanonical));
    }

    #[test]
    fn rejects_impossible_length() {
        assert_eq!(decode("A"), Err(B64Error::InvalidLength(1)));
        assert_eq!(decode("AQABC"), Err(B64Error::InvalidLength(5)));
    }

    #[test]
    fn rejects_non_ascii() {
        assert!(decode("AQ\u{e9}B").is_err());
    }
}
