//! The catalog compiled into policies the apiserver runs itself
//! (`tiergate export admission-policies`): ValidatingAdmissionPolicies and
//! their bindings for every rule whose file says how CEL judges it
//! ([`crate::policy::cel`]), with tiergate's model around them: the
//! namespace's tier and mode labels (and the config's defaults) select the
//! rules and the action, the config's rule overrides and whole-object
//! exemptions hold, the webhooks' excluded namespaces and `matchConditions`
//! are the same. What stays in the webhook, and why, is listed next to them
//! ([`Export::stays`]).
//!
//! Per action (deny, warn, audit), one policy per tier
//! (`tiergate-warn-t1` …), bound to the namespaces whose tier label names
//! that tier as tiergate spells it (and, for the config's default tier, to
//! those with no label), holding only that tier's rules, with a
//! `may-break` matchCondition over the object alone that skips the policy
//! when none of them finds anything (the apiserver evaluates every
//! messageExpression of a policy it runs, so without it a compliant object
//! cost every rule twice); and one policy of every tier
//! (`tiergate-warn`), the tier read in CEL, for any other spelling. A rule
//! appears in a policy's validations guarded by the tiers and modes in which
//! the engine gives it that action. The deny policy has one validation
//! naming every denied rule (the apiserver reports only the first failed
//! validation of a denial), and so does audit; warn has one per rule.
//! The rules that read cluster facts ([`Cel::Facts`]) are one more policy
//! per action (`tiergate-warn-facts`, the tier read in CEL) that takes the
//! namespace's `NamespaceFacts` object as params ([`facts`]). The excluded
//! namespaces are every policy's first matchCondition, not a requirement
//! of its bindings' selectors, which the apiserver parses on every request.
//! [`hybrid_webhooks`] narrows the webhooks so the apiserver does not call
//! tiergate for what a policy already judges.
use std::collections::BTreeMap;

pub mod facts;
mod mutations;
pub use mutations::{fix_in_policy, policy_fixes, FIRST_MINOR as MUTATING_FIRST_MINOR};

use serde_json::{json, Value};

use crate::admission::scope;
use crate::config::Config;
use crate::policy::cel::{self, lit, Cel, CelCtx};
#[cfg(test)]
use crate::policy::config::NameGlob;
use crate::policy::config::{Exemption, PolicyConfig};
use crate::policy::kinds::{self, GroupKind, WORKLOADS};
use crate::policy::namespace::{MODE_LABEL, TIER_LABEL};
use crate::policy::{rules, Action, Check, Engine, Kinds, Mode, Rule, Tier};

use crate::policy::cel::glob_regex;
pub use crate::policy::cel::{covered, webhook_reason, ADMISSION_LABEL, WEBHOOK_VALUE};

/// The Kubernetes minor versions the export can target.
pub const KUBE_MINORS: std::ops::RangeInclusive<u32> = 30..=37;

/// Why an export cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "Kubernetes 1.{0} has no ValidatingAdmissionPolicy v1: the export targets 1.30 to 1.37"
    )]
    KubeVersion(u32),
    #[error("writing the policies as YAML: {0}")]
    Yaml(String),
}

/// What the export is made for.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The target apiserver's minor version (`37` = 1.37).
    pub kube_minor: u32,
    /// Namespaces never judged (the webhooks' `namespaceSelector`).
    pub excluded_namespaces: Vec<String>,
    /// The config's digest ([`Config::digest`]), for the labels.
    pub config_digest: String,
    /// No mutating webhook runs beside the policies: bind each fix's
    /// MutatingAdmissionPolicy in every tier the fix is on, also in those of
    /// [`webhook_fix_tiers`] (where hybrid mode leaves the fix to the
    /// webhook it calls anyway).
    pub without_mutating_webhook: bool,
    /// The mutating webhook applies every fix in hybrid mode: no
    /// MutatingAdmissionPolicy is bound. On a write that needs many fixes
    /// one webhook call costs the apiserver less than evaluating every
    /// fix's CEL (the README's measurements); on one that needs none or
    /// few, the policies cost less and the webhook is not called.
    pub fixes_in_webhook: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            kube_minor: crate::policy::pss::LATEST_MINOR,
            excluded_namespaces: crate::audit::EXCLUDED
                .iter()
                .map(|s| s.to_string())
                .collect(),
            config_digest: Config::digest(None),
            without_mutating_webhook: false,
            fixes_in_webhook: false,
        }
    }
}

/// Something that stays in the webhook, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    pub what: String,
    pub why: String,
}

/// The generated objects and what they leave to the webhook.
#[derive(Debug, Clone)]
pub struct Export {
    /// ValidatingAdmissionPolicies and their bindings, in a fixed order.
    pub objects: Vec<Value>,
    /// The rules the policies judge (not those in `by_apiserver`).
    pub covered: Vec<&'static str>,
    /// What the webhook keeps judging.
    pub stays: Vec<Stay>,
    /// Rules the apiserver enforces by itself (no policy needed).
    pub by_apiserver: Vec<Stay>,
    /// Rules whose fixes the MutatingAdmissionPolicies apply (1.36+).
    pub fixed: Vec<&'static str>,
}

/// The CEL condition under which an exemption covers the request.
fn exemption_cel(e: &Exemption) -> String {
    let mut parts = Vec::new();
    if !e.namespaces.is_empty() {
        parts.push(format!("request.namespace in {}", cel::list(&e.namespaces)));
    }
    if !e.names.is_empty() {
        let res: Vec<String> = e.names.iter().filter_map(glob_regex).collect();
        parts.push(format!(
            "{}.exists(p, request.name.matches(p))",
            cel::list(&res)
        ));
    }
    if !e.kinds.is_empty() {
        parts.push(format!("request.kind.kind in {}", cel::list(&e.kinds)));
    }
    if !e.users.is_empty() {
        parts.push(format!(
            "request.userInfo.?username.orValue('') in {}",
            cel::list(&e.users)
        ));
    }
    if !e.groups.is_empty() {
        parts.push(format!(
            "request.userInfo.?groups.orValue([]).exists(g, g in {})",
            cel::list(&e.groups)
        ));
    }
    if parts.is_empty() {
        "true".to_string()
    } else {
        format!("({})", parts.join(" && "))
    }
}

/// A kind's REST resources (and subresources tiergate judges).
fn resources_of(gk: GroupKind) -> &'static [&'static str] {
    match (gk.group, gk.kind) {
        ("", "Pod") => &["pods", "pods/ephemeralcontainers"],
        ("", "PodTemplate") => &["podtemplates"],
        ("", "ReplicationController") => &["replicationcontrollers"],
        ("", "Service") => &["services"],
        ("", "ConfigMap") => &["configmaps"],
        ("", "Secret") => &["secrets"],
        ("", "Namespace") => &["namespaces"],
        ("apps", "Deployment") => &["deployments"],
        ("apps", "ReplicaSet") => &["replicasets"],
        ("apps", "StatefulSet") => &["statefulsets"],
        ("apps", "DaemonSet") => &["daemonsets"],
        ("batch", "Job") => &["jobs"],
        ("batch", "CronJob") => &["cronjobs"],
        ("networking.k8s.io", "Ingress") => &["ingresses"],
        ("policy", "PodDisruptionBudget") => &["poddisruptionbudgets"],
        ("rbac.authorization.k8s.io", "Role") => &["roles"],
        ("rbac.authorization.k8s.io", "RoleBinding") => &["rolebindings"],
        ("rbac.authorization.k8s.io", "ClusterRole") => &["clusterroles"],
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &["clusterrolebindings"],
        // Kinds no apiserver of 1.30+ serves (extensions/v1beta1).
        _ => &[],
    }
}

/// `resourceRules` for these kinds: one per API group, as the webhooks
/// write them.
fn resource_rules(kinds: &[GroupKind]) -> Vec<Value> {
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for gk in kinds {
        for r in resources_of(*gk) {
            let list = by_group.entry(gk.group).or_default();
            if !list.contains(r) {
                list.push(r);
            }
        }
    }
    by_group
        .into_iter()
        .map(|(group, resources)| {
            json!({
                "apiGroups": [group],
                "apiVersions": [api_version_of(group)],
                "operations": ["CREATE", "UPDATE"],
                "resources": resources,
                "scope": "*",
            })
        })
        .collect()
}

fn api_version_of(group: &str) -> &'static str {
    match group {
        "tiergate.io" => "v1alpha1",
        _ => "v1",
    }
}

/// The kind a rule's action is planned on (its actions do not depend on
/// which of its kinds).
fn representative(rule: &Rule) -> Option<GroupKind> {
    match rule.kinds() {
        Kinds::Workloads | Kinds::WorkloadsAnd(_) | Kinds::All => Some(kinds::DEPLOYMENT),
        Kinds::Only(ks) => ks.iter().copied().find(|k| !resources_of(*k).is_empty()),
    }
}

const MODES: [Mode; 3] = [Mode::Enforce, Mode::Warn, Mode::Audit];

/// For each action, the tiers of each mode in which the engine gives `rule`
/// that action.
type ActionTable = BTreeMap<Action, Vec<(Mode, Vec<u8>)>>;

