//! Identifiers for URLs and tokens.

use rand::RngCore;

/// A random, unguessable id: 128 bits, base64url. Used where nothing is gained from locality:
/// EAB key ids, admin token ids, run names.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    acme_types::b64::encode(&b)
}

/// A database object's id (account, order, authorization, challenge, certificate): 48 bits of
/// creation time in milliseconds, then 96 random bits, base64url (24 characters).
///
/// Still opaque and unguessable (object URLs must not be enumerable): 96 random bits, and every object is
/// read only by its own account's signed request anyway. The time prefix is there for the
/// storage: objects made in the same few seconds share their first characters, so their
/// primary-key and link index entries land on the same few B-tree leaves. With fully random
/// ids every insert dirtied a different leaf of every index, and a SQLite batch commit wrote
/// about thirty 4 KiB WAL frames per certificate (see README, "Measured").
pub fn new_object_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    object_id_at(ms, &mut rand::rng())
}

/// [`new_object_id`] for a given time and random source (tests).
fn object_id_at(ms: u64, rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 18];
    // 6 bytes are exactly the first 8 base64 characters, so the time never shares a
    // character with the random part.
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    rng.fill_bytes(&mut b[6..]);
    acme_types::b64::encode(&b)
}

/// A challenge token: 128 bits of entropy, base64url (RFC 8555 §8.3 asks for at least 128).
pub fn new_token() -> String {
    new_id()
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_made_close_in_time_share_a_prefix_and_differ_after_it() {
        let mut rng = rand::rng();
        let t = 1_795_000_000_000u64;
        let a = object_id_at(t, &mut rng);
        let b = object_id_at(t + 50, &mut rng);
        let c = object_id_at(t, &mut rng);
        assert_eq!(a.len(), 24);
        // 4,096 ms share the first six characters.
        assert_eq!(a[..6], b[..6]);
        assert_eq!(a[..8], c[..8], "same millisecond, same time part");
        assert_ne!(a[8..], c[8..], "the random part still differs");
        let decoded = acme_types::b64::decode(&a).expect("base64url");
        assert_eq!(decoded[..6], t.to_be_bytes()[2..]);
    }

    #[test]
    fn object_ids_carry_96_random_bits() {
        // Same millisecond, many ids: no two alike, and every bit of the random part varies.
        let mut rng = rand::rng();
        let ids: Vec<Vec<u8>> = (0..2000)
            .map(|_| acme_types::b64::decode(&object_id_at(7, &mut rng)).expect("b64"))
            .collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let (mut ones, mut zeros) = ([false; 96], [false; 96]);
        for id in &ids {
            for bit in 0..96 {
                let set = id[6 + bit / 8] & (0x80 >> (bit % 8)) != 0;
                ones[bit] |= set;
                zeros[bit] |= !set;
            }
        }
        assert!(ones.iter().chain(zeros.iter()).all(|x| *x));
    }
}
