//! Loading what `init` made: the issuing CA for `serve` and the server's TLS configuration.

use crate::ca::{IssuingCa, IssuingCaParts};
use crate::datadir::{CaConfig, DataDir, Pkcs11Section, RetiredIssuer, Trust};
use anyhow::Context;
use pki::policy::Permitted;
use pki::signer::{FileSigner, Signer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn read_pem_ders(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(pki::cert_info::pem_to_ders(&text)?)
}

/// Loads the tenant's active issuing CA: key (decrypting with `passphrase` if needed),
/// certificate, chain, and the private root when there is one. No CRL shards and no
/// delegated OCSP responder (what operator commands need); `serve` builds its CAs from
/// [`load_issuing_ca_parts`].
pub(crate) fn load_issuing_ca(
    dd: &DataDir,
    cfg: &CaConfig,
    passphrase: Option<&[u8]>,
    pkcs11_pin_file: Option<&Path>,
) -> anyhow::Result<IssuingCa> {
    load_issuing_ca_parts(dd, cfg, passphrase, pkcs11_pin_file).map(IssuingCa::new)
}

/// What [`load_issuing_ca`] builds its CA from, for a caller that completes the parts (CRL
/// shards, OCSP responder) before building.
pub(crate) fn load_issuing_ca_parts(
    dd: &DataDir,
    cfg: &CaConfig,
    passphrase: Option<&[u8]>,
    pkcs11_pin_file: Option<&Path>,
) -> anyhow::Result<IssuingCaParts> {
    let name = &cfg.ca.name;
    if !dd.ca_cert(name).exists() {
        anyhow::bail!(
            "the issuing CA has no certificate yet: send {} to the outside root, then run `fleetca subca import --data-dir {} CERT [CHAIN]`",
            dd.ca_csr(name).display(),
            dd.path().display()
        );
    }
    let key = super::ca_key::open_issuing_key(dd, cfg, passphrase, pkcs11_pin_file)?;
    load_ca_in(
        dd,
        cfg,
        cfg.ca.issuer_id(),
        &dd.ca_dir(name),
        cfg.ca.pkcs11.as_ref(),
        key,
    )
}

/// The parts of the tenant's retired issuing CAs (`fleetca tenant rollover`), in id order.
/// Each still signs its CRLs and OCSP answers, so its key is opened like the active one's.
pub(crate) fn load_retired_ca_parts(
    dd: &DataDir,
    cfg: &CaConfig,
    passphrase: Option<&[u8]>,
    pkcs11_pin_file: Option<&Path>,
) -> anyhow::Result<Vec<IssuingCaParts>> {
    let mut out = Vec::new();
    for (meta, dir) in retired_issuers(dd, &cfg.ca.name)? {
        let key = super::ca_key::open_key(
            &cfg.ca.name,
            &dir.join("key.pem"),
            meta.pkcs11.as_ref(),
            passphrase,
            pkcs11_pin_file,
        )?;
        let ca = load_ca_in(dd, cfg, &meta.id, &dir, meta.pkcs11.as_ref(), key)
            .with_context(|| format!("loading the retired issuing CA {:?}", meta.id))?;
        out.push(ca);
    }
    Ok(out)
}

/// Loads the issuing CA `id` of the tenant, active or retired (operator commands that re-sign
/// the CRL of the CA that signed a certificate).
pub(crate) fn load_issuer_by_id(
    dd: &DataDir,
    cfg: &CaConfig,
    id: &str,
    passphrase: Option<&[u8]>,
    pkcs11_pin_file: Option<&Path>,
) -> anyhow::Result<IssuingCa> {
    if id == cfg.ca.issuer_id() {
        return load_issuing_ca(dd, cfg, passphrase, pkcs11_pin_file);
    }
    let (meta, dir) = retired_issuers(dd, &cfg.ca.name)?
        .into_iter()
        .find(|(m, _)| m.id == id)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "tenant {:?} has no issuing CA {id:?} (neither active nor in {})",
                cfg.ca.name,
                dd.retired_dir(&cfg.ca.name).display()
            )
        })?;
    let key = super::ca_key::open_key(
        &cfg.ca.name,
        &dir.join("key.pem"),
        meta.pkcs11.as_ref(),
        passphrase,
        pkcs11_pin_file,
    )?;
    load_ca_in(dd, cfg, &meta.id, &dir, meta.pkcs11.as_ref(), key).map(IssuingCa::new)
}