fn action_table(engine: &Engine, rule: &Rule) -> ActionTable {
    let mut table: ActionTable = BTreeMap::new();
    let Some(gk) = representative(rule) else {
        return table;
    };
    for mode in MODES {
        let mut by_action: BTreeMap<Action, Vec<u8>> = BTreeMap::new();
        for tier in Tier::ALL {
            let action = engine
                .plan(gk.group, gk.kind, tier, mode)
                .into_iter()
                .find(|(r, _, _)| r.id == rule.id)
                .map_or(Action::Off, |(_, a, _)| a);
            if action != Action::Off {
                by_action.entry(action).or_default().push(tier.number());
            }
        }
        for (action, tiers) in by_action {
            table.entry(action).or_default().push((mode, tiers));
        }
    }
    table
}

/// CEL: the namespace's tier and mode fall in `modes`.
fn tier_mode_cel(modes: &[(Mode, Vec<u8>)]) -> String {
    let parts: Vec<String> = modes
        .iter()
        .map(|(mode, tiers)| {
            let tier = tiers_cel(tiers).map_or(String::new(), |t| format!(" && {t}"));
            format!("(variables.mode == '{}'{tier})", mode.name())
        })
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("({})", parts.join(" || "))
    }
}

/// CEL: the tier is one of `tiers` (sorted), or `None` when that is every
/// tier.
fn tiers_cel(tiers: &[u8]) -> Option<String> {
    let first = tiers.first().copied().unwrap_or(1);
    if tiers.iter().copied().eq(first..=5) {
        (first > 1).then(|| format!("variables.tier >= {first}"))
    } else {
        let list: Vec<String> = tiers.iter().map(u8::to_string).collect();
        Some(format!("variables.tier in [{}]", list.join(", ")))
    }
}

/// CEL: the tier is one of those of `modes` (any mode), or `None` when
/// that is every tier.
fn tier_guard(modes: &[(Mode, Vec<u8>)]) -> Option<String> {
    let mut tiers: Vec<u8> = modes.iter().flat_map(|(_, t)| t.iter().copied()).collect();
    tiers.sort_unstable();
    tiers.dedup();
    tiers_cel(&tiers)
}

/// CEL: the object is of a kind the rule judges.
fn kind_guard(rule: &Rule) -> Option<String> {
    let only = |ks: &[GroupKind]| {
        let parts: Vec<String> = ks
            .iter()
            .filter(|k| !resources_of(**k).is_empty())
            .map(|k| {
                format!(
                    "(request.kind.group == {} && request.kind.kind == {})",
                    lit(k.group),
                    lit(k.kind)
                )
            })
            .collect();
        parts.join(" || ")
    };
    match (rule.check, rule.kinds()) {
        (Check::Pod(_), _) | (_, Kinds::Workloads) => Some("variables.pod != null".to_string()),
        (_, Kinds::Only(ks)) => Some(only(ks)),
        (_, Kinds::WorkloadsAnd(ks)) => Some(format!("variables.pod != null || {}", only(ks))),
        (_, Kinds::All) => None,
    }
}

/// The kinds a rule judges that an apiserver of 1.30+ serves.
fn served_kinds(rule: &Rule) -> Vec<GroupKind> {
    let mut out: Vec<GroupKind> = match rule.kinds() {
        Kinds::Workloads => WORKLOADS.iter().map(|w| w.gk).collect(),
        k => k.list(),
    };
    out.retain(|k| !resources_of(*k).is_empty());
    out
}

/// A CEL variable name for a rule (`host-ports` → `f_host_ports`).
fn var(rule: &Rule) -> String {
    format!("f_{}", rule.id.replace('-', "_"))
}

/// The variables every policy declares first.
fn common_variables(cfg: &PolicyConfig) -> Vec<Value> {
    let mut pod_arms = Vec::new();
    let mut meta_arms = Vec::new();
    for w in WORKLOADS {
        if resources_of(w.gk).is_empty() {
            continue;
        }
        let is = format!(
            "request.kind.group == {} && request.kind.kind == {}",
            lit(w.gk.group),
            lit(w.gk.kind)
        );
        pod_arms.push(format!("{is} ? {} : ", cel_path("variables.obj", w.spec)));
        meta_arms.push(format!("{is} ? {} : ", cel_path("variables.obj", w.meta)));
    }
    let label = |key: &str| {
        format!(
            "namespaceObject != null && {k} in namespaceObject.metadata.?labels.orValue({{}}) ? \
             namespaceObject.metadata.labels[{k}].lowerAscii() : ''",
            k = lit(key)
        )
    };
    let tiers = "{'1': 1, 'foundation': 1, '2': 2, 'production': 2, '3': 3, 'enterprise': 3, \
                 '4': 4, 'multi-cluster': 4, 'multicluster': 4, '5': 5, 'hyperscale': 5}";
    let v = |name: &str, expression: String| json!({"name": name, "expression": expression});
    vec![
        v("obj", "dyn(object)".to_string()),
        v("pod", format!("{}null", pod_arms.concat())),
        v("podMeta", format!("{}null", meta_arms.concat())),
        v(
            "containers",
            "variables.pod == null ? [] : variables.pod.?initContainers.orValue([]) + \
             variables.pod.?containers.orValue([]) + \
             variables.pod.?ephemeralContainers.orValue([])"
                .to_string(),
        ),
        v("tierLabel", label(TIER_LABEL)),
        v(
            "tier",
            format!(
                "{tiers}[?variables.tierLabel].orValue({})",
                cfg.defaults.tier.number()
            ),
        ),
        v("modeLabel", label(MODE_LABEL)),
        v(
            "mode",
            format!(
                "variables.modeLabel in ['enforce', 'warn', 'audit'] ? variables.modeLabel : '{}'",
                cfg.defaults.mode.name()
            ),
        ),
        v(
            "webhookOnly",
            format!(
                "namespaceObject != null && namespaceObject.metadata.?labels.orValue({{}})[?{}] \
                 == optional.of({})",
                lit(ADMISSION_LABEL),
                lit(WEBHOOK_VALUE)
            ),
        ),
    ]
}

/// One covered rule, ready to place in the policies.
struct Compiled {
    rule: &'static Rule,
    /// `variables.f_<id>`: the findings, guarded by the kind.
    findings: String,
    /// CEL: an exemption covers the request.
    exempt: Option<String>,
    table: ActionTable,
    /// It reads the namespace's facts (`params`, [`facts`]): it goes in a
    /// policy of its own, which takes them as params.
    facts: bool,
}

impl Compiled {
    /// CEL: the rule applies with this action.
    fn applies(&self, action: Action) -> Option<String> {
        let modes = self.table.get(&action)?;
        let mut cond = format!("!variables.webhookOnly && {}", tier_mode_cel(modes));
        if let Some(e) = &self.exempt {
            cond.push_str(&format!(" && !{e}"));
        }
        Some(cond)
    }
}

fn labels(opts: &ExportOptions) -> Value {
    json!({
        "app.kubernetes.io/name": "tiergate",
        "app.kubernetes.io/managed-by": "tiergate",
        "tiergate.io/version": env!("CARGO_PKG_VERSION"),
        "tiergate.io/config": opts.config_digest,
    })
}

