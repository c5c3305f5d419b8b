//! Certificate Transparency (RFC 6962): the precertificate poison, Signed Certificate
//! Timestamps (SCTs), the SCT list extension, and SCT signature verification.
//!
//! A precertificate is the final certificate's TBSCertificate plus the critical poison
//! extension (§3.1); a log signs (§3.2) the issuer's key hash and that TBSCertificate *without*
//! the poison. The final certificate is the same TBSCertificate with the poison replaced, in
//! place, by the SCT list extension (§3.3). This module edits TBSCertificates at the DER level
//! (one TLV swapped, lengths re-encoded) so every other byte stays what was linted and logged.

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Header, Length, Reader, SliceReader, Tag};

/// The precertificate poison extension, critical, value ASN.1 NULL (RFC 6962 §3.1).
pub const OID_CT_POISON: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.3");
/// The embedded SCT list extension (RFC 6962 §3.3).
pub const OID_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// `HashAlgorithm.sha256` (RFC 5246 §7.4.1.4.1), the only hash RFC 6962 §2.1.4 allows.
const HASH_SHA256: u8 = 4;
/// `SignatureAlgorithm.rsa` (RFC 5246 §7.4.1.4.1).
const SIG_RSA: u8 = 1;
/// `SignatureAlgorithm.ecdsa`.
const SIG_ECDSA: u8 = 3;
/// `Version.v1` (RFC 6962 §3.2).
const SCT_V1: u8 = 0;
/// `SignatureType.certificate_timestamp`.
const SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP: u8 = 0;
/// `LogEntryType.precert_entry`.
const ENTRY_TYPE_PRECERT: [u8; 2] = [0, 1];

/// Why CT data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CtError {
    /// An SCT, SCT list or log key is malformed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The SCT names another log than the key it is checked with.
    #[error("the SCT's log id is not this log's")]
    WrongLog,
    /// An algorithm RFC 6962 §2.1.4 does not allow, or one this module does not verify.
    #[error("unsupported SCT signature algorithm (hash {hash}, signature {sig})")]
    UnsupportedAlgorithm {
        /// TLS HashAlgorithm code.
        hash: u8,
        /// TLS SignatureAlgorithm code.
        sig: u8,
    },
    /// The log's signature does not verify over the precertificate entry.
    #[error("SCT signature does not verify")]
    BadSignature,
    /// A certificate is not what was expected (no poison, no SCT list, not DER).
    #[error("{0}")]
    Certificate(String),
}

/// A log's id: SHA-256 of its DER SubjectPublicKeyInfo (RFC 6962 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId(pub [u8; 32]);

