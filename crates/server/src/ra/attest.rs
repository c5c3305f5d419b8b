//! `device-attest-01` (draft-ietf-acme-device-attest §5): verifies a WebAuthn attestation
//! object whose attestation statement signs the challenge's key authorization (the draft's
//! _attToBeSigned_, replacing WebAuthn's `authenticatorData || clientDataHash`; `authData` is
//! ignored). Formats are dispatched on `fmt` so `tpm` can be added beside `packed`.

use ciborium::value::Value;
use x509_parser::prelude::*;

/// OID of the X.520 `serialNumber` subject attribute.
const OID_SERIAL_NUMBER: &str = "2.5.4.5";
/// OID of the RFC 4043 PermanentIdentifier otherName (`id-on-permanentIdentifier`).
const OID_PERMANENT_IDENTIFIER: &str = "1.3.6.1.5.5.7.8.3";

/// Why an attestation was refused (the `detail` of a `badAttestationStatement` problem).
pub(crate) type Refusal = String;

/// Checks the syntax of a `permanent-identifier` value (draft §3.1): a non-empty device
/// identifier without `/`, optionally followed by `/` and a dotted-decimal assigner OID.
pub(crate) fn check_permanent_identifier(value: &str) -> Result<(), &'static str> {
    let (dev, assigner) = match value.split_once('/') {
        Some((d, a)) => (d, Some(a)),
        None => (value, None),
    };
    if dev.is_empty() {
        return Err("the device identifier is empty");
    }
    if let Some(a) = assigner {
        let arcs: Vec<&str> = a.split('.').collect();
        let ok = arcs.len() >= 2
            && matches!(arcs[0], "0" | "1" | "2")
            && arcs
                .iter()
                .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err("the assigner is not a dotted-decimal object identifier");
        }
    }
    Ok(())
}

fn map_get<'a>(m: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
        .map(|(_, v)| v)
}

/// Verifies `att_obj` (CBOR) against the key authorization, the tenant's manufacturing roots
/// (DER) and the time `now`, and that it attests the device `identifier`.
pub(crate) fn verify(
    att_obj: &[u8],
    key_authorization: &str,
    roots: &[Vec<u8>],
    now: i64,
    identifier: &str,
) -> Result<(), Refusal> {
    let v: Value = ciborium::de::from_reader(att_obj)
        .map_err(|e| format!("attObj is not a CBOR attestation object: {e}"))?;
    let Value::Map(m) = v else {
        return Err("attObj is not a CBOR map".into());
    };
    let fmt = match map_get(&m, "fmt") {
        Some(Value::Text(f)) => f.as_str(),
        _ => return Err("attObj has no fmt".into()),
    };
    let Some(Value::Map(stmt)) = map_get(&m, "attStmt") else {
        return Err("attObj has no attStmt map".into());
    };
    match fmt {
        "packed" => verify_packed(stmt, key_authorization, roots, now, identifier),
        other => Err(format!(
            "attestation statement format {other:?} is not supported (packed is)"
        )),
    }
}

/// `packed` with an `x5c` chain (WebAuthn §8.2): `sig` by the leaf's key over attToBeSigned.
fn verify_packed(
    stmt: &[(Value, Value)],
    key_authorization: &str,
    roots: &[Vec<u8>],
    now: i64,
    identifier: &str,
) -> Result<(), Refusal> {
    let alg = match map_get(stmt, "alg") {
        Some(Value::Integer(i)) => i128::from(*i),
        _ => return Err("attStmt has no alg".into()),
    };
    let Some(Value::Bytes(sig)) = map_get(stmt, "sig") else {
        return Err("attStmt has no sig".into());
    };
    let Some(Value::Array(x5c)) = map_get(stmt, "x5c") else {
        return Err("attStmt has no x5c chain (self attestation is not accepted)".into());
    };
    let ders: Vec<&[u8]> = x5c
        .iter()
        .map(|c| match c {
            Value::Bytes(b) => Ok(b.as_slice()),
            _ => Err("x5c holds a non-bytes entry".to_string()),
        })
        .collect::<Result<_, _>>()?;
    if ders.is_empty() {
        return Err("x5c is empty".into());
    }
    let mut chain = Vec::with_capacity(ders.len());
    for d in &ders {
        let (_, c) = X509Certificate::from_der(d)
            .map_err(|e| format!("x5c certificate does not parse: {e}"))?;
        chain.push(c);
    }
    verify_chain(&chain, roots, now)?;

    let leaf = &chain[0];
    let spki = leaf.public_key();
    let key = spki.subject_public_key.data.as_ref();
    use aws_lc_rs::signature as s;
    let algo: &dyn s::VerificationAlgorithm = match alg {
        -7 => &s::ECDSA_P256_SHA256_ASN1,
        -35 => &s::ECDSA_P384_SHA384_ASN1,
        -8 => &s::ED25519,
        -257 => &s::RSA_PKCS1_2048_8192_SHA256,
        other => return Err(format!("attestation algorithm {other} is not supported")),
    };
    s::UnparsedPublicKey::new(algo, key)
        .verify(key_authorization.as_bytes(), sig)
        .map_err(|_| {
            "the attestation signature does not verify over this challenge's key authorization"
                .to_string()
        })?;

    let attested = attested_identifiers(leaf);
    if !attested.iter().any(|a| a == identifier) {
        return Err(format!(
            "the attestation certificate does not attest the device {identifier:?}"
        ));
    }
    Ok(())
}

