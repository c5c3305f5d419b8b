use super::*;
use base64::Engine;

fn key_b64() -> String {
    let k = pki::generate(pki::KeyType::EcdsaP256).unwrap();
    base64::engine::general_purpose::STANDARD
        .encode(rcgen::PublicKeyData::subject_public_key_info(&k))
}

fn log(url: &str, operator: &str) -> CtLogSection {
    CtLogSection {
        url: url.into(),
        public_key: key_b64(),
        operator: operator.into(),
    }
}

const DAY: Duration = Duration::from_secs(86400);

#[test]
fn policy_counts_follow_the_lifetime() {
    assert_eq!(scts_needed(90 * DAY), 2);
    assert_eq!(scts_needed(180 * DAY), 2);
    assert_eq!(scts_needed(180 * DAY + Duration::from_secs(1)), 3);
}

#[test]
fn config_is_refused_without_logs_enough() {
    let two_one_op = [
        log("https://a.example/", "A"),
        log("https://b.example/", "A"),
    ];
    let one = [log("https://a.example/", "A")];
    let two = [
        log("https://a.example/", "A"),
        log("https://b.example/", "B"),
    ];
    let three = [
        log("https://a.example/", "A"),
        log("https://b.example/", "B"),
        log("https://c.example/", "B"),
    ];
    // ct_required needs 2 logs and 2 operators.
    assert!(logs_from_config(&[], true, 90 * DAY).is_err());
    assert!(logs_from_config(&one, true, 90 * DAY).is_err());
    assert!(logs_from_config(&two_one_op, true, 90 * DAY).is_err());
    assert!(logs_from_config(&two, true, 90 * DAY).unwrap().is_some());
    // Longer than 180 days: 3 logs.
    let e = logs_from_config(&two, true, 181 * DAY)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 SCTs"), "{e}");
    assert_eq!(
        logs_from_config(&three, true, 200 * DAY)
            .unwrap()
            .unwrap()
            .len(),
        3
    );
    // Not required: no CT, whatever is listed (but what is listed must still parse).
    assert!(logs_from_config(&one, false, 365 * DAY).unwrap().is_none());
    let mut bad = log("https://a.example/", "A");
    bad.public_key = "not base64!".into();
    assert!(logs_from_config(&[bad], false, DAY).is_err());
    let mut p384 = log("https://a.example/", "A");
    p384.public_key = base64::engine::general_purpose::STANDARD.encode(
        rcgen::PublicKeyData::subject_public_key_info(
            &pki::generate(pki::KeyType::EcdsaP384).unwrap(),
        ),
    );
    assert!(logs_from_config(&[p384], false, DAY).is_err());
    let mut dup = two.clone();
    dup[1].public_key = dup[0].public_key.clone();
    assert!(logs_from_config(&dup, true, DAY).is_err());
    assert!(logs_from_config(&[log("ftp://a.example/", "A")], false, DAY).is_err());
    assert!(logs_from_config(&[log("https://a.example/", " ")], false, DAY).is_err());
}

fn logs(ops: &[&str]) -> CtLogs {
    let parsed = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(key_b64())
                .unwrap();
            CtLog {
                endpoint: format!("https://log{i}.example/ct/v1/add-pre-chain"),
                url: format!("https://log{i}.example/"),
                operator: op.to_string(),
                key: pki::ct::LogKey::from_spki_der(&der).unwrap(),
            }
        })
        .collect();
    CtLogs::new(parsed, http_client("").unwrap())
}

#[test]
fn submission_order_interleaves_operators() {
    let l = logs(&["A", "A", "A", "B", "C"]);
    let ops: Vec<String> = l
        .submission_order()
        .iter()
        .map(|l| l.operator.clone())
        .collect();
    assert_eq!(ops, ["A", "B", "C", "A", "A"]);
}

fn sct_of(l: &CtLog, t: u64) -> Sct {
    Sct {
        log_id: l.key.id(),
        timestamp_ms: t,
        extensions: vec![],
        hash_alg: 4,
        sig_alg: 3,
        signature: vec![],
    }
}

#[test]
fn choice_needs_two_operators_and_enough_logs() {
    let l = logs(&["A", "A", "B", "B"]);
    let ls = l.logs();
    let got = |idx: &[usize]| -> Vec<(Arc<CtLog>, Sct)> {
        idx.iter()
            .map(|&i| (ls[i].clone(), sct_of(&ls[i], i as u64)))
            .collect()
    };
    assert!(choose(&got(&[0]), 2).is_none());
    assert!(choose(&got(&[0, 1]), 2).is_none(), "same operator");
    assert_eq!(choose(&got(&[0, 1, 2]), 2).unwrap().len(), 2);
    let two = choose(&got(&[0, 1, 2]), 2).unwrap();
    // One per operator first: A's first and B's.
    assert_eq!(two[0].timestamp_ms, 0);
    assert_eq!(two[1].timestamp_ms, 2);
    assert!(choose(&got(&[0, 2]), 3).is_none());
    assert_eq!(choose(&got(&[0, 1, 2]), 3).unwrap().len(), 3);
}

#[test]
fn malformed_log_answers_are_refused() {
    for body in [
        &b""[..],
        b"{}",
        b"not json",
        br#"{"sct_version":1,"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":1,"extensions":"","signature":"BAMAAA=="}"#,
        br#"{"sct_version":0,"id":"AAAA","timestamp":1,"extensions":"","signature":"BAMAAA=="}"#,
        br#"{"sct_version":0,"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":1,"extensions":"","signature":"BAMAAQ=="}"#,
    ] {
        assert_eq!(
            submit::parse_response(body),
            Err(SubmitError::Malformed),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let ok = submit::parse_response(
        br#"{"sct_version":0,"id":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","timestamp":7,"extensions":"","signature":"BAMAAA=="}"#,
    )
    .unwrap();
    assert_eq!((ok.timestamp_ms, ok.hash_alg, ok.sig_alg), (7, 4, 3));
}