/// Compile the catalog under this config.
pub fn admission_policies(cfg: &Config, opts: &ExportOptions) -> Result<Export, ExportError> {
    if !KUBE_MINORS.contains(&opts.kube_minor) {
        return Err(ExportError::KubeVersion(opts.kube_minor));
    }
    let policy = &cfg.policy;
    let engine = Engine::new(policy.clone());
    let cx = CelCtx {
        config: policy,
        pss_minor: policy.pss_version.minor,
    };
    let mut compiled = Vec::new();
    let mut stays = Vec::new();
    let mut by_apiserver = Vec::new();
    for rule in rules::ALL.iter().copied() {
        let table = action_table(&engine, rule);
        if table.is_empty() {
            continue;
        }
        if let Some(why) = webhook_reason(rule, policy) {
            stays.push(Stay {
                what: format!("rule {}", rule.id),
                why,
            });
            continue;
        }
        let (expr, facts) = match rule.cel {
            Cel::Findings(expr) => (expr, false),
            Cel::Facts(expr) => (expr, true),
            Cel::Apiserver(why) => {
                by_apiserver.push(Stay {
                    what: format!("rule {}", rule.id),
                    why: why.to_string(),
                });
                continue;
            }
            Cel::Webhook(_) | Cel::WebhookWhen { .. } => continue,
        };
        let body = expr(&cx);
        let findings = match kind_guard(rule) {
            Some(g) => format!("({g}) ? ({body}) : []"),
            None => body,
        };
        let exempt: Vec<String> = policy
            .exemptions
            .iter()
            .filter(|e| e.covers_rule(rule.id))
            .map(exemption_cel)
            .collect();
        let exempt = (!exempt.is_empty()).then(|| format!("({})", exempt.join(" || ")));
        compiled.push(Compiled {
            rule,
            findings,
            exempt,
            table,
            facts,
        });
    }
    let (mutating, fixed, left) = mutations::mutating_policies(cfg, opts);
    stays.extend(always_in_webhook(cfg, opts, &fixed, left));

    let dry_run = cfg.server.dry_run;
    let mut objects = Vec::new();
    // Every label value that names a tier as tiergate spells it.
    let canonical: Vec<String> = Tier::ALL.iter().flat_map(|t| tier_values(*t)).collect();
    for action in [Action::Deny, Action::Warn, Action::Audit] {
        let members: Vec<&Compiled> = compiled
            .iter()
            .filter(|c| c.table.contains_key(&action))
            .collect();
        if members.is_empty() {
            continue;
        }
        let name = format!("tiergate-{}", action.name());
        // The binding leaves out namespaces whose mode label names a mode
        // this policy has no rule for (so a warn namespace evaluates only the
        // warn policy); the CEL decides the rest.
        let modes: Vec<Mode> = MODES
            .iter()
            .copied()
            .filter(|m| {
                members
                    .iter()
                    .any(|c| c.table[&action].iter().any(|(mm, _)| mm == m))
            })
            .collect();
        let others: Vec<&str> = MODES
            .iter()
            .filter(|m| !modes.contains(m))
            .map(|m| m.name())
            .collect();
        let mut mode_selector = Vec::new();
        if !others.is_empty() {
            if !modes.contains(&policy.defaults.mode) {
                mode_selector.push(json!({"key": MODE_LABEL, "operator": "Exists"}));
            }
            mode_selector.push(json!({"key": MODE_LABEL, "operator": "NotIn", "values": others}));
        }
        let actions: Vec<&str> = match (action, dry_run) {
            (Action::Deny, false) => vec!["Deny"],
            (Action::Deny, true) => vec!["Warn", "Audit"],
            (Action::Warn, _) => vec!["Warn"],
            _ => vec!["Audit"],
        };
        // A policy of rules that read the namespace's facts takes them as
        // params (it is never a per-tier one, so it has no `may-break`:
        // matchConditions cannot see params).
        let vap = |name: &str, members: &[&Compiled], per_tier: bool| {
            let with_facts = members.iter().any(|c| c.facts);
            let mut conditions = match_conditions(opts);
            if let Some(expr) = per_tier.then(|| may_break(policy, members)).flatten() {
                conditions.push(json!({"name": "may-break", "expression": expr}));
            }
            let (variables, validations) = if per_tier {
                (
                    policy_variables(policy, members),
                    validations(action, members),
                )
            } else {
                (
                    fallback_variables(policy, action, members),
                    fallback_validations(action, members),
                )
            };
            let mut vap = json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": name, "labels": labels(opts)},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": match_constraints(resource_rules(&kinds_of(members))),
                    "matchConditions": conditions,
                    "variables": variables,
                    "validations": validations,
                },
            });
            if with_facts {
                vap["spec"]["paramKind"] = facts::param_kind();
            }
            vap
        };
        let binding = |name: &str, policy_name: &str, tier: Vec<Value>, with_facts: bool| {
            let mut selector: Vec<Value> = mode_selector.clone();
            selector.extend(tier);
            let mut b = json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": name, "labels": labels(opts)},
                "spec": {
                    "policyName": policy_name,
                    "validationActions": actions,
                    "matchResources": {"namespaceSelector": {"matchExpressions": selector}},
                },
            });
            if with_facts {
                b["spec"]["paramRef"] = facts::param_ref();
                // Where the webhook judges everything, no facts are needed.
                if let Some(list) = b["spec"]["matchResources"]["namespaceSelector"]
                    ["matchExpressions"]
                    .as_array_mut()
                {
                    list.push(json!({"key": ADMISSION_LABEL, "operator": "NotIn",
                                     "values": [WEBHOOK_VALUE]}));
                }
            }
            b
        };
        // The rules that read the namespace's facts are one policy of every
        // tier (`tiergate-<action>-facts`, the tier read in CEL, taking the
        // facts as params) rather than one per tier: the apiserver parses
        // the namespace selector of every binding of a policy that matches
        // the kind, on every request.
        let (facts_members, members): (Vec<&Compiled>, Vec<&Compiled>) =
            members.iter().copied().partition(|c| c.facts);
        // A set of rules as one policy and its bindings (`-unlabelled` for
        // namespaces with no tier label, where `tier` is the default).
        let mut add = |name: &str,
                       members: &[&Compiled],
                       per_tier: bool,
                       tier: Vec<Value>,
                       unlabelled: bool| {
            if members.is_empty() {
                return;
            }
            let f = members.iter().any(|c| c.facts);
            objects.push(vap(name, members, per_tier));
            objects.push(binding(name, name, tier, f));
            if unlabelled {
                objects.push(binding(
                    &format!("{name}-unlabelled"),
                    name,
                    vec![json!({"key": TIER_LABEL, "operator": "DoesNotExist"})],
                    f,
                ));
            }
        };
        // A namespace whose tier label tiergate spells (or that has none:
        // the config's default tier) gets the policy of its tier: only the
        // rules of that tier, and a `may-break` condition that skips the
        // policy, validations and messages alike, for an object that breaks
        // none of them (the apiserver evaluates every messageExpression of
        // a policy it runs, passing or not, so a compliant object cost
        // every rule twice).
        for tier in Tier::ALL {
            let at: Vec<&Compiled> = members
                .iter()
                .copied()
                .filter(|c| {
                    c.table[&action]
                        .iter()
                        .any(|(_, tiers)| tiers.contains(&tier.number()))
                })
                .collect();
            if at.is_empty() {
                continue;
            }
            let tier_name = format!("{name}-t{}", tier.number());
            add(
                &tier_name,
                &at,
                true,
                vec![json!({"key": TIER_LABEL, "operator": "In", "values": tier_values(tier)})],
                tier == policy.defaults.tier,
            );
        }
        // Any other spelling (`Enterprise`, or a value that names no tier,
        // which means the default tier): every rule, the tier read in CEL.
        add(
            &name,
            &members,
            false,
            vec![
                json!({"key": TIER_LABEL, "operator": "Exists"}),
                json!({"key": TIER_LABEL, "operator": "NotIn", "values": canonical}),
            ],
            false,
        );
        // The facts rules: every namespace but those whose label names a
        // tier where none of them has this action (nor, when the default
        // tier is one, those with no label).
        let off: Vec<Tier> = Tier::ALL
            .iter()
            .copied()
            .filter(|t| {
                !facts_members.iter().any(|c| {
                    c.table[&action]
                        .iter()
                        .any(|(_, tiers)| tiers.contains(&t.number()))
                })
            })
            .collect();
        let mut facts_tiers = Vec::new();
        if !off.is_empty() {
            if off.contains(&policy.defaults.tier) {
                facts_tiers.push(json!({"key": TIER_LABEL, "operator": "Exists"}));
            }
            let values: Vec<String> = off.iter().flat_map(|t| tier_values(*t)).collect();
            facts_tiers.push(json!({"key": TIER_LABEL, "operator": "NotIn", "values": values}));
        }
        add(
            &format!("{name}-facts"),
            &facts_members,
            false,
            facts_tiers,
            false,
        );
    }
    objects.extend(mutating);
    Ok(Export {
        objects,
        covered: compiled.iter().map(|c| c.rule.id).collect(),
        stays,
        by_apiserver,
        fixed,
    })
}

