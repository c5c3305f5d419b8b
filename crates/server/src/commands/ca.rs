//! `fleetca ca root`.

use crate::datadir::DataDir;
use std::path::Path;

/// Prints the root certificate PEM (or, in public-trust mode before import, the local TLS root).
pub(crate) fn print_root(data_dir: &Path) -> anyhow::Result<()> {
    let dd = DataDir::new(data_dir);
    if !dd.is_initialized() {
        anyhow::bail!(
            "{} is not a fleetca data directory (run `fleetca init` first)",
            data_dir.display()
        );
    }
    for p in [dd.root_cert(), dd.tls_root()] {
        if p.exists() {
            print!("{}", std::fs::read_to_string(&p)?);
            return Ok(());
        }
    }
    anyhow::bail!("no root certificate in {}", data_dir.display())
}
