//! Random identifiers for URLs and tokens.

use rand::RngCore;

/// A random, unguessable object id: 128 bits, base64url (DESIGN: opaque object URLs).
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    acme_types::b64::encode(&b)
}

/// A challenge token: 128 bits of entropy, base64url (RFC 8555 §8.3 asks for at least 128).
pub fn new_token() -> String {
    new_id()
}
