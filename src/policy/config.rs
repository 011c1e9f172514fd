//! The policy configuration: what the engine judges by (rule actions and
//! fixes, tier settings, registries, exemptions, tier admins, defaults for
//! unlabelled namespaces, the PSS version). The server's own settings
//! (`dryRun`, `onError`, `maxRequestBytes`) are not here: they belong to the
//! server. `crate::config` is the one loader that reads a file into both.
//!
//! Every part deserializes from the YAML users write; errors name the key.
use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Deserializer};

use super::pss::PssVersion;
use super::rules;
use super::{Action, Mode, Rule, Tier};

/// The policy half of the configuration file (its keys, minus the server's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyConfig {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, deserialize_with = "de_pss_version")]
    pub pss_version: PssVersion,
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
    #[serde(default)]
    pub fixes: FixOptions,
    #[serde(default)]
    pub mesh: MeshSettings,
    #[serde(default)]
    pub tenancy: Tenancy,
    #[serde(default)]
    pub exceptions: ExceptionSettings,
    #[serde(default)]
    pub admission_policies: AdmissionPolicies,
    /// `images`: which images must be signed (and carry provenance), and how
    /// verification is cached and bounded ([`crate::supply`]).
    #[serde(default)]
    pub images: crate::supply::ImagesConfig,
}

/// `admissionPolicies`: whether the apiserver's own policies (`tiergate
/// export admission-policies`) judge the rules they cover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdmissionPolicies {
    /// The webhook judges every rule.
    #[default]
    Off,
    /// The policies judge the rules they cover; the validating webhook
    /// skips those, except in namespaces labelled
    /// `tiergate.io/admission=webhook`. The audit and the CLI judge every rule.
    Hybrid,
    /// Hybrid, and `tiergate serve` keeps the policies in step with its
    /// config: the replica holding the `tiergate-admission-policies` Lease
    /// applies them (server-side apply) at start-up, after every reload and
    /// every 10 minutes, and deletes those the config no longer makes.
    Managed,
}

impl AdmissionPolicies {
    /// Whether the apiserver's policies judge the rules they cover.
    pub fn hybrid(self) -> bool {
        self != AdmissionPolicies::Off
    }
}

/// `exceptions`: the limits of `TierException` objects and who may grant
/// them (see [`crate::policy::exception`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExceptionSettings {
    /// The longest an exception may live, from its creation to `expires`.
    #[serde(default = "default_max_lifetime", deserialize_with = "de_duration")]
    pub max_lifetime: Seconds,
    /// How long before it expires writes of the objects it covers warn.
    #[serde(default = "default_warn_before", deserialize_with = "de_duration")]
    pub warn_before: Seconds,
    /// Who may create or change one; `tierAdmins` when not given.
    #[serde(default)]
    pub approvers: Option<TierAdmins>,
}

/// A duration in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub i64);

fn default_max_lifetime() -> Seconds {
    Seconds(90 * 86_400)
}

fn default_warn_before() -> Seconds {
    Seconds(7 * 86_400)
}

impl Default for ExceptionSettings {
    fn default() -> Self {
        ExceptionSettings {
            max_lifetime: default_max_lifetime(),
            warn_before: default_warn_before(),
            approvers: None,
        }
    }
}

impl ExceptionSettings {
    /// Who may grant exceptions: `approvers`, else the tier admins.
    pub fn approvers<'a>(&'a self, cfg: &'a PolicyConfig) -> &'a TierAdmins {
        self.approvers.as_ref().unwrap_or(&cfg.tier_admins)
    }
}

/// `90d`, `12h`, `30m`, `45s` (or a number of seconds).
pub fn parse_duration(s: &str) -> Result<Seconds, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 90d, 12h, 30m, 45s)"))?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => {
            return Err(format!(
                "invalid duration {s:?} (examples: 90d, 12h, 30m, 45s)"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .map(Seconds)
        .ok_or_else(|| format!("invalid duration {s:?}: it must be positive and not overflow"))
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Seconds, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(i64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) if n > 0 => Ok(Seconds(n)),
        Raw::N(n) => Err(serde::de::Error::custom(format!(
            "invalid duration {n}: it must be positive"
        ))),
        Raw::S(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

/// `mesh`: the service mesh that gives namespaces mTLS (`mesh-enrolled`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshSettings {
    #[serde(default)]
    pub kind: MeshKind,
}

/// Which mesh's conventions enrol a namespace and opt a pod out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshKind {
    #[default]
    Istio,
    Linkerd,
    Cilium,
}

/// `tenancy`: which namespaces hold tenants' code, and the sandboxed
/// RuntimeClasses their pods must use (`sandboxed-runtime`, tier 5).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Tenancy {
    /// A namespace with this label (any value but `false`) is a tenant's.
    #[serde(default = "default_tenant_label")]
    pub label: String,
    #[serde(default = "default_runtime_classes")]
    pub runtime_classes: Vec<String>,
}

