//! `autoscaled`: workloads that serve traffic have a HorizontalPodAutoscaler.
use super::prelude::*;

use crate::policy::Fact;

pub static RULE: Rule = Rule {
    id: "autoscaled",
    tier: Tier::Production,
    pss: None,
    summary: "Deployments and StatefulSets that serve traffic are scaled by an HPA",
    doc: "Production traffic is not flat: a fixed replica count is either paid for at \
night or overrun at the peak. Each Deployment and StatefulSet whose pod template declares a \
container port (it serves traffic) needs a HorizontalPodAutoscaler in its namespace whose \
`scaleTargetRef` names it (kind and name); `min-replicas` then judges the autoscaler's \
`minReplicas`. The autoscalers come from the input offline and from the cluster caches \
online; when they are not known (the CLI was not given them and not told `--complete`, or \
the cache has not synced) the rule says so in a warning. Workers with no port (queue \
consumers, controllers) are out of scope. No fix: the metric and bounds to scale on are the \
owner's.",
    check: Check::Object(
        Kinds::Only(&[kinds::DEPLOYMENT, kinds::STATEFUL_SET]),
        check,
    ),
    fix: Fix::None,
    cel: Cel::Facts(cel),
};

/// The check in CEL, from the namespace's facts.
fn cel(_cx: &CelCtx<'_>) -> String {
    format!(
        "variables.containers.exists(c, size(c.?ports.orValue([])) > 0) && \
         !{FACTS}.horizontalPodAutoscalers.exists(h, h.kind == request.kind.kind && h.target == \
         variables.obj.metadata.?name.orValue(request.name)) ? ['not autoscaled (a \
         HorizontalPodAutoscaler in the namespace must scale ' + {KIND_AND_NAME} + ': it serves \
         traffic)'] : []"
    )
}

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let Some(pod) = &t.pod else { return Ok(()) };
    let serves = pod
        .containers()
        .iter()
        .any(|c| c.ports.is_some_and(|p| !p.is_empty()));
    if !serves {
        return Ok(());
    }
    let what = format!("{} {:?}", t.kind, t.name());
    match &r.ctx.facts.hpas {
        Fact::Unknown => out.push(
            Violation::new(
                "/spec/replicas",
                format!(
                    "HorizontalPodAutoscaler unknown (the HorizontalPodAutoscalers of the \
                     namespace are not known, so whether one scales {what} cannot be checked)"
                ),
            )
            .unknown(),
        ),
        Fact::Known(hpas) => {
            let scaled = hpas
                .iter()
                .any(|h| h.target_kind == t.kind && h.target_name == t.name());
            if !scaled {
                out.push(Violation::new(
                    "/spec/replicas",
                    format!(
                        "not autoscaled (a HorizontalPodAutoscaler in the namespace must scale \
                         {what}: it serves traffic)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::context::HpaFact;
    use crate::policy::rules::testutil::{self, run_rule_with};
    use crate::policy::{Action, Context, Fact, Mode, Tier};

    fn ctx(hpas: Fact<Vec<HpaFact>>) -> Context {
        let mut c = Context::new(Tier::Production, Mode::Enforce);
        std::sync::Arc::make_mut(&mut c.facts).hpas = hpas;
        c
    }

    #[test]
    fn serving_workloads_need_an_autoscaler() {
        let d = testutil::web_deployment();
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        let run =
            |c: &Context, d: &serde_json::Value| run_rule_with("autoscaled", d, c, "").findings;
        let f = run(&ctx(Fact::Known(vec![])), &d);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].action, Action::Deny);
        assert!(f[0].message.starts_with("not autoscaled"), "{f:?}");
        let hpa = HpaFact {
            name: "web".into(),
            target_kind: "Deployment".into(),
            target_name: name,
            min_replicas: 2,
        };
        assert!(run(&ctx(Fact::Known(vec![hpa])), &d).is_empty());
        assert_eq!(run(&ctx(Fact::Unknown), &d)[0].action, Action::Warn);
        // A worker with no port is out of scope.
        let mut worker = d.clone();
        for list in ["containers", "initContainers"] {
            for c in worker["spec"]["template"]["spec"][list]
                .as_array_mut()
                .unwrap()
            {
                c.as_object_mut().unwrap().remove("ports");
            }
        }
        assert!(run(&ctx(Fact::Known(vec![])), &worker).is_empty());
    }
}
