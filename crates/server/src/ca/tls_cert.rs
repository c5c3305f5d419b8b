//! The server's own HTTPS certificate. In private trust it is issued by the *server TLS CA*:
//! a subordinate of the root that `init` makes, technically constrained (RFC 5280 §4.2.1.10
//! Name Constraints) to the server's own names (localhost, 127.0.0.1, ::1 and `--tls-name`
//! values) and to serverAuth, so clients that trust `fleetca ca root` trust the server while
//! the unconstrained root key can stay offline (`init --root-key-out`). Its key is online: it
//! can certify nothing but the names the server's own key already answers for. In public-trust
//! mode a small local TLS root signs the certificate instead. The issuing CA never does: the
//! server's names usually lie outside its name constraints.

use pki::signer::{RcgenSigner, Signer};
use rcgen::{
    CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair,
    KeyUsagePurpose, NameConstraints, SanType,
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
    sign_by(&params, key, root_cert_der, root)
}

/// Lifetime of the server TLS CA (bounded by the root's notAfter).
pub const SERVER_TLS_CA_DAYS: i64 = 3650;

/// The names the server's HTTPS certificate always carries, then `extra` (`--tls-name`).
pub fn server_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

/// The server TLS CA under `root`: pathLen 0, keyCertSign/cRLSign, EKU serverAuth, and
/// critical Name Constraints permitting exactly `names` (each DNS name as a subtree, each IP
/// as a single-address range), so that neither DNS names nor IP addresses outside them can
/// be certified (RFC 5280 §4.2.1.10: a name type without a permitted subtree is unconstrained,
/// so both types are always listed; 127.0.0.1 and ::1 are among the names).
pub fn create_server_tls_ca(
    root_cert_der: &[u8],
    root: &dyn Signer,
    key: &KeyPair,
    names: &[String],
) -> anyhow::Result<Vec<u8>> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "fleetca server TLS CA");
    let permitted = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, bits))
            }
            Err(_) => GeneralSubtree::DnsName(n.clone()),
        })
        .collect();
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = (now + Duration::days(SERVER_TLS_CA_DAYS))
        .min(pki::cert_info::not_after_of(root_cert_der)?);
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    sign_by(&params, key, root_cert_der, root)
}

/// The names a server TLS CA permits (its Name Constraints), in certificate order: what a
/// re-issued server certificate carries.
pub fn permitted_names(tls_ca_der: &[u8]) -> anyhow::Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, ca) = x509_parser::parse_x509_certificate(tls_ca_der)
        .map_err(|e| anyhow::anyhow!("parsing the server TLS CA: {e}"))?;
    let nc = ca
        .name_constraints()
        .map_err(|e| anyhow::anyhow!("server TLS CA name constraints: {e}"))?
        .ok_or_else(|| anyhow::anyhow!("the server TLS CA has no name constraints"))?;
    let mut names = Vec::new();
    for s in nc.value.permitted_subtrees.iter().flatten() {
        match &s.base {
            GeneralName::DNSName(d) => names.push(d.to_string()),
            GeneralName::IPAddress(b) if b.len() == 8 => {
                let a: [u8; 4] = b[..4].try_into()?;
                names.push(std::net::IpAddr::from(a).to_string());
            }
            GeneralName::IPAddress(b) if b.len() == 32 => {
                let a: [u8; 16] = b[..16].try_into()?;
                names.push(std::net::IpAddr::from(a).to_string());
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The DNS names and IP addresses in a certificate's subjectAltName.
pub fn san_names(cert_der: &[u8]) -> anyhow::Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| anyhow::anyhow!("parsing the server certificate: {e}"))?;
    let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| anyhow::anyhow!("server certificate subjectAltName: {e}"))?
    else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
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

/// Signs `params` for `key` by the CA whose certificate is `issuer_der` and whose key `signer`
/// holds, keeping the signer's own error (rcgen would reduce it to `RemoteKeyError`).
fn sign_by(
    params: &CertificateParams,
    key: &impl rcgen::PublicKeyData,
    issuer_der: &[u8],
    signer: &dyn Signer,
) -> anyhow::Result<Vec<u8>> {
    let signer = RcgenSigner::new(signer)?;
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_der.to_vec().into(), &signer)?;
    let cert = params
        .signed_by(key, &issuer)
        .map_err(|e| match signer.take_error() {
            Some(inner) => anyhow::Error::new(inner),
            None => anyhow::Error::new(e),
        })?;
    Ok(cert.der().to_vec())
}
