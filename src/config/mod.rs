//! The one config loader: a YAML file (or the embedded default) in, the
//! policy configuration (for the engine) and the server settings (for the
//! server) out. The CLI, `serve` start-up and every reload call it, so a file
//! means the same wherever it is read. Every key is documented in
//! `default.yaml` and the README; unknown keys and bad values are errors that
//! name the line.
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use crate::admission::OnError;
use crate::policy::config::{
    de_pss_version, Defaults, Exemption, FixOptions, Registries, RuleId, RuleOverride, TierAdmins,
    TierSettings,
};
use crate::policy::pss::PssVersion;
use crate::policy::{PolicyConfig, Tier};

/// The embedded default configuration.
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

/// Where the embedded default comes from, in messages.
pub const EMBEDDED: &str = "(embedded default)";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A YAML error, at the config file's `line:column`.
    #[error("config {}", .error.at(.source_name))]
    Parse {
        source_name: String,
        error: crate::yaml::YamlError,
    },
    #[error("config {source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
}

/// The server's settings from the file: what the engine never sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSettings {
    /// `dryRun`: record would-be denials and patches, deny and patch nothing.
    pub dry_run: bool,
    /// `onError`: the validating answer when tiergate fails internally.
    pub on_error: OnError,
    /// `maxRequestBytes`: the largest accepted request body (413 above).
    pub max_request_bytes: u64,
    /// `maxInflightBytes`: the request bytes held at once; a request waits
    /// for room (within its deadline, else 503). Read at start-up.
    pub max_inflight_bytes: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            dry_run: false,
            on_error: OnError::Deny,
            max_request_bytes: default_max_request_bytes(),
            max_inflight_bytes: default_max_inflight_bytes(),
        }
    }
}

/// What the apiserver can send (an object and its old version, each up to
/// etcd's 1.5 MiB, about 3 MiB) with headroom.
fn default_max_request_bytes() -> u64 {
    4 * 1024 * 1024
}

fn default_max_inflight_bytes() -> u64 {
    32 * 1024 * 1024
}

/// What `tiergate check` and `fix` read from the file (the webhook ignores
/// it): how to treat the input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OfflineSettings {
    /// `offline.complete`: the input files are whole namespaces (as
    /// `--complete`): a PodDisruptionBudget, default-deny NetworkPolicy,
    /// ResourceQuota or LimitRange that is not in them does not exist, so
    /// its absence is a finding rather than "unknown".
    #[serde(default)]
    pub complete: bool,
}

/// `audit`: the server's background audit (read at start-up).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditSettings {
    /// Audit at all (once the caches sync, then every `interval`).
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_audit_interval", deserialize_with = "de_seconds")]
    pub interval: crate::policy::config::Seconds,
    /// Results kept in one namespace's PolicyReport (the rest are counted).
    #[serde(default = "default_max_results")]
    pub max_results: usize,
    /// List requests per second at most (the apiserver's budget).
    #[serde(default = "default_qps")]
    pub qps: u32,
    /// Also export per-namespace readiness gauges (one series per
    /// namespace: off by default, as namespaces are unbounded).
    #[serde(default)]
    pub namespace_metrics: bool,
}

fn yes() -> bool {
    true
}
fn default_audit_interval() -> crate::policy::config::Seconds {
    crate::policy::config::Seconds(3_600)
}
fn default_max_results() -> usize {
    1_000
}
fn default_qps() -> u32 {
    5
}
fn de_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<crate::policy::config::Seconds, D::Error> {
    let s = String::deserialize(d)?;
    crate::policy::config::parse_duration(&s).map_err(serde::de::Error::custom)
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            interval: default_audit_interval(),
            max_results: default_max_results(),
            qps: default_qps(),
            namespace_metrics: false,
        }
    }
}

/// One configuration file, read: the engine's half, the server's, and the
/// offline CLI's.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub policy: PolicyConfig,
    pub server: ServerSettings,
    pub offline: OfflineSettings,
    pub audit: AuditSettings,
}