/// Each certificate signed by the next, the last by (or equal to) a configured root, all
/// valid at `now`, every issuer a CA.
fn verify_chain(chain: &[X509Certificate<'_>], roots: &[Vec<u8>], now: i64) -> Result<(), Refusal> {
    let at = ASN1Time::from_timestamp(now).map_err(|_| "bad clock".to_string())?;
    for c in chain {
        if !c.validity().is_valid_at(at) {
            return Err(format!(
                "attestation certificate {} is not valid now",
                c.subject()
            ));
        }
    }
    for w in chain.windows(2) {
        if !is_ca(&w[1]) {
            return Err(format!("{} is not a CA certificate", w[1].subject()));
        }
        w[0].verify_signature(Some(w[1].public_key()))
            .map_err(|_| format!("{} is not signed by {}", w[0].subject(), w[1].subject()))?;
    }
    let top = chain.last().expect("non-empty chain");
    for r in roots {
        let Ok((_, root)) = X509Certificate::from_der(r) else {
            continue;
        };
        if !root.validity().is_valid_at(at) || !is_ca(&root) {
            continue;
        }
        if top.as_raw() == root.as_raw() && chain.len() > 1 {
            return Ok(());
        }
        if top.issuer() == root.subject() && top.verify_signature(Some(root.public_key())).is_ok() {
            return Ok(());
        }
    }
    Err("the attestation chain does not lead to a configured manufacturing root".into())
}

fn is_ca(c: &X509Certificate<'_>) -> bool {
    matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// The device identifiers the leaf attests: its subject `serialNumber` attributes and the
/// `identifierValue` of RFC 4043 PermanentIdentifier otherNames (with `/assigner` if present).
fn attested_identifiers(leaf: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for attr in leaf.subject().iter_attributes() {
        if attr.attr_type().to_id_string() == OID_SERIAL_NUMBER {
            if let Ok(s) = attr.as_str() {
                out.push(s.to_string());
            }
        }
    }
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for gn in &san.value.general_names {
            if let GeneralName::OtherName(oid, raw) = gn {
                if oid.to_id_string() == OID_PERMANENT_IDENTIFIER {
                    if let Some(v) = parse_permanent_identifier(raw) {
                        out.push(v);
                    }
                }
            }
        }
    }
    out
}

/// Parses `[0] EXPLICIT PermanentIdentifier ::= SEQUENCE { identifierValue UTF8String
/// OPTIONAL, assigner OBJECT IDENTIFIER OPTIONAL }` into `value[/assigner]`.
fn parse_permanent_identifier(raw: &[u8]) -> Option<String> {
    use x509_parser::der_parser::der::{parse_der, DerObjectContent};
    let (_, outer) = parse_der(raw).ok()?;
    // x509-parser hands over the [0] EXPLICIT wrapper or its content, depending on version.
    let seq = match &outer.content {
        DerObjectContent::Sequence(items) => items.clone(),
        DerObjectContent::Unknown(any) => {
            let (_, inner) = parse_der(any.data).ok()?;
            match inner.content {
                DerObjectContent::Sequence(items) => items,
                _ => return None,
            }
        }
        _ => return None,
    };
    let mut value = None;
    let mut assigner = None;
    for item in &seq {
        match &item.content {
            DerObjectContent::UTF8String(s) => value = Some(s.to_string()),
            DerObjectContent::OID(o) => assigner = Some(o.to_id_string()),
            _ => {}
        }
    }
    let v = value?;
    Some(match assigner {
        Some(a) => format!("{v}/{a}"),
        None => v,
    })
}