/// The kinds these rules judge (a policy matches only those: fewer
/// requests to evaluate, and fewer kinds for the apiserver's type checking,
/// which compiles every expression against every kind matched).
fn kinds_of(members: &[&Compiled]) -> Vec<GroupKind> {
    let mut kinds: Vec<GroupKind> = Vec::new();
    for c in members {
        for k in served_kinds(c.rule) {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
    }
    kinds.sort();
    kinds
}

/// A per-tier policy's variables: the common ones, then each rule's
/// findings (`variables.f_<id>`, computed at most once in each of the
/// validation's and the message's contexts). Variables, not the findings
/// written into the two expressions: the apiserver's type checking takes
/// minutes on one expression holding every rule, and a variable is
/// compiled once for each of the two (and each kind).
fn policy_variables(cfg: &PolicyConfig, members: &[&Compiled]) -> Vec<Value> {
    let mut variables = common_variables(cfg);
    for c in members {
        variables.push(json!({"name": var(c.rule), "expression": c.findings}));
    }
    variables
}

/// Past this many characters a warning's details are cut: the apiserver
/// cuts every warning of a response to 256 characters once they pass
/// 4 KiB in all, so a warning this size leaves room for others (the
/// webhooks', Pod Security Admission's) with every rule id intact.
const WARN_DETAIL_MAX: usize = 1500;

/// Past this many characters a denial's or an audit annotation's details
/// are cut (the apiserver keeps 5,120 bytes of a message).
const DETAIL_MAX: usize = 3500;

/// A policy's one validation. It fails when a rule that applies (its tier,
/// mode, exemptions) finds something, trying the rules most often broken
/// first, so on an object that breaks one it stops there. Its message names
/// every rule found, then their findings (catalog order): the apiserver
/// evaluates every messageExpression on every request, passing or not, in
/// a context of its own, so one validation per rule computed every rule
/// twice, where this computes them once for the message and, on a failing
/// object, a few for the validation (the variables are computed at most
/// once in each context). One warning also names every rule
/// where Pod Security Admission names its checks, and a denial (which
/// shows only a policy's first failed validation) names them all.
fn validations(action: Action, members: &[&Compiled]) -> Vec<Value> {
    let applying: Vec<(&Compiled, String)> = members
        .iter()
        .filter_map(|c| c.applies(action).map(|cond| (*c, cond)))
        .collect();
    let mut tried: Vec<&(&Compiled, String)> = applying.iter().collect();
    tried.sort_by_key(|(c, _)| how_often_broken(c.rule));
    let breaks: Vec<String> = tried
        .iter()
        .map(|(c, cond)| format!("(({cond}) && size(variables.{}) > 0)", var(c.rule)))
        .collect();
    let found: Vec<String> = applying
        .iter()
        .map(|(c, cond)| {
            let v = var(c.rule);
            format!(
                "(({cond}) && size(variables.{v}) > 0 ? ['[{}] ' + variables.{v}.join('; ')] : [])",
                c.rule.id
            )
        })
        .collect();
    let max = if action == Action::Warn {
        WARN_DETAIL_MAX
    } else {
        DETAIL_MAX
    };
    let (found, breaks) = if found.is_empty() {
        ("[]".to_string(), "false".to_string())
    } else {
        (found.join(" + "), breaks.join(" || "))
    };
    vec![json!({
        "expression": format!("!({breaks})"),
        // The rules first, then as much of the detail as fits.
        "messageExpression": format!(
            "[{found}].map(l, request.kind.kind + ' ' + {} + ' violates tiergate tier ' + \
             string(variables.tier) + ' (' + l.map(d, d.substring(0, d.indexOf(']') + 1))\
             .join(' ') + '): ' + {})[0]",
            cel::quoted("request.name"),
            bounded("l.join('; ')", max)
        ),
        "message": "the object violates its namespace's tiergate tier",
        "reason": "Forbidden",
    })]
}

/// The all-tier policy's variables: the common ones, then (deny and
/// audit) each rule's findings.
fn fallback_variables(cfg: &PolicyConfig, action: Action, members: &[&Compiled]) -> Vec<Value> {
    let mut variables = common_variables(cfg);
    // Warn: each rule's findings are written into its own validation and
    // message instead (used once in each, so nothing is computed twice
    // more than before), because the apiserver's type checking compiles
    // every variable again for every expression and every kind matched.
    if action == Action::Warn {
        return variables;
    }
    for c in members {
        variables.push(json!({"name": var(c.rule), "expression": c.findings}));
    }
    variables.push(found_variable(action, members));
    variables
}

/// Deny and audit: `variables.found`, the first finding of every rule
/// found (see [`fallback_validations`]).
fn found_variable(action: Action, members: &[&Compiled]) -> Value {
    let parts: Vec<String> = members
        .iter()
        .filter_map(|c| {
            let v = var(c.rule);
            c.applies(action).map(|cond| {
                format!(
                    "({cond} && size(variables.{v}) > 0 ? ['[{}] ' + variables.{v}[0] + \
                     (size(variables.{v}) > 1 ? ' (and ' + string(size(variables.{v}) - \
                     1) + ' more)' : '')] : [])",
                    c.rule.id
                )
            })
        })
        .collect();
    json!({"name": "found", "expression": parts.join(" + ")})
}

/// The all-tier policy's validations, for tier labels tiergate does not
/// spell (rare; [`validations`] over every rule of every tier took the
/// apiserver's type checking minutes for this policy). Deny and audit: one
/// validation naming every rule found (the apiserver's cost grows with validations, and a denial
/// names only its first failed one). Warn: one validation per rule,
/// because the apiserver cuts every warning to 256 characters once a
/// response's warnings pass 4 KiB, so one warning could not name them all.
fn fallback_validations(action: Action, members: &[&Compiled]) -> Vec<Value> {
    if action != Action::Warn {
        // The rules first, then as much of the detail as the apiserver
        // keeps of a message (5,120 bytes).
        return vec![json!({
            "expression": "size(variables.found) == 0",
            "messageExpression": format!(
                "request.kind.kind + ' ' + {} + ' violates tiergate tier ' + \
                 string(variables.tier) + ' (' + variables.found.map(d, d.substring(0, \
                 d.indexOf(']') + 1)).join(' ') + '): ' + {}",
                cel::quoted("request.name"),
                bounded("variables.found.join('; ')", DETAIL_MAX)
            ),
            "message": "the object violates its namespace's tiergate tier",
            "reason": "Forbidden",
        })];
    }
    members
        .iter()
        .filter_map(|c| {
            let findings = &c.findings;
            c.applies(action).map(|cond| {
                // The findings joined once, bound by a one-element map.
                let message = format!(
                    "[({findings}).join('; ')].map(j, '[{}] ' + {})[0]",
                    c.rule.id,
                    bounded("j", DETAIL_MAX)
                );
                json!({
                    "expression": format!("!({cond}) || size({findings}) == 0"),
                    // The apiserver evaluates every messageExpression of a
                    // policy on every request, passing or not, in a context
                    // of its own (the variables computed again): a rule of
                    // some tiers only is guarded by them, so it is not
                    // computed where it does not apply (the message matters
                    // only where the validation failed, so where the rule
                    // applies).
                    "messageExpression": match tier_guard(&c.table[&action]) {
                        Some(g) => format!("!({g}) ? '' : {message}"),
                        None => message,
                    },
                    "message": format!("[{}] {}", c.rule.id, c.rule.summary),
                })
            })
        })
        .collect()
}

/// CEL for a policy's `matchConditions`, which see neither its variables
/// nor the namespace: the object may break one of these rules (ignoring
/// mode, exemptions and the webhook-only label, which only ever turn a
/// finding off). The common variables are bound by one-element
/// comprehensions (`[x].exists(v, ...)`, CEL here has no `cel.bind`), so
/// each is computed once. `None` (no condition: the policy always runs)
/// when a rule reads the namespace or a variable it cannot bind.
fn may_break(cfg: &PolicyConfig, members: &[&Compiled]) -> Option<String> {
    let common: BTreeMap<String, String> = common_variables(cfg)
        .into_iter()
        .filter_map(|v| {
            Some((
                v["name"].as_str()?.to_string(),
                v["expression"].as_str()?.to_string(),
            ))
        })
        .collect();
    // Longest names first, so `variables.pod` never eats `variables.podMeta`.
    let bound = [
        ("containers", "tgContainers"),
        ("podMeta", "tgPodMeta"),
        ("pod", "tgPod"),
        ("obj", "tgObj"),
    ];
    let bind = |expr: &str| {
        bound.iter().fold(expr.to_string(), |e, (name, to)| {
            e.replace(&format!("variables.{name}"), to)
        })
    };
    // The rules real manifests break most often first: the OR stops at the
    // first rule broken, so an object that breaks one costs little more
    // than that rule here (the validation stops early too; the message
    // judges every rule).
    let mut ordered: Vec<&&Compiled> = members.iter().collect();
    ordered.sort_by_key(|c| how_often_broken(c.rule));
    let mut parts = Vec::new();
    for c in ordered {
        let body = bind(&c.findings);
        if body.contains("variables.") || body.contains("namespaceObject") {
            return None;
        }
        parts.push(format!("size({body}) > 0"));
    }
    // One expression holds every rule, under the match conditions' smaller
    // cost budget (a quarter of the policy's): past this many containers the
    // condition is true at once, and the policy judges the object as it
    // did without it (each rule an expression of its own), rather than
    // failing a write for running out of budget.
    let mut expr = format!(
        "size(tgContainers) > {MAY_BREAK_MAX_CONTAINERS} || {}",
        parts.join(" || ")
    );
    for (name, to) in bound {
        let value = bind(common.get(name)?);
        expr = format!("[{value}].exists({to}, {expr})");
    }
    Some(expr)
}

/// The rules a `may-break` condition tries first, most often broken first:
/// the rules the object alone decides that at least a fifth of the
/// workloads of the shared corpus of public projects' manifests break
/// (`tiergate check --tier 5 -o json` over 189 workloads, 2026-12-06:
/// seccomp-profile-restricted 84%, resources 79%, capabilities-restricted
/// and read-only-root-filesystem 77%, run-as-non-root and
/// allow-privilege-escalation 76%, probes 74%, ...). Every other rule
/// follows in the catalog's order, which changes no verdict: the order of
/// an OR only decides how soon it stops.
const MOST_OFTEN_BROKEN: &[&str] = &[
    "business-labels",
    "priority-class",
    "image-digest",
    "startup-probe",
    "graceful-shutdown",
    "standard-labels",
    "seccomp-profile-restricted",
    "resources",
    "capabilities-restricted",
    "read-only-root-filesystem",
    "run-as-non-root",
    "allow-privilege-escalation",
    "probes",
    "image-tag",
    "zone-spread-required",
    "topology-spread",
    "restricted-volumes",
];

/// A rule's place in [`MOST_OFTEN_BROKEN`] (after it: every other rule,
/// in the catalog's order, the sort being stable).
fn how_often_broken(rule: &Rule) -> usize {
    MOST_OFTEN_BROKEN
        .iter()
        .position(|id| *id == rule.id)
        .unwrap_or(MOST_OFTEN_BROKEN.len())
}

/// Past this many containers a `may-break` condition does not look (see
/// [`may_break`]).
const MAY_BREAK_MAX_CONTAINERS: usize = 50;

/// What every generated policy matches: these resources. The excluded
/// namespaces are left out by a matchCondition ([`not_excluded`]), not
/// here: the apiserver parses a policy's and a binding's namespace
/// selector again on every request, before it looks at the resource, for
/// every policy it has, so a policy with an empty one costs nothing for
/// the kinds it does not match.
fn match_constraints(resource_rules: Vec<Value>) -> Value {
    json!({
        "matchPolicy": "Equivalent",
        "namespaceSelector": {},
        "resourceRules": resource_rules,
    })
}

/// CEL: the request is not in an excluded namespace (nor writes one).
/// A condition, not a binding's `namespaceSelector` requirement: the
/// apiserver parses (and validates with regular expressions) every
/// binding's selector of every policy that matches the kind, on every
/// request, which cost it 11% of its CPU at tier 3 (a profile of `make
/// bench-apiserver`); a condition is evaluated only where a binding
/// matched.
fn not_excluded(opts: &ExportOptions) -> String {
    let names = cel::list(&opts.excluded_namespaces);
    format!(
        "!(request.?namespace.orValue('') in {names}) && !(request.kind.group == '' && \
         request.kind.kind == 'Namespace' && request.name in {names})"
    )
}

/// The webhooks' own conditions every generated policy carries, after the
/// excluded namespaces.
fn match_conditions(opts: &ExportOptions) -> Vec<Value> {
    vec![
        json!({"name": "not-excluded", "expression": not_excluded(opts)}),
        json!({"name": "break-glass", "expression": scope::BREAK_GLASS_CEL}),
        json!({"name": "not-unchanged-update",
               "expression": scope::unchanged_update_cel_on("dyn(object)", "dyn(oldObject)")}),
    ]
}

/// CEL: the string `expr`, cut to `max` characters (a message the
/// apiserver finds too long is replaced by the static one).
fn bounded(expr: &str, max: usize) -> String {
    format!("(size({expr}) > {max} ? {expr}.substring(0, {max}) + '...' : {expr})")
}

/// What no policy judges, whatever the config, and the fixes no policy
/// applies under this one.
fn always_in_webhook(
    cfg: &Config,
    opts: &ExportOptions,
    fixed: &[&str],
    left: mutations::LeftToWebhook,
) -> Vec<Stay> {
    let s = |what: &str, why: &str| Stay {
        what: what.to_string(),
        why: why.to_string(),
    };
    let mut fixes: Vec<Stay> = rules::ALL
        .iter()
        .filter(|r| r.fix.exists() && !fixed.contains(&r.id))
        .filter(|r| !left.iter().any(|(id, _)| id == &r.id))
        .map(|r| Stay {
            what: format!("the {} fix", r.id),
            why: if opts.kube_minor < mutations::FIRST_MINOR {
                format!(
                    "MutatingAdmissionPolicy is GA from Kubernetes 1.{}; the target is 1.{}",
                    mutations::FIRST_MINOR,
                    opts.kube_minor
                )
            } else if cfg.server.dry_run {
                "under the global dry-run a fix is only recorded (would-patch), which a policy \
                 cannot do"
                    .to_string()
            } else if matches!(r.fix, crate::policy::Fix::Configured { .. }) {
                "it pins an image to the digest tiergate verified at admission, which needs \
                 the registry"
                    .to_string()
            } else if r.fix.cel().is_none() {
                "its file gives no CEL for the fix (the mutating webhook applies it)".to_string()
            } else {
                webhook_reason(r, &cfg.policy).unwrap_or_default()
            },
        })
        .collect();
    let mut out = vec![
        s(
            "the tier guard",
            "who may change a namespace's tier and mode labels reads the config's tier admins \
             and the old labels; Namespace writes always go to the webhook",
        ),
        s(
            "TierExceptions",
            "an exception is an object in the cluster with an end date, which a policy cannot \
             read; label a namespace tiergate.io/admission=webhook and the policies skip it, \
             the webhook judges every rule there and honours its exceptions",
        ),
        s(
            "notes on invalid labels",
            "a tiergate.io/tier or tiergate.io/mode value that does not parse falls back to the \
             config's default in the policies as in the webhook, but only the webhook says so \
             (on the Namespace write)",
        ),
    ];
    out.append(&mut fixes);
    for (id, tiers) in left {
        let contiguous = tiers.windows(2).all(|w| w[1] == w[0] + 1);
        let which = match (tiers.first(), tiers.last()) {
            (Some(a), Some(b)) if a == b => format!("tier {a}"),
            (Some(a), Some(b)) if contiguous => format!("tiers {a} to {b}"),
            _ => {
                let t: Vec<String> = tiers.iter().map(u8::to_string).collect();
                format!("tiers {}", t.join(", "))
            }
        };
        out.push(Stay {
            what: format!("the {id} fix in {which}"),
            why: if opts.fixes_in_webhook {
                "exported with --fixes-in-webhook: the mutating webhook applies every fix, one \
                 call in place of every fix's CEL"
            } else {
                "hybrid mode calls the mutating webhook there anyway, for the fixes no policy \
                 makes, and it applies this one in the same call: a policy's patch would cost \
                 the apiserver an encode, a patch, a decode and a second pass of the mutating \
                 plugins on top"
            }
            .to_string(),
        });
    }
    out
}

/// Every object as one YAML stream, in order.
pub fn to_yaml(objects: &[Value]) -> Result<String, ExportError> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(o).map_err(|e| ExportError::Yaml(e.to_string()))?);
    }
    Ok(out)
}

