//! `topology-spread`: replicated workloads spread across zones.
use super::prelude::*;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "topology-spread",
    tier: Tier::Enterprise,
    pss: None,
    summary: "replicated workloads spread across zones or set pod anti-affinity",
    doc: "Replicas only protect a service if they do not fail together: left alone, \
the scheduler may pack every replica into one zone (or onto one node), and one zone \
outage takes them all. Deployments, StatefulSets and ReplicaSets must set a \
`topologySpreadConstraint` with `topologyKey: topology.kubernetes.io/zone`, or a \
`podAntiAffinity` (required or preferred) in their pod template. A workload that sets \
`replicas: 0` or `1` is not replicated and is out of scope (one that leaves `replicas` \
unset, as an autoscaled one does, is in scope). The fix appends, after \
any constraints already there, `{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, \
whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: <pod template labels>}}`: \
a soft constraint, so pods still schedule in a single-zone cluster. Of the template's \
labels it uses those of the workload's `spec.selector.matchLabels` when that is a \
non-empty subset of them (the selector is immutable and matches every pod of the \
workload, while labels such as `app.kubernetes.io/version` change with each release and \
would split the spread by version); otherwise all of them. A pod template without \
labels gets no fix. \
Safety: the constraint is `ScheduleAnyway` (a preference, never a reason a pod stays Pending) and is appended after the user's own constraints.",
    check: Check::Object(
        Kinds::Only(&[kinds::DEPLOYMENT, kinds::STATEFUL_SET, kinds::REPLICA_SET]),
        check,
    ),
    fix: Fix::Safe {
        summary: "add a soft zone topologySpreadConstraint over the pod template's labels",
        apply: FixFn::Object(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

const ZONE: &str = "topology.kubernetes.io/zone";

fn spreads(pod: &PodTemplate) -> bool {
    let zone = pod
        .spec
        .topology_spread_constraints
        .iter()
        .flatten()
        .any(|c| c.topology_key == ZONE);
    let anti = pod
        .spec
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .is_some_and(|p| {
            p.required_during_scheduling_ignored_during_execution
                .as_ref()
                .is_some_and(|v| !v.is_empty())
                || p.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
                    .is_some_and(|v| !v.is_empty())
        });
    zone || anti
}

/// `spec.replicas` set to 0 or 1: nothing to spread.
/// CEL: the findings, as [`check`] finds them.
fn cel(_cx: &CelCtx<'_>) -> String {
    let anti = |list: &str| {
        format!("variables.pod.?affinity.?podAntiAffinity.?{list}.orValue([]).size() > 0")
    };
    format!(
        "variables.obj.spec.?replicas.orValue(2) <= 1 || \
         variables.pod.?topologySpreadConstraints.orValue([]).exists(c, c.?topologyKey.orValue('') == {zone}) || \
         {} || {} ? [] : ['topology spread (pod template must set a topologySpreadConstraint on {ZONE} or podAntiAffinity)']",
        anti("requiredDuringSchedulingIgnoredDuringExecution"),
        anti("preferredDuringSchedulingIgnoredDuringExecution"),
        zone = lit(ZONE),
    )
}

/// The fix as CEL: the same soft zone constraint, appended, over the
/// selector's labels when they are a non-empty subset of the template's,
/// else the template's (the labels as the object came, before any fix).
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let spec = p.spec_value();
    let labels = format!("{}.?labels.orValue({{}})", p.meta_value());
    let selector = "object.spec.?selector.?matchLabels.orValue({})";
    let kinds: Vec<String> = [kinds::DEPLOYMENT, kinds::STATEFUL_SET, kinds::REPLICA_SET]
        .iter()
        .map(|gk| format!("request.kind.kind == {}", lit(gk.kind)))
        .collect();
    let anti =
        |list: &str| format!("size({spec}.?affinity.?podAntiAffinity.?{list}.orValue([])) == 0");
    let when = format!(
        "request.kind.group == 'apps' && ({}) && object.spec.?replicas.orValue(2) > 1 && \
         !{spec}.?topologySpreadConstraints.orValue([]).exists(c, c.?topologyKey.orValue('') == \
         {zone}) && {} && {} && size({labels}) > 0",
        kinds.join(" || "),
        anti("requiredDuringSchedulingIgnoredDuringExecution"),
        anti("preferredDuringSchedulingIgnoredDuringExecution"),
        zone = lit(ZONE),
    );
    // As plain strings: a JSONPatch cannot carry the apiserver's typed map.
    let chosen = format!(
        "(size({selector}) > 0 && {selector}.all(k, k in {labels} && {labels}[k] == \
         {selector}[k]) ? {selector} : {labels}).transformMap(k, v, string(v))"
    );
    let ty = p.type_of("topologySpreadConstraints");
    let constraint = format!(
        "{ty}{{maxSkew: 1, topologyKey: {}, whenUnsatisfiable: 'ScheduleAnyway', labelSelector: \
         {ty}.labelSelector{{matchLabels: variables.topology_spread_labels}}}}",
        lit(ZONE)
    );
    let at = format!("'{}/topologySpreadConstraints'", p.spec);
    cel::CelPatch {
        patch: format!(
            "!({when}) ? [] : {spec}.?topologySpreadConstraints.hasValue() ? [{}] : [{}]",
            cel::patch_add(&format!("{at} + '/-'"), &constraint),
            cel::patch_add(&at, &format!("[{constraint}]"))
        ),
        when,
        variables: vec![("topology_spread_labels".to_string(), chosen)],
        writes: vec![cel::Field::PodTopologySpread],
        before: vec![cel::Field::TemplateLabels],
        ..Default::default()
    }
}

fn single_replica(t: &Target<'_>) -> bool {
    t.raw
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .is_some_and(|n| n <= 1)
}

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let Some(pod) = &t.pod else { return Ok(()) };
    if single_replica(t) {
        return Ok(());
    }
    if !spreads(pod) {
        out.push(Violation::new(
            format!("{}/topologySpreadConstraints", pod.spec_path),
            format!(
                "topology spread (pod template must set a topologySpreadConstraint on {ZONE} or podAntiAffinity)"
            ),
        ));
    }
    Ok(())
}

