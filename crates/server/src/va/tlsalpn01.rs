//! tls-alpn-01 (RFC 8737; RFC 8738 §6 for IP identifiers).
//!
//! Connects to `<address>:<tlsalpn01_port>` with SNI = the name (for an IP, its `in-addr.arpa` /
//! `ip6.arpa` reverse name), offering only ALPN `acme-tls/1`, TLS 1.2 or 1.3. The server must
//! select `acme-tls/1`; its certificate must have exactly one subjectAltName entry (the dNSName
//! or iPAddress being validated) and the critical acmeIdentifier extension
//! (1.3.6.1.5.5.7.1.31) holding the DER OCTET STRING of SHA-256(key authorization). The
//! handshake signature is verified against the certificate's key (see `tls.rs`).

use std::net::{IpAddr, SocketAddr};

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::time::{timeout_at, Instant};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;

use super::tls::ACME_TLS_1;
use super::{ChallengeKind, Inner, Target, ValidationError, ValidationRecord};

/// id-pe-acmeIdentifier.
const ACME_IDENTIFIER_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 31];

pub(crate) async fn validate(
    inner: &Inner,
    target: &Target,
    key_authorization: &str,
    deadline: Instant,
) -> Result<ValidationRecord, ValidationError> {
    let port = inner.cfg.tlsalpn01_port;
    let (addrs, sni) = match target {
        Target::Dns(name) => {
            let addrs = match timeout_at(deadline, inner.resolver.lookup_ips(name)).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(ValidationError::Dns(format!(
                        "{target}: A/AAAA lookup timed out"
                    )))
                }
            };
            (addrs, name.clone())
        }
        Target::Ip(ip) => (vec![*ip], super::reverse_name(*ip)),
    };
    let mut record = ValidationRecord::new(ChallengeKind::TlsAlpn01, target);
    record.port = Some(port);
    record.addresses_resolved = addrs.clone();
    record.sni = Some(sni.clone());
    let server_name = ServerName::try_from(sni.clone()).map_err(|e| {
        ValidationError::Malformed(format!("{target}: {sni} cannot be sent as SNI: {e}"))
    })?;
    let peer = super::http01::Peer::tls_alpn(target);
    let (tcp, addr) =
        super::http01::connect_any(&inner.cfg.addresses, &peer, &addrs, port, deadline).await?;
    record.address_used = Some(addr);
    let sa = SocketAddr::new(addr, port);
    let connector = tokio_rustls::TlsConnector::from(inner.tls.alpn.clone());
    let tls = match timeout_at(deadline, connector.connect(server_name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            if is_no_alpn_alert(&e) {
                return Err(ValidationError::Unauthorized(format!(
                    "{target}: the TLS server at {sa} refused the ALPN protocol acme-tls/1; is \
                     the tls-alpn-01 responder running?"
                )));
            }
            return Err(ValidationError::Tls(format!(
                "{target}: TLS handshake with {sa} (SNI {sni}, ALPN acme-tls/1) failed: {}",
                super::truncate(&e.to_string(), 120)
            )));
        }
        Err(_) => {
            return Err(ValidationError::Connection(format!(
                "{target}: TLS handshake with {sa} timed out"
            )))
        }
    };
    let (_, conn) = tls.get_ref();
    if conn.alpn_protocol() != Some(ACME_TLS_1) {
        // Which protocol it chose instead is the server's text: not repeated.
        return Err(ValidationError::Unauthorized(format!(
            "{target}: the TLS server at {sa} did not select the ALPN protocol acme-tls/1; is \
             the tls-alpn-01 responder running?"
        )));
    }
    let leaf: CertificateDer<'static> = match conn.peer_certificates().and_then(|c| c.first()) {
        Some(c) => c.clone().into_owned(),
        None => {
            return Err(ValidationError::Tls(format!(
                "{target}: the TLS server at {sa} presented no certificate"
            )))
        }
    };
    drop(tls);
    check_certificate(target, sa, &leaf, key_authorization)?;
    Ok(record)
}

fn is_no_alpn_alert(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|re| {
            matches!(
                re,
                rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
            )
        })
}

/// RFC 8737 §3 checks of the validation certificate.
pub(crate) fn check_certificate(
    target: &Target,
    sa: SocketAddr,
    der: &[u8],
    key_authorization: &str,
) -> Result<(), ValidationError> {
    let wrong = |why: String| {
        Err(ValidationError::IncorrectResponse(format!(
            "{target}: the tls-alpn-01 certificate presented by {sa} {why}"
        )))
    };
    let (_, cert) = match x509_parser::parse_x509_certificate(der) {
        Ok(c) => c,
        Err(e) => return wrong(format!("cannot be parsed: {e}")),
    };
    // subjectAltName: exactly one entry, the identifier.
    let san = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value,
        Ok(None) => return wrong("has no subjectAltName extension".into()),
        Err(e) => return wrong(format!("has an unreadable subjectAltName extension: {e}")),
    };
    let matches = san.general_names.len() == 1
        && match (&san.general_names[0], target) {
            (GeneralName::DNSName(d), Target::Dns(name)) => d.eq_ignore_ascii_case(name),
            (GeneralName::IPAddress(bytes), Target::Ip(IpAddr::V4(v4))) => {
                *bytes == v4.octets().as_slice()
            }
            (GeneralName::IPAddress(bytes), Target::Ip(IpAddr::V6(v6))) => {
                *bytes == v6.octets().as_slice()
            }
            _ => false,
        };
    if !matches {
        // The names it does carry are the server's content: only their number is reported.
        return wrong(format!(
            "must name exactly {target} in its subjectAltName, but it has {} entries and \
             not exactly that one",
            san.general_names.len()
        ));
    }
    // acmeIdentifier: critical, OCTET STRING (SIZE (32)) of SHA-256(key authorization).
    let oid = Oid::from(ACME_IDENTIFIER_OID).expect("static OID");
    let ext = cert.extensions().iter().find(|e| e.oid == oid);
    let Some(ext) = ext else {
        return wrong("has no acmeIdentifier extension (1.3.6.1.5.5.7.1.31)".into());
    };
    if !ext.critical {
        return wrong("has an acmeIdentifier extension that is not marked critical".into());
    }
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    let mut expected = vec![0x04, 0x20];
    expected.extend_from_slice(digest.as_ref());
    if ext.value != expected.as_slice() {
        return wrong(format!(
            "has an acmeIdentifier that is not the SHA-256 of the key authorization ({})",
            hex(digest.as_ref())
        ));
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
