//! The few CBOR (RFC 8949) items a WebAuthn attestation object needs, written out by hand so
//! the agent does not carry a general CBOR library: definite-length maps, arrays, byte and
//! text strings, and integers, each head in its shortest form (RFC 8949 §4.2.1, as CTAP2's
//! canonical encoding asks). The caller writes map keys in canonical order.

/// RFC 8949 §3.1 major types.
const UNSIGNED: u8 = 0;
const NEGATIVE: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;

/// A CBOR encoding being built.
#[derive(Debug, Default)]
pub struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// An empty encoding.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// RFC 8949 §3: the initial byte and the shortest argument for `n`.
    fn head(&mut self, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => self.out.push(m | n as u8),
            24..=0xff => self.out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                self.out.push(m | 25);
                self.out.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(m | 26);
                self.out.extend((n as u32).to_be_bytes());
            }
            _ => {
                self.out.push(m | 27);
                self.out.extend(n.to_be_bytes());
            }
        }
    }

    /// An integer (major type 0 or 1; -1 - n for negative values).
    pub fn int(&mut self, v: i64) -> &mut Self {
        if v >= 0 {
            self.head(UNSIGNED, v as u64);
        } else {
            self.head(NEGATIVE, (-1 - v) as u64);
        }
        self
    }

    /// A byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(BYTES, b.len() as u64);
        self.out.extend_from_slice(b);
        self
    }

    /// A UTF-8 text string.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.head(TEXT, s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
        self
    }

    /// The head of an array of `n` items (the items follow).
    pub fn array(&mut self, n: usize) -> &mut Self {
        self.head(ARRAY, n as u64);
        self
    }

    /// The head of a map of `n` pairs (key, value, key, value, ... follow).
    pub fn map(&mut self, n: usize) -> &mut Self {
        self.head(MAP, n as u64);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one chain of encoder calls and returns the bytes.
    fn enc(f: impl FnOnce(&mut Encoder) -> &mut Encoder) -> Vec<u8> {
        let mut e = Encoder::new();
        f(&mut e);
        e.into_bytes()
    }

    /// Examples from RFC 8949 Appendix A.
    #[test]
    fn rfc8949_appendix_a() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (23, &[0x17]),
            (24, &[0x18, 0x18]),
            (100, &[0x18, 0x64]),
            (1000, &[0x19, 0x03, 0xe8]),
            (1_000_000, &[0x1a, 0x00, 0x0f, 0x42, 0x40]),
            (
                1_000_000_000_000,
                &[0x1b, 0x00, 0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x10, 0x00],
            ),
            (-1, &[0x20]),
            (-10, &[0x29]),
            (-100, &[0x38, 0x63]),
            (-1000, &[0x39, 0x03, 0xe7]),
            (
                i64::MIN,
                &[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (v, want) in cases {
            assert_eq!(enc(|e| e.int(*v)), *want, "{v}");
        }
        // COSE algorithm identifiers used in attestation statements.
        assert_eq!(enc(|e| e.int(-7)), [0x26]);
        assert_eq!(enc(|e| e.int(-35)), [0x38, 0x22]);
        assert_eq!(enc(|e| e.int(-257)), [0x39, 0x01, 0x00]);
        assert_eq!(enc(|e| e.bytes(&[])), [0x40]);
        assert_eq!(enc(|e| e.bytes(&[1, 2, 3, 4])), [0x44, 1, 2, 3, 4]);
        assert_eq!(enc(|e| e.text("")), [0x60]);
        assert_eq!(enc(|e| e.text("IETF")), [0x64, b'I', b'E', b'T', b'F']);
        assert_eq!(enc(|e| e.array(3).int(1).int(2).int(3)), [0x83, 1, 2, 3]);
        assert_eq!(
            enc(|e| e.map(2).int(1).int(2).int(3).int(4)),
            [0xa2, 1, 2, 3, 4]
        );
    }

    #[test]
    fn long_strings_decode_with_a_general_decoder() {
        for len in [23usize, 24, 255, 256, 65_535, 65_536] {
            let data = vec![0xa5u8; len];
            let text = "t".repeat(len);
            let bytes = enc(|e| e.array(2).bytes(&data).text(&text));
            let v: ciborium::value::Value = ciborium::de::from_reader(bytes.as_slice()).unwrap();
            let ciborium::value::Value::Array(items) = v else {
                panic!("not an array")
            };
            assert_eq!(items[0], ciborium::value::Value::Bytes(data.clone()));
            assert_eq!(items[1], ciborium::value::Value::Text(text.clone()));
        }
    }
}
