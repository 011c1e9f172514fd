//! `pdb`: a PodDisruptionBudget in the namespace selects the workload's pods.
use super::prelude::*;
use std::collections::BTreeMap;

use crate::policy::Fact;

pub static RULE: Rule = Rule {
    id: "pdb",
    tier: Tier::Production,
    pss: None,
    summary: "a PodDisruptionBudget selects the workload's pods",
    doc: "Node drains, cluster upgrades and the autoscaler evict pods voluntarily; without \
a PodDisruptionBudget they may evict every replica of a workload at once and take it down. \
Each Deployment, StatefulSet and ReplicaSet needs a PodDisruptionBudget in its namespace \
whose selector (matchLabels and matchExpressions, as the apiserver evaluates them) matches \
the labels of its pod template. Add a `policy/v1` PodDisruptionBudget selecting those labels \
with `minAvailable` or `maxUnavailable` set so at least one replica survives a drain. A \
ReplicaSet controlled by another object (a Deployment's) is judged through its owner. When \
the namespace's PodDisruptionBudgets are not known (the CLI was not given them, or the \
webhook's cache has not synced) the rule says so in a warning instead of guessing.",
    check: Check::Object(
        Kinds::Only(&[kinds::DEPLOYMENT, kinds::STATEFUL_SET, kinds::REPLICA_SET]),
        check,
    ),
    fix: Fix::None,
    cel: Cel::Facts(cel),
};

/// The check in CEL, from the namespace's facts.
fn cel(_cx: &CelCtx<'_>) -> String {
    format!(
        "variables.pod == null || (request.kind.kind == 'ReplicaSet' && \
         variables.obj.metadata.?ownerReferences.orValue([]).exists(o, \
         o.?controller.orValue(false))) || {FACTS}.podDisruptionBudgets.exists(p, {selects}) ? [] \
         : ['no PodDisruptionBudget (a PodDisruptionBudget in ' + {IN_NAMESPACE} + ' must select \
         the pods of ' + {KIND_AND_NAME} + ')']",
        selects = selector_selects("p.selector", TEMPLATE_LABELS)
    )
}

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let Some(pod) = &t.pod else { return Ok(()) };
    let controlled = t
        .meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true));
    if t.kind == "ReplicaSet" && controlled {
        return Ok(());
    }
    let path = format!("{}/labels", pod.meta_path);
    let what = format!("{} {:?}", t.kind, t.name());
    let empty = BTreeMap::new();
    let labels = pod.meta.labels.as_ref().unwrap_or(&empty);
    match &r.ctx.facts.pdbs {
        Fact::Unknown => out.push(
            Violation::new(
                path,
                format!(
                    "PodDisruptionBudget unknown (the PodDisruptionBudgets of {} are not known, \
                     so whether one selects the pods of {what} cannot be checked)",
                    in_namespace(t, r)
                ),
            )
            .unknown(),
        ),
        Fact::Known(pdbs) => {
            if !pdbs.iter().any(|p| p.selects(labels)) {
                out.push(Violation::new(
                    path,
                    format!(
                        "no PodDisruptionBudget (a PodDisruptionBudget in {} must select the \
                         pods of {what})",
                        in_namespace(t, r)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `namespace "x"` or `the namespace`, for messages.
pub(crate) fn in_namespace(t: &Target<'_>, r: &RuleCtx<'_>) -> String {
    match r
        .ctx
        .namespace
        .as_deref()
        .or(t.meta.namespace.as_deref())
        .filter(|n| !n.is_empty())
    {
        Some(ns) => format!("namespace {ns:?}"),
        None => "the namespace".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::context::PdbFact;
    use crate::policy::facts::selects as selector_matches;
    use crate::policy::rules::testutil::run_rule_with;
    use crate::policy::{Action, Context, Fact, Mode, Tier};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use serde::Deserialize;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    fn deploy(kind: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": kind,
          "metadata": {"name": "web", "namespace": "shop"},
          "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web", "tier": "frontend"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}})
    }

    fn sel(v: Value) -> LabelSelector {
        LabelSelector::deserialize(v).unwrap()
    }

    fn ctx(pdbs: Fact<Vec<PdbFact>>) -> Context {
        let mut c = Context::new(Tier::Production, Mode::Enforce);
        c.namespace = Some("shop".into());
        std::sync::Arc::make_mut(&mut c.facts).pdbs = pdbs;
        c
    }

    fn pdb(selector: Value) -> PdbFact {
        PdbFact::new("web".into(), sel(selector))
    }

    #[test]
    fn a_matching_pdb_passes() {
        for kind in ["Deployment", "StatefulSet", "ReplicaSet"] {
            let c = ctx(Fact::Known(vec![
                pdb(json!({"matchLabels": {"app": "other"}})),
                pdb(json!({"matchLabels": {"app": "web"},
                           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]})),
            ]));
            let e = run_rule_with("pdb", &deploy(kind), &c, "");
            assert!(e.findings.is_empty(), "{kind}: {:?}", e.findings);
        }
    }

    #[test]
    fn no_matching_pdb_is_a_finding() {
        let c = ctx(Fact::Known(vec![pdb(
            json!({"matchLabels": {"app": "api"}}),
        )]));
        let e = run_rule_with("pdb", &deploy("Deployment"), &c, "");
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.path, "/spec/template/metadata/labels");
        assert_eq!(f.action, Action::Deny);
        assert_eq!(
            f.message,
            "no PodDisruptionBudget (a PodDisruptionBudget in namespace \"shop\" must select \
             the pods of Deployment \"web\")"
        );
    }

    #[test]
    fn unknown_pdbs_warn_and_never_guess() {
        let e = run_rule_with("pdb", &deploy("StatefulSet"), &ctx(Fact::Unknown), "");
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.action, Action::Warn);
        assert_eq!(f.path, "/spec/template/metadata/labels");
        assert_eq!(
            f.message,
            "PodDisruptionBudget unknown (the PodDisruptionBudgets of namespace \"shop\" are \
             not known, so whether one selects the pods of StatefulSet \"web\" cannot be checked)"
        );
    }

    #[test]
    fn replicasets_owned_by_a_deployment_are_skipped() {
        let mut rs = deploy("ReplicaSet");
        rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
            "name": "web", "uid": "1", "controller": true}]);
        let e = run_rule_with("pdb", &rs, &ctx(Fact::Known(vec![])), "");
        assert!(e.findings.is_empty());
        let e = run_rule_with("pdb", &deploy("ReplicaSet"), &ctx(Fact::Known(vec![])), "");
        assert_eq!(e.findings.len(), 1);
    }

    #[test]
    fn selectors_follow_apimachinery() {
        let labels: BTreeMap<String, String> = [("app", "web"), ("env", "prod")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let m = |v: Value| selector_matches(&sel(v), &labels);
        assert!(m(json!({})));
        assert!(m(json!({"matchLabels": {"app": "web"}})));
        assert!(!m(json!({"matchLabels": {"app": "web", "x": "y"}})));
        assert!(m(
            json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]}]})
        ));
        assert!(!m(
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]})
        ));
        assert!(m(
            json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]})
        ));
        assert!(m(
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})
        ));
        assert!(!m(
            json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]})
        ));
        assert!(m(
            json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]})
        ));
        // matchLabels AND matchExpressions.
        assert!(!m(json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "zone", "operator": "Exists"}]})));
        assert!(!m(
            json!({"matchExpressions": [{"key": "app", "operator": "Bogus"}]})
        ));
    }
}
