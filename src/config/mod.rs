//! The configuration: one YAML file with an embedded default, so nothing is
//! required. Every key is documented in `default.yaml` and the README.
use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Deserializer};
use thiserror::Error;

use crate::policy::pss::PssVersion;
use crate::policy::rules;
use crate::policy::{Action, FixKind, Mode, Rule, Tier};

/// The embedded default configuration.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("config {source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, deserialize_with = "de_pss_version")]
    pub pss_version: PssVersion,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: u64,
    /// Overrides for every tier.
    #[serde(default)]
    pub rules: BTreeMap<RuleId, RuleOverride>,
    #[serde(default)]
    pub tiers: BTreeMap<Tier, TierSettings>,
    #[serde(default)]
    pub registries: Registries,
    #[serde(default)]
    pub exemptions: Vec<Exemption>,
    #[serde(default)]
    pub tier_admins: TierAdmins,
}

fn default_max_request_bytes() -> u64 {
    8 * 1024 * 1024
}

fn de_pss_version<'de, D: Deserializer<'de>>(d: D) -> Result<PssVersion, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default = "default_tier")]
    pub tier: Tier,
    #[serde(default = "default_mode")]
    pub mode: Mode,
}

fn default_tier() -> Tier {
    Tier::Foundation
}
fn default_mode() -> Mode {
    Mode::Warn
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            tier: default_tier(),
            mode: default_mode(),
        }
    }
}

/// What the validating webhook answers when tiergate itself fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Deny,
    Allow,
}

/// A rule id that exists in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleId(pub String);

impl std::borrow::Borrow<str> for RuleId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if rules::by_id(&s).is_none() {
            return Err(serde::de::Error::custom(format!(
                "unknown rule {s:?} (see `tiergate rules` for the ids)"
            )));
        }
        Ok(RuleId(s))
    }
}

/// `on` / `off` (also true/false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnOff(pub bool);

impl<'de> Deserialize<'de> for OnOff {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            B(bool),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::B(b) => Ok(OnOff(b)),
            Raw::S(s) => match s.to_ascii_lowercase().as_str() {
                "on" | "true" => Ok(OnOff(true)),
                "off" | "false" => Ok(OnOff(false)),
                _ => Err(serde::de::Error::custom(format!(
                    "invalid fix {s:?}: expected on or off"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    pub action: Option<Action>,
    pub fix: Option<OnOff>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSettings {
    #[serde(default)]
    pub rules: BTreeMap<RuleId, RuleOverride>,
    pub resources: Option<ResourceDefaults>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDefaults {
    pub requests: CpuMemory,
    pub limits: CpuMemory,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuMemory {
    #[serde(deserialize_with = "de_quantity")]
    pub cpu: String,
    #[serde(deserialize_with = "de_quantity")]
    pub memory: String,
}

fn de_quantity<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(f64),
        S(String),
    }
    let s = match Raw::deserialize(d)? {
        Raw::N(n) => n.to_string(),
        Raw::S(s) => s,
    };
    let ok = !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    if !ok {
        return Err(serde::de::Error::custom(format!(
            "invalid quantity {s:?}: expected a Kubernetes quantity like 100m, 1, 128Mi"
        )));
    }
    Ok(s)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Allowed image registry prefixes (e.g. `ghcr.io/acme/`, `registry.k8s.io`).
    #[serde(default)]
    pub allowed: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierAdmins {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Who or what is exempt from which rules, and why. Every field given must
/// match (a list matches when any entry does); `rules` empty means all rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    #[serde(deserialize_with = "de_reason")]
    pub reason: String,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, deserialize_with = "de_globs")]
    pub names: Vec<NameGlob>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub rules: Vec<RuleId>,
}

fn de_reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(serde::de::Error::custom(
            "an exemption needs a non-empty reason",
        ));
    }
    Ok(s)
}

#[derive(Debug, Clone)]
pub struct NameGlob {
    pub pattern: String,
    matcher: GlobMatcher,
}

impl NameGlob {
    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

fn de_globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NameGlob>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|p| {
            Glob::new(&p)
                .map(|g| NameGlob {
                    matcher: g.compile_matcher(),
                    pattern: p.clone(),
                })
                .map_err(|e| serde::de::Error::custom(format!("invalid name glob {p:?}: {e}")))
        })
        .collect()
}

/// What the exemption matcher is given.
pub struct Subject<'a> {
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub kind: &'a str,
    pub username: Option<&'a str>,
    pub groups: &'a [String],
}

impl Exemption {
    /// Whether this exemption covers the subject (for some rules).
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let ns_ok = self.namespaces.is_empty()
            || s.namespace
                .is_some_and(|n| self.namespaces.iter().any(|x| x == n));
        let name_ok = self.names.is_empty() || self.names.iter().any(|g| g.is_match(s.name));
        let kind_ok = self.kinds.is_empty() || self.kinds.iter().any(|k| k == s.kind);
        let user_ok = self.users.is_empty()
            || s.username
                .is_some_and(|u| self.users.iter().any(|x| x == u));
        let group_ok = self.groups.is_empty() || s.groups.iter().any(|g| self.groups.contains(g));
        ns_ok && name_ok && kind_ok && user_ok && group_ok
    }
    pub fn covers_rule(&self, id: &str) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r.0 == id)
    }
}

