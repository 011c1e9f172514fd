//! `zone-spread-required`: replicas are kept apart by zone, not just preferably.
use super::prelude::*;
use serde_json::Value;

pub static RULE: Rule = Rule {
    id: "zone-spread-required",
    tier: Tier::MultiCluster,
    pss: None,
    summary: "replicated workloads require their zone spread (DoNotSchedule)",
    doc: "`topology-spread` (tier 3) asks for a zone spread and accepts a preference \
(`whenUnsatisfiable: ScheduleAnyway`), which the scheduler gives up under pressure: after \
a zone outage, or when one zone is full, the replicas end up together and the next zone \
loss takes them all. At tier 4, where a service's availability is planned across zones \
and clusters, the spread is a requirement: Deployments, StatefulSets and ReplicaSets with \
more than one replica (or an unset count, as an autoscaled one has) must have a \
`topologySpreadConstraint` with `topologyKey: topology.kubernetes.io/zone` and \
`whenUnsatisfiable: DoNotSchedule`. There is no automatic fix: a required spread leaves \
pods Pending in a cluster with too few zones, which only the owner can weigh.",
    check: Check::Object(
        Kinds::Only(&[kinds::DEPLOYMENT, kinds::STATEFUL_SET, kinds::REPLICA_SET]),
        check,
    ),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

const ZONE: &str = "topology.kubernetes.io/zone";

/// CEL: the findings, as [`check`] finds them.
fn cel(_cx: &CelCtx<'_>) -> String {
    format!(
        "variables.obj.spec.?replicas.orValue(2) in [0, 1] || \
         variables.pod.?topologySpreadConstraints.orValue([]).exists(c, \
         c.?topologyKey.orValue('') == {zone} && c.?whenUnsatisfiable.orValue('') == 'DoNotSchedule') \
         ? [] : ['zone spread required (' + request.kind.kind + ' \"' + \
         variables.obj.metadata.?name.orValue(request.name) + '\" must set a \
         topologySpreadConstraint on {ZONE} with whenUnsatisfiable=DoNotSchedule)']",
        zone = lit(ZONE),
    )
}

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let Some(pod) = &t.pod else { return Ok(()) };
    if matches!(
        t.raw.pointer("/spec/replicas").and_then(Value::as_i64),
        Some(0 | 1)
    ) {
        return Ok(());
    }
    let required = pod
        .spec
        .topology_spread_constraints
        .iter()
        .flatten()
        .any(|c| c.topology_key == ZONE && c.when_unsatisfiable == "DoNotSchedule");
    if !required {
        out.push(Violation::new(
            format!("{}/topologySpreadConstraints", pod.spec_path),
            format!(
                "zone spread required ({} {:?} must set a topologySpreadConstraint on {ZONE} \
                 with whenUnsatisfiable=DoNotSchedule)",
                t.kind,
                t.name()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn a_preferred_spread_is_not_enough_a_required_one_is() {
        let mut d = testutil::web_deployment();
        let spread = |when: &str| {
            json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}])
        };
        let run = |d: &serde_json::Value| {
            run_rule("zone-spread-required", d, Tier::MultiCluster).findings
        };
        assert_eq!(run(&d).len(), 1);
        d["spec"]["template"]["spec"]["topologySpreadConstraints"] = spread("ScheduleAnyway");
        let f = run(&d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "/spec/template/spec/topologySpreadConstraints");
        d["spec"]["template"]["spec"]["topologySpreadConstraints"] = spread("DoNotSchedule");
        assert!(run(&d).is_empty());
        // A single replica is not spread.
        let mut one = testutil::web_deployment();
        one["spec"]["replicas"] = json!(1);
        assert!(run(&one).is_empty());
    }
}
