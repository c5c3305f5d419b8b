//! Random certificate serial numbers.

use rcgen::SerialNumber;

use crate::PkiError;

/// Serial length in octets: 16 random octets give 127 bits of entropy after the sign bit is
/// cleared, above the 64 bits BR §7.1 asks for and below the 20 octets of RFC 5280 §4.1.2.2.
pub(crate) const SERIAL_LEN: usize = 16;

/// A positive, non-zero serial of exactly [`SERIAL_LEN`] octets from the system CSPRNG.
/// Always set explicitly: rcgen's default derives the serial from the key (STACK pitfall 1).
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; SERIAL_LEN];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|e| PkiError::Signing(Box::new(e)))?;
    // Positive (RFC 5280 §4.1.2.2) and a non-zero first octet, so DER keeps all 16 octets.
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_full_length_and_distinct() {
        let a = random_serial().unwrap().to_bytes();
        let b = random_serial().unwrap().to_bytes();
        assert_eq!(a.len(), SERIAL_LEN);
        assert!(a[0] & 0x80 == 0 && a[0] != 0);
        assert_ne!(a, b);
    }
}