impl Default for Config {
    fn default() -> Self {
        // The embedded default is tested to parse (tests::embedded_default_parses);
        // fall back to serde defaults rather than panic if it ever did not.
        Config::from_yaml(DEFAULT_YAML, "(embedded default)").unwrap_or_else(|_| Config {
            defaults: Defaults::default(),
            pss_version: PssVersion::default(),
            dry_run: false,
            on_error: OnError::Deny,
            max_request_bytes: default_max_request_bytes(),
            rules: BTreeMap::new(),
            tiers: BTreeMap::new(),
            registries: Registries::default(),
            exemptions: Vec::new(),
            tier_admins: TierAdmins::default(),
        })
    }
}

impl Config {
    /// Parse a config. Errors name the line and column.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let cfg: Config = if text.trim().is_empty() {
            serde_saphyr::from_str("{}")
        } else {
            serde_saphyr::from_str(text)
        }
        .map_err(|e| ConfigError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        cfg.validate(source_name)?;
        Ok(cfg)
    }

    /// Read a config file, or the embedded default when `path` is `None`.
    /// Tiers the file gives no resource defaults for keep the embedded ones.
    pub fn load(path: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg = Config::from_yaml(&text, &path.display().to_string())?;
        cfg.fill_from_default();
        Ok(cfg)
    }

    /// Give tiers without resource defaults the embedded ones.
    pub fn fill_from_default(&mut self) {
        let def = Config::default();
        for (tier, settings) in def.tiers {
            let entry = self.tiers.entry(tier).or_default();
            if entry.resources.is_none() {
                entry.resources = settings.resources;
            }
        }
    }

    fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let all = self
            .rules
            .iter()
            .chain(self.tiers.values().flat_map(|t| t.rules.iter()));
        for (id, ov) in all {
            if let (Some(OnOff(true)), Some(rule)) = (ov.fix, rules::by_id(&id.0)) {
                if rule.fix == FixKind::None {
                    return Err(ConfigError::Invalid {
                        source_name: source_name.to_string(),
                        message: format!("rules.{}.fix: rule {} has no fix to turn on", id.0, id.0),
                    });
                }
            }
        }
        Ok(())
    }

    fn rule_override(&self, tier: Tier, id: &str) -> (Option<Action>, Option<bool>) {
        let global = self.rules.get(id);
        let per_tier = self.tiers.get(&tier).and_then(|t| t.rules.get(id));
        let action = per_tier
            .and_then(|o| o.action)
            .or_else(|| global.and_then(|o| o.action));
        let fix = per_tier
            .and_then(|o| o.fix)
            .or_else(|| global.and_then(|o| o.fix))
            .map(|f| f.0);
        (action, fix)
    }

    /// The action a rule has at a tier before the mode caps it (default deny).
    pub fn rule_action(&self, tier: Tier, rule: &Rule) -> Action {
        self.rule_override(tier, rule.id).0.unwrap_or(Action::Deny)
    }

    /// Whether a rule's fix is on at a tier.
    pub fn fix_enabled(&self, tier: Tier, rule: &Rule) -> bool {
        if rule.fix == FixKind::None || rule.apply_fix.is_none() {
            return false;
        }
        self.rule_override(tier, rule.id)
            .1
            .unwrap_or(rule.fix == FixKind::Safe)
    }

    /// Resource defaults for a tier: the tier's own, else the nearest lower
    /// tier's, else none.
    pub fn resources(&self, tier: Tier) -> Option<&ResourceDefaults> {
        Tier::ALL
            .iter()
            .rev()
            .filter(|t| **t <= tier)
            .find_map(|t| self.tiers.get(t).and_then(|s| s.resources.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::from_yaml(DEFAULT_YAML, "default").unwrap();
        assert_eq!(c.defaults.tier, Tier::Foundation);
        assert_eq!(c.defaults.mode, Mode::Warn);
        assert_eq!(
            c.resources(Tier::Production).unwrap().limits.memory,
            "512Mi"
        );
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let err = Config::from_yaml("defaults:\n  tier: 2\n  colour: red\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("line 3") || err.contains("3:"), "{err}");
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            "defaults:\n  tier: gold\n",
            "defaults:\n  mode: loud\n",
            "rules:\n  no-such-rule: {action: off}\n",
            "rules:\n  privileged: {action: maybe}\n",
            "exemptions:\n  - namespaces: [a]\n",
            "exemptions:\n  - reason: ''\n",
            "pssVersion: v2.0\n",
        ] {
            assert!(Config::from_yaml(bad, "x").is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn per_tier_overrides_win_over_global() {
        let c = Config::from_yaml(
            "rules:\n  privileged: {action: warn}\ntiers:\n  2:\n    rules:\n      privileged: {action: audit}\n",
            "x",
        )
        .unwrap();
        let rule = rules::by_id("privileged").unwrap();
        assert_eq!(c.rule_action(Tier::Foundation, rule), Action::Warn);
        assert_eq!(c.rule_action(Tier::Production, rule), Action::Audit);
    }
}