impl LogId {
    /// The id of the log whose key is `spki_der`.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        LogId(sha256(spki_der))
    }
}

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A v1 SignedCertificateTimestamp (RFC 6962 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sct {
    /// The log that signed it.
    pub log_id: LogId,
    /// Milliseconds since the UNIX epoch.
    pub timestamp_ms: u64,
    /// `CtExtensions` (opaque, empty in RFC 6962 logs).
    pub extensions: Vec<u8>,
    /// TLS HashAlgorithm of the signature.
    pub hash_alg: u8,
    /// TLS SignatureAlgorithm of the signature.
    pub sig_alg: u8,
    /// The signature (DER ECDSA-Sig-Value or RSASSA-PKCS1-v1_5).
    pub signature: Vec<u8>,
}

impl Sct {
    /// Parses one TLS-encoded SCT; the whole input must be used.
    pub fn from_tls(bytes: &[u8]) -> Result<Sct, CtError> {
        let mut r = TlsReader(bytes);
        if r.u8()? != SCT_V1 {
            return Err(CtError::Malformed("SCT: version is not v1"));
        }
        let log_id = LogId(
            r.take(32)?
                .try_into()
                .map_err(|_| CtError::Malformed("SCT"))?,
        );
        let timestamp_ms = u64::from_be_bytes(
            r.take(8)?
                .try_into()
                .map_err(|_| CtError::Malformed("SCT"))?,
        );
        let extensions = r.vec16()?.to_vec();
        let hash_alg = r.u8()?;
        let sig_alg = r.u8()?;
        let signature = r.vec16()?.to_vec();
        if !r.0.is_empty() {
            return Err(CtError::Malformed("SCT: trailing data"));
        }
        Ok(Sct {
            log_id,
            timestamp_ms,
            extensions,
            hash_alg,
            sig_alg,
            signature,
        })
    }

    /// The TLS encoding (RFC 6962 §3.2, RFC 5246 §4).
    pub fn to_tls(&self) -> Result<Vec<u8>, CtError> {
        let mut out = vec![SCT_V1];
        out.extend_from_slice(&self.log_id.0);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        push_vec16(&mut out, &self.extensions)?;
        out.push(self.hash_alg);
        out.push(self.sig_alg);
        push_vec16(&mut out, &self.signature)?;
        Ok(out)
    }
}

/// The TLS `SignedCertificateTimestampList` of RFC 6962 §3.3: each SCT as a `SerializedSCT`
/// (two-byte length), the whole list with a two-byte length.
pub fn encode_sct_list(scts: &[Sct]) -> Result<Vec<u8>, CtError> {
    if scts.is_empty() {
        return Err(CtError::Malformed(
            "SCT list: empty (RFC 6962 §3.3: <1..2^16-1>)",
        ));
    }
    let mut body = Vec::new();
    for sct in scts {
        push_vec16(&mut body, &sct.to_tls()?)?;
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    push_vec16(&mut out, &body)?;
    Ok(out)
}

/// Parses a TLS `SignedCertificateTimestampList`.
pub fn decode_sct_list(tls: &[u8]) -> Result<Vec<Sct>, CtError> {
    let mut outer = TlsReader(tls);
    let body = outer.vec16()?;
    if !outer.0.is_empty() {
        return Err(CtError::Malformed("SCT list: trailing data"));
    }
    let mut r = TlsReader(body);
    let mut scts = Vec::new();
    while !r.0.is_empty() {
        scts.push(Sct::from_tls(r.vec16()?)?);
    }
    if scts.is_empty() {
        return Err(CtError::Malformed("SCT list: empty"));
    }
    Ok(scts)
}

/// The DER of the non-critical SCT list Extension: its extnValue OCTET STRING holds another
/// OCTET STRING holding the TLS list (RFC 6962 §3.3).
pub fn sct_list_extension(scts: &[Sct]) -> Result<Vec<u8>, CtError> {
    let inner = OctetString::new(encode_sct_list(scts)?)
        .and_then(|o| o.to_der())
        .map_err(|_| CtError::Malformed("SCT list: too long"))?;
    x509_cert::ext::Extension {
        extn_id: OID_SCT_LIST,
        critical: false,
        extn_value: OctetString::new(inner).map_err(|_| CtError::Malformed("SCT list"))?,
    }
    .to_der()
    .map_err(|_| CtError::Malformed("SCT list extension"))
}

/// The SCTs embedded in a certificate (empty when it has no SCT list extension).
pub fn scts_of_cert(cert_der: &[u8]) -> Result<Vec<Sct>, CtError> {
    let (tbs, _) = split_certificate(cert_der)?;
    let Some(value) = extension_value(tbs, &OID_SCT_LIST)? else {
        return Ok(Vec::new());
    };
    let inner = OctetString::from_der(&value).map_err(|_| CtError::Malformed("SCT list"))?;
    decode_sct_list(inner.as_bytes())
}

/// What a log signs for a precertificate entry (RFC 6962 §3.2 `digitally-signed struct`):
/// version, signature type, timestamp, entry type, `issuer_key_hash`, the TBSCertificate
/// without the poison (24-bit length), extensions (16-bit length).
pub fn precert_signed_data(
    sct: &Sct,
    issuer_key_hash: &[u8; 32],
    tbs_without_poison: &[u8],
) -> Result<Vec<u8>, CtError> {
    let mut out = Vec::with_capacity(tbs_without_poison.len() + 64);
    out.push(SCT_V1);
    out.push(SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP);
    out.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
    out.extend_from_slice(&ENTRY_TYPE_PRECERT);
    out.extend_from_slice(issuer_key_hash);
    let len = u32::try_from(tbs_without_poison.len())
        .ok()
        .filter(|l| *l < 1 << 24)
        .ok_or(CtError::Malformed("TBSCertificate longer than 2^24-1"))?;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(tbs_without_poison);
    push_vec16(&mut out, &sct.extensions)?;
    Ok(out)
}

/// `issuer_key_hash` (RFC 6962 §3.2): SHA-256 of the issuing CA's DER SubjectPublicKeyInfo.
pub fn issuer_key_hash(issuer_spki_der: &[u8]) -> [u8; 32] {
    sha256(issuer_spki_der)
}

/// A CT log's public key, as configured (`public_key = "<base64 DER SPKI>"`).
#[derive(Clone)]
pub struct LogKey {
    id: LogId,
    spki_der: Vec<u8>,
    algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    sig_alg: u8,
    key: Vec<u8>,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey").field("id", &self.id).finish()
    }
}

impl LogKey {
    /// Accepts ECDSA P-256 and RSA (≥2048 bits) keys, the two RFC 6962 §2.1.4 allows.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<Self, CtError> {
        use x509_parser::prelude::FromDer;
        let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|_| CtError::Malformed("log public key"))?;
        if !rest.is_empty() {
            return Err(CtError::Malformed("log public key: trailing data"));
        }
        let alg = spki.algorithm.algorithm.to_id_string();
        let params = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string());
        let (algorithm, sig_alg): (&'static dyn aws_lc_rs::signature::VerificationAlgorithm, u8) =
            match (alg.as_str(), params.as_deref()) {
                ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => {
                    (&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, SIG_ECDSA)
                }
                ("1.2.840.113549.1.1.1", _) => {
                    (&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, SIG_RSA)
                }
                _ => {
                    return Err(CtError::Malformed(
                        "log public key: neither ECDSA P-256 nor RSA (RFC 6962 §2.1.4)",
                    ))
                }
            };
        Ok(LogKey {
            id: LogId::of_spki(spki_der),
            spki_der: spki_der.to_vec(),
            algorithm,
            sig_alg,
            key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// The log id.
    pub fn id(&self) -> LogId {
        self.id
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Checks that `sct` is this log's signature over the precertificate entry made of
    /// `issuer_spki_der` and `tbs_without_poison` (RFC 6962 §3.2, §5.2).
    pub fn verify_precert_sct(
        &self,
        sct: &Sct,
        issuer_spki_der: &[u8],
        tbs_without_poison: &[u8],
    ) -> Result<(), CtError> {
        if sct.log_id != self.id {
            return Err(CtError::WrongLog);
        }
        if sct.hash_alg != HASH_SHA256 || sct.sig_alg != self.sig_alg {
            return Err(CtError::UnsupportedAlgorithm {
                hash: sct.hash_alg,
                sig: sct.sig_alg,
            });
        }
        let data = precert_signed_data(sct, &issuer_key_hash(issuer_spki_der), tbs_without_poison)?;
        aws_lc_rs::signature::UnparsedPublicKey::new(self.algorithm, &self.key)
            .verify(&data, &sct.signature)
            .map_err(|_| CtError::BadSignature)
    }
}

/// The TBSCertificate of a precertificate with its poison extension removed: what the log
/// signs (RFC 6962 §3.2). Refuses a certificate without the poison.
pub fn precert_tbs_without_poison(precert_der: &[u8]) -> Result<Vec<u8>, CtError> {
    let (tbs, _) = split_certificate(precert_der)?;
    replace_extension(tbs, &OID_CT_POISON, None)
}

/// The TBSCertificate of a final certificate with its SCT list extension removed; equal to
/// the precertificate's [`precert_tbs_without_poison`] when the two belong together.
pub fn cert_tbs_without_sct_list(cert_der: &[u8]) -> Result<Vec<u8>, CtError> {
    let (tbs, _) = split_certificate(cert_der)?;
    replace_extension(tbs, &OID_SCT_LIST, None)
}

/// The precertificate's TBSCertificate with the poison replaced, in its place, by the SCT
/// list extension (RFC 6962 §3.3), and the precertificate's signatureAlgorithm.
pub(crate) fn final_tbs(precert_der: &[u8], scts: &[Sct]) -> Result<(Vec<u8>, Vec<u8>), CtError> {
    let (tbs, algorithm) = split_certificate(precert_der)?;
    let tbs = replace_extension(tbs, &OID_CT_POISON, Some(sct_list_extension(scts)?))?;
    Ok((tbs, algorithm.to_vec()))
}

/// The raw TBSCertificate and signatureAlgorithm of a Certificate.
fn split_certificate(cert: &[u8]) -> Result<(&[u8], &[u8]), CtError> {
    let bad = |_| CtError::Certificate("not a DER certificate".into());
    let mut outer = SliceReader::new(cert).map_err(bad)?;
    let header = Header::decode(&mut outer).map_err(bad)?;
    header.tag().assert_eq(Tag::Sequence).map_err(bad)?;
    let body = outer.read_slice(header.length()).map_err(bad)?;
    outer.finish().map_err(bad)?;
    let mut fields = SliceReader::new(body).map_err(bad)?;
    let tbs = fields.tlv_bytes().map_err(bad)?;
    let algorithm = fields.tlv_bytes().map_err(bad)?;
    fields.tlv_bytes().map_err(bad)?;
    fields.finish().map_err(bad)?;
    Ok((tbs, algorithm))
}

/// The extensions `[3] EXPLICIT SEQUENCE OF Extension` of a TBSCertificate: the TLVs before
/// it, its header, and each extension's TLV.
struct TbsParts<'a> {
    before: Vec<&'a [u8]>,
    extensions: Vec<(&'a [u8], ObjectIdentifier)>,
}

fn tbs_parts(tbs: &[u8]) -> Result<TbsParts<'_>, CtError> {
    let bad = |_| CtError::Certificate("TBSCertificate is not DER".into());
    let mut outer = SliceReader::new(tbs).map_err(bad)?;
    let header = Header::decode(&mut outer).map_err(bad)?;
    header.tag().assert_eq(Tag::Sequence).map_err(bad)?;
    let body = outer.read_slice(header.length()).map_err(bad)?;
    outer.finish().map_err(bad)?;
    let mut fields = SliceReader::new(body).map_err(bad)?;
    let mut before = Vec::new();
    let mut ext_body = None;
    while !fields.is_finished() {
        let tlv = fields.tlv_bytes().map_err(bad)?;
        let mut r = SliceReader::new(tlv).map_err(bad)?;
        let h = Header::decode(&mut r).map_err(bad)?;
        if h.tag()
            == (Tag::ContextSpecific {
                constructed: true,
                number: der::TagNumber(3),
            })
        {
            ext_body = Some(r.read_slice(h.length()).map_err(bad)?);
            if !fields.is_finished() {
                return Err(CtError::Certificate("data after the extensions".into()));
            }
        } else {
            before.push(tlv);
        }
    }
    let ext_body =
        ext_body.ok_or_else(|| CtError::Certificate("TBSCertificate has no extensions".into()))?;
    let mut seq = SliceReader::new(ext_body).map_err(bad)?;
    let h = Header::decode(&mut seq).map_err(bad)?;
    h.tag().assert_eq(Tag::Sequence).map_err(bad)?;
    let list = seq.read_slice(h.length()).map_err(bad)?;
    seq.finish().map_err(bad)?;
    let mut r = SliceReader::new(list).map_err(bad)?;
    let mut extensions = Vec::new();
    while !r.is_finished() {
        let tlv = r.tlv_bytes().map_err(bad)?;
        let mut e = SliceReader::new(tlv).map_err(bad)?;
        let eh = Header::decode(&mut e).map_err(bad)?;
        eh.tag().assert_eq(Tag::Sequence).map_err(bad)?;
        let oid = ObjectIdentifier::decode(&mut e).map_err(bad)?;
        extensions.push((tlv, oid));
    }
    Ok(TbsParts { before, extensions })
}

/// The extnValue contents of extension `oid` in `tbs`, if present.
fn extension_value(tbs: &[u8], oid: &ObjectIdentifier) -> Result<Option<Vec<u8>>, CtError> {
    let parts = tbs_parts(tbs)?;
    let Some((tlv, _)) = parts.extensions.iter().find(|(_, o)| o == oid) else {
        return Ok(None);
    };
    let ext = x509_cert::ext::Extension::from_der(tlv)
        .map_err(|_| CtError::Certificate("extension is not DER".into()))?;
    Ok(Some(ext.extn_value.as_bytes().to_vec()))
}

/// `tbs` with extension `oid` removed (`None`) or replaced by the Extension DER `with`, in
/// the same position. Exactly one `oid` extension must be present.
fn replace_extension(
    tbs: &[u8],
    oid: &ObjectIdentifier,
    with: Option<Vec<u8>>,
) -> Result<Vec<u8>, CtError> {
    let parts = tbs_parts(tbs)?;
    if parts.extensions.iter().filter(|(_, o)| o == oid).count() != 1 {
        return Err(CtError::Certificate(format!(
            "the certificate does not have exactly one {oid} extension"
        )));
    }
    let mut list = Vec::new();
    for (tlv, o) in &parts.extensions {
        if o == oid {
            if let Some(w) = &with {
                list.extend_from_slice(w);
            }
        } else {
            list.extend_from_slice(tlv);
        }
    }
    let seq = wrap(Tag::Sequence, &list)?;
    let explicit = wrap(
        Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber(3),
        },
        &seq,
    )?;
    let mut body: Vec<u8> = parts.before.concat();
    body.extend_from_slice(&explicit);
    wrap(Tag::Sequence, &body)
}

fn wrap(tag: Tag, content: &[u8]) -> Result<Vec<u8>, CtError> {
    let len = Length::try_from(content.len()).map_err(|_| CtError::Malformed("DER length"))?;
    let mut out = Header::new(tag, len)
        .to_der()
        .map_err(|_| CtError::Malformed("DER header"))?;
    out.extend_from_slice(content);
    Ok(out)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn push_vec16(out: &mut Vec<u8>, data: &[u8]) -> Result<(), CtError> {
    let len = u16::try_from(data.len()).map_err(|_| CtError::Malformed("TLS vector too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Reads TLS presentation-language fields (RFC 5246 §4) from network input without panics.
struct TlsReader<'a>(&'a [u8]);

impl<'a> TlsReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CtError> {
        if self.0.len() < n {
            return Err(CtError::Malformed("SCT: truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CtError> {
        Ok(self.take(1)?[0])
    }

    fn vec16(&mut self) -> Result<&'a [u8], CtError> {
        let len = self.take(2)?;
        let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
        self.take(n)
    }
}

#[cfg(test)]
mod tests;
