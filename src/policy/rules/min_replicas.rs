//! `min-replicas`: Deployments and StatefulSets run at least two replicas.
use super::prelude::*;
use serde_json::Value;

use crate::policy::Fact;

pub static RULE: Rule = Rule {
    id: "min-replicas",
    tier: Tier::Production,
    pss: None,
    summary: "Deployments and StatefulSets run at least 2 replicas",
    doc: "A single replica is a single point of failure: a node drain, an eviction, a \
crash or an ordinary rollout of a one-replica StatefulSet takes the service down. Set \
`spec.replicas` to 2 or more on Deployments and StatefulSets (pair it with \
`topology-spread` and a PodDisruptionBudget so the replicas do not fail together). A \
missing `spec.replicas` means 1 and is a finding, and so is 0. A workload that a \
HorizontalPodAutoscaler in its namespace scales (`scaleTargetRef` names it) is judged by \
the autoscaler's `minReplicas` instead, whatever `spec.replicas` says: it passes when \
`minReplicas` is 2 or more (and should then leave `spec.replicas` unset, since setting it \
fights the autoscaler on every apply). The autoscalers come from the input offline and \
from the cluster caches online; when they are not known, `spec.replicas` is judged. \
There is no automatic fix: more replicas cost money and a singleton may be one on \
purpose (a leader without election), so a person decides.",
    check: Check::Object(
        Kinds::Only(&[kinds::DEPLOYMENT, kinds::STATEFUL_SET]),
        check,
    ),
    fix: Fix::None,
    cel: Cel::Facts(cel),
};

/// The check in CEL: the first autoscaler (by name, as the facts list
/// them) that scales the object, else `spec.replicas`.
fn cel(_cx: &CelCtx<'_>) -> String {
    let name = "variables.obj.metadata.?name.orValue(request.name)";
    let scales = format!("h.kind == request.kind.kind && h.target == {name}");
    format!(
        "{FACTS}.horizontalPodAutoscalers.exists(h, {scales}) ? \
         [{FACTS}.horizontalPodAutoscalers.filter(h, {scales})[0]].filter(h, h.minReplicas < 2) \
         .map(h, 'min replicas (the HorizontalPodAutoscaler \"' + h.name + '\" that scales it must \
         set minReplicas to at least 2, got ' + string(h.minReplicas) + ')') : \
         !variables.obj.spec.?replicas.hasValue() ? ['min replicas (spec.replicas must be at least \
         2, unset means 1)'] : variables.obj.spec.replicas >= 2 ? [] : ['min replicas \
         (spec.replicas must be at least 2, got ' + string(variables.obj.spec.replicas) + ')']"
    )
}

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let hpa = match &r.ctx.facts.hpas {
        Fact::Known(hpas) => hpas
            .iter()
            .find(|h| h.target_kind == t.kind && h.target_name == t.name()),
        Fact::Unknown => None,
    };
    if let Some(h) = hpa {
        if h.min_replicas < 2 {
            out.push(Violation::new(
                "/spec/replicas",
                format!(
                    "min replicas (the HorizontalPodAutoscaler {:?} that scales it must set \
                     minReplicas to at least 2, got {})",
                    h.name, h.min_replicas
                ),
            ));
        }
        return Ok(());
    }
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

    fn with_hpas(hpas: Vec<(&str, &str, i64)>) -> crate::policy::Context {
        let mut c = crate::policy::Context::new(Tier::Production, crate::policy::Mode::Enforce);
        std::sync::Arc::make_mut(&mut c.facts).hpas = crate::policy::Fact::Known(
            hpas.into_iter()
                .map(|(kind, name, min)| crate::policy::context::HpaFact {
                    name: format!("{name}-hpa"),
                    target_kind: kind.into(),
                    target_name: name.into(),
                    min_replicas: min,
                })
                .collect(),
        );
        c
    }

    #[test]
    fn an_autoscaler_decides_instead_of_spec_replicas() {
        let mut d = testutil::web_deployment();
        d["spec"].as_object_mut().unwrap().remove("replicas");
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        let run = |c: &crate::policy::Context| {
            testutil::run_rule_with("min-replicas", &d, c, "").findings
        };
        // An HPA with minReplicas >= 2 scales it: unset replicas are right.
        assert!(run(&with_hpas(vec![("Deployment", &name, 3)])).is_empty());
        // An HPA that lets it fall to one replica is the finding.
        let f = run(&with_hpas(vec![("Deployment", &name, 1)]));
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].message,
            format!(
                "min replicas (the HorizontalPodAutoscaler \"{name}-hpa\" that scales it must \
                 set minReplicas to at least 2, got 1)"
            )
        );
        // An HPA of another workload, or of another kind, does not count.
        for other in [("Deployment", "api"), ("StatefulSet", name.as_str())] {
            let f = run(&with_hpas(vec![(other.0, other.1, 5)]));
            assert_eq!(f.len(), 1, "{other:?}");
            assert!(f[0].message.contains("unset means 1"), "{:?}", f[0]);
        }
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
