//! The safe fixes the apiserver can apply itself: MutatingAdmissionPolicies
//! (GA in Kubernetes 1.36), one per fix and shape of object (where the pod
//! spec is), each with one JSONPatch mutation, from the CEL each rule's file
//! gives next to its Rust fix ([`crate::policy::cel::CelFix`]); a
//! `fix-needed` matchCondition keeps the apiserver from running the
//! mutation on objects it would not change.
//!
//! Only in the tiers where hybrid mode does not call the mutating webhook
//! for workloads anyway ([`super::webhook_fix_tiers`]): there the webhook
//! applies every fix in its one call, cheaper than a policy's patch.
//!
//! The guards are the mutating webhook's: the fix is on in the namespace's
//! tier and mode (never in audit mode, never under the global dry-run,
//! which only records what it would patch), the rule is not exempted, the
//! namespace is not kept in the webhook, and the write may be patched: a
//! CREATE, or an UPDATE of a kind whose pod template may change, never a
//! subresource, never an object a controller made, never an unchanged
//! update, never under break-glass.
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    common_variables, exemption_cel, labels, match_conditions, match_constraints, not_excluded,
    resources_of, tier_mode_cel, ExportOptions, MODES,
};
use crate::config::Config;
use crate::policy::cel::{covered, PatchCtx};
use crate::policy::config::PolicyConfig;
use crate::policy::kinds::{GroupKind, WORKLOADS};
use crate::policy::namespace::{MODE_LABEL, TIER_LABEL};
use crate::policy::{kinds, rules, Engine, Mode, Rule, Tier};

/// The first Kubernetes minor version with MutatingAdmissionPolicy v1.
pub const FIRST_MINOR: u32 = 36;

/// Whether the apiserver applies this rule's fix under this config (and
/// the global dry-run) on this apiserver, so the mutating webhook need not.
pub fn fix_in_policy(rule: &Rule, cfg: &PolicyConfig, dry_run: bool, kube_minor: u32) -> bool {
    kube_minor >= FIRST_MINOR && !dry_run && rule.fix.cel().is_some() && covered(rule, cfg)
}

/// The rules whose fixes the apiserver applies (see [`fix_in_policy`]).
pub fn policy_fixes(cfg: &PolicyConfig, dry_run: bool, kube_minor: u32) -> Vec<&'static str> {
    rules::ALL
        .iter()
        .filter(|r| fix_in_policy(r, cfg, dry_run, kube_minor))
        .map(|r| r.id)
        .collect()
}

/// The tiers where the mutating webhook applies the fixes policies could
/// (none without one).
fn kept_tiers(cfg: &Config, opts: &ExportOptions) -> Vec<u8> {
    if opts.without_mutating_webhook {
        return Vec::new();
    }
    let fixable = policy_fixes(&cfg.policy, cfg.server.dry_run, opts.kube_minor);
    super::webhook_fix_tiers(&cfg.policy, &fixable)
        .iter()
        .map(|t| t.number())
        .collect()
}

/// For each mode, the tiers in which the engine runs this rule's fix.
fn fix_table(engine: &Engine, rule: &Rule) -> Vec<(Mode, Vec<u8>)> {
    let mut out = Vec::new();
    for mode in MODES {
        if mode == Mode::Audit {
            continue;
        }
        let tiers: Vec<u8> = Tier::ALL
            .iter()
            .filter(|&&tier| {
                engine
                    .plan(kinds::DEPLOYMENT.group, kinds::DEPLOYMENT.kind, tier, mode)
                    .into_iter()
                    .any(|(r, _, fix)| r.id == rule.id && fix)
            })
            .map(|t| t.number())
            .collect();
        if !tiers.is_empty() {
            out.push((mode, tiers));
        }
    }
    out
}

/// A binding's namespace selector: not in audit mode, and not labelled
/// with a tier (as tiergate spells them) where the fix is off, so the
/// apiserver does not invoke the policy there at all. A label spelled
/// otherwise (`Enterprise`) is still selected, and the mutation's own CEL
/// decides.
fn selector(mode: &[Value], tiers: &[u8], default: Tier) -> Vec<Value> {
    let mut out = mode.to_vec();
    let outside: Vec<String> = Tier::ALL
        .iter()
        .filter(|t| !tiers.contains(&t.number()))
        .flat_map(|t| super::tier_values(*t))
        .collect();
    if !outside.is_empty() {
        if !tiers.contains(&default.number()) {
            out.push(json!({"key": TIER_LABEL, "operator": "Exists"}));
        }
        out.push(json!({"key": TIER_LABEL, "operator": "NotIn", "values": outside}));
    }
    out
}