impl Default for Tenancy {
    fn default() -> Self {
        Tenancy {
            label: default_tenant_label(),
            runtime_classes: default_runtime_classes(),
        }
    }
}

fn default_tenant_label() -> String {
    "tiergate.io/tenant".to_string()
}

fn default_runtime_classes() -> Vec<String> {
    ["gvisor", "kata", "kata-qemu", "kata-clh", "kata-fc"]
        .map(String::from)
        .to_vec()
}

/// `pssVersion`: `latest` or `v1.N`.
pub fn de_pss_version<'de, D: Deserializer<'de>>(d: D) -> Result<PssVersion, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    pub action: Option<Action>,
    pub fix: Option<OnOff>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSettings {
    #[serde(default)]
    pub rules: BTreeMap<RuleId, RuleOverride>,
    pub resources: Option<ResourceDefaults>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDefaults {
    /// Filled in where a container has none (the scheduler's view; cannot
    /// break a running workload).
    pub requests: CpuMemory,
    /// Filled in only when given (opt-in per tier): a guessed limit is an OOM
    /// kill or CPU throttling waiting to happen.
    #[serde(default)]
    pub limits: Option<CpuMemory>,
}

/// Fixes that are not safe for every workload, turned on by name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FixOptions {
    /// The `probes` fix also adds a tcpSocket liveness probe (off: a guessed
    /// liveness probe restarts a slow-starting server in a loop).
    #[serde(default)]
    pub liveness_probe: OnOff,
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

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Allowed image registry prefixes (e.g. `ghcr.io/acme/`, `registry.k8s.io`).
    #[serde(default)]
    pub allowed: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierAdmins {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Who or what is exempt from which rules, and why. Every field given must
/// match (a list matches when any entry does); `rules` empty means all rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    #[serde(deserialize_with = "de_reason")]
    pub reason: String,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, deserialize_with = "de_globs")]
    pub names: Vec<NameGlob>,
    #[serde(default, deserialize_with = "de_kinds")]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub rules: Vec<RuleId>,
    /// Only findings in these containers (name globs)...
    #[serde(default, deserialize_with = "de_globs")]
    pub containers: Vec<NameGlob>,
    /// ...or in containers running these images (globs): a mesh sidecar or
    /// a vendor agent wherever it is injected.
    #[serde(default, deserialize_with = "de_globs")]
    pub images: Vec<NameGlob>,
}

fn de_kinds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let kinds = Vec::<String>::deserialize(d)?;
    for k in &kinds {
        crate::policy::kinds::check_kind_name(k).map_err(serde::de::Error::custom)?;
    }
    Ok(kinds)
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

impl PartialEq for NameGlob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl NameGlob {
    pub fn is_match(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

impl NameGlob {
    /// A glob (`*`, `?`, `[ab]`; `*` also matches `/`, for images).
    pub fn new(pattern: &str) -> Result<NameGlob, String> {
        Glob::new(pattern)
            .map(|g| NameGlob {
                matcher: g.compile_matcher(),
                pattern: pattern.to_string(),
            })
            .map_err(|e| format!("invalid glob {pattern:?}: {e}"))
    }
}

fn de_globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NameGlob>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|p| NameGlob::new(p).map_err(serde::de::Error::custom))
        .collect()
}

/// Which containers an exception covers: none given, the whole object;
/// else a container whose name or image matches.
#[derive(Debug, Clone, Copy)]
pub struct ContainerScope<'a> {
    pub containers: &'a [NameGlob],
    pub images: &'a [NameGlob],
}

impl ContainerScope<'_> {
    pub fn whole_object(&self) -> bool {
        self.containers.is_empty() && self.images.is_empty()
    }

    pub fn covers(&self, name: &str, image: Option<&str>) -> bool {
        self.whole_object()
            || self.containers.iter().any(|g| g.is_match(name))
            || image.is_some_and(|i| self.images.iter().any(|g| g.is_match(i)))
    }
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

    /// Its container scope (empty: the whole object).
    pub fn scope(&self) -> ContainerScope<'_> {
        ContainerScope {
            containers: &self.containers,
            images: &self.images,
        }
    }
    pub fn covers_rule(&self, id: &str) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r.0 == id)
    }
}