/// The retired CAs of a tenant: each `ca/NAME/retired/ID/issuer.toml` and its directory.
pub(crate) fn retired_issuers(
    dd: &DataDir,
    tenant: &str,
) -> anyhow::Result<Vec<(RetiredIssuer, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dd.retired_dir(tenant)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for e in entries {
        let dir = e?.path();
        let meta_path = dir.join("issuer.toml");
        if !meta_path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&meta_path)
            .with_context(|| format!("reading {}", meta_path.display()))?;
        let meta: RetiredIssuer =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", meta_path.display()))?;
        out.push((meta, dir));
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(out)
}

/// One issuing CA from `dir` (its `cert.pem`, and `chain.pem` for public trust) and its key.
fn load_ca_in(
    dd: &DataDir,
    cfg: &CaConfig,
    id: &str,
    dir: &Path,
    pkcs11: Option<&Pkcs11Section>,
    signer: Arc<dyn Signer>,
) -> anyhow::Result<IssuingCaParts> {
    let name = &cfg.ca.name;
    let cert_path = dir.join("cert.pem");
    let cert_der = read_pem_ders(&cert_path)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} holds no certificate", cert_path.display()))?;
    if pki::cert_info::spki_der_of(&cert_der)? != signer.public_key_der() {
        anyhow::bail!(
            "{} does not match the issuing CA key{}",
            cert_path.display(),
            match pkcs11 {
                Some(p) => format!(" {:?} in PKCS#11 token {:?}", p.key, p.token),
                None => format!(" in {}", dir.join("key.pem").display()),
            }
        );
    }
    let permitted = Permitted::parse(&cfg.ca.permit).context("fleetca.toml: invalid permit")?;
    let profile = super::init::profile_for(cfg, permitted);
    let (intermediates, root_der, root_crl) = match cfg.ca.trust {
        Trust::Private => {
            let root = read_pem_ders(&dd.root_cert())?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    anyhow::anyhow!("{} holds no certificate", dd.root_cert().display())
                })?;
            let crl = std::fs::read(dd.root_crl()).ok();
            (Vec::new(), Some(root), crl)
        }
        Trust::Public => {
            let chain_path = dir.join("chain.pem");
            let mut chain = if chain_path.exists() {
                read_pem_ders(&chain_path)?
            } else {
                Vec::new()
            };
            // The last certificate of the chain is the root when it is self-issued; it is
            // offered only as the alternate chain.
            let root = chain.last().filter(|c| is_self_issued(c)).cloned();
            if root.is_some() {
                chain.pop();
            }
            (chain, root, None)
        }
    };
    let mut above = intermediates.clone();
    above.extend(root_der.iter().cloned());
    // The chain lets the issuer refuse CSRs that reuse any CA key above it too.
    let issuer = pki::issue::Issuer::new(
        id,
        cert_der.clone(),
        above,
        signer.clone(),
        profile,
        Vec::new(),
    )?;
    Ok(IssuingCaParts {
        name: id.to_string(),
        tenant: name.clone(),
        issuer,
        signer,
        cert_der,
        intermediates,
        root_der,
        root_crl,
        lifetime: Duration::from_secs(u64::from(cfg.ca.lifetime_days) * 86400),
        backdate: BACKDATE,
        crl_shards: 0,
        ocsp_responder: None,
    })
}

/// How far notBefore is set before the moment of issuance (clock skew on devices).
const BACKDATE: Duration = Duration::from_secs(3600);

/// Public trust: refuses a configured lifetime whose certificates, issued at `now`, would be
/// valid longer than BR §6.3.2 allows on that date (ballot SC-081: 200 days from 2026-03-15,
/// 100 from 2027-03-15, 47 from 2029-03-15), counting the notBefore backdate and both ends
/// of the period (RFC 5280 §4.1.2.5). `tenant add` and `serve` call it with the server clock,
/// so a tenant that was fine last year stops at the next start instead of failing every
/// finalize. Private trust keeps the fixed [`pki::issue::MAX_LEAF_LIFETIME`] cap.
pub(crate) fn check_lifetime(cfg: &CaConfig, now: time::OffsetDateTime) -> anyhow::Result<()> {
    if cfg.ca.trust != Trust::Public {
        return Ok(());
    }
    let not_before = now - BACKDATE;
    let max = pki::issue::max_leaf_lifetime(not_before).min(pki::issue::MAX_LEAF_LIFETIME);
    let period =
        time::Duration::days(i64::from(cfg.ca.lifetime_days)) + BACKDATE + time::Duration::SECOND;
    if period > max {
        let allowed = (max - BACKDATE - time::Duration::SECOND).whole_days();
        anyhow::bail!(
            "tenant {:?}: lifetime_days = {} is too long for public trust on {}: BR §6.3.2 allows at most {} days of validity, and with the 1-hour notBefore backdate that is lifetime_days = {allowed} at most",
            cfg.ca.name,
            cfg.ca.lifetime_days,
            now.date(),
            max.whole_days(),
        );
    }
    Ok(())
}

