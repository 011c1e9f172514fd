//! PSS `runAsUser` (restricted, v1.23+; from v1.35 user-namespace pods are
//! exempt): nothing may ask to run as UID 0.
use super::prelude::*;
use super::pss_common::{in_container, msg, pod_sc_path, sc_path, user_namespace, who};

pub static RULE: Rule = Rule {
    id: "run-as-user",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "runAsUser",
        level: PssLevel::Restricted,
        min_minor: 23,
        overrides: &[],
    }),
    summary: "pods and containers must not set runAsUser: 0",
    doc: "`runAsUser: 0` runs the container's processes as root, whatever the image \
says: any escape from the container starts with root's power on the node's kernel. \
Pod Security Standards restricted forbids `securityContext.runAsUser: 0` at pod and \
container level (policy v1.23+; from v1.35 pods with `hostUsers: false` are exempt, \
their root is unprivileged on the host). Run as a non-zero UID, e.g. \
`runAsUser: 10001`, or leave the field unset and let the image choose.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

const DETAIL: &str = "must not set runAsUser=0";

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if r.pss_has(PssChange::UserNamespacePods) && user_namespace(&pod.spec) {
        return Ok(());
    }
    if pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        == Some(0)
    {
        out.push(Violation::new(
            format!("{}/runAsUser", pod_sc_path(pod)),
            msg("runAsUser=0", format!("pod {DETAIL}")),
        ));
    }
    for c in pod.containers() {
        if c.security_context.and_then(|s| s.run_as_user) == Some(0) {
            out.push(in_container(
                &c,
                format!("{}/runAsUser", sc_path(&c)),
                msg("runAsUser=0", format!("{} {DETAIL}", who(&c))),
            ));
        }
    }
    Ok(())
}

fn cel(cx: &CelCtx<'_>) -> String {
    let findings = format!(
        "(variables.pod.?securityContext.?runAsUser.orValue(1) == 0 ? ['runAsUser=0 (pod \
         {DETAIL})'] : []) + {}",
        containers_where(
            "c.?securityContext.?runAsUser.orValue(1) == 0",
            &format!("'runAsUser=0 (' + {WHO} + ' {DETAIL})'"),
        )
    );
    if cx.pss_has(PssChange::UserNamespacePods) {
        format!("variables.pod.?hostUsers.orValue(true) == false ? [] : {findings}")
    } else {
        findings
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::pod;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn non_root_uid_passes() {
        let p = pod(
            json!({"runAsUser": 10001}),
            json!({"securityContext": {"runAsUser": 1000}}),
        );
        assert!(run_rule("run-as-user", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn uid_zero_is_a_finding_unless_user_namespaced() {
        let p = pod(json!({"runAsUser": 0}), json!({}));
        let e = run_rule("run-as-user", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.path, "/spec/containers/0/securityContext/runAsUser");
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "runAsUser=0 (container \"app\" must not set runAsUser=0)"
        );
        let p = pod(json!({"runAsUser": 0}), json!({"hostUsers": false}));
        assert!(run_rule("run-as-user", &p, Tier::Foundation)
            .findings
            .is_empty());
    }
}
