//! The server's own HTTPS certificate, signed by the root fleetca made (so clients that trust
//! `fleetca ca root` trust the server too) or, in public-trust mode, by a small local TLS root.
//! It is issued by the root directly, not by the issuing CA, because the server's own names
//! (localhost, its IP) usually lie outside the issuing CA's name constraints.

use pki::signer::{RcgenSigner, Signer};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// Lifetime of the server certificate; `serve` re-issues it when less than a third remains.
pub const SERVER_CERT_DAYS: i64 = 90;

/// Issues a TLS server certificate for `names` (DNS names or IP literals) under `root`.
pub fn issue_server_cert(
    root_cert_der: &[u8],
    root: &dyn Signer,
    key: &KeyPair,
    names: &[String],
) -> anyhow::Result<Vec<u8>> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "fleetca ACME server");
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(SERVER_CERT_DAYS);
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let signer = RcgenSigner::new(root)?;
    let issuer = rcgen::Issuer::from_ca_cert_der(&root_cert_der.to_vec().into(), &signer)?;
    let cert = params
        .signed_by(key, &issuer)
        .map_err(|e| match signer.take_error() {
            Some(inner) => anyhow::Error::new(inner),
            None => anyhow::Error::new(e),
        })?;
    Ok(cert.der().to_vec())
}

/// A self-signed root used only to anchor the server certificate in public-trust mode.
pub fn create_tls_root(key: &KeyPair) -> anyhow::Result<Vec<u8>> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "fleetca local TLS root");
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params.self_signed(key)?.der().to_vec())
}

fn random_serial() -> rcgen::SerialNumber {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[0] &= 0x7f; // positive INTEGER (RFC 5280 §4.1.2.2)
    rcgen::SerialNumber::from_slice(&b)
}
