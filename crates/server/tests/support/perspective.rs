//! Remote validation perspectives for tests (CA/B Forum BR §3.2.2.9): real `fleetca
//! perspective` processes, each with its own `pebble-challtestsrv` as DNS resolver (so that a
//! test can make one see other records), and the mutual-TLS material they and the CA's nodes
//! use. [`mpic_toml`] writes the `[mpic]` section that lists them.
#![allow(dead_code)] // each includer uses a different subset

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType, PKCS_ECDSA_P256_SHA256,
};

use super::{ChallTestSrv, ChildGuard, Fleetca, Probe};

/// Regions of five perspectives: 1-2 ARIN, 3-4 RIPE, 5 APNIC. With five the quorum table
/// allows one non-corroborating perspective; corroborating ones must span two RIR regions.
pub(crate) const REGIONS: [&str; 5] = ["ARIN", "ARIN", "RIPE", "RIPE", "APNIC"];

/// PEM files for the perspectives' mutual TLS: one CA signs the perspectives' server
/// certificate (127.0.0.1) and the CA nodes' client certificate; another CA signs a client
/// certificate no perspective may accept.
pub(crate) struct Mtls {
    _dir: tempfile::TempDir,
    pub(crate) ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    pub(crate) rogue_cert: PathBuf,
    pub(crate) rogue_key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap())
        .unwrap()
}

/// Writes a leaf signed by `ca` (`server`: serverAuth for 127.0.0.1, else clientAuth); the key
/// file is mode 0600.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    dir: &Path,
    name: &str,
    server: bool,
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    if server {
        p.subject_alt_names = vec![SanType::IpAddress(Ipv4Addr::LOCALHOST.into())];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let cert = p.signed_by(&key, ca).unwrap();
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    fs::write(&cert_path, cert.pem()).unwrap();
    fs::write(&key_path, key.serialize_pem()).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    (cert_path, key_path)
}

impl Mtls {
    pub(crate) fn new() -> Mtls {
        let dir = super::temp_dir("mpic-tls");
        let good = ca("fleetca perspectives test CA");
        let rogue = ca("some other CA");
        let ca_path = dir.path().join("ca.pem");
        fs::write(&ca_path, good.pem()).unwrap();
        let (server_cert, server_key) = leaf(&good, dir.path(), "perspective", true);
        let (client_cert, client_key) = leaf(&good, dir.path(), "ca-node", false);
        let (rogue_cert, rogue_key) = leaf(&rogue, dir.path(), "intruder", false);
        Mtls {
            ca: ca_path,
            server_cert,
            server_key,
            client_cert,
            client_key,
            rogue_cert,
            rogue_key,
            _dir: dir,
        }
    }
}

/// One `fleetca perspective` with its own DNS server.
pub(crate) struct Perspective {
    /// `None` once the test has stopped it.
    pub(crate) guard: Option<ChildGuard>,
    pub(crate) dns: ChallTestSrv,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Perspective {
    /// Starts one in `region`; it validates http-01 on `http01_port`.
    pub(crate) fn start(region: &str, tls: &Mtls, http01_port: u16) -> Perspective {
        let dns = ChallTestSrv::start();
        let dir = super::temp_dir("perspective");
        let port = super::free_port();
        let mut cmd = Command::new(Fleetca::bin());
        cmd.arg("perspective")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--region", region])
            .arg("--tls-cert")
            .arg(&tls.server_cert)
            .arg("--tls-key")
            .arg(&tls.server_key)
            .arg("--client-ca")
            .arg(&tls.ca)
            .args(["--dns-resolver", &dns.dns_addr()])
            .args(["--http01-port", &http01_port.to_string()])
            .args(["--va-allow-address", "127.0.0.0/8"])
            .env("RUST_LOG", "info");
        let mut guard = ChildGuard::spawn(
            &format!("perspective-{region}-{port}"),
            cmd,
            &dir.path().join("perspective.log"),
        );
        super::wait_for(
            &Probe::Port(port),
            super::STARTUP_DEADLINE,
            Some(&mut guard),
        )
        .unwrap_or_else(|e| panic!("perspective did not start: {e}"));
        Perspective {
            guard: Some(guard),
            dns,
            port,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub(crate) fn dns_ref(&self) -> &ChallTestSrv {
        &self.dns
    }
}

/// The `[mpic]` section of `fleetca.toml` for `perspectives` (in [`REGIONS`] order), the CA
/// nodes authenticating with `tls`'s client certificate.
pub(crate) fn mpic_toml(tls: &Mtls, perspectives: &[Perspective]) -> String {
    let mut mpic = format!(
        "\n[mpic]\nclient_cert = {:?}\nclient_key = {:?}\nca = {:?}\ntimeout_secs = 5\n",
        tls.client_cert, tls.client_key, tls.ca
    );
    for (p, region) in perspectives.iter().zip(REGIONS) {
        mpic.push_str(&format!(
            "\n[[mpic.perspectives]]\nurl = {:?}\nregion = {region:?}\n",
            p.url()
        ));
    }
    mpic
}
