//! The safe fixes the apiserver can apply itself: MutatingAdmissionPolicies
//! (GA in Kubernetes 1.36), one per shape of object (where the pod spec
//! is) and band of tiers with the same fixes on, from the CEL each rule's
//! file gives next to its Rust fix ([`crate::policy::cel::CelFix`]): the
//! band's fixes in as few JSONPatch mutations as their fields allow
//! ([`order`]), each fix guarded by its tier, mode and exemptions; a
//! `fix-needed` matchCondition (some fix would change something) keeps the
//! apiserver from running the policy on objects it would not change. Each
//! policy and each mutation costs the apiserver an encode, a patch and a
//! decode of the whole object, whatever it changes (`make bench-apiserver`,
//! floors (l) and (m)); on top, each fix costs its CEL.
//!
//! Not in the tiers where hybrid mode calls the mutating webhook for
//! workloads anyway ([`super::webhook_fix_tiers`]: an opt-in fix no policy
//! makes is on there): there the webhook applies every fix in its one
//! call. `--fixes-in-webhook` leaves every fix to it, and
//! `--without-mutating-webhook` binds every fix's policy in every tier.
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
    common_variables, exemption_cel, labels, match_conditions, match_constraints, resources_of,
    tier_mode_cel, ExportOptions, MODES,
};
use crate::config::Config;
use crate::policy::cel::{covered, CelPatch, Field, PatchCtx};
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
    if opts.fixes_in_webhook {
        return Tier::ALL.iter().map(|t| t.number()).collect();
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

/// The fixes of one policy as JSONPatch mutations, each a list of indexes
/// into `fixes` (given in the engine's order, kept within a mutation).
///
/// The engine applies every fix in one pass to the object as it came, each
/// merging what it adds into what earlier ones added. One JSONPatch can do
/// the same for fixes that never add the same field whole (the second add
/// would replace the first), or that both say where they write it
/// ([`CelPatch::writes_where`]): the mutation then first adds it empty
/// where it is missing ([`PatchCtx::ensure`]) and they write below it. The
/// mutations after it see what it changed. So, as few mutations as: two
/// fixes that may add the same field ([`CelPatch::writes`]) and do not
/// both say where go to different mutations in the engine's order; a fix
/// that reads what an earlier one wrote ([`CelPatch::after`]) comes
/// after it; one that reads a field as it came ([`CelPatch::before`])
/// never after a fix that writes it, nor an earlier fix that reads what a
/// later one writes. Constraints that cannot all hold (none in the
/// catalog: a test checks) give one mutation per fix in the engine's
/// order, as separate policies would.
fn order(fixes: &[&CelPatch]) -> Vec<Vec<usize>> {
    let n = fixes.len();
    let meets = |a: &[Field], b: &[Field]| a.iter().any(|f| b.contains(f));
    // Both may add a field whole, and it cannot be added empty first for
    // both to write below.
    let clash = |a: &CelPatch, b: &CelPatch| {
        a.writes.iter().any(|&f| {
            b.writes.contains(&f)
                && !(f.ensurable() && says_where(a, f).is_some() && says_where(b, f).is_some())
        })
    };
    // (a, b, c): mutation[a] >= mutation[b] + c.
    let mut edges: Vec<(usize, usize, usize)> = Vec::new();
    for later in 0..n {
        for earlier in 0..later {
            let (e, l) = (fixes[earlier], fixes[later]);
            if clash(e, l) || meets(&l.after, &e.writes) {
                edges.push((later, earlier, 1));
            }
            if meets(&e.after, &l.writes) {
                edges.push((later, earlier, 0));
            }
        }
    }
    for reader in 0..n {
        for writer in (0..n).filter(|&w| w != reader) {
            if meets(&fixes[reader].before, &fixes[writer].writes) {
                edges.push((writer, reader, 0));
            }
        }
    }
    let mut at = vec![0usize; n];
    let mut settled = false;
    for _ in 0..=n {
        let mut changed = false;
        for &(a, b, c) in &edges {
            if at[a] < at[b] + c {
                at[a] = at[b] + c;
                changed = true;
            }
        }
        if !changed {
            settled = true;
            break;
        }
    }
    if !settled {
        return (0..n).map(|i| vec![i]).collect();
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, &g) in at.iter().enumerate() {
        if groups.len() <= g {
            groups.resize_with(g + 1, Vec::new);
        }
        groups[g].push(i);
    }
    groups
}

/// Where a fix writes `field`, when it says ([`CelPatch::writes_where`]).
fn says_where(fix: &CelPatch, field: Field) -> Option<&str> {
    fix.writes_where
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, cond)| cond.as_str())
}