/// The file as users write it: every key of both halves.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default, deserialize_with = "de_pss_version")]
    pss_version: PssVersion,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    on_error: OnError,
    #[serde(default = "default_max_request_bytes")]
    max_request_bytes: u64,
    #[serde(default = "default_max_inflight_bytes")]
    max_inflight_bytes: u64,
    #[serde(default)]
    rules: BTreeMap<RuleId, RuleOverride>,
    #[serde(default)]
    tiers: BTreeMap<Tier, TierSettings>,
    #[serde(default)]
    registries: Registries,
    #[serde(default)]
    exemptions: Vec<Exemption>,
    #[serde(default)]
    tier_admins: TierAdmins,
    #[serde(default)]
    fixes: FixOptions,
    #[serde(default)]
    mesh: crate::policy::config::MeshSettings,
    #[serde(default)]
    tenancy: crate::policy::config::Tenancy,
    #[serde(default)]
    exceptions: crate::policy::config::ExceptionSettings,
    #[serde(default)]
    admission_policies: crate::policy::config::AdmissionPolicies,
    #[serde(default)]
    images: crate::supply::ImagesConfig,
    #[serde(default)]
    offline: OfflineSettings,
    #[serde(default)]
    audit: AuditSettings,
}

impl Config {
    /// Parse a config. Errors name the line and column. Tiers the text gives
    /// no resource defaults for get the built-in ones.
    ///
    /// A text with no keys (empty, comments only, `{}`) is an error: read
    /// as "every default" it would silently turn an enforcing cluster to the
    /// default `warn` mode, for example when a reload catches a file
    /// half-written.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            message,
        };
        let probe: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            crate::yaml::from_str(text).map_err(|error| ConfigError::Parse {
                source_name: source_name.to_string(),
                error,
            })?
        };
        if probe.as_object().is_none_or(|m| m.is_empty()) {
            return Err(invalid(
                "has no keys (empty, only comments, or not a mapping): refused, because an \
                 empty config would mean every default (mode warn); write the keys you mean, \
                 e.g. `defaults: {tier: foundation, mode: warn}`"
                    .to_string(),
            ));
        }
        let f: File = crate::yaml::from_str(text).map_err(|error| ConfigError::Parse {
            source_name: source_name.to_string(),
            error,
        })?;
        let mut policy = PolicyConfig {
            defaults: f.defaults,
            pss_version: f.pss_version,
            rules: f.rules,
            tiers: f.tiers,
            registries: f.registries,
            exemptions: f.exemptions,
            tier_admins: f.tier_admins,
            fixes: f.fixes,
            mesh: f.mesh,
            tenancy: f.tenancy,
            exceptions: f.exceptions,
            admission_policies: f.admission_policies,
            images: f.images,
        };
        policy.validate().map_err(|message| ConfigError::Invalid {
            source_name: source_name.to_string(),
            message,
        })?;
        policy.fill_resource_defaults();
        Ok(Config {
            policy,
            server: ServerSettings {
                dry_run: f.dry_run,
                on_error: f.on_error,
                max_request_bytes: f.max_request_bytes,
                max_inflight_bytes: f.max_inflight_bytes,
            },
            offline: f.offline,
            audit: f.audit,
        })
    }

    /// Parse a file's bytes (UTF-8 YAML).
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<Config, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Parse {
            source_name: source_name.to_string(),
            error: crate::yaml::YamlError {
                line: None,
                column: None,
                message: format!("not UTF-8: {e}"),
            },
        })?;
        Config::from_yaml(text, source_name)
    }

    /// The embedded default.
    pub fn embedded() -> Config {
        // The embedded default is tested to parse and to equal the built-in
        // values (tests::embedded_default_is_the_built_in_policy).
        Config::from_yaml(DEFAULT_YAML, EMBEDDED).unwrap_or_else(|_| Config {
            policy: PolicyConfig::default(),
            server: ServerSettings::default(),
            offline: OfflineSettings::default(),
            audit: AuditSettings::default(),
        })
    }

    /// Read a config file, or the embedded default when `path` is `None`.
    /// Also returns the bytes read, for a reload to compare against.
    pub fn load(path: Option<&Path>) -> Result<(Config, Option<Vec<u8>>), ConfigError> {
        let Some(path) = path else {
            return Ok((Config::embedded(), None));
        };
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let cfg = Config::from_bytes(&bytes, &path.display().to_string())?;
        Ok((cfg, Some(bytes)))
    }
}

