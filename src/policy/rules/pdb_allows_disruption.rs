//! `pdb-allows-disruption`: a PodDisruptionBudget lets at least one pod go.
use super::prelude::*;
use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::policy::Fact;

pub static RULE: Rule = Rule {
    id: "pdb-allows-disruption",
    tier: Tier::Production,
    pss: None,
    summary: "PodDisruptionBudgets allow at least one pod to be evicted",
    doc: "A PodDisruptionBudget that allows no disruption at all blocks every node drain: \
the drain waits forever on its pods, and cluster upgrades, autoscaler scale-downs and node \
repairs stall behind it. A PodDisruptionBudget with `maxUnavailable: 0` (or `0%`) or \
`minAvailable: 100%` is a finding, and so is a Deployment or StatefulSet whose `replicas` \
is not more than the numeric `minAvailable` of a PodDisruptionBudget in its namespace that \
selects its pods (from the input offline, from the cluster caches online). Allow one pod to \
go: `maxUnavailable: 1`, or a `minAvailable` below the replica count. No fix: how many \
replicas a service can lose is the owner's call.",
    check: Check::Object(
        Kinds::Only(&[
            kinds::POD_DISRUPTION_BUDGET,
            kinds::DEPLOYMENT,
            kinds::STATEFUL_SET,
        ]),
        check,
    ),
    fix: Fix::None,
    cel: Cel::Facts(cel),
};

