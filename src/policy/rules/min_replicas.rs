//! `min-replicas`: Deployments and StatefulSets run at least two replicas.
use super::prelude::*;
use serde_json::Value;

pub static RULE: Rule = Rule {
    id: "min-replicas",
    tier: Tier::Production,
    pss: None,
    summary: "Deployments and StatefulSets run at least 2 replicas",
    doc: "A single replica is a single point of failure: a node drain, an eviction, a \
crash or an ordinary rollout of a one-replica StatefulSet takes the service down. Set \
`spec.replicas` to 2 or more on Deployments and StatefulSets (pair it with \
`topology-spread` and a PodDisruptionBudget so the replicas do not fail together). A \
missing `spec.replicas` means 1 and is a finding, and so is 0. The rule does not look \
for a HorizontalPodAutoscaler: when one manages the workload, set `spec.replicas` to \
its `minReplicas` (2 or more) in the manifest, or exempt the object with a reason. \
There is no automatic fix: more replicas cost money and a singleton may be one on \
purpose (a leader without election), so a person decides.",
    check: Check::Object(
        Kinds::Only(&[kinds::DEPLOYMENT, kinds::STATEFUL_SET]),
        check,
    ),
    fix: Fix::None,
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let replicas = match t.raw.pointer("/spec/replicas") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| EngineError::Invalid {
            kind: t.kind.to_string(),
            name: t.name().to_string(),
            reason: format!("spec.replicas must be an integer, got {v}"),
        })?),
    };
    let message = match replicas {
        Some(n) if n >= 2 => return Ok(()),
        Some(n) => format!("min replicas (spec.replicas must be at least 2, got {n})"),
        None => "min replicas (spec.replicas must be at least 2, unset means 1)".to_string(),
    };
    out.push(Violation::new("/spec/replicas", message));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn two_or_more_pass_and_other_kinds_are_ignored() {
        assert!(run_rule(
            "min-replicas",
            &testutil::web_deployment(),
            Tier::Production
        )
        .findings
        .is_empty());
        assert!(run_rule(
            "min-replicas",
            &testutil::statefulset_db(),
            Tier::Production
        )
        .findings
        .is_empty());
        let mut ds = testutil::daemonset_agent();
        ds["spec"]["replicas"] = json!(1);
        for obj in [ds, testutil::bare_pod()] {
            assert!(run_rule("min-replicas", &obj, Tier::Production)
                .findings
                .is_empty());
        }
    }

    #[test]
    fn one_zero_or_unset_fail() {
        for (replicas, msg) in [
            (
                json!(1),
                "min replicas (spec.replicas must be at least 2, got 1)",
            ),
            (
                json!(0),
                "min replicas (spec.replicas must be at least 2, got 0)",
            ),
            (
                json!(null),
                "min replicas (spec.replicas must be at least 2, unset means 1)",
            ),
        ] {
            let mut d = testutil::web_deployment();
            d["spec"]["replicas"] = replicas;
            let e = run_rule("min-replicas", &d, Tier::Production);
            assert_eq!(e.findings.len(), 1);
            assert_eq!(e.findings[0].path, "/spec/replicas");
            assert_eq!(e.findings[0].message, msg);
            assert_eq!(e.findings[0].container, None);
        }
        let mut s = testutil::statefulset_db();
        s["spec"].as_object_mut().unwrap().remove("replicas");
        assert_eq!(
            run_rule("min-replicas", &s, Tier::Production)
                .findings
                .len(),
            1
        );
    }

    #[test]
    fn non_integer_replicas_are_an_error() {
        let mut d = testutil::web_deployment();
        d["spec"]["replicas"] = json!("three");
        let engine = crate::policy::Engine::new(crate::policy::PolicyConfig::default());
        let ctx = crate::policy::Context::new(Tier::Production, crate::policy::Mode::Enforce);
        assert!(engine
            .evaluate(&d, &ctx, &crate::policy::Options::default())
            .is_err());
    }
}