impl Config {
    /// How `new` is weaker than `self`, in words: dry-run turned on, a
    /// default tier lowered or mode relaxed, a rule turned off or its action
    /// lowered at some tier, exemptions, allowed registries or tier admins
    /// added, `onError` relaxed. Empty when nothing weakened.
    pub fn weakenings(&self, new: &Config) -> Vec<String> {
        let (old_p, new_p) = (&self.policy, &new.policy);
        let mut out = Vec::new();
        if new.server.dry_run && !self.server.dry_run {
            out.push("dryRun turned on: nothing is denied or patched".to_string());
        }
        if new.server.on_error == OnError::Allow && self.server.on_error == OnError::Deny {
            out.push("onError relaxed from deny to allow".to_string());
        }
        if new_p.defaults.tier < old_p.defaults.tier {
            out.push(format!(
                "defaults.tier lowered from {} to {}",
                old_p.defaults.tier, new_p.defaults.tier
            ));
        }
        if new_p.defaults.mode.cap() < old_p.defaults.mode.cap() {
            out.push(format!(
                "defaults.mode relaxed from {} to {}",
                old_p.defaults.mode, new_p.defaults.mode
            ));
        }
        for rule in crate::policy::rules::ALL {
            let lowered: Vec<String> = Tier::ALL
                .iter()
                .filter(|t| new_p.rule_action(**t, rule) < old_p.rule_action(**t, rule))
                .map(|t| t.name().to_string())
                .collect();
            if !lowered.is_empty() {
                out.push(format!(
                    "rule {} lowered at {}",
                    rule.id,
                    lowered.join(", ")
                ));
            }
        }
        let added = |old: &[String], new: &[String]| -> Vec<String> {
            new.iter().filter(|x| !old.contains(x)).cloned().collect()
        };
        let reasons = |c: &PolicyConfig| -> Vec<String> {
            c.exemptions.iter().map(|e| e.reason.clone()).collect()
        };
        if new_p.exemptions.len() > old_p.exemptions.len()
            || !added(&reasons(old_p), &reasons(new_p)).is_empty()
        {
            out.push(format!(
                "exemptions added: {}",
                added(&reasons(old_p), &reasons(new_p)).join("; ")
            ));
        }
        let regs = added(&old_p.registries.allowed, &new_p.registries.allowed);
        if !regs.is_empty() && !old_p.registries.allowed.is_empty() {
            out.push(format!("registries allowed: {}", regs.join(", ")));
        }
        if !old_p.registries.allowed.is_empty() && new_p.registries.allowed.is_empty() {
            out.push("registries.allowed emptied: allowed-registries is off".to_string());
        }
        let admins = [
            added(&old_p.tier_admins.users, &new_p.tier_admins.users),
            added(&old_p.tier_admins.groups, &new_p.tier_admins.groups),
        ]
        .concat();
        if !admins.is_empty() {
            out.push(format!("tier admins added: {}", admins.join(", ")));
        }
        let (oi, ni) = (&old_p.images, &new_p.images);
        if ni.verify.len() < oi.verify.len() {
            out.push(format!(
                "images.verify rules removed ({} to {})",
                oi.verify.len(),
                ni.verify.len()
            ));
        }
        if oi.on_timeout == crate::supply::OnTimeout::Deny
            && ni.on_timeout == crate::supply::OnTimeout::Allow
            && !ni.verify.is_empty()
        {
            out.push(
                "images.onTimeout relaxed from deny to allow: unverifiable images are admitted"
                    .to_string(),
            );
        }
        use crate::policy::config::AdmissionPolicies;
        if new_p.admission_policies.hybrid() && old_p.admission_policies == AdmissionPolicies::Off {
            out.push(format!(
                "admissionPolicies: {}: the validating webhook no longer judges the rules the \
                 apiserver's policies cover",
                match new_p.admission_policies {
                    AdmissionPolicies::Managed => "managed (tiergate applies the policies)",
                    _ => "hybrid (apply `tiergate export admission-policies`)",
                }
            ));
        }
        out
    }

    /// A short stable digest of the policy in force, for the
    /// `tiergate_config_info{hash}` metric: FNV-1a 64 of `bytes` (the file),
    /// or of the embedded default.
    pub fn digest(bytes: Option<&[u8]>) -> String {
        let bytes = bytes.unwrap_or(DEFAULT_YAML.as_bytes());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Mode};

    #[test]
    fn embedded_default_is_the_built_in_policy() {
        let c = Config::from_yaml(DEFAULT_YAML, "default").unwrap();
        assert_eq!(c.policy, PolicyConfig::default());
        assert_eq!(c.server, ServerSettings::default());
        assert_eq!(c.policy.defaults.tier, Tier::Foundation);
        assert_eq!(c.policy.defaults.mode, Mode::Warn);
        let production = c.policy.resources(Tier::Production).unwrap();
        assert_eq!(production.requests.memory, "128Mi");
        assert_eq!(production.limits, None, "limits are opt-in");
    }