/// The check in CEL: a PodDisruptionBudget from the object alone (an
/// apiserver of 1.30+ serves only `policy/v1`), a workload from the
/// namespace's facts.
fn cel(_cx: &CelCtx<'_>) -> String {
    let pdb = "variables.obj.spec";
    let name = "variables.obj.metadata.?name.orValue(request.name)";
    let blocked = |field: &str, what: &str| {
        format!(
            "['no disruption allowed (PodDisruptionBudget \"' + {name} + '\" must allow at least \
             one pod to be evicted; {field} is {what}, so node drains block)']"
        )
    };
    format!(
        "request.kind.kind == 'PodDisruptionBudget' ? \
         ({pdb}.?maxUnavailable.hasValue() && (type({pdb}.maxUnavailable) == int ? \
         {pdb}.maxUnavailable <= 0 : {pdb}.maxUnavailable.trim() in ['0%', '0']) ? {max} : []) + \
         ({pdb}.?minAvailable.hasValue() && type({pdb}.minAvailable) == string && \
         {pdb}.minAvailable.trim() == '100%' ? {min} : []) : \
         variables.pod == null ? [] : \
         {FACTS}.podDisruptionBudgets.filter(p, p.?minAvailable.orValue(-1) >= \
         variables.obj.spec.?replicas.orValue(1) && {selects}).map(p, 'no disruption allowed \
         (PodDisruptionBudget \"' + p.name + '\" keeps minAvailable ' + string(p.minAvailable) + \
         ' of ' + string(variables.obj.spec.?replicas.orValue(1)) + ' replicas of ' + \
         {KIND_AND_NAME} + ', so node drains block; run more replicas or lower minAvailable)')",
        max = blocked("maxUnavailable", "0"),
        min = blocked("minAvailable", "100%"),
        selects = selector_selects("p.selector", TEMPLATE_LABELS),
    )
}

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if t.kind == "PodDisruptionBudget" {
        let spec: PodDisruptionBudgetSpec = match t.raw.get("spec") {
            None | Some(Value::Null) => return Ok(()),
            Some(s) => serde_json::from_value(s.clone()).map_err(|e| EngineError::Invalid {
                kind: t.kind.to_string(),
                name: t.name().to_string(),
                reason: format!("spec: {e}"),
            })?,
        };
        let zero = |v: &IntOrString| match v {
            IntOrString::Int(n) => *n <= 0,
            IntOrString::String(s) => s.trim() == "0%" || s.trim() == "0",
        };
        let all = |v: &IntOrString| matches!(v, IntOrString::String(s) if s.trim() == "100%");
        let name = t.name();
        if spec.max_unavailable.as_ref().is_some_and(zero) {
            out.push(Violation::new(
                "/spec/maxUnavailable",
                format!(
                    "no disruption allowed (PodDisruptionBudget {name:?} must allow at least one \
                     pod to be evicted; maxUnavailable is 0, so node drains block)"
                ),
            ));
        }
        if spec.min_available.as_ref().is_some_and(all) {
            out.push(Violation::new(
                "/spec/minAvailable",
                format!(
                    "no disruption allowed (PodDisruptionBudget {name:?} must allow at least one \
                     pod to be evicted; minAvailable is 100%, so node drains block)"
                ),
            ));
        }
        return Ok(());
    }
    // A workload: does a PDB that selects it keep every replica?
    let (Some(pod), Fact::Known(pdbs)) = (&t.pod, &r.ctx.facts.pdbs) else {
        return Ok(());
    };
    let replicas = t
        .raw
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let empty = BTreeMap::new();
    let labels = pod.meta.labels.as_ref().unwrap_or(&empty);
    for p in pdbs.iter().filter(|p| p.selects(labels)) {
        if let Some(min) = p.min_available.filter(|m| *m >= replicas) {
            out.push(Violation::new(
                "/spec/replicas",
                format!(
                    "no disruption allowed (PodDisruptionBudget {:?} keeps minAvailable {min} of \
                     {replicas} replicas of {} {:?}, so node drains block; run more replicas \
                     or lower minAvailable)",
                    p.name,
                    t.kind,
                    t.name()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::context::PdbFact;
    use crate::policy::rules::testutil::{self, run_rule, run_rule_with};
    use crate::policy::{Context, Fact, Mode, Tier};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::{json, Value};

    fn pdb(spec: Value) -> Value {
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop"}, "spec": spec})
    }

    #[test]
    fn budgets_that_allow_nothing_are_findings() {
        let run = |spec: Value| {
            run_rule("pdb-allows-disruption", &pdb(spec), Tier::Production)
                .findings
                .into_iter()
                .map(|f| f.path)
                .collect::<Vec<_>>()
        };
        let sel = json!({"matchLabels": {"app": "web"}});
        assert_eq!(
            run(json!({"maxUnavailable": 0, "selector": sel})),
            ["/spec/maxUnavailable"]
        );
        assert_eq!(
            run(json!({"maxUnavailable": "0%", "selector": sel})),
            ["/spec/maxUnavailable"]
        );
        assert_eq!(
            run(json!({"minAvailable": "100%", "selector": sel})),
            ["/spec/minAvailable"]
        );
        assert!(run(json!({"maxUnavailable": 1, "selector": sel})).is_empty());
        assert!(run(json!({"minAvailable": "50%", "selector": sel})).is_empty());
    }

    #[test]
    fn a_workload_whose_replicas_a_budget_keeps_all_is_a_finding() {
        let d = testutil::web_deployment();
        let replicas = d["spec"]["replicas"].as_i64().unwrap();
        let labels = d["spec"]["template"]["metadata"]["labels"].clone();
        let ctx = |min: i32| {
            let mut c = Context::new(Tier::Production, Mode::Enforce);
            let selector = serde_json::from_value(json!({"matchLabels": labels})).unwrap();
            std::sync::Arc::make_mut(&mut c.facts).pdbs =
                Fact::Known(vec![PdbFact::new("web".into(), selector)
                    .with_min_available(Some(&IntOrString::Int(min)))]);
            c
        };
        let f = run_rule_with("pdb-allows-disruption", &d, &ctx(replicas as i32), "").findings;
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .contains(&format!("minAvailable {replicas} of {replicas} replicas")),
            "{f:?}"
        );
        assert!(
            run_rule_with("pdb-allows-disruption", &d, &ctx(replicas as i32 - 1), "")
                .findings
                .is_empty()
        );
    }
}
