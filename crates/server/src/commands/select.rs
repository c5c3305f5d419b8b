//! Which certificates a fleet-wide operator action applies to. `fleetca renew-early` and
//! `fleetca cert revoke-many` take the same selectors, parsed here once.

use crate::sa::CertSelector;
use clap::{ArgGroup, Args};

/// `--tenant` plus exactly one of `--serial`, `--account`, `--suffix`, `--issued-before`,
/// `--all`. Only unexpired certificates are ever selected.
#[derive(Debug, Args, Clone)]
#[command(group(ArgGroup::new("selector").required(true).args(["serial", "account", "suffix", "issued_before", "all"])))]
pub struct CertSelection {
    /// Only this tenant's (issuing CA's) certificates (default: every tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// One certificate by serial (hex, any case, colons allowed).
    #[arg(long)]
    pub serial: Option<String>,
    /// Every certificate of this account id.
    #[arg(long)]
    pub account: Option<String>,
    /// Every certificate naming this DNS name or a name under it.
    #[arg(long)]
    pub suffix: Option<String>,
    /// Every certificate issued before this RFC 3339 time.
    #[arg(long)]
    pub issued_before: Option<String>,
    /// Every unexpired certificate (of `--tenant`, if given).
    #[arg(long)]
    pub all: bool,
}

impl CertSelection {
    /// The storage selector.
    pub fn selector(&self) -> anyhow::Result<CertSelector> {
        Ok(if let Some(s) = &self.serial {
            CertSelector::Serial(normalize_serial(s)?)
        } else if let Some(acct) = &self.account {
            CertSelector::Account(acct.clone())
        } else if let Some(suffix) = &self.suffix {
            let suffix = suffix.trim().trim_end_matches('.');
            if suffix.is_empty() {
                anyhow::bail!("--suffix must name a DNS name");
            }
            CertSelector::Suffix(suffix.to_string())
        } else if let Some(t) = &self.issued_before {
            let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| anyhow::anyhow!("--issued-before {t:?} is not RFC 3339: {e}"))?;
            CertSelector::IssuedBefore(t.unix_timestamp())
        } else {
            CertSelector::All
        })
    }

    /// A short description for the audit log and messages.
    pub fn describe(&self) -> String {
        let sel = if let Some(s) = &self.serial {
            format!("serial {s}")
        } else if let Some(a) = &self.account {
            format!("account {a}")
        } else if let Some(s) = &self.suffix {
            format!("suffix {s}")
        } else if let Some(t) = &self.issued_before {
            format!("issued before {t}")
        } else {
            "all".into()
        };
        match &self.tenant {
            Some(t) => format!("{sel} in tenant {t}"),
            None => sel,
        }
    }
}

/// A serial as stored (`ca::hex` of the serial octets): lower-case hex, colons removed, the
/// leading 00 sign octet dropped.
fn normalize_serial(s: &str) -> anyhow::Result<String> {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .trim()
        .to_ascii_lowercase();
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    };
    let trimmed = hex.trim_start_matches("00");
    if trimmed.is_empty() || !trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
        anyhow::bail!("--serial {s:?} is not a hex serial number");
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::normalize_serial;

    #[test]
    fn serials_normalize_like_storage() {
        assert_eq!(normalize_serial("00:AB:cd").unwrap(), "abcd");
        assert_eq!(normalize_serial("0a1b").unwrap(), "0a1b");
        assert_eq!(normalize_serial("a1b").unwrap(), "0a1b");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("00").is_err());
    }
}