    #[test]
    fn the_readme_shows_the_embedded_default() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(DEFAULT_YAML),
            "README.md's embedded default differs from src/config/default.yaml"
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
    fn a_config_without_keys_is_refused() {
        for empty in [
            "",
            "   \n",
            "# all commented out\n# defaults: {mode: enforce}\n",
            "{}",
            "---\n",
            "[]",
        ] {
            let err = Config::from_yaml(empty, "c.yaml").unwrap_err().to_string();
            assert!(err.contains("has no keys"), "{empty:?}: {err}");
        }
        assert!(Config::from_yaml("defaults: {}\n", "c.yaml").is_ok());
    }

    #[test]
    fn weakenings_are_named() {
        let strict = Config::from_yaml(
            "defaults: {tier: enterprise, mode: enforce}\nregistries: {allowed: [ghcr.io/acme/]}\n",
            "a",
        )
        .unwrap();
        assert!(strict.weakenings(&strict).is_empty());
        let weak = Config::from_yaml(
            "dryRun: true\nonError: allow\ndefaults: {tier: production, mode: warn}\n\
             rules:\n  privileged: {action: warn}\nregistries: {allowed: [ghcr.io/acme/, docker.io]}\n\
             exemptions:\n  - {reason: vendor chart, namespaces: [x]}\ntierAdmins: {users: [mallory]}\n",
            "b",
        )
        .unwrap();
        let w = weak_text(&strict, &weak);
        for want in [
            "dryRun turned on",
            "onError relaxed",
            "defaults.tier lowered from enterprise to production",
            "defaults.mode relaxed from enforce to warn",
            "rule privileged lowered at foundation",
            "registries allowed: docker.io",
            "exemptions added: vendor chart",
            "tier admins added: mallory",
        ] {
            assert!(w.contains(want), "{want} not in {w}");
        }
        // Tightening is not weakening.
        assert!(weak
            .weakenings(&strict)
            .iter()
            .all(|x| !x.contains("dryRun")));
    }

    fn weak_text(a: &Config, b: &Config) -> String {
        a.weakenings(b).join("\n")
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            "defaults:\n  tier: gold\n",
            "defaults:\n  mode: loud\n",
            "rules:\n  no-such-rule: {action: off}\n",
            "rules:\n  privileged: {action: maybe}\n",
            "rules:\n  privileged: {fix: on}\n",
            "exemptions:\n  - namespaces: [a]\n",
            "exemptions:\n  - reason: ''\n",
            "pssVersion: v2.0\n",
            "onError: maybe\n",
            "maxRequestBytes: lots\n",
        ] {
            assert!(Config::from_yaml(bad, "x").is_err(), "accepted: {bad}");
        }
        assert!(Config::from_bytes(b"\xff\xfe", "x").is_err());
    }

    #[test]
    fn both_halves_come_from_one_file() {
        let c = Config::from_yaml(
            "dryRun: true\nonError: allow\nmaxRequestBytes: 1024\nrules:\n  privileged: {action: warn}\n",
            "x",
        )
        .unwrap();
        assert_eq!(
            c.server,
            ServerSettings {
                dry_run: true,
                on_error: OnError::Allow,
                max_request_bytes: 1024,
                max_inflight_bytes: 32 * 1024 * 1024,
            }
        );
        let rule = crate::policy::rules::by_id("privileged").unwrap();
        assert_eq!(c.policy.rule_action(Tier::Foundation, rule), Action::Warn);
        // Tiers without resources get the built-in ones.
        assert!(c.policy.resources(Tier::Hyperscale).is_some());
    }

    #[test]
    fn load_reads_files_and_names_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, "defaults: {tier: 3}\n").unwrap();
        let (c, bytes) = Config::load(Some(&p)).unwrap();
        assert_eq!(c.policy.defaults.tier, Tier::Enterprise);
        assert_eq!(bytes.as_deref(), Some(&b"defaults: {tier: 3}\n"[..]));
        let err = Config::load(Some(&dir.path().join("nope.yaml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.yaml"), "{err}");
        assert_eq!(Config::load(None).unwrap().0, Config::embedded());
    }
}
