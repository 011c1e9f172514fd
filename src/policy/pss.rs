//! Pod Security Standards: levels, versions, and which checks make up a level
//! at a version. The checks themselves are rules under `rules/`, each in its
//! own file like upstream's `policy/check_*.go`.
use std::fmt;
use std::str::FromStr;

use super::EngineError;

/// The newest Pod Security Standards version tiergate knows (`latest`).
pub const LATEST_MINOR: u32 = 37;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PssLevel {
    Baseline,
    Restricted,
}

impl PssLevel {
    pub fn name(self) -> &'static str {
        match self {
            PssLevel::Baseline => "baseline",
            PssLevel::Restricted => "restricted",
        }
    }
}

/// A Pod Security Standards version: `latest` or `v1.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PssVersion {
    pub minor: u32,
}

impl Default for PssVersion {
    fn default() -> Self {
        PssVersion {
            minor: LATEST_MINOR,
        }
    }
}

impl fmt::Display for PssVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v1.{}", self.minor)
    }
}

impl FromStr for PssVersion {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("latest") {
            return Ok(PssVersion::default());
        }
        let minor = t
            .strip_prefix('v')
            .and_then(|r| r.strip_prefix("1."))
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|m| *m <= LATEST_MINOR)
            .ok_or_else(|| {
                EngineError::BadValue(format!(
                    "invalid Pod Security Standards version {s:?}: expected latest or v1.0..v1.{LATEST_MINOR}"
                ))
            })?;
        Ok(PssVersion { minor })
    }
}

/// `LEVEL[:VERSION]`, as `--pss` takes it.
pub fn parse_level_version(s: &str) -> Result<(PssLevel, PssVersion), EngineError> {
    let (level, version) = match s.split_once(':') {
        Some((l, v)) => (l, v.parse()?),
        None => (s, PssVersion::default()),
    };
    let level = match level.trim().to_ascii_lowercase().as_str() {
        "baseline" => PssLevel::Baseline,
        "restricted" => PssLevel::Restricted,
        _ => {
            return Err(EngineError::BadValue(format!(
                "invalid Pod Security Standards level {level:?}: expected baseline or restricted (optionally :latest or :v1.N)"
            )))
        }
    };
    Ok((level, version))
}

/// How a rule maps to an upstream Pod Security Standards check.
#[derive(Debug, Clone, Copy)]
pub struct PssCheck {
    /// Upstream check id, e.g. `allowPrivilegeEscalation`, `seccompProfile_baseline`.
    pub check_id: &'static str,
    pub level: PssLevel,
    /// The first minor version the check exists at (e.g. 22 for v1.22).
    pub min_minor: u32,
    /// Rule ids this check replaces at its level when it applies (upstream's
    /// `OverrideCheckIDs`).
    pub overrides: &'static [&'static str],
}

impl PssCheck {
    pub fn applies_at(&self, minor: u32) -> bool {
        minor >= self.min_minor
    }
}

/// A change upstream Pod Security Admission made to its checks, and the
/// version it came in: the data behind every version-dependent branch of a
/// PSS rule (as upstream keeps one versioned check per change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PssChange {
    /// v1.19: `seccompProfile` (baseline) checks the `securityContext`
    /// fields; before, the seccomp annotations.
    SeccompFields,
    /// v1.25: the restricted checks that only make sense on Linux skip pods
    /// with `spec.os.name: windows`.
    WindowsPodsExempt,
    /// v1.31: `container_engine_t` is an allowed SELinux type.
    SelinuxContainerEngineType,
    /// v1.35: pods in their own user namespace (`hostUsers: false`) may run
    /// as root and with an unmasked procMount.
    UserNamespacePods,
}

impl PssChange {
    /// Every change, in version order.
    pub const ALL: [PssChange; 4] = [
        PssChange::SeccompFields,
        PssChange::WindowsPodsExempt,
        PssChange::SelinuxContainerEngineType,
        PssChange::UserNamespacePods,
    ];

    /// The minor version the change came in.
    pub const fn since(self) -> u32 {
        match self {
            PssChange::SeccompFields => 19,
            PssChange::WindowsPodsExempt => 25,
            PssChange::SelinuxContainerEngineType => 31,
            PssChange::UserNamespacePods => 35,
        }
    }

    /// Whether the change is part of policy version v1.`minor`.
    pub fn in_effect_at(self, minor: u32) -> bool {
        minor >= self.since()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_levels_and_versions() {
        assert_eq!(
            parse_level_version("restricted:v1.22").unwrap(),
            (PssLevel::Restricted, PssVersion { minor: 22 })
        );
        assert_eq!(
            parse_level_version("Baseline").unwrap(),
            (
                PssLevel::Baseline,
                PssVersion {
                    minor: LATEST_MINOR
                }
            )
        );
        assert!(parse_level_version("strict").is_err());
        assert!(parse_level_version("baseline:v2.1").is_err());
        assert!(parse_level_version("baseline:v1.99").is_err());
    }

    #[test]
    fn changes_are_in_version_order_and_take_effect_at_their_version() {
        let versions: Vec<u32> = PssChange::ALL.iter().map(|c| c.since()).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert!(!PssChange::WindowsPodsExempt.in_effect_at(24));
        assert!(PssChange::WindowsPodsExempt.in_effect_at(25));
    }
}