/// The tenant's CT logs when it requires SCTs (`[ca] ct_logs`, `ct_required`; docs/ct.md).
/// Refuses a configuration whose logs cannot satisfy the CT policy for the CA's longest
/// certificate validity, so that no order of it could ever complete.
pub(crate) fn load_ct(
    cfg: &CaConfig,
    ca: &IssuingCa,
) -> anyhow::Result<Option<Arc<crate::ct::CtLogs>>> {
    let Some(logs) =
        crate::ct::logs_from_config(&cfg.ca.ct_logs, cfg.ca.ct_required(), ca.longest_validity())?
    else {
        if cfg.ca.trust == crate::datadir::Trust::Public {
            // Allowed (tests isolate a sub-CA from CT this way), never quietly: browsers reject
            // a publicly trusted certificate without SCTs. `fleetca doctor` warns too.
            tracing::warn!(
                tenant = %cfg.ca.name,
                "publicly trusted tenant with ct_required = false: its certificates carry no SCTs and browsers will reject them"
            );
        }
        return Ok(None);
    };
    let roots = std::fs::read_to_string(crate::ct::SYSTEM_ROOTS).unwrap_or_default();
    let http = crate::ct::http_client(&roots)?;
    Ok(Some(Arc::new(crate::ct::CtLogs::new(logs, http))))
}

/// The HTTPS certificate of a running server. Every listener sharing the rustls configuration
/// asks it for the certificate at each handshake, so a re-issued one (see
/// [`refresh_server_tls`]) is served at once, whatever listener implementation runs.
#[derive(Debug)]
pub(crate) struct ServerCert(std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>);

impl rustls::server::ResolvesServerCert for ServerCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The rustls configuration for the HTTPS listener: the given certificate, or the one in the
/// data directory (re-issued by the server TLS CA when it nears expiry or is missing), and
/// the handle through which a running server swaps that certificate.
pub(crate) fn server_tls_config(
    dd: &DataDir,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Arc<ServerCert>)> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        _ => {
            renew_server_cert_if_needed(dd)?;
            (dd.tls_cert(), dd.tls_key())
        }
    };
    let current = Arc::new(ServerCert(std::sync::RwLock::new(Arc::new(certified_key(
        &cert_path, &key_path,
    )?))));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(current.clone());
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), current))
}

/// For a running `serve` (certificate from the data directory): re-issues the HTTPS
/// certificate when it is due and swaps it into `current`; true when it did.
pub(crate) fn refresh_server_tls(dd: &DataDir, current: &ServerCert) -> anyhow::Result<bool> {
    if !renew_server_cert_if_needed(dd)? {
        return Ok(false);
    }
    let renewed = certified_key(&dd.tls_cert(), &dd.tls_key())?;
    *current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(renewed);
    Ok(true)
}

fn certified_key(cert_path: &Path, key_path: &Path) -> anyhow::Result<rustls::sign::CertifiedKey> {
    let chain = read_pem_ders(cert_path)?
        .into_iter()
        .map(rustls_pki_types::CertificateDer::from)
        .collect::<Vec<_>>();
    let key_pem =
        std::fs::read(key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())?
        .ok_or_else(|| anyhow::anyhow!("{} holds no private key", key_path.display()))?;
    rustls::sign::CertifiedKey::from_der(chain, key, &rustls::crypto::aws_lc_rs::default_provider())
        .context("the server certificate and key do not match")
}

