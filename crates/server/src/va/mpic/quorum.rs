//! The CA/Browser Forum Baseline Requirements §3.2.2.9 rules for Multi-Perspective Issuance
//! Corroboration (MPIC): the phase-in of the number of remote network perspectives, the
//! "Quorum Requirements" table, and the rule that corroborating perspectives span at least two
//! Regional Internet Registry (RIR) service regions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{macros::date, Date};

/// A Regional Internet Registry service region (BR §3.2.2.9 counts distinct RIRs among the
/// corroborating perspectives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rir {
    /// AFRINIC: Africa.
    #[serde(rename = "AFRINIC")]
    Afrinic,
    /// APNIC: Asia-Pacific.
    #[serde(rename = "APNIC")]
    Apnic,
    /// ARIN: North America.
    #[serde(rename = "ARIN")]
    Arin,
    /// LACNIC: Latin America and the Caribbean.
    #[serde(rename = "LACNIC")]
    Lacnic,
    /// RIPE NCC: Europe, the Middle East and Central Asia.
    #[serde(rename = "RIPE")]
    Ripe,
}

impl Rir {
    /// The registry's short name (`ARIN`, `RIPE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Rir::Afrinic => "AFRINIC",
            Rir::Apnic => "APNIC",
            Rir::Arin => "ARIN",
            Rir::Lacnic => "LACNIC",
            Rir::Ripe => "RIPE",
        }
    }
}

impl fmt::Display for Rir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Rir {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "AFRINIC" => Ok(Rir::Afrinic),
            "APNIC" => Ok(Rir::Apnic),
            "ARIN" => Ok(Rir::Arin),
            "LACNIC" => Ok(Rir::Lacnic),
            "RIPE" | "RIPE NCC" | "RIPENCC" => Ok(Rir::Ripe),
            _ => Err(format!(
                "{s:?} is not a Regional Internet Registry: use AFRINIC, APNIC, ARIN, LACNIC or RIPE"
            )),
        }
    }
}

/// What BR §3.2.2.9 requires from a given date on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    /// First day this row applies.
    pub from: Date,
    /// Minimum number of remote network perspectives.
    pub min_perspectives: usize,
    /// Whether a failed quorum blocks issuance (before 2025-09-15 it only had to be recorded).
    pub enforced: bool,
    /// Distinct RIR regions the corroborating perspectives must fall within.
    pub min_regions: usize,
}

/// The phased implementation timeline of BR §3.2.2.9, oldest first.
pub const PHASES: [Phase; 5] = [
    Phase {
        from: date!(2025 - 03 - 15),
        min_perspectives: 2,
        enforced: false,
        min_regions: 0,
    },
    Phase {
        from: date!(2025 - 09 - 15),
        min_perspectives: 2,
        enforced: true,
        min_regions: 0,
    },
    Phase {
        from: date!(2026 - 03 - 15),
        min_perspectives: 3,
        enforced: true,
        min_regions: 2,
    },
    Phase {
        from: date!(2026 - 06 - 15),
        min_perspectives: 4,
        enforced: true,
        min_regions: 2,
    },
    Phase {
        from: date!(2026 - 12 - 15),
        min_perspectives: 5,
        enforced: true,
        min_regions: 2,
    },
];

/// The row of [`PHASES`] in force on `day` (`None` before MPIC was required).
pub fn phase_on(day: Date) -> Option<Phase> {
    PHASES.iter().rev().find(|p| p.from <= day).copied()
}

/// The "Quorum Requirements" table: how many of `used` remote perspectives may fail to
/// corroborate (2-5: 1, 6 and more: 2). A single perspective may not fail.
pub fn allowed_non_corroborations(used: usize) -> usize {
    match used {
        0 | 1 => 0,
        2..=5 => 1,
        _ => 2,
    }
}

/// The quorum rule a primary VA applies to its perspectives' answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumRule {
    /// Non-corroborating perspectives allowed.
    pub max_non_corroborating: usize,
    /// Distinct RIR regions the corroborating perspectives must span.
    pub min_regions: usize,
}

impl QuorumRule {
    /// The rule for `used` configured perspectives on `day`.
    pub fn for_day(used: usize, day: Date) -> QuorumRule {
        QuorumRule {
            max_non_corroborating: allowed_non_corroborations(used),
            min_regions: phase_on(day).map_or(0, |p| p.min_regions),
        }
    }
}

/// Whether the answers meet `rule`: each entry is (region, corroborated).
pub fn evaluate(rule: QuorumRule, answers: &[(Rir, bool)]) -> Result<(), QuorumFailure> {
    let non = answers.iter().filter(|(_, ok)| !ok).count();
    if non > rule.max_non_corroborating {
        return Err(QuorumFailure::TooManyNonCorroborating {
            non_corroborating: non,
            allowed: rule.max_non_corroborating,
        });
    }
    let mut regions: Vec<Rir> = answers
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(r, _)| *r)
        .collect();
    regions.sort();
    regions.dedup();
    if regions.len() < rule.min_regions {
        return Err(QuorumFailure::TooFewRegions {
            regions: regions.len(),
            required: rule.min_regions,
        });
    }
    Ok(())
}