/// The list of what stays in the webhook, as Markdown.
pub fn stays_markdown(export: &Export) -> String {
    let mut out = String::from(
        "# What stays in the tiergate webhook\n\nGenerated by `tiergate export \
         admission-policies`. The ValidatingAdmissionPolicies judge these rules in the \
         apiserver:\n\n",
    );
    out.push_str(&format!("{}\n\n", export.covered.join(", ")));
    let with_facts: Vec<&str> = export
        .objects
        .iter()
        .filter(|o| o["kind"] == "ValidatingAdmissionPolicy" && o["spec"]["paramKind"].is_object())
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    if !with_facts.is_empty() {
        out.push_str(&format!(
            "The policies of the rules that read cluster facts ({}) take as params the `{}` object named `{}` \
             in each namespace, which `tiergate serve` writes in hybrid and managed mode \
             (deploy/base/crd-namespacefacts.yaml); where it is missing, their binding's action \
             applies: refused in enforce, warned in warn.\n\n",
            with_facts.join(", "),
            facts::KIND,
            facts::NAME
        ));
    }
    if !export.by_apiserver.is_empty() {
        out.push_str("The apiserver enforces these by itself:\n\n");
        for s in &export.by_apiserver {
            out.push_str(&format!("- **{}**: {}\n", s.what, s.why));
        }
        out.push('\n');
    }
    out.push_str("The webhook keeps:\n\n");
    for s in &export.stays {
        out.push_str(&format!("- **{}**: {}\n", s.what, s.why));
    }
    out
}

/// Narrow a ValidatingWebhookConfiguration (as deploy/ writes it) for
/// hybrid mode. Its first webhook becomes:
/// - itself, for namespaces labelled `tiergate.io/admission=webhook` (every
///   rule there);
/// - one copy per band of tiers in which kinds have the same rules the
///   policies do not judge (`t1-5.validate.tiergate.io`, ...), with only
///   those kinds, a `namespaceSelector` for the band, and, where every such
///   rule says when it can find something ([`Cel::WebhookWhen`]), a
///   `matchConditions` entry `may-find` so the apiserver calls tiergate
///   only then. Namespaces and TierExceptions are always sent (the tier
///   guard, exception checks).
///
/// The tier selectors are generous where a label does not say: a label the
/// selector does not list (`Enterprise`, `gold`) is sent to every band (the
/// webhook then judges it at the tier it resolves), and an unlabelled
/// namespace goes to the band of the config's default tier.
pub fn hybrid_webhooks(base: &Value, cfg: &PolicyConfig) -> Value {
    let engine = Engine::new(cfg.clone());
    let mut judged: Vec<GroupKind> = WORKLOADS.iter().map(|w| w.gk).collect();
    judged.extend([
        kinds::SERVICE,
        kinds::CONFIG_MAP,
        kinds::SECRET,
        kinds::INGRESS,
        kinds::ROLE,
        kinds::ROLE_BINDING,
        kinds::CLUSTER_ROLE,
        kinds::CLUSTER_ROLE_BINDING,
    ]);
    let always = [
        kinds::NAMESPACE,
        GroupKind::new("tiergate.io", "TierException"),
    ];
    narrow(base, cfg, &judged, &always, |gk, tier| {
        let mut uncovered: Vec<&Rule> = Vec::new();
        for mode in MODES {
            for (r, _, _) in engine.plan(gk.group, gk.kind, tier, mode) {
                if !covered(r, cfg) && !uncovered.iter().any(|u| u.id == r.id) {
                    uncovered.push(r);
                }
            }
        }
        when_any(&uncovered, gk, cfg)
    })
}

