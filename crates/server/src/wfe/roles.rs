//! The front end's place among the roles: it serves CRLs and OCSP answers the CA signed,
//! through [`crate::ca::status::StatusHandle`], and never reaches a CA signer itself.

/// What only the CA side may call: methods that sign CRLs or OCSP answers, or hand out the
/// signer.
const CA_SIGNING: [&str; 7] = [
    "ocsp_response",
    "sign_ocsp",
    "current_crl",
    "current_shard_crl",
    "publish_crl",
    "signer",
    "ocsp_responder",
];

/// `.name` method calls or field reads in `code` whose name is in [`CA_SIGNING`].
fn signing_calls(code: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for (i, _) in code.match_indices('.') {
        let ident: String = code[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if let Some(m) = CA_SIGNING.iter().find(|m| **m == ident) {
            found.push(*m);
        }
    }
    found
}

#[test]
fn the_front_end_calls_no_ca_signing_method() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/wfe");
    let mut offending = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/wfe") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("roles.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for m in signing_calls(code) {
                offending.push(format!(
                    "{}:{}: {m}: {}",
                    path.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "wfe/ reaches a CA signer: {offending:#?}"
    );
}

#[test]
fn the_check_sees_calls_and_ignores_lookalikes() {
    assert_eq!(
        signing_calls("ca.current_crl(sa, clock).await"),
        ["current_crl"]
    );
    assert_eq!(signing_calls("x.signer.as_ref()"), ["signer"]);
    assert!(signing_calls("ca.signer_blocks(); status.crl(id)").is_empty());
}