/// Re-issues the data directory's HTTPS certificate when a third or less of its validity is
/// left, or it is missing; true when it did.
fn renew_server_cert_if_needed(dd: &DataDir) -> anyhow::Result<bool> {
    let leaf = read_pem_ders(&dd.tls_cert())
        .ok()
        .and_then(|c| c.into_iter().next());
    let due = match &leaf {
        Some(leaf) => {
            let remaining = pki::cert_info::not_after_of(leaf)? - time::OffsetDateTime::now_utc();
            remaining <= time::Duration::days(crate::ca::tls_cert::SERVER_CERT_DAYS / 3)
        }
        None => true,
    };
    if !due {
        return Ok(false);
    }
    if dd.tls_ca_cert().exists() {
        // The server TLS CA re-issues for the names it is constrained to; the root key is
        // not involved (it may be offline).
        let ca_der = read_pem_ders(&dd.tls_ca_cert())?
            .into_iter()
            .next()
            .ok_or_else(|| {
                anyhow::anyhow!("{} holds no certificate", dd.tls_ca_cert().display())
            })?;
        let ca = FileSigner::load(&dd.tls_ca_key(), None)
            .with_context(|| format!("loading {}", dd.tls_ca_key().display()))?;
        let names = crate::ca::tls_cert::permitted_names(&ca_der)?;
        tracing::info!("issuing the server's HTTPS certificate from the server TLS CA");
        return super::init::write_server_tls(dd, &ca_der, &ca, &names).map(|()| true);
    }
    // Data directories made before the server TLS CA existed: their certificate was issued by
    // the root, whose key is then in the data directory. The root makes the server TLS CA
    // once, for the names of the current certificate, and signs no server certificate itself.
    if !dd.root_key().exists() {
        if leaf.is_none() {
            anyhow::bail!(
                "{} is missing; pass --tls-cert/--tls-key",
                dd.tls_cert().display()
            );
        }
        return Ok(false);
    }
    let root_der = read_pem_ders(&dd.root_cert())?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no root certificate"))?;
    // An encrypted root key needs the passphrase; without it the old certificate is kept.
    let Ok(root) = FileSigner::load(
        &dd.root_key(),
        std::env::var("FLEETCA_KEY_PASSPHRASE")
            .ok()
            .as_deref()
            .map(str::as_bytes),
    ) else {
        tracing::warn!(
            "the server certificate expires soon and the root key could not be loaded to renew it"
        );
        return Ok(false);
    };
    let names = match &leaf {
        Some(leaf) => crate::ca::tls_cert::san_names(leaf)?,
        None => Vec::new(),
    };
    tracing::info!("creating the server TLS CA (this data directory has none) and issuing the server's HTTPS certificate from it");
    super::init::write_server_tls_ca(dd, &root_der, &root, &names).map(|()| true)
}

/// Whether a certificate's subject equals its issuer (a root, in a chain file).
fn is_self_issued(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.subject().as_raw() == c.issuer().as_raw())
        .unwrap_or(false)
}

/// Loads the tenant's manufacturing CA roots for `device-attest-01` (empty when none are
/// configured). Attestation is a private-trust feature: a public-trust tenant refuses it.
pub(crate) fn load_attestation_roots(dd: &DataDir, cfg: &CaConfig) -> anyhow::Result<Vec<Vec<u8>>> {
    if cfg.ca.attestation_roots.is_empty() {
        return Ok(Vec::new());
    }
    if cfg.ca.trust != Trust::Private {
        anyhow::bail!(
            "tenant {:?}: attestation_roots requires trust = \"private\"",
            cfg.ca.name
        );
    }
    let mut out = Vec::new();
    for p in &cfg.ca.attestation_roots {
        let path = dd.path().join(p);
        let ders = read_pem_ders(&path)?;
        if ders.is_empty() {
            anyhow::bail!("{}: no certificate", path.display());
        }
        out.extend(ders);
    }
    Ok(out)
}

