//! PSS `privileged` (baseline): no privileged containers.
use super::prelude::*;

pub static RULE: Rule = Rule {
    id: "privileged",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "privileged",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "containers must not run privileged",
    doc: "A privileged container runs with every capability and full access to the \
host's devices: it is root on the node, and one compromise is a node compromise. \
Pod Security Standards baseline forbids it. Remove `securityContext.privileged: true` \
(or set it to false); grant the single capability the workload needs instead.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        if c.security_context.and_then(|s| s.privileged) == Some(true) {
            out.push(
                Violation::new(
                    format!("{}/securityContext/privileged", c.path),
                    format!(
                        "privileged (container {:?} must not set securityContext.privileged=true)",
                        c.name
                    ),
                )
                .in_container(c.name),
            );
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    containers_where(
        "c.?securityContext.?privileged.orValue(false) == true",
        &format!("'privileged (' + {WHO} + ' must not set securityContext.privileged=true)'"),
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn flags_privileged_containers_by_field() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "ok", "image": "x", "securityContext": {"privileged": false}},
                {"name": "bad", "image": "x", "securityContext": {"privileged": true}}]}});
        let e = run_rule("privileged", &pod, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(
            e.findings[0].path,
            "/spec/containers/1/securityContext/privileged"
        );
        assert_eq!(
            e.findings[0].message,
            "privileged (container \"bad\" must not set securityContext.privileged=true)"
        );
    }
}