/// The fields more than one of these fixes writes (one JSONPatch adds
/// them empty first, where missing: see [`order`]).
fn shared_fields(fixes: &[&CelPatch]) -> Vec<Field> {
    let mut shared: Vec<Field> = Vec::new();
    for (k, a) in fixes.iter().enumerate() {
        for &f in &a.writes {
            if !shared.contains(&f) && fixes[k + 1..].iter().any(|b| b.writes.contains(&f)) {
                shared.push(f);
            }
        }
    }
    shared
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
        let meta = WORKLOADS
            .iter()
            .find(|w| w.spec == spec)
            .map_or("/metadata", |w| w.meta);
        let p = PatchCtx {
            spec,
            meta,
            config: policy,
            ensured: &[],
        };
        // The fixes of the kinds of this shape, as CEL, in the engine's
        // order.
        let all_fixes: Vec<(&'static Rule, &String, &Vec<u8>, CelPatch)> = fixes
            .iter()
            .filter(|(rule, _, _)| gks.iter().any(|gk| rule.applies_to(gk.group, gk.kind)))
            .filter_map(|(rule, cond, tiers)| Some((*rule, cond, tiers, rule.fix.cel()?(&p))))
            .collect();
        // One policy per band of tiers with the same fixes on, bound to those
        // tiers only: its matchCondition cannot read the namespace, so a
        // policy with another tier's fixes would run its mutations (an
        // encode, a patch and a decode) on every object that tier's fixes
        // would change, to change nothing.
        let mut bands: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        for tier in Tier::ALL.iter().map(|t| t.number()) {
            let on: Vec<usize> = (0..all_fixes.len())
                .filter(|&i| all_fixes[i].2.contains(&tier))
                .collect();
            if on.is_empty() {
                continue;
            }
            match bands.iter_mut().find(|(_, f)| *f == on) {
                Some((tiers, _)) => tiers.push(tier),
                None => bands.push((vec![tier], on)),
            }
        }
        for (band, on) in bands {
            let contiguous = band.windows(2).all(|w| w[1] == w[0] + 1);
            let suffix = match (band.first(), band.last()) {
                (Some(a), Some(b)) if a == b => format!("t{a}"),
                (Some(a), Some(b)) if contiguous => format!("t{a}-{b}"),
                _ => format!(
                    "t{}",
                    band.iter().map(u8::to_string).collect::<Vec<_>>().join("-")
                ),
            };
            let name = format!("{shape}-{suffix}");
            let shape_fixes: Vec<&(&'static Rule, &String, &Vec<u8>, CelPatch)> =
                on.iter().map(|&i| &all_fixes[i]).collect();
            let groups = order(&shape_fixes.iter().map(|f| &f.3).collect::<Vec<_>>());
            if groups.is_empty() {
                continue;
            }
            // The band's fixes in as few JSONPatch mutations as their fields
            // allow (see [`order`]): each policy the apiserver runs, and each
            // mutation it applies, costs an encode, a patch and a decode of
            // the whole object.
            let mut conditions = match_conditions(opts);
            conditions.push(json!({"name": "not-controller-owned",
                "expression": "!object.metadata.?ownerReferences.orValue([])\
                               .exists(r, r.?controller.orValue(false) == true)"}));
            let used: Vec<usize> = groups.iter().flatten().copied().collect();
            let needed: Vec<String> = used
                .iter()
                .map(|&i| format!("({})", shape_fixes[i].3.when))
                .collect();
            conditions.push(json!({"name": "fix-needed", "expression": needed.join(" || ")}));
            let mut policy_variables = variables.clone();
            for &i in &used {
                for (n, expression) in &shape_fixes[i].3.variables {
                    policy_variables.push(json!({"name": n, "expression": expression}));
                }
            }
            let mutations: Vec<Value> = groups
                .iter()
                .map(|group| {
                    // A field several fixes of the group write is added
                    // empty first, where missing and one of them writes
                    // it; they then write below it.
                    let patches: Vec<&CelPatch> =
                        group.iter().map(|&i| &shape_fixes[i].3).collect();
                    let shared = shared_fields(&patches);
                    let ensured = PatchCtx {
                        spec: p.spec,
                        meta: p.meta,
                        config: p.config,
                        ensured: &shared,
                    };
                    let mut parts: Vec<String> = shared
                        .iter()
                        .filter_map(|&field| {
                            let writers: Vec<String> = group
                                .iter()
                                .filter_map(|&i| {
                                    let (_, cond, _, fix) = &shape_fixes[i];
                                    Some(format!("(({cond}) && ({}))", says_where(fix, field)?))
                                })
                                .collect();
                            ensured.ensure(field, &writers.join(" || "))
                        })
                        .collect();
                    parts.extend(group.iter().map(|&i| {
                        let (rule, cond, _, fix) = &shape_fixes[i];
                        let remade = if fix.writes.iter().any(|f| shared.contains(f)) {
                            rule.fix.cel().map(|f| f(&ensured))
                        } else {
                            None
                        };
                        let patch = remade.as_ref().map_or(&fix.patch, |f| &f.patch);
                        format!("(({cond}) ? ({patch}) : [])")
                    }));
                    json!({"patchType": "JSONPatch",
                           "jsonPatch": {"expression": parts.join(" + ")}})
                })
                .collect();
            objects.push(json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingAdmissionPolicy",
                "metadata": {"name": name, "labels": labels(opts)},
                "spec": {
                    "failurePolicy": "Fail",
                    "reinvocationPolicy": "IfNeeded",
                    "matchConstraints": match_constraints(patchable_rules(&gks)),
                    "matchConditions": conditions,
                    "variables": policy_variables,
                    "mutations": mutations,
                },
            }));
            let binding_selector = selector(&mode_selector, &band, policy.defaults.tier);
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

    /// The mutations' expressions of the policy `name`.
    fn mutations_of(e: &crate::export::Export, name: &str) -> Vec<String> {
        mutating(e)
            .into_iter()
            .find(|p| p["metadata"]["name"] == name)
            .and_then(|p| p["spec"]["mutations"].as_array())
            .unwrap_or_else(|| panic!("{name}"))
            .iter()
            .map(|m| {
                m["jsonPatch"]["expression"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    /// Every mutation of a policy, as one string.
    fn expressions(p: &Value) -> String {
        p["spec"]["mutations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["jsonPatch"]["expression"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn every_default_fix_runs_in_the_apiserver_from_1_36() {
        let e = export("defaults: {tier: 3}\n", 37);
        // Every safe fix but image-digest's (which needs the registry).
        let safe: Vec<&str> = rules::ALL
            .iter()
            .filter(|r| matches!(r.fix, crate::policy::Fix::Safe { .. }))
            .map(|r| r.id)
            .collect();
        assert_eq!(e.fixed, safe);
        assert_eq!(e.fixed.len(), 10, "{:?}", e.fixed);
        // Nothing calls the mutating webhook for them anyway: every tier.
        let alone = export_alone("defaults: {tier: 3}\n", 37);
        assert_eq!(e.objects, alone.objects);
        let policies = mutating(&e);
        // One per place of the pod spec (Pod, PodTemplate, the template
        // kinds, CronJob) and band of tiers with the same fixes on.
        let names: Vec<&str> = policies
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        let mut want = Vec::new();
        for shape in ["pod", "jobtemplate-template", "template", "podtemplate"] {
            for band in ["t1", "t2", "t3-5"] {
                want.push(format!("tiergate-fix-{shape}-{band}"));
            }
        }
        assert_eq!(names, want);
        // Every one in one mutation (see `order`).
        for p in &policies {
            let n = p["spec"]["mutations"].as_array().map(Vec::len);
            assert_eq!(n, Some(1), "{}", p["metadata"]["name"]);
        }
        // Each band's binding selects its tiers only; the tier-1 band holds
        // only tier 1's fixes.
        let binding = |name: &str| {
            e.objects
                .iter()
                .find(|o| {
                    o["kind"] == "MutatingAdmissionPolicyBinding" && o["metadata"]["name"] == name
                })
                .map(|b| b["spec"]["matchResources"]["namespaceSelector"].to_string())
                .unwrap_or_default()
        };
        let t1 = binding("tiergate-fix-template-t1");
        assert!(
            t1.contains("\"NotIn\"") && t1.contains("\"enterprise\""),
            "{t1}"
        );
        assert!(!t1.contains("\"foundation\""), "{t1}");
        let t1_policy = policies
            .iter()
            .find(|p| p["metadata"]["name"] == "tiergate-fix-template-t1")
            .expect("the tier-1 template policy");
        assert!(expressions(t1_policy).contains("capabilities/drop"));
        assert!(!expressions(t1_policy).contains("preStop"));
        for p in &policies {
            let names: Vec<&str> = p["spec"]["matchConditions"]
                .as_array()
                .expect("conditions")
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            assert_eq!(
                names,
                [
                    "not-excluded",
                    "break-glass",
                    "not-unchanged-update",
                    "not-controller-owned",
                    "fix-needed"
                ]
            );
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
        // The Deployments' policy: one mutation. allow-privilege-escalation
        // and capabilities-restricted may both add a container's
        // securityContext, business-labels and standard-labels the labels:
        // the mutation first adds each empty where it is missing and one of
        // them writes it, and they then write below it.
        let m = mutations_of(&e, "tiergate-fix-template-t3-5");
        assert_eq!(m.len(), 1, "{m:?}");
        let only = &m[0];
        let at = |x: &str| only.find(x).unwrap_or_else(|| panic!("{x} in {only}"));
        for x in [
            "capabilities/drop",
            "/readinessProbe",
            "/startupProbe",
            "preStop",
            "variables.standard_labels_derived",
            "topologySpreadConstraints",
            "allowPrivilegeEscalation",
            "variables.business_labels_add",
        ] {
            at(x);
        }
        let ensure_sc = at(
            "'/securityContext', value: Object.spec.template.spec.containers.securityContext{}}",
        );
        let ensure_labels = at("path: '/metadata/labels', value: {}}");
        assert!(ensure_sc < at("capabilities/drop") && ensure_labels < at("capabilities/drop"));
        // Neither fix adds the shared fields whole any more.
        assert!(
            !only.contains("securityContext{allowPrivilegeEscalation"),
            "{only}"
        );
        assert!(!only.contains("securityContext{capabilities"), "{only}");
        assert!(
            !only.contains("'/metadata/labels', value: variables."),
            "{only}"
        );
        // The template's labels, which only standard-labels writes, still
        // are added whole where missing.
        assert!(only.contains(
            "'/spec/template/metadata/labels', value: variables.standard_labels_derived"
        ));
        // topology-spread only where it applies.
        let pod = policies
            .iter()
            .find(|p| p["metadata"]["name"] == "tiergate-fix-pod-t3-5")
            .expect("the pod policy");
        assert!(!expressions(pod).contains("topologySpreadConstraints"));
        assert!(expressions(pod).contains("preStop"));
        // The webhook no longer lists them among what it keeps.
        for id in &e.fixed {
            let what = format!("the {id} fix");
            assert!(!e.stays.iter().any(|s| s.what.starts_with(&what)), "{what}");
        }
        assert!(e.stays.iter().any(|s| s.what == "the image-digest fix"));
    }

    #[test]
    fn a_liveness_probe_the_probes_fix_adds_is_copied_in_a_later_mutation() {
        let e = export("defaults: {tier: 3}\nfixes: {livenessProbe: on}\n", 37);
        let m = mutations_of(&e, "tiergate-fix-template-t3-5");
        assert_eq!(m.len(), 2, "{m:?}");
        let (first, second) = (&m[0], &m[1]);
        assert!(first.contains("'/livenessProbe'"), "{first}");
        assert!(!first.contains("'/startupProbe'"), "{first}");
        assert!(second.contains("'/startupProbe'"), "{second}");
    }

    fn patch(writes: &[Field], after: &[Field], before: &[Field]) -> CelPatch {
        CelPatch {
            writes: writes.to_vec(),
            after: after.to_vec(),
            before: before.to_vec(),
            ..CelPatch::default()
        }
    }

    #[test]
    fn fixes_share_a_mutation_unless_they_add_the_same_field_or_read_anothers() {
        use Field::*;
        let a = patch(&[ContainerSecurityContext], &[], &[]);
        let b = patch(&[ContainerSecurityContext, Labels], &[], &[]);
        let c = patch(&[ContainerResources], &[], &[]);
        let d = patch(&[], &[Labels], &[]);
        // a and b both add securityContext; c with a; d reads b's labels.
        assert_eq!(order(&[&a, &b, &c, &d]), [vec![0, 2], vec![1], vec![3]]);
        // A fix reading the template's labels as they came stays with
        // (never after) the one that writes them, even if it comes later.
        let w = patch(&[TemplateLabels], &[], &[]);
        let r = patch(&[PodTopologySpread], &[], &[TemplateLabels]);
        assert_eq!(order(&[&w, &r]), [vec![0, 1]]);
        let x = patch(&[ContainerSecurityContext], &[], &[]);
        let w2 = patch(&[ContainerSecurityContext, TemplateLabels], &[], &[]);
        // w2 must follow x; r must not follow w2: r lands with x.
        assert_eq!(order(&[&x, &w2, &r]), [vec![0, 2], vec![1]]);
        // A reader of the original that must also follow the writer cannot
        // be placed: one mutation per fix, in order.
        let both = patch(&[], &[TemplateLabels], &[TemplateLabels]);
        assert_eq!(order(&[&w, &both]), [vec![0], vec![1]]);
        assert!(order(&[]).is_empty());
        // Two fixes that say where they write a field share a mutation (it
        // is added empty first); not when one does not say, nor for a
        // field that cannot be added empty (a list).
        let said = |f: Field| CelPatch {
            writes: vec![f],
            writes_where: vec![(f, "true".into())],
            ..CelPatch::default()
        };
        let (s1, s2) = (
            said(ContainerSecurityContext),
            said(ContainerSecurityContext),
        );
        assert_eq!(order(&[&s1, &s2, &a]), [vec![0, 1], vec![2]]);
        assert_eq!(shared_fields(&[&s1, &s2, &c]), [ContainerSecurityContext]);
        let (t1, t2) = (said(PodTopologySpread), said(PodTopologySpread));
        assert_eq!(order(&[&t1, &t2]), [vec![0], vec![1]]);
    }

    #[test]
    fn the_catalogs_fixes_always_find_an_order() {
        // Whatever the options, the fields the catalog's fixes declare never
        // contradict one another (no fallback to one mutation per fix).
        for yaml in ["", "fixes: {livenessProbe: on}\n"] {
            let cfg = crate::policy::config::from_test_yaml(yaml);
            for w in WORKLOADS {
                let p = PatchCtx {
                    spec: w.spec,
                    meta: w.meta,
                    config: &cfg,
                    ensured: &[],
                };
                let fixes: Vec<CelPatch> = rules::ALL
                    .iter()
                    .filter_map(|r| r.fix.cel())
                    .map(|f| f(&p))
                    .collect();
                let refs: Vec<&CelPatch> = fixes.iter().collect();
                let groups = order(&refs);
                assert!(groups.len() < fixes.len(), "{yaml}: {groups:?}");
                assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), fixes.len());
            }
        }
    }

    /// Tier 3, with an opt-in fix no policy makes turned on.
    const OPT_IN: &str = "defaults: {tier: 3}\nrules:\n  read-only-root-filesystem: {fix: on}\n";

    #[test]
    fn where_the_mutating_webhook_is_called_anyway_it_applies_every_fix() {
        // From tier 2 a fix CEL does not make (the opt-in
        // read-only-root-filesystem) calls the mutating webhook.
        let e = export(OPT_IN, 37);
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
        assert_eq!(bindings.len(), 4);
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
        for what in [
            "the probes fix in tiers 2 to 5",
            "the topology-spread fix in tiers 3 to 5",
        ] {
            assert!(
                e.stays.iter().any(|s| s.what == what),
                "{what}: {:?}",
                e.stays
            );
        }
        // Without a mutating webhook, every tier.
        let alone = export_alone(OPT_IN, 37);
        assert_eq!(alone.fixed.len(), 10);
        assert!(!alone.stays.iter().any(|s| s.what.contains(" fix in tier")));
    }

    #[test]
    fn with_fixes_in_webhook_no_mutating_policy_is_bound() {
        let cfg = Config::from_yaml("defaults: {tier: 3}\n", "test").expect("config");
        let opts = ExportOptions {
            fixes_in_webhook: true,
            ..ExportOptions::default()
        };
        let e = admission_policies(&cfg, &opts).expect("export");
        assert!(e.fixed.is_empty() && mutating(&e).is_empty());
        for what in [
            "the resources fix in tiers 1 to 5",
            "the probes fix in tiers 2 to 5",
            "the topology-spread fix in tiers 3 to 5",
        ] {
            let stay = e.stays.iter().find(|s| s.what == what);
            assert!(
                stay.is_some_and(|s| s.why.contains("--fixes-in-webhook")),
                "{what}: {:?}",
                e.stays
            );
        }
        // The webhook, narrowed with no fix left to policies, keeps a band
        // for every tier.
        let base = json!({"webhooks": [{"name": "mutate.tiergate.io", "rules": []}]});
        let hooks = crate::export::hybrid_mutating_webhooks(&base, &cfg.policy, &e.fixed);
        let names: Vec<&str> = hooks["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["name"].as_str())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("t1-")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("t3-")), "{names:?}");
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
        let expr = |name: &str, at: usize| mutations_of(&e, name)[at].clone();
        let caps = expr("tiergate-fix-pod-t1", 0);
        assert!(caps.contains("capabilities/drop"), "{caps}");
        assert!(caps.contains("!variables.webhookOnly"), "{caps}");
        assert!(caps.contains("\"legacy\""), "the exemption: {caps}");
        assert!(!caps.contains("'audit'"), "never in audit mode: {caps}");
        // allow-privilege-escalation is a tier-2 rule.
        let ape = expr("tiergate-fix-pod-t2", 0);
        assert!(ape.contains("allowPrivilegeEscalation"), "{ape}");
        assert!(ape.contains("variables.tier >= 2"), "{ape}");
        // The binding (the tier-1 band's) leaves the audit-mode namespaces
        // and the other tiers out; the policy selects every namespace and
        // a matchCondition the excluded ones (the apiserver parses every
        // policy's and binding's selector on every request).
        let binding = e
            .objects
            .iter()
            .find(|o| o["kind"] == "MutatingAdmissionPolicyBinding")
            .expect("binding");
        assert_eq!(
            binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"],
            json!([{"key": MODE_LABEL, "operator": "NotIn", "values": ["audit"]},
                   {"key": TIER_LABEL, "operator": "NotIn",
                    "values": ["2", "production", "3", "enterprise", "4", "multi-cluster",
                               "multicluster", "5", "hyperscale"]}])
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
        // With the defaults, every fix is a policy's: nothing calls it.
        let defaults = Config::from_yaml("defaults: {tier: 1}\n", "t").expect("config");
        let fixed = policy_fixes(&defaults.policy, false, 37);
        assert!(crate::export::webhook_fix_tiers(&defaults.policy, &fixed).is_empty());
        let cfg = Config::from_yaml(
            "defaults: {tier: 1}\nrules:\n  read-only-root-filesystem: {fix: on}\n",
            "t",
        )
        .expect("config");
        let base = json!({"webhooks": [{"name": "mutate.tiergate.io", "rules": []}]});
        let with = crate::export::hybrid_mutating_webhooks(&base, &cfg.policy, &[]);
        let fixed = policy_fixes(&cfg.policy, false, 37);
        let without = crate::export::hybrid_mutating_webhooks(&base, &cfg.policy, &fixed);
        let text = |v: &Value| v.to_string();
        assert!(text(&with).contains("capabilities"), "{with}");
        // At tier 1 nothing else calls it; from tier 2 it is called for the
        // fix CEL does not make, and there applies these too.
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