/// The resources the `resources` fix fills in when the config names none for
/// a tier (the embedded `default.yaml` says the same; a test keeps them equal).
fn builtin_resources(tier: Tier) -> ResourceDefaults {
    let cm = |cpu: &str, memory: &str| CpuMemory {
        cpu: cpu.to_string(),
        memory: memory.to_string(),
    };
    let requests = match tier {
        Tier::Foundation | Tier::Production => cm("100m", "128Mi"),
        Tier::Enterprise | Tier::MultiCluster | Tier::Hyperscale => cm("250m", "256Mi"),
    };
    ResourceDefaults {
        requests,
        limits: None,
    }
}

impl Default for PolicyConfig {
    /// The embedded defaults: what a config file that sets nothing means.
    fn default() -> Self {
        let mut cfg = PolicyConfig {
            defaults: Defaults::default(),
            pss_version: PssVersion::default(),
            rules: BTreeMap::new(),
            tiers: BTreeMap::new(),
            registries: Registries::default(),
            exemptions: Vec::new(),
            // A file without `tierAdmins` names nobody; the embedded
            // default names the cluster's superusers.
            tier_admins: TierAdmins {
                users: Vec::new(),
                groups: vec!["system:masters".to_string()],
            },
            fixes: FixOptions::default(),
            mesh: MeshSettings::default(),
            tenancy: Tenancy::default(),
            exceptions: ExceptionSettings::default(),
            admission_policies: AdmissionPolicies::Off,
            images: crate::supply::ImagesConfig::default(),
        };
        cfg.fill_resource_defaults();
        cfg
    }
}

impl PolicyConfig {
    /// Give tiers without resource defaults the built-in ones.
    pub fn fill_resource_defaults(&mut self) {
        for tier in Tier::ALL {
            let entry = self.tiers.entry(tier).or_default();
            if entry.resources.is_none() {
                entry.resources = Some(builtin_resources(tier));
            }
        }
    }

    /// What the type system cannot say: a fix turned on must exist. The
    /// error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let all = self
            .rules
            .iter()
            .map(|(id, ov)| (format!("rules.{}", id.0), id, ov))
            .chain(self.tiers.iter().flat_map(|(tier, t)| {
                t.rules
                    .iter()
                    .map(move |(id, ov)| (format!("tiers.{}.rules.{}", tier.name(), id.0), id, ov))
            }));
        for (key, id, ov) in all {
            if let (Some(OnOff(true)), Some(rule)) = (ov.fix, rules::by_id(&id.0)) {
                if !rule.fix.exists() {
                    return Err(format!("{key}.fix: rule {} has no fix to turn on", id.0));
                }
            }
        }
        self.images.validate()
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
        if !rule.fix.exists() {
            return false;
        }
        // A fix that needs something from the config (image pinning needs
        // `images.verify`) is off without it, whatever the override says.
        self.rule_override(tier, rule.id)
            .1
            .unwrap_or(rule.fix.on_by_default())
            && rule.fix.configured(self)
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

/// For the engine's own tests: a policy config from YAML holding only policy
/// keys, with the built-in resource defaults (real files go through
/// `crate::config`, which also reads the server's keys).
#[cfg(test)]
pub fn from_test_yaml(yaml: &str) -> PolicyConfig {
    let text = if yaml.trim().is_empty() { "{}" } else { yaml };
    let mut cfg: PolicyConfig = match serde_saphyr::from_str(text) {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}\n{yaml}"),
    };
    cfg.fill_resource_defaults();
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tier_overrides_win_over_global() {
        let c = from_test_yaml(
            "rules:\n  privileged: {action: warn}\ntiers:\n  2:\n    rules:\n      privileged: {action: audit}\n",
        );
        let rule = rules::by_id("privileged").unwrap();
        assert_eq!(c.rule_action(Tier::Foundation, rule), Action::Warn);
        assert_eq!(c.rule_action(Tier::Production, rule), Action::Audit);
    }

    #[test]
    fn a_fix_turned_on_must_exist() {
        let c = from_test_yaml("tiers:\n  production:\n    rules:\n      privileged: {fix: on}\n");
        let err = c.validate().unwrap_err();
        assert!(
            err.starts_with("tiers.production.rules.privileged.fix"),
            "{err}"
        );
    }
}