/// Narrow a MutatingWebhookConfiguration for hybrid mode the same way: per
/// band of tiers, only the kinds some fix may change, and only when one
/// may: a fix changes only what its rule finds, so for a rule the policies
/// judge the condition is its own CEL finding something; for another rule
/// it is always (or its [`Cel::WebhookWhen`]); a rule whose fix a
/// MutatingAdmissionPolicy applies (`fixed`, from [`policy_fixes`] or
/// [`Export::fixed`]) does not call the webhook, except in the tiers of
/// [`webhook_fix_tiers`], where no such policy is bound and the webhook
/// applies every fix. Fixes do not run in audit mode, so an `audit`
/// namespace is not sent.
pub fn hybrid_mutating_webhooks(base: &Value, cfg: &PolicyConfig, fixed: &[&str]) -> Value {
    let engine = Engine::new(cfg.clone());
    let cx = CelCtx {
        config: cfg,
        pss_minor: cfg.pss_version.minor,
    };
    let kept = webhook_fix_tiers(cfg, fixed);
    let workloads: Vec<GroupKind> = WORKLOADS.iter().map(|w| w.gk).collect();
    let mut out = narrow(base, cfg, &workloads, &[], |gk, tier| {
        let fixed: &[&str] = if kept.contains(&tier) { &[] } else { fixed };
        mutate_condition(&engine, &cx, gk, tier, fixed)
    });
    // Not in audit mode (no fix runs there).
    if let Some(hooks) = out["webhooks"].as_array_mut() {
        for w in hooks.iter_mut().skip(1) {
            if let Some(exprs) = w["namespaceSelector"]["matchExpressions"].as_array_mut() {
                if cfg.defaults.mode == Mode::Audit {
                    exprs.push(json!({"key": MODE_LABEL, "operator": "Exists"}));
                }
                exprs.push(json!({"key": MODE_LABEL, "operator": "NotIn", "values": ["audit"]}));
            }
        }
    }
    out
}