/// The resource rules of one shape: every kind on CREATE, and on UPDATE
/// those whose pod template may change.
fn patchable_rules(gks: &[GroupKind]) -> Vec<Value> {
    let mut by_group: BTreeMap<(&str, bool), Vec<&str>> = BTreeMap::new();
    for gk in gks {
        let mutable = kinds::template_mutable_on_update(gk.group, gk.kind);
        by_group
            .entry((gk.group, mutable))
            .or_default()
            // Never a subresource (a patch there is not the object's).
            .extend(resources_of(*gk).iter().filter(|r| !r.contains('/')));
    }
    by_group
        .into_iter()
        .map(|((group, mutable), mut resources)| {
            resources.sort_unstable();
            let ops: &[&str] = if mutable {
                &["CREATE", "UPDATE"]
            } else {
                &["CREATE"]
            };
            json!({
                "apiGroups": [group],
                "apiVersions": ["*"],
                "operations": ops,
                "resources": resources,
                "scope": "Namespaced",
            })
        })
        .collect()
}

/// The fixes a MutatingAdmissionPolicy could apply that the mutating
/// webhook applies instead in some tiers (those of
/// [`super::webhook_fix_tiers`]): (rule, those tiers).
pub type LeftToWebhook = Vec<(&'static str, Vec<u8>)>;

/// The MutatingAdmissionPolicies and bindings, the rules whose fixes they
/// apply, and the fixes left to the webhook in some tiers. Empty before
/// 1.36 and under the global dry-run.
pub fn mutating_policies(
    cfg: &Config,
    opts: &ExportOptions,
) -> (Vec<Value>, Vec<&'static str>, LeftToWebhook) {
    let policy = &cfg.policy;
    let engine = Engine::new(policy.clone());
    // Where the mutating webhook is called anyway, it applies every fix.
    let kept = kept_tiers(cfg, opts);
    let mut left: LeftToWebhook = Vec::new();
    // (rule, CEL condition it is on) for every fix the apiserver applies.
    let mut fixes: Vec<(&'static Rule, String, Vec<u8>)> = Vec::new();
    for rule in rules::ALL.iter().copied() {
        if !fix_in_policy(rule, policy, cfg.server.dry_run, opts.kube_minor) {
            continue;
        }
        let full = fix_table(&engine, rule);
        let mut to_webhook: Vec<u8> = full
            .iter()
            .flat_map(|(_, t)| t.iter().copied())
            .filter(|t| kept.contains(t))
            .collect();
        to_webhook.sort_unstable();
        to_webhook.dedup();
        if !to_webhook.is_empty() {
            left.push((rule.id, to_webhook));
        }
        let table: Vec<(Mode, Vec<u8>)> = full
            .into_iter()
            .map(|(mode, tiers)| {
                (
                    mode,
                    tiers.into_iter().filter(|t| !kept.contains(t)).collect(),
                )
            })
            .filter(|(_, tiers): &(Mode, Vec<u8>)| !tiers.is_empty())
            .collect();
        if table.is_empty() {
            continue;
        }
        let mut cond = format!("!variables.webhookOnly && {}", tier_mode_cel(&table));
        let exempt: Vec<String> = policy
            .exemptions
            .iter()
            .filter(|e| e.covers_rule(rule.id))
            .map(exemption_cel)
            .collect();
        if !exempt.is_empty() {
            cond.push_str(&format!(" && !({})", exempt.join(" || ")));
        }
        let mut tiers: Vec<u8> = table.iter().flat_map(|(_, t)| t.iter().copied()).collect();
        tiers.sort_unstable();
        tiers.dedup();
        fixes.push((rule, cond, tiers));
    }
    if fixes.is_empty() {
        return (Vec::new(), Vec::new(), left);
    }
    // One policy per place of the pod spec (the CEL types differ).
    let mut shapes: BTreeMap<&'static str, Vec<GroupKind>> = BTreeMap::new();
    for w in WORKLOADS {
        if !resources_of(w.gk).is_empty() {
            shapes.entry(w.spec).or_default().push(w.gk);
        }
    }
    // What the guards read (the rest of the validating policies' variables
    // is for findings).
    let variables: Vec<Value> = common_variables(policy)
        .into_iter()
        .filter(|v| {
            ["tierLabel", "tier", "modeLabel", "mode", "webhookOnly"]
                .iter()
                .any(|n| v["name"] == *n)
        })
        .collect();
    let mut mode_selector = Vec::new();
    if policy.defaults.mode == Mode::Audit {
        mode_selector.push(json!({"key": MODE_LABEL, "operator": "Exists"}));
    }
    mode_selector.push(json!({"key": MODE_LABEL, "operator": "NotIn", "values": ["audit"]}));
    let mut objects = Vec::new();
    for (spec, gks) in shapes {
        // Named by the shape: its pod spec's parents (`template`, ...).
        let parents: Vec<String> = spec
            .split('/')
            .filter(|s| !s.is_empty() && *s != "spec")
            .map(str::to_lowercase)
            .collect();
        let shape = match (spec.starts_with("/spec"), parents.is_empty()) {
            (_, true) => "tiergate-fix-pod".to_string(),
            (true, false) => format!("tiergate-fix-{}", parents.join("-")),
            (false, false) => format!("tiergate-fix-pod{}", parents.join("-")),
        };
        let p = PatchCtx {
            spec,
            config: policy,
        };
        // One policy per fix: its own matchCondition says when the fix would
        // change something, so the apiserver runs no mutation (the costly
        // part) on an object that needs none.
        for (rule, cond, tiers) in &fixes {
            let Some(fix) = rule.fix.cel() else { continue };
            let fix = fix(&p);
            let name = format!("{shape}-{}", rule.id);
            let mut conditions = match_conditions();
            conditions.push(json!({"name": "not-controller-owned",
                "expression": "!object.metadata.?ownerReferences.orValue([])\
                               .exists(r, r.?controller.orValue(false) == true)"}));
            conditions.push(json!({"name": "fix-needed", "expression": fix.when}));
            let mut variables = variables.clone();
            for (n, expression) in &fix.variables {
                variables.push(json!({"name": n, "expression": expression}));
            }
            objects.push(json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingAdmissionPolicy",
                "metadata": {"name": name, "labels": labels(opts)},
                "spec": {
                    "failurePolicy": "Fail",
                    "reinvocationPolicy": "IfNeeded",
                    "matchConstraints": match_constraints(patchable_rules(&gks)),
                    "matchConditions": conditions,
                    "variables": variables,
                    "mutations": [{
                        "patchType": "JSONPatch",
                        "jsonPatch": {"expression": format!("({cond}) ? ({}) : []", fix.patch)},
                    }],
                },
            }));
            let mut binding_selector = vec![not_excluded(opts)];
            binding_selector.extend(selector(&mode_selector, tiers, policy.defaults.tier));
            objects.push(json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingAdmissionPolicyBinding",
                "metadata": {"name": name, "labels": labels(opts)},
                "spec": {
                    "policyName": name,
                    "matchResources": {"namespaceSelector": {"matchExpressions": binding_selector}},
                },
            }));
        }
    }
    (objects, fixes.iter().map(|(r, _, _)| r.id).collect(), left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::admission_policies;

    fn export(yaml: &str, kube_minor: u32) -> crate::export::Export {
        let cfg = Config::from_yaml(yaml, "test").expect("config");
        let opts = ExportOptions {
            kube_minor,
            ..ExportOptions::default()
        };
        admission_policies(&cfg, &opts).expect("export")
    }

    /// As [`export`], for a cluster with no mutating webhook: every fix's
    /// policy bound in every tier it is on.
    fn export_alone(yaml: &str, kube_minor: u32) -> crate::export::Export {
        let cfg = Config::from_yaml(yaml, "test").expect("config");
        let opts = ExportOptions {
            kube_minor,
            without_mutating_webhook: true,
            ..ExportOptions::default()
        };
        admission_policies(&cfg, &opts).expect("export")
    }

    fn mutating(e: &crate::export::Export) -> Vec<&Value> {
        e.objects
            .iter()
            .filter(|o| o["kind"] == "MutatingAdmissionPolicy")
            .collect()
    }

    #[test]
    fn the_pss_and_resources_fixes_run_in_the_apiserver_from_1_36() {
        let e = export_alone("defaults: {tier: 3}\n", 37);
        assert_eq!(
            e.fixed,
            [
                "capabilities-restricted",
                "allow-privilege-escalation",
                "seccomp-profile-restricted",
                "resources"
            ]
            .iter()
            .copied()
            .filter(|id| e.fixed.contains(id))
            .collect::<Vec<_>>()
        );
        assert_eq!(e.fixed.len(), 4, "{:?}", e.fixed);
        let policies = mutating(&e);
        // One per place of the pod spec (Pod, PodTemplate, the template
        // kinds, CronJob) and fix.
        let names: Vec<&str> = policies
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names.len(), 16, "{names:?}");
        for shape in ["pod", "template", "jobtemplate-template", "podtemplate"] {
            for fix in &e.fixed {
                let n = format!("tiergate-fix-{shape}-{fix}");
                assert!(names.contains(&n.as_str()), "{n} in {names:?}");
            }
        }
        for p in &policies {
            assert_eq!(p["spec"]["mutations"].as_array().map(Vec::len), Some(1));
            assert_eq!(p["spec"]["matchConditions"][3]["name"], "fix-needed");
            // Never a subresource; UPDATE only where the template may change.
            for r in p["spec"]["matchConstraints"]["resourceRules"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let resources: Vec<&str> = r["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                assert!(resources.iter().all(|r| !r.contains('/')), "{r}");
                let update = r["operations"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x == "UPDATE"));
                assert_eq!(
                    update,
                    !resources.iter().any(|r| *r == "pods" || *r == "jobs"),
                    "{r}"
                );
            }
        }
        // The webhook no longer lists them among what it keeps.
        assert!(!e
            .stays
            .iter()
            .any(|s| s.what.contains("allow-privilege-escalation")));
        assert!(!e.stays.iter().any(|s| s.what == "the resources fix"));
        assert!(e.stays.iter().any(|s| s.what == "the probes fix"));
    }

    #[test]
    fn where_the_mutating_webhook_is_called_anyway_it_applies_every_fix() {
        // The embedded tiers: from tier 2 fixes CEL does not make (probes,
        // graceful-shutdown, ...) call the mutating webhook.
        let e = export("defaults: {tier: 3}\n", 37);
        assert_eq!(e.fixed, ["capabilities-restricted", "resources"]);
        let tier1: Vec<String> = [
            "2",
            "production",
            "3",
            "enterprise",
            "4",
            "multi-cluster",
            "multicluster",
            "5",
            "hyperscale",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let bindings: Vec<&Value> = e
            .objects
            .iter()
            .filter(|o| o["kind"] == "MutatingAdmissionPolicyBinding")
            .collect();
        assert_eq!(bindings.len(), 8);
        for b in &bindings {
            // Only tier 1, and never an unlabelled namespace (tier 3 here).
            let exprs = &b["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"];
            assert!(
                exprs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["key"] == TIER_LABEL && r["operator"] == "Exists"),
                "{b}"
            );
            let outside = exprs
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["key"] == TIER_LABEL && r["operator"] == "NotIn")
                .expect("tiers left out");
            let mut got: Vec<String> =
                serde_json::from_value(outside["values"].clone()).expect("values");
            got.sort();
            let mut want = tier1.clone();
            want.sort();
            assert_eq!(got, want, "{b}");
        }
        // The policies' own CEL agrees for other spellings of the tier.
        for p in mutating(&e) {
            let x = p["spec"]["mutations"][0]["jsonPatch"]["expression"]
                .as_str()
                .unwrap_or("");
            assert!(x.contains("variables.tier in [1]"), "{x}");
        }
        // What the webhook applies instead is listed, with its tiers.
        for id in [
            "capabilities-restricted",
            "allow-privilege-escalation",
            "seccomp-profile-restricted",
            "resources",
        ] {
            let what = format!("the {id} fix in tiers 2 to 5");
            assert!(
                e.stays.iter().any(|s| s.what == what),
                "{what}: {:?}",
                e.stays
            );
        }
        // Without a mutating webhook, every tier.
        let alone = export_alone("defaults: {tier: 3}\n", 37);
        assert_eq!(alone.fixed.len(), 4);
        assert!(!alone.stays.iter().any(|s| s.what.contains(" fix in tier")));
    }

    #[test]
    fn no_mutating_policy_before_1_36_or_under_dry_run() {
        let old = export("defaults: {tier: 3}\n", 35);
        assert!(old.fixed.is_empty() && mutating(&old).is_empty());
        assert!(old
            .stays
            .iter()
            .any(|s| s.what == "the seccomp-profile-restricted fix" && s.why.contains("1.36")));
        let dry = export("defaults: {tier: 3}\ndryRun: true\n", 37);
        assert!(dry.fixed.is_empty() && mutating(&dry).is_empty());
        assert!(dry.stays.iter().any(|s| s.why.contains("would-patch")));
    }

    #[test]
    fn fixes_turned_off_or_exempted_by_container_stay_in_the_webhook() {
        let e = export(
            "defaults: {tier: 3}\nrules:\n  seccomp-profile-restricted: {fix: false}\n\
             exemptions:\n  - reason: sidecar\n    containers: [istio-proxy]\n    \
             rules: [allow-privilege-escalation]\n",
            37,
        );
        assert_eq!(
            e.fixed,
            ["capabilities-restricted", "resources"],
            "{:?}",
            e.fixed
        );
    }

    #[test]
    fn guards_follow_tier_mode_and_exemptions() {
        let e = export_alone(
            "defaults: {tier: 1, mode: enforce}\nexemptions:\n  - reason: legacy\n    \
             namespaces: [legacy]\n    rules: [capabilities-restricted]\n",
            37,
        );
        let expr = |name: &str| {
            mutating(&e)
                .into_iter()
                .find(|p| p["metadata"]["name"] == name)
                .and_then(|p| p["spec"]["mutations"][0]["jsonPatch"]["expression"].as_str())
                .unwrap_or_else(|| panic!("{name}"))
                .to_string()
        };
        let caps = expr("tiergate-fix-pod-capabilities-restricted");
        assert!(caps.contains("capabilities/drop"), "{caps}");
        assert!(caps.contains("!variables.webhookOnly"), "{caps}");
        assert!(caps.contains("\"legacy\""), "the exemption: {caps}");
        assert!(!caps.contains("'audit'"), "never in audit mode: {caps}");
        // allow-privilege-escalation is a tier-2 rule.
        let ape = expr("tiergate-fix-pod-allow-privilege-escalation");
        assert!(ape.contains("variables.tier >= 2"), "{ape}");
        // The binding leaves the excluded and the audit-mode namespaces
        // out; the policy selects every namespace (the apiserver parses
        // every policy's selector on every request).
        let binding = e
            .objects
            .iter()
            .find(|o| o["kind"] == "MutatingAdmissionPolicyBinding")
            .expect("binding");
        assert_eq!(
            binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"],
            json!([{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                    "values": ["kube-system", "kube-node-lease", "tiergate-system"]},
                   {"key": MODE_LABEL, "operator": "NotIn", "values": ["audit"]}])
        );
        let policy = e
            .objects
            .iter()
            .find(|o| o["kind"] == "MutatingAdmissionPolicy")
            .expect("policy");
        assert_eq!(
            policy["spec"]["matchConstraints"]["namespaceSelector"],
            json!({})
        );
    }

    #[test]
    fn the_mutating_webhook_is_not_called_for_what_the_policies_fix() {
        let cfg = Config::from_yaml("defaults: {tier: 1}\n", "t").expect("config");
        let base = json!({"webhooks": [{"name": "mutate.tiergate.io", "rules": []}]});
        let with = crate::export::hybrid_mutating_webhooks(&base, &cfg.policy, &[]);
        let fixed = policy_fixes(&cfg.policy, false, 37);
        let without = crate::export::hybrid_mutating_webhooks(&base, &cfg.policy, &fixed);
        let text = |v: &Value| v.to_string();
        assert!(text(&with).contains("capabilities"), "{with}");
        // At tier 1 nothing else calls it; from tier 2 it is called for the
        // fixes CEL does not make, and there applies these too.
        assert_eq!(
            crate::export::webhook_fix_tiers(&cfg.policy, &fixed),
            [
                Tier::Production,
                Tier::Enterprise,
                Tier::MultiCluster,
                Tier::Hyperscale
            ]
        );
        let hooks = without["webhooks"].as_array().expect("webhooks");
        assert!(
            !hooks
                .iter()
                .any(|w| w["name"].as_str().is_some_and(|n| n.starts_with("t1-"))),
            "{without}"
        );
        assert!(
            hooks
                .iter()
                .filter(|w| w["name"].as_str().is_some_and(|n| n.starts_with("t2-")))
                .any(|w| w.to_string().contains("capabilities")),
            "{without}"
        );
    }
}
