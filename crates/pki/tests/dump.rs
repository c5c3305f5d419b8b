//! Writes a sample hierarchy to `$FLEETCA_DUMP_DIR` for manual inspection (pkilint, openssl).
mod common;

#[test]
fn dump_sample_hierarchy() {
    let Ok(dir) = std::env::var("FLEETCA_DUMP_DIR") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    let h = common::hierarchy(&["routers.example.com", "10.0.0.0/8"], true);
    let leaf = h.issue(
        &["r1.routers.example.com", "10.1.2.3"],
        pki::KeyType::EcdsaP256,
    );
    let rsa = h.issue(&["r2.routers.example.com"], pki::KeyType::Rsa2048);
    let dns_only = common::hierarchy(&["routers.example.com"], false);
    let leaf2 = dns_only.issue(&["r3.routers.example.com"], pki::KeyType::EcdsaP256);
    h.write_pems(dir, &[("leaf.pem", &leaf), ("leaf-rsa.pem", &rsa)]);
    std::fs::create_dir_all(dir.join("dnsonly")).unwrap();
    dns_only.write_pems(&dir.join("dnsonly"), &[("leaf.pem", &leaf2)]);
}