/// Loads the tenant's name templates (`attested_names`, see `ra::name_template`). Refused at
/// load, so a bad configuration never serves: a public-trust tenant (a device serial is not
/// something a publicly trusted CA may vouch for), templates without `attestation_roots`, and
/// any template whose expansions could leave the tenant's permitted names.
pub(crate) fn load_attested_names(cfg: &CaConfig) -> anyhow::Result<Vec<crate::ra::NameTemplate>> {
    if cfg.ca.attested_names.is_empty() {
        return Ok(Vec::new());
    }
    let tenant = &cfg.ca.name;
    if cfg.ca.trust != Trust::Private {
        anyhow::bail!("tenant {tenant:?}: attested_names requires trust = \"private\"");
    }
    if cfg.ca.attestation_roots.is_empty() {
        anyhow::bail!(
            "tenant {tenant:?}: attested_names needs attestation_roots (the names are granted by \
             a verified device attestation)"
        );
    }
    let permitted = Permitted::parse(&cfg.ca.permit)
        .with_context(|| format!("tenant {tenant:?}: invalid permit"))?;
    cfg.ca
        .attested_names
        .iter()
        .map(|t| {
            let t = crate::ra::NameTemplate::parse(t)
                .map_err(|e| anyhow::anyhow!("tenant {tenant:?}: {e}"))?;
            t.check_within(&permitted)
                .map_err(|e| anyhow::anyhow!("tenant {tenant:?}: {e}"))?;
            Ok(t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datadir::CaSection;

    fn config(trust: Trust, roots: &[&str], names: &[&str]) -> CaConfig {
        CaConfig {
            mpic: None,
            ca: CaSection {
                name: "default".into(),
                trust,
                permit: vec!["routers.example.com".into()],
                client_auth: false,
                public_base_url: "http://ca.example.com".into(),
                caa_identities: vec![],
                lifetime_days: 30,
                organization: None,
                country: None,
                common_name: None,
                terms_of_service: None,
                website: None,
                challenge_types: vec![acme_types::wire::ChallengeType::Http01],
                eab_required: false,
                rate_limits: Default::default(),
                attestation_roots: roots.iter().map(|s| s.to_string()).collect(),
                attested_names: names.iter().map(|s| s.to_string()).collect(),
                domain_reuse_days: None,
                pkcs11: None,
                issuer: None,
                disabled: false,
                ct_logs: Vec::new(),
                ct_required: None,
            },
        }
    }

    #[test]
    fn public_lifetime_follows_the_br_schedule_by_date() {
        use time::macros::datetime;
        let cfg = |trust, days| {
            let mut c = config(trust, &[], &[]);
            c.ca.lifetime_days = days;
            c
        };
        let in_2026 = datetime!(2026-12-03 12:00 UTC);
        let in_2027 = datetime!(2027-03-16 12:00 UTC);
        let in_2029 = datetime!(2029-03-16 12:00 UTC);
        check_lifetime(&cfg(Trust::Public, 199), in_2026).unwrap();
        let e = check_lifetime(&cfg(Trust::Public, 200), in_2026).unwrap_err();
        assert!(e.to_string().contains("lifetime_days = 199"), "{e}");
        let e = check_lifetime(&cfg(Trust::Public, 150), in_2027).unwrap_err();
        assert!(e.to_string().contains("at most 100 days"), "{e}");
        check_lifetime(&cfg(Trust::Public, 99), in_2027).unwrap();
        check_lifetime(&cfg(Trust::Public, 46), in_2029).unwrap();
        assert!(check_lifetime(&cfg(Trust::Public, 47), in_2029).is_err());
        // Private trust is not bound by the public schedule.
        check_lifetime(&cfg(Trust::Private, 150), in_2029).unwrap();
    }

    #[test]
    fn attested_names_are_checked_at_load() {
        let ok = config(
            Trust::Private,
            &["mfg.pem"],
            &["{serial}.routers.example.com", "config.routers.example.com"],
        );
        assert_eq!(load_attested_names(&ok).unwrap().len(), 2);
        assert!(load_attested_names(&config(Trust::Public, &[], &[]))
            .unwrap()
            .is_empty());

        let refused = |cfg: CaConfig, why: &str| {
            let e = load_attested_names(&cfg).unwrap_err().to_string();
            assert!(e.contains(why), "expected {why:?} in {e:?}");
        };
        refused(
            config(
                Trust::Public,
                &["mfg.pem"],
                &["{serial}.routers.example.com"],
            ),
            "requires trust = \"private\"",
        );
        refused(
            config(Trust::Private, &[], &["{serial}.routers.example.com"]),
            "needs attestation_roots",
        );
        refused(
            config(Trust::Private, &["mfg.pem"], &["{serial}.example.com"]),
            "could escape",
        );
        refused(
            config(
                Trust::Private,
                &["mfg.pem"],
                &["x{serial}.routers.example.com"],
            ),
            "whole label",
        );
        refused(
            config(Trust::Private, &["mfg.pem"], &["*.routers.example.com"]),
            "wildcards",
        );
    }
}
