//! The public-trust side of the tests: a real `openssl` CLI root plays the publicly trusted
//! root that signs the vendor tenants' CSRs (`fleetca tenant add --trust public`), and pkilint
//! lints what comes out.
#![allow(dead_code)] // each includer uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{run, Fleetca, Tool};

/// Runs the openssl CLI in `cwd`; its stdout (panics when it fails).
pub(crate) fn openssl(args: &[&str], cwd: &Path) -> String {
    let mut cmd = Command::new(Tool::Openssl.path());
    cmd.args(args).current_dir(cwd);
    let out = run(cmd, Duration::from_secs(30));
    assert!(out.success(), "openssl {args:?}\n{out}");
    out.stdout
}

/// What the outside root adds itself; the CA's own constraints (basicConstraints, keyUsage,
/// extKeyUsage, Name Constraints with the directoryName) are copied from the CSR.
pub(crate) const ROOT_ADDS: &str = "[v3]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
certificatePolicies = 2.23.140.1.2.1
crlDistributionPoints = URI:http://pki.root.example.com/root.crl
authorityInfoAccess = caIssuers;URI:http://pki.root.example.com/root.cer
";

/// The openssl root signs `csr` into `out`: with the CSR's extensions (`copy`), or only with
/// the extensions in `ext` (what a careless root might do).
pub(crate) fn root_signs(dir: &Path, csr: &Path, ext: &str, copy: bool, out: &str) -> PathBuf {
    std::fs::write(dir.join("ext.cnf"), ext).unwrap();
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-days",
        "1825",
        "-sha384",
        "-extfile",
        "ext.cnf",
        "-extensions",
        "v3",
        "-out",
        out,
    ];
    if copy {
        args.extend(["-copy_extensions", "copyall"]);
    }
    openssl(&args, dir);
    dir.join(out)
}

/// A vendor tenant: its sub-CA subject, the namespace its name constraints permit, and
/// whether its accounts need External Account Binding.
pub(crate) struct Vendor {
    pub(crate) name: &'static str,
    pub(crate) country: &'static str,
    pub(crate) organization: &'static str,
    pub(crate) permit: &'static str,
    pub(crate) eab: bool,
}

/// Two vendors, each its own country, organisation, namespace and EAB policy.
pub(crate) const VENDORS: [Vendor; 2] = [
    Vendor {
        name: "vendor-a",
        country: "GB",
        organization: "Vendor A Devices Ltd",
        permit: "a-devices.example.com",
        eab: true,
    },
    Vendor {
        name: "vendor-b",
        country: "DE",
        organization: "Vendor B Geräte GmbH",
        permit: "b-devices.example.net",
        eab: false,
    },
];

/// The first certificate of a PEM file, DER.
pub(crate) fn first_der(path: &Path) -> Vec<u8> {
    pki::cert_info::pem_to_ders(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .remove(0)
}

/// pkilint ERROR/FATAL findings on `file`, minus the one excused: the test's CRL, caIssuers
/// and OCSP URLs point at 127.0.0.1, which pkilint rightly calls an internal name (a
/// deployment sets `public_base_url` to a public host).
pub(crate) fn lint(test: &str, tool: &str, args: &[&str], file: &Path) -> Vec<String> {
    super::pkilint::lint(test, tool, args, file)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.is_serious())
        .filter(|f| !(f.code == "cabf.internal_domain_name" && f.message.contains("127.0.0.1")))
        .map(|f| format!("{}: {f}", file.display()))
        .collect()
}

/// Makes the openssl root (P-384, `root.key` and `root.pem`) in `dir`; returns `root.pem`.
pub(crate) fn make_root(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
            "-subj",
            "/C=US/O=Example Public Trust/CN=Example Public Root R1",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
    dir.join("root.pem")
}

/// `fleetca tenant add VENDOR --trust public` (90-day leaves), the openssl root in `dir`
/// signing its CSR with the CSR's constraints, and `subca import`; returns the vendor's
/// issuing CA certificate.
pub(crate) fn add_signed_tenant(ca: &Fleetca, v: &Vendor, dir: &Path, root: &Path) -> PathBuf {
    let mut args = vec!["tenant", "add", v.name, "--trust", "public"];
    args.extend(["--country", v.country, "--organization", v.organization]);
    args.extend(["--permit", v.permit, "--lifetime-days", "90"]);
    if v.eab {
        args.push("--eab-required");
    }
    let out = ca.cli(&args);
    assert!(out.success(), "{out}");
    let csr = ca.data_dir().join(format!("ca/{}/request.csr", v.name));
    let cert = root_signs(dir, &csr, ROOT_ADDS, true, &format!("{}.pem", v.name));
    import(ca, v.name, &cert, root).unwrap_or_else(|out| panic!("subca import {}\n{out}", v.name));
    cert
}

/// `fleetca subca import --tenant NAME --cert CERT --chain CHAIN`.
pub(crate) fn import(
    ca: &Fleetca,
    tenant: &str,
    cert: &Path,
    chain: &Path,
) -> Result<(), super::CmdOutput> {
    let out = ca.cli(&[
        "subca",
        "import",
        "--tenant",
        tenant,
        "--cert",
        cert.to_str().unwrap(),
        "--chain",
        chain.to_str().unwrap(),
    ]);
    if out.success() {
        Ok(())
    } else {
        Err(out)
    }
}

/// GET over plain HTTP; the body of a 200 answer.
pub(crate) fn fetch(url: &str) -> Vec<u8> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let r = reqwest::get(url).await.expect("GET");
            assert_eq!(r.status(), 200, "{url}");
            r.bytes().await.unwrap().to_vec()
        })
}

/// Lists `logs` in tenant `tenant`'s `[ca] ct_logs` (`ca/NAME/tenant.toml`); a public-trust
/// tenant requires CT, and `serve` refuses one without logs enough for the CT policy.
pub(crate) fn add_ct_logs(ca: &Fleetca, tenant: &str, logs: &[super::ct_log::CtLog]) {
    let path = ca.data_dir().join(format!("ca/{tenant}/tenant.toml"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    for l in logs {
        text.push_str(&l.toml());
    }
    std::fs::write(&path, text).unwrap();
}
