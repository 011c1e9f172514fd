//! Tiers, modes and actions.
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::EngineError;

/// A namespace's tier: each includes every rule of the tiers below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Foundation = 1,
    Production = 2,
    Enterprise = 3,
    MultiCluster = 4,
    Hyperscale = 5,
}

pub const TIER_VALUES: &str =
    "1..5 or foundation, production, enterprise, multi-cluster, hyperscale";

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Foundation,
        Tier::Production,
        Tier::Enterprise,
        Tier::MultiCluster,
        Tier::Hyperscale,
    ];
    /// What the domain reference asks of this tier that no admission webhook
    /// can judge (it is not in any one object a write carries).
    pub fn beyond_admission(self) -> &'static str {
        match self {
            Tier::Foundation => "nothing: every tier-1 standard is a property of an object",
            Tier::Production => {
                "that backups run, and that Prometheus scrapes what a ServiceMonitor names"
            }
            Tier::Enterprise => {
                "encryption at rest and the audit policy (apiserver flags), Velero schedules \
                 running, GitOps sync state"
            }
            Tier::MultiCluster => {
                "cross-cluster service discovery, DNS failover, federated metrics and a \
                 passive region: properties of the fleet, not of one object"
            }
            Tier::Hyperscale => {
                "fleet management, node autoscaling, FinOps and runtime security live outside \
                 admission; signed images and SLSA provenance are the supply-chain issue's"
            }
        }
    }

    pub fn number(self) -> u8 {
        self as u8
    }

    /// The tier above (none above hyperscale).
    pub fn next(self) -> Option<Tier> {
        Tier::ALL.get(usize::from(self.number())).copied()
    }
    pub fn name(self) -> &'static str {
        match self {
            Tier::Foundation => "foundation",
            Tier::Production => "production",
            Tier::Enterprise => "enterprise",
            Tier::MultiCluster => "multi-cluster",
            Tier::Hyperscale => "hyperscale",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tier {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let tier = match t.as_str() {
            "1" | "foundation" => Tier::Foundation,
            "2" | "production" => Tier::Production,
            "3" | "enterprise" => Tier::Enterprise,
            "4" | "multi-cluster" | "multicluster" => Tier::MultiCluster,
            "5" | "hyperscale" => Tier::Hyperscale,
            _ => {
                return Err(EngineError::BadValue(format!(
                    "invalid tier {s:?}: expected {TIER_VALUES}"
                )))
            }
        };
        Ok(tier)
    }
}

impl Serialize for Tier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a namespace does with findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Findings deny the request.
    Enforce,
    /// Findings become warnings.
    Warn,
    /// Findings are only recorded.
    Audit,
}

pub const MODE_VALUES: &str = "enforce, warn, audit";

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
    /// The strongest action a finding may have in this mode.
    pub fn cap(self) -> Action {
        match self {
            Mode::Enforce => Action::Deny,
            Mode::Warn => Action::Warn,
            Mode::Audit => Action::Audit,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "enforce" => Ok(Mode::Enforce),
            "warn" => Ok(Mode::Warn),
            "audit" => Ok(Mode::Audit),
            _ => Err(EngineError::BadValue(format!(
                "invalid mode {s:?}: expected {MODE_VALUES}"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What one finding does. Ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Off,
    Audit,
    Warn,
    Deny,
}

pub const ACTION_VALUES: &str = "off, audit, warn, deny";

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::Audit => "audit",
            Action::Warn => "warn",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Action::Off),
            "audit" => Ok(Action::Audit),
            "warn" => Ok(Action::Warn),
            "deny" => Ok(Action::Deny),
            _ => Err(EngineError::BadValue(format!(
                "invalid action {s:?}: expected {ACTION_VALUES}"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_by_number_and_name_case_insensitive() {
        assert_eq!("2".parse::<Tier>().unwrap(), Tier::Production);
        assert_eq!("Multi-Cluster".parse::<Tier>().unwrap(), Tier::MultiCluster);
        assert_eq!("HYPERSCALE".parse::<Tier>().unwrap(), Tier::Hyperscale);
        let err = "6".parse::<Tier>().unwrap_err().to_string();
        assert!(err.contains("foundation, production"), "{err}");
    }

    #[test]
    fn mode_caps_actions() {
        assert_eq!(Mode::Warn.cap(), Action::Warn);
        assert!(Action::Deny > Action::Warn && Action::Audit > Action::Off);
        assert!("loud"
            .parse::<Mode>()
            .unwrap_err()
            .to_string()
            .contains("enforce, warn, audit"));
    }
}