/// CEL: when a write of this kind in a namespace of this tier may be
/// changed by a fix the mutating webhook applies (every fix on there but
/// those in `fixed`); `None`: never.
fn mutate_condition(
    engine: &Engine,
    cx: &CelCtx,
    gk: GroupKind,
    tier: Tier,
    fixed: &[&str],
) -> Option<String> {
    let cfg = cx.config;
    let mut parts: Vec<String> = Vec::new();
    for mode in [Mode::Enforce, Mode::Warn] {
        for (r, _, fix) in engine.plan(gk.group, gk.kind, tier, mode) {
            if !fix || fixed.contains(&r.id) {
                continue;
            }
            let part = match r.cel {
                Cel::Findings(f) if covered(r, cfg) => {
                    let body = f(cx);
                    let guarded = match kind_guard(r) {
                        Some(g) => format!("({g}) ? ({body}) : []"),
                        None => body,
                    };
                    format!("size({}) > 0", on_object(&guarded, gk))
                }
                Cel::WebhookWhen { when, .. } => {
                    let w = when(&containers_of(gk), cfg);
                    if w == "false" {
                        continue;
                    }
                    w
                }
                Cel::Apiserver(_) => continue,
                _ => "true".to_string(),
            };
            let part = format!("({part})");
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
    }
    if parts.is_empty() {
        None
    } else if parts.iter().any(|p| p == "(true)") {
        Some("true".to_string())
    } else {
        Some(parts.join(" || "))
    }
}

/// The tiers where hybrid mode calls the mutating webhook for workloads
/// anyway: a fix is on there that no MutatingAdmissionPolicy applies (not in
/// `fixed`: an opt-in fix CEL does not make, such as
/// read-only-root-filesystem; none with the embedded defaults).
/// There no mutating policy is bound and the webhook applies every fix in
/// the call it makes anyway: a policy's patch costs the apiserver an
/// encode, a patch and a decode of the whole object and a second pass of
/// every mutating plugin, more than the same fix inside the webhook's call.
pub fn webhook_fix_tiers(cfg: &PolicyConfig, fixed: &[&str]) -> Vec<Tier> {
    let engine = Engine::new(cfg.clone());
    let cx = CelCtx {
        config: cfg,
        pss_minor: cfg.pss_version.minor,
    };
    Tier::ALL
        .iter()
        .copied()
        .filter(|&tier| {
            WORKLOADS.iter().any(|w| {
                !resources_of(w.gk).is_empty()
                    && mutate_condition(&engine, &cx, w.gk, tier, fixed).is_some()
            })
        })
        .collect()
}

/// A policy's CEL (over `variables.*`) as a webhook's matchConditions can
/// evaluate it on an object of this kind (over `object`).
fn on_object(expr: &str, gk: GroupKind) -> String {
    let w = WORKLOADS.iter().find(|w| w.gk == gk);
    let (spec, meta) = match w {
        Some(w) => (cel_path("object", w.spec), cel_path("object", w.meta)),
        None => ("null".to_string(), "null".to_string()),
    };
    expr.replace("variables.containers", &containers_of(gk))
        .replace("variables.podMeta", &meta)
        .replace("variables.pod", &spec)
        .replace("variables.obj", "object")
}

/// A JSON pointer into the object as a CEL field path from `root`
/// (`/spec/template/spec` → `root.spec.template.spec`).
fn cel_path(root: &str, pointer: &str) -> String {
    format!(
        "{root}.{}",
        pointer.trim_start_matches('/').replace('/', ".")
    )
}

/// CEL: every container of an object of this kind (`[]` for other kinds).
fn containers_of(gk: GroupKind) -> String {
    WORKLOADS
        .iter()
        .find(|w| w.gk == gk)
        .map(|w| {
            let spec = cel_path("object", w.spec);
            format!(
                "({spec}.?initContainers.orValue([]) + {spec}.?containers.orValue([]) + \
                 {spec}.?ephemeralContainers.orValue([]))"
            )
        })
        .unwrap_or_else(|| "[]".to_string())
}

/// The narrowing both webhooks share: `cond(kind, tier)` says when a write
/// of that kind in a namespace of that tier needs the webhook (`None`:
/// never); `always` kinds are always sent.
fn narrow(
    base: &Value,
    cfg: &PolicyConfig,
    judged: &[GroupKind],
    always: &[GroupKind],
    cond: impl Fn(GroupKind, Tier) -> Option<String>,
) -> Value {
    let mut out = base.clone();
    let Some(first) = base.pointer("/webhooks/0").cloned() else {
        return out;
    };
    // (lowest tier, highest tier, condition) -> kinds.
    let mut entries: BTreeMap<(u8, u8, String), Vec<GroupKind>> = BTreeMap::new();
    for &gk in judged {
        if resources_of(gk).is_empty() {
            continue;
        }
        let conds: Vec<Option<String>> = Tier::ALL.iter().map(|&tier| cond(gk, tier)).collect();
        let mut t = 0;
        while t < conds.len() {
            let mut end = t;
            while end + 1 < conds.len() && conds[end + 1] == conds[t] {
                end += 1;
            }
            if let Some(cond) = &conds[t] {
                let lo = Tier::ALL[t].number();
                let hi = Tier::ALL[end].number();
                entries.entry((lo, hi, cond.clone())).or_default().push(gk);
            }
            t = end + 1;
        }
    }
    if !always.is_empty() {
        entries
            .entry((1, 5, "true".to_string()))
            .or_default()
            .extend(always.iter().copied());
    }

    let selector = first
        .get("namespaceSelector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let with = |extra: Vec<Value>| {
        let mut sel = selector.clone();
        let mut exprs = sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        exprs.extend(extra);
        sel["matchExpressions"] = json!(exprs);
        sel
    };
    let mut hooks = Vec::new();
    let mut whole = first.clone();
    whole["namespaceSelector"] = with(vec![json!({
        "key": ADMISSION_LABEL, "operator": "In", "values": [WEBHOOK_VALUE]})]);
    hooks.push(whole);
    let name = first.get("name").and_then(Value::as_str).unwrap_or("");
    let mut seen: BTreeMap<(u8, u8), usize> = BTreeMap::new();
    for ((lo, hi, cond), mut gks) in entries {
        gks.sort();
        let mut w = first.clone();
        let n = seen.entry((lo, hi)).or_insert(0);
        *n += 1;
        let suffix = if *n > 1 {
            format!("-{n}")
        } else {
            String::new()
        };
        w["name"] = json!(format!("t{lo}-{hi}{suffix}.{name}"));
        let mut rules = resource_rules(&gks);
        for r in &mut rules {
            if r["apiGroups"][0] == json!("tiergate.io") {
                r["scope"] = json!("Namespaced");
            }
        }
        w["rules"] = json!(rules);
        let mut extra = vec![json!({
            "key": ADMISSION_LABEL, "operator": "NotIn", "values": [WEBHOOK_VALUE]})];
        let outside: Vec<String> = Tier::ALL
            .iter()
            .filter(|t| t.number() < lo || t.number() > hi)
            .flat_map(|t| tier_values(*t))
            .collect();
        if !outside.is_empty() {
            let default = cfg.defaults.tier.number();
            if default < lo || default > hi {
                extra.push(json!({"key": TIER_LABEL, "operator": "Exists"}));
            }
            extra.push(json!({"key": TIER_LABEL, "operator": "NotIn", "values": outside}));
        }
        w["namespaceSelector"] = with(extra);
        if cond != "true" {
            let mut mc = first
                .get("matchConditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            mc.push(json!({"name": "may-find", "expression": cond}));
            w["matchConditions"] = json!(mc);
        }
        hooks.push(w);
    }
    out["webhooks"] = json!(hooks);
    out
}

/// Every label value that names this tier.
fn tier_values(t: Tier) -> Vec<String> {
    let mut v = vec![t.number().to_string(), t.name().to_string()];
    if t == Tier::MultiCluster {
        v.push("multicluster".to_string());
    }
    v
}

/// CEL over `object` (a webhook's matchConditions): when one of these
/// uncovered rules may find something on an object of this kind. `None`
/// when there is none; `"true"` when one of them may always find something.
fn when_any(rules: &[&Rule], gk: GroupKind, cfg: &PolicyConfig) -> Option<String> {
    let containers = containers_of(gk);
    let mut parts = Vec::new();
    for r in rules {
        match r.cel {
            Cel::WebhookWhen { when, .. } => {
                let w = when(&containers, cfg);
                if w != "false" {
                    parts.push(format!("({w})"));
                }
            }
            _ => return Some("true".to_string()),
        }
    }
    if parts.is_empty() {
        return None;
    }
    parts.sort();
    parts.dedup();
    Some(parts.join(" || "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(yaml: &str) -> Export {
        let cfg = Config::from_yaml(yaml, "test").expect("config");
        admission_policies(&cfg, &ExportOptions::default()).expect("export")
    }

    #[test]
    fn the_same_config_gives_the_same_bytes() {
        let cfg = Config::embedded();
        let a = admission_policies(&cfg, &ExportOptions::default()).expect("export");
        let b = admission_policies(&cfg, &ExportOptions::default()).expect("export");
        assert_eq!(
            to_yaml(&a.objects).expect("yaml"),
            to_yaml(&b.objects).expect("yaml")
        );
        assert!(a.covered.contains(&"privileged") && a.covered.contains(&"image-tag"));
        // The rules that read cluster facts, from the NamespaceFacts params.
        assert!(a.covered.contains(&"pdb") && a.covered.contains(&"namespace-quota"));
        assert!(a
            .stays
            .iter()
            .any(|s| s.what == "rule cluster-admin-binding"));
        let facts_policies: Vec<&Value> = a
            .objects
            .iter()
            .filter(|o| o["spec"]["paramKind"]["kind"] == facts::KIND)
            .collect();
        assert!(!facts_policies.is_empty());
        // One per action, the tier read in CEL (fewer bindings for the
        // apiserver to parse on every request).
        let names: Vec<&str> = facts_policies
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "tiergate-deny-facts",
                "tiergate-warn-facts",
                "tiergate-audit-facts"
            ]
        );
        for p in facts_policies {
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            assert!(name.ends_with("-facts"), "{name}");
            let bindings: Vec<&Value> = a
                .objects
                .iter()
                .filter(|o| o["spec"]["policyName"] == name)
                .collect();
            assert!(!bindings.is_empty(), "{name}");
            for b in bindings {
                assert_eq!(b["spec"]["paramRef"], facts::param_ref(), "{name}");
            }
        }
    }

    #[test]
    fn each_tier_has_its_own_policies_skipped_when_nothing_breaks() {
        let cfg = Config::from_yaml("defaults: {tier: 2, mode: warn}\n", "t").expect("config");
        let e = admission_policies(&cfg, &ExportOptions::default()).expect("export");
        let find = |kind: &str, name: &str| {
            e.objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("{kind} {name}"))
                .clone()
        };
        let tier_req = |b: &Value| {
            b["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
                .as_array()
                .expect("expressions")
                .iter()
                .filter(|r| r["key"] == TIER_LABEL)
                .cloned()
                .collect::<Vec<_>>()
        };
        // Tier 1: its rules only, bound to the labels that name it.
        let t1 = find("ValidatingAdmissionPolicy", "tiergate-warn-t1");
        let text = t1["spec"]["validations"].to_string();
        assert!(
            text.contains("[privileged]") && !text.contains("[probes]"),
            "{text}"
        );
        assert_eq!(
            tier_req(&find(
                "ValidatingAdmissionPolicyBinding",
                "tiergate-warn-t1"
            )),
            vec![json!({"key": TIER_LABEL, "operator": "In", "values": ["1", "foundation"]})]
        );
        let t2 = find("ValidatingAdmissionPolicy", "tiergate-warn-t2");
        assert!(t2["spec"]["validations"].to_string().contains("[probes]"));
        // The default tier also takes the unlabelled namespaces.
        assert_eq!(
            tier_req(&find(
                "ValidatingAdmissionPolicyBinding",
                "tiergate-warn-t2-unlabelled"
            )),
            vec![json!({"key": TIER_LABEL, "operator": "DoesNotExist"})]
        );
        assert!(!e
            .objects
            .iter()
            .any(|o| o["metadata"]["name"] == "tiergate-warn-t1-unlabelled"));
        // Any other spelling: the all-tier policy, the tier read in CEL.
        let fallback = tier_req(&find("ValidatingAdmissionPolicyBinding", "tiergate-warn"));
        assert_eq!(
            fallback[0],
            json!({"key": TIER_LABEL, "operator": "Exists"})
        );
        assert_eq!(fallback[1]["operator"], "NotIn");
        assert_eq!(fallback[1]["values"].as_array().map(Vec::len), Some(11));
        // A policy is skipped when nothing breaks, unless one of its rules
        // reads the namespace (which a matchCondition cannot see).
        for p in e
            .objects
            .iter()
            .filter(|o| o["kind"] == "ValidatingAdmissionPolicy")
        {
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            let may_break = p["spec"]["matchConditions"]
                .as_array()
                .expect("conditions")
                .iter()
                .find(|c| c["name"] == "may-break");
            let rule_vars = p["spec"]["variables"]
                .as_array()
                .expect("variables")
                .iter()
                .filter(|v| v["name"].as_str().is_some_and(|n| n.starts_with("f_")))
                .map(Value::to_string)
                .collect::<String>();
            let reads_ns = p["spec"]["validations"]
                .to_string()
                .contains("namespaceObject")
                || rule_vars.contains("namespaceObject");
            let per_tier = name.contains("-t");
            let reads_facts = p["spec"]["paramKind"].is_object();
            assert_eq!(
                may_break.is_some(),
                per_tier && !reads_ns && !reads_facts,
                "{name}"
            );
            if let Some(c) = may_break {
                let expr = c["expression"].as_str().unwrap_or("");
                assert!(
                    !expr.contains("variables.") && !expr.contains("namespaceObject"),
                    "{expr}"
                );
                assert!(expr.starts_with("[dyn(object)].exists(tgObj, "), "{expr}");
                assert!(expr.contains("size(tgContainers) > 50 || "), "{expr}");
            }
        }
    }

    #[test]
    fn may_break_tries_the_rules_most_often_broken_first() {
        for id in MOST_OFTEN_BROKEN {
            assert!(rules::ALL.iter().any(|r| r.id == *id), "{id}");
        }
        let e = export("defaults: {tier: 1, mode: warn}\n");
        let t1 = e
            .objects
            .iter()
            .find(|o| o["metadata"]["name"] == "tiergate-warn-t1")
            .expect("tier 1 warn policy");
        let expr = t1["spec"]["matchConditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "may-break"))
            .and_then(|c| c["expression"].as_str())
            .expect("may-break")
            .to_string();
        let at = |needle: &str| expr.find(needle).unwrap_or_else(|| panic!("{needle}"));
        // Every rule is still there; the common ones come first.
        assert!(at("'resources (") < at("'privileged ("), "{expr}");
        assert!(at("runAsNonRoot") < at("hostNetwork"), "{expr}");
        // One validation, tried in the same order; its message names every
        // rule found, in the catalog's order.
        let v = t1["spec"]["validations"].as_array().expect("validations");
        assert_eq!(v.len(), 1, "{v:?}");
        let check = v[0]["expression"].as_str().unwrap_or("");
        let at = |needle: &str| check.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(
            at("variables.f_resources)") < at("variables.f_privileged)"),
            "{check}"
        );
        let msg = v[0]["messageExpression"].as_str().unwrap_or("");
        let at = |needle: &str| msg.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(at("'[privileged] '") < at("'[resources] '"), "{msg}");
        assert!(msg.contains(&format!("> {WARN_DETAIL_MAX} ?")), "{msg}");
        // The all-tier policy (other spellings) keeps one per rule.
        let all = e
            .objects
            .iter()
            .find(|o| o["metadata"]["name"] == "tiergate-warn")
            .expect("all-tier warn policy");
        assert!(all["spec"]["validations"].as_array().map_or(0, Vec::len) > 10);
    }

    #[test]
    fn rules_every_tier_turns_off_are_neither_covered_nor_kept() {
        let e = export("rules:\n  privileged: {action: off}\n");
        assert!(!e.covered.contains(&"privileged"));
        assert!(!e.stays.iter().any(|s| s.what == "rule privileged"));
    }

    #[test]
    fn a_container_scoped_exemption_keeps_its_rules_in_the_webhook() {
        let e = export(
            "exemptions:\n  - reason: mesh sidecar\n    containers: [istio-proxy]\n    rules: \
             [capabilities-restricted]\n",
        );
        assert!(!e.covered.contains(&"capabilities-restricted"));
        let s = e
            .stays
            .iter()
            .find(|s| s.what == "rule capabilities-restricted")
            .expect("kept");
        assert!(s.why.contains("mesh sidecar"), "{}", s.why);
    }

    #[test]
    fn a_whole_object_exemption_becomes_a_condition() {
        let e = export(
            "exemptions:\n  - reason: legacy\n    namespaces: [old]\n    names: [\"batch-*\"]\n    \
             rules: [privileged]\n",
        );
        let text = serde_json::to_string(&e.objects).expect("json");
        assert!(text.contains(r#"request.namespace in [\"old\"]"#), "{text}");
        assert!(text.contains("^batch-.*$"), "{text}");
    }

    #[test]
    fn actions_follow_tier_and_mode() {
        let cfg = Config::embedded();
        let engine = Engine::new(cfg.policy.clone());
        let apa = rules::by_id("allow-privilege-escalation").expect("rule");
        let t = action_table(&engine, apa);
        assert_eq!(
            tier_mode_cel(&t[&Action::Deny]),
            "(variables.mode == 'enforce' && variables.tier >= 2)"
        );
        assert_eq!(
            tier_mode_cel(&t[&Action::Warn]),
            "(variables.mode == 'warn' && variables.tier >= 2)"
        );
    }

    #[test]
    fn dry_run_binds_the_deny_policy_to_warn_and_audit() {
        let e = export("dryRun: true\n");
        let binding = e
            .objects
            .iter()
            .find(|o| {
                o["kind"] == "ValidatingAdmissionPolicyBinding"
                    && o["metadata"]["name"] == "tiergate-deny"
            })
            .expect("binding");
        assert_eq!(
            binding["spec"]["validationActions"],
            json!(["Warn", "Audit"])
        );
    }

    #[test]
    fn old_apiservers_are_refused() {
        let cfg = Config::embedded();
        let opts = ExportOptions {
            kube_minor: 29,
            ..ExportOptions::default()
        };
        let err = admission_policies(&cfg, &opts).expect_err("1.29");
        assert!(err.to_string().contains("1.30 to 1.37"), "{err}");
    }

    #[test]
    fn globs_translate_or_decline() {
        let g = |p: &str| glob_regex(&NameGlob::new(p).expect("glob"));
        assert_eq!(g("web-*").as_deref(), Some("^web-.*$"));
        assert_eq!(g("a?c").as_deref(), Some("^a.c$"));
        assert_eq!(g("x.y").as_deref(), Some("^x\\.y$"));
        assert_eq!(g("[!a]b").as_deref(), Some("^[^a]b$"));
        assert_eq!(g("{a,b}"), None);
    }

    #[test]
    fn hybrid_webhooks_send_only_what_the_policies_leave() {
        let base = json!({"kind": "ValidatingWebhookConfiguration", "webhooks": [{
            "name": "validate.tiergate.io",
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]},
            "matchConditions": [{"name": "break-glass", "expression": "true"}],
            "rules": []}]});
        let cfg = Config::embedded();
        let out = hybrid_webhooks(&base, &cfg.policy);
        let hooks = out["webhooks"].as_array().expect("webhooks");
        let by_name = |n: &str| {
            hooks
                .iter()
                .find(|w| w["name"] == n)
                .unwrap_or_else(|| panic!("{n}: {out}"))
        };
        // Opted-out namespaces: everything, as before.
        let whole = by_name("validate.tiergate.io");
        assert_eq!(
            whole["namespaceSelector"]["matchExpressions"][1]["operator"],
            "In"
        );
        // The webhooks of a band that see Deployments.
        let deployments_in = |band: &str| -> Vec<&Value> {
            hooks
                .iter()
                .filter(|w| w["name"].as_str().is_some_and(|n| n.starts_with(band)))
                .filter(|w| w["rules"].to_string().contains("\"deployments\""))
                .collect()
        };
        // Every tier: Deployments only when a literal env value may be a
        // secret (the rules that read cluster facts are policies too).
        let all = deployments_in("t1-5");
        assert_eq!(all.len(), 1, "{out}");
        let mc = all[0]["matchConditions"].as_array().expect("conditions");
        assert_eq!(mc[0]["name"], "break-glass");
        assert!(mc.iter().any(|c| c["name"] == "may-find"
            && c["expression"].as_str().is_some_and(|e| e.contains("env"))));
        assert!(deployments_in("t1-1").is_empty() && deployments_in("t2-5").is_empty());
        // Namespaces always (the tier guard).
        assert!(hooks.iter().any(
            |w| w["name"].as_str().is_some_and(|n| n.starts_with("t1-5"))
                && w["rules"].to_string().contains("\"namespaces\"")
                && !w["matchConditions"].to_string().contains("may-find")
        ));
    }

    /// Every kind a rule judges that an apiserver of 1.30+ serves is sent
    /// to the validating webhook as deploy/ registers it (and so to the
    /// policies, which match the same resources): the admission answer is
    /// the offline one.
    #[test]
    fn the_deployed_webhook_sees_every_kind_the_catalog_judges() {
        let docs: Vec<Value> = crate::manifest::parse_source(
            "webhooks",
            None,
            include_str!("../../deploy/base/webhooks.yaml"),
        )
        .expect("webhooks.yaml parses")
        .documents
        .into_iter()
        .filter_map(|d| d.value)
        .collect();
        let validating = docs
            .iter()
            .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
            .expect("validating webhook");
        let routed: Vec<(String, String)> = validating["webhooks"][0]["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .flat_map(|r| {
                let group = r["apiGroups"][0].as_str().unwrap_or("").to_string();
                r["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str())
                    .map(move |x| (group.clone(), x.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for rule in rules::ALL.iter() {
            let kinds: Vec<GroupKind> = match rule.kinds() {
                Kinds::Workloads => WORKLOADS.iter().map(|w| w.gk).collect(),
                k => k.list(),
            };
            for gk in kinds {
                if gk.group == "extensions" {
                    continue; // served by no apiserver of 1.30+
                }
                let resources = resources_of(gk);
                assert!(!resources.is_empty(), "{}: {gk:?} has no resource", rule.id);
                for r in resources {
                    assert!(
                        routed.contains(&(gk.group.to_string(), r.to_string())),
                        "{}: {}/{r} is not sent to the webhook",
                        rule.id,
                        gk.group
                    );
                }
            }
        }
    }

    /// The excluded namespaces are a matchCondition of every policy, in no
    /// binding's selector (which the apiserver parses on every request).
    #[test]
    fn excluded_namespaces_are_a_condition_not_a_selector() {
        let e = admission_policies(&Config::embedded(), &ExportOptions::default()).expect("export");
        for o in &e.objects {
            let kind = o["kind"].as_str().unwrap_or("");
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            if kind.ends_with("Binding") {
                assert!(
                    !o["spec"]["matchResources"]
                        .to_string()
                        .contains("kube-system"),
                    "{name}"
                );
            } else {
                let first = &o["spec"]["matchConditions"][0];
                assert_eq!(first["name"], "not-excluded", "{name}");
                let expr = first["expression"].as_str().unwrap_or("");
                for ns in crate::audit::EXCLUDED {
                    assert!(expr.contains(&format!("\"{ns}\"")), "{name}: {expr}");
                }
            }
        }
        // No facts rule is on at tier 1: the facts policies leave it out,
        // and the unlabelled namespaces too where it is the default.
        let binding = e
            .objects
            .iter()
            .find(|o| {
                o["metadata"]["name"] == "tiergate-warn-facts"
                    && o["kind"] == "ValidatingAdmissionPolicyBinding"
            })
            .expect("binding");
        let sel =
            binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"].to_string();
        assert!(sel.contains("\"foundation\""), "{sel}");
        let default_is_1 = Config::embedded().policy.defaults.tier == Tier::Foundation;
        assert_eq!(sel.contains("Exists"), default_is_1, "{sel}");
    }
}