fn fix(t: &Target<'_>, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    if single_replica(t) {
        return false;
    }
    let Some(pod) = &t.pod else { return false };
    if spreads(pod) {
        return false;
    }
    let Some(template_labels) = pod.meta.labels.as_ref().filter(|l| !l.is_empty()) else {
        return false;
    };
    let selector: Option<BTreeMap<String, String>> = t
        .raw
        .pointer("/spec/selector/matchLabels")
        .and_then(|v| BTreeMap::deserialize(v).ok())
        .filter(|sel: &BTreeMap<String, String>| {
            !sel.is_empty()
                && sel
                    .iter()
                    .all(|(k, v)| template_labels.get(k).is_some_and(|tv| tv == v))
        });
    let labels = selector.as_ref().unwrap_or(template_labels);
    let constraint = json!({
        "maxSkew": 1,
        "topologyKey": ZONE,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": labels},
    });
    let Some(spec) = fixutil::object_at(obj, pod.spec_path) else {
        return false;
    };
    let slot = spec
        .entry("topologySpreadConstraints")
        .or_insert(Value::Null);
    if slot.is_null() {
        *slot = json!([]);
    }
    match slot.as_array_mut() {
        Some(list) => {
            list.push(constraint);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn single_replica_workloads_are_out_of_scope() {
        let mut d = testutil::web_deployment();
        d["spec"]["replicas"] = json!(1);
        let e = run_rule("topology-spread", &d, Tier::Enterprise);
        assert!(e.findings.is_empty() && e.patch.0.is_empty());
        d["spec"]["replicas"] = json!(3);
        assert_eq!(
            run_rule("topology-spread", &d, Tier::Enterprise)
                .findings
                .len(),
            1
        );
    }

    #[test]
    fn zone_spread_or_anti_affinity_pass() {
        let mut d = testutil::web_deployment();
        d["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}}]);
        assert!(run_rule("topology-spread", &d, Tier::Enterprise)
            .findings
            .is_empty());
        let mut s = testutil::statefulset_db();
        s["spec"]["template"]["spec"]["affinity"] = json!({"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
              "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app": "postgres"}}}}]}});
        assert!(run_rule("topology-spread", &s, Tier::Enterprise)
            .findings
            .is_empty());
        // DaemonSets run everywhere already.
        assert!(run_rule(
            "topology-spread",
            &testutil::daemonset_agent(),
            Tier::Enterprise
        )
        .findings
        .is_empty());
    }

    #[test]
    fn unspread_workloads_fail() {
        let e = run_rule(
            "topology-spread",
            &testutil::web_deployment(),
            Tier::Enterprise,
        );
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.path, "/spec/template/spec/topologySpreadConstraints");
        assert_eq!(f.container, None);
        assert_eq!(
            f.message,
            "topology spread (pod template must set a topologySpreadConstraint on topology.kubernetes.io/zone or podAntiAffinity)"
        );
    }

    #[test]
    fn fix_appends_a_soft_zone_constraint() {
        let mut d = testutil::web_deployment();
        let host = json!({"maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "web"}}});
        d["spec"]["template"]["spec"]["topologySpreadConstraints"] = json!([host.clone()]);
        let fixed = assert_fix_sound("topology-spread", &d, Tier::Enterprise);
        assert_eq!(
            fixed["spec"]["template"]["spec"]["topologySpreadConstraints"],
            json!([host, {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "web"}}}])
        );
        assert_fix_sound(
            "topology-spread",
            &testutil::statefulset_db(),
            Tier::Enterprise,
        );
        // Without a usable selector, the template's labels.
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "worker"},
            "spec": {"replicas": 2, "selector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["worker"]}]},
                "template": {"metadata": {"labels": {"app": "worker", "queue": "email"}},
                    "spec": {"containers": [{"name": "worker", "image": "ghcr.io/acme/worker:5.0.0"}]}}}});
        let fixed = assert_fix_sound("topology-spread", &rs, Tier::Enterprise);
        assert_eq!(
            fixed["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["labelSelector"],
            json!({"matchLabels": {"app": "worker", "queue": "email"}})
        );
    }

    #[test]
    fn no_template_labels_no_fix() {
        let mut d = testutil::web_deployment();
        d["spec"]["template"]["metadata"] = json!({});
        let e = run_rule("topology-spread", &d, Tier::Enterprise);
        assert!(e.patch.0.is_empty());
        assert_eq!(e.findings.len(), 1);
    }
}