/// Why a quorum was not met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumFailure {
    /// More perspectives disagreed (or did not answer) than the table allows.
    TooManyNonCorroborating {
        /// How many did not corroborate.
        non_corroborating: usize,
        /// How many may not.
        allowed: usize,
    },
    /// The corroborating perspectives are in too few RIR regions.
    TooFewRegions {
        /// Distinct regions among the corroborating perspectives.
        regions: usize,
        /// Distinct regions required.
        required: usize,
    },
}

impl fmt::Display for QuorumFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumFailure::TooManyNonCorroborating {
                non_corroborating,
                allowed,
            } => write!(
                f,
                "{non_corroborating} remote network perspective(s) did not corroborate the \
                 result; CA/B Forum BR 3.2.2.9 allows {allowed}"
            ),
            QuorumFailure::TooFewRegions { regions, required } => write!(
                f,
                "the corroborating remote network perspectives are in {regions} Regional \
                 Internet Registry region(s); CA/B Forum BR 3.2.2.9 requires {required}"
            ),
        }
    }
}

/// Startup rule for public-trust tenants: `configured` perspectives must reach the BR minimum in
/// force on `day`. `test_minimum` (the hidden, test-only `serve --insecure-mpic-minimum`)
/// replaces the BR figure.
pub fn check_minimum(
    configured: usize,
    day: Date,
    test_minimum: Option<usize>,
) -> Result<(), String> {
    let (required, why) = match test_minimum {
        Some(n) => (n, "--insecure-mpic-minimum (tests only)".to_string()),
        None => match phase_on(day) {
            Some(p) => (
                p.min_perspectives,
                format!("CA/B Forum BR 3.2.2.9, in force since {}", p.from),
            ),
            None => (0, String::new()),
        },
    };
    if configured < required {
        return Err(format!(
            "a public-trust tenant needs at least {required} remote network perspectives on \
             {day} ({why}); {configured} are configured in [mpic] of fleetca.toml \
             (docs/perspectives.md)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_in_by_date() {
        assert_eq!(phase_on(date!(2025 - 03 - 14)), None);
        assert!(!phase_on(date!(2025 - 03 - 15)).unwrap().enforced);
        assert_eq!(phase_on(date!(2025 - 09 - 15)).unwrap().min_perspectives, 2);
        assert_eq!(phase_on(date!(2026 - 03 - 15)).unwrap().min_perspectives, 3);
        assert_eq!(phase_on(date!(2026 - 12 - 14)).unwrap().min_perspectives, 4);
        let p = phase_on(date!(2026 - 12 - 15)).unwrap();
        assert_eq!((p.min_perspectives, p.min_regions), (5, 2));
        assert_eq!(phase_on(date!(2030 - 01 - 01)).unwrap().min_perspectives, 5);
    }

    #[test]
    fn quorum_table() {
        assert_eq!(allowed_non_corroborations(1), 0);
        assert_eq!(allowed_non_corroborations(2), 1);
        assert_eq!(allowed_non_corroborations(5), 1);
        assert_eq!(allowed_non_corroborations(6), 2);
        assert_eq!(allowed_non_corroborations(9), 2);
    }

    #[test]
    fn quorum_counts_failures_and_regions() {
        let rule = QuorumRule::for_day(5, date!(2026 - 12 - 15));
        let ok = [
            (Rir::Arin, true),
            (Rir::Arin, true),
            (Rir::Ripe, true),
            (Rir::Ripe, true),
            (Rir::Apnic, false),
        ];
        assert_eq!(evaluate(rule, &ok), Ok(()));
        let two_fail = [
            (Rir::Arin, true),
            (Rir::Arin, true),
            (Rir::Ripe, true),
            (Rir::Ripe, false),
            (Rir::Apnic, false),
        ];
        assert!(matches!(
            evaluate(rule, &two_fail),
            Err(QuorumFailure::TooManyNonCorroborating {
                non_corroborating: 2,
                allowed: 1
            })
        ));
        // Four agree, but all in one region: refused (BR: at least two RIRs).
        let one_region = [
            (Rir::Arin, true),
            (Rir::Arin, true),
            (Rir::Arin, true),
            (Rir::Arin, true),
            (Rir::Ripe, false),
        ];
        assert!(matches!(
            evaluate(rule, &one_region),
            Err(QuorumFailure::TooFewRegions { regions: 1, .. })
        ));
    }

    #[test]
    fn public_trust_minimum_by_date() {
        assert!(check_minimum(4, date!(2026 - 12 - 14), None).is_ok());
        let e = check_minimum(4, date!(2026 - 12 - 15), None).unwrap_err();
        assert!(e.contains("at least 5"), "{e}");
        assert!(check_minimum(0, date!(2024 - 01 - 01), None).is_ok());
        assert!(check_minimum(0, date!(2026 - 12 - 15), Some(0)).is_ok());
        assert!(check_minimum(1, date!(2026 - 12 - 15), Some(2)).is_err());
    }
}
