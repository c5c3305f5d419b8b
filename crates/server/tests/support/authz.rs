//! What a test expects of an order and its authorizations when the CA grants names without
//! challenges (a tenant domain, RFC 9444 ancestor authorizations) or asks for them.
#![allow(dead_code)] // each includer uses a different subset

use serde_json::{json, Value};

/// The order is `ready` and every authorization is `valid` with no challenges: granted.
pub(crate) fn assert_granted(o: &Value, authzs: &[Value]) {
    assert_eq!(o["status"], "ready", "{o}");
    for a in authzs {
        assert_eq!(a["status"], "valid", "{a}");
        assert_eq!(a["challenges"], json!([]), "{a}");
    }
}

/// The order is `pending` and every authorization is `pending` with challenges to answer.
pub(crate) fn assert_challenged(o: &Value, authzs: &[Value]) {
    assert_eq!(o["status"], "pending", "{o}");
    for a in authzs {
        assert_eq!(a["status"], "pending", "{a}");
        assert!(!a["challenges"].as_array().unwrap().is_empty(), "{a}");
    }
}

/// The challenge of type `kind` in authorization `authz` (panics naming it if there is none).
pub(crate) fn challenge_of(authz: &Value, kind: &str) -> Value {
    authz["challenges"]
        .as_array()
        .expect("challenges")
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} challenge in {authz}"))
        .clone()
}
