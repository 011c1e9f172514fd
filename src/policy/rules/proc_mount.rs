//! PSS `procMount` (baseline, v1.0+; from v1.35 user-namespace pods are
//! exempt): containers keep the default masked /proc.
use super::prelude::*;
use super::pss_common::{in_container, msg, q, sc_path, user_namespace, who};

pub static RULE: Rule = Rule {
    id: "proc-mount",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "procMount",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "containers must keep the default masked /proc",
    doc: "The runtime masks and makes read-only the parts of /proc that expose or \
control the host kernel; `procMount: Unmasked` hands them to the container. Pod \
Security Standards baseline allows only `Default` (or unset) in \
`securityContext.procMount`; from v1.35 a pod in its own user namespace \
(`hostUsers: false`) may unmask /proc, since it cannot touch the host's view. \
Remove `procMount`, or run the pod with `hostUsers: false` if it truly needs it \
(restricted still forbids it).",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if r.pss_has(PssChange::UserNamespacePods) && user_namespace(&pod.spec) {
        return Ok(());
    }
    non_default_proc_mounts(pod, out);
    Ok(())
}

/// Every container whose `procMount` is set to something else than `Default`.
pub fn non_default_proc_mounts(pod: &PodTemplate, out: &mut Vec<Violation>) {
    for c in pod.containers() {
        if let Some(pm) = c.security_context.and_then(|s| s.proc_mount.as_deref()) {
            if pm != "Default" {
                out.push(in_container(
                    &c,
                    format!("{}/procMount", sc_path(&c)),
                    msg(
                        "procMount",
                        format!(
                            "{} must not set securityContext.procMount to {}",
                            who(&c),
                            q(pm)
                        ),
                    ),
                ));
            }
        }
    }
}

fn cel(cx: &CelCtx<'_>) -> String {
    let mounts = non_default_proc_mounts_cel();
    if cx.pss_has(PssChange::UserNamespacePods) {
        format!("variables.pod.?hostUsers.orValue(true) == false ? [] : {mounts}")
    } else {
        mounts
    }
}

/// [`non_default_proc_mounts`] in CEL.
pub fn non_default_proc_mounts_cel() -> String {
    containers_where(
        "c.?securityContext.?procMount.orValue('Default') != 'Default'",
        &format!(
            "'procMount (' + {WHO} + ' must not set securityContext.procMount to ' + \
             c.securityContext.procMount + ')'"
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::pod;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn default_proc_mount_passes() {
        let p = pod(json!({"procMount": "Default"}), json!({}));
        assert!(run_rule("proc-mount", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn unmasked_is_a_finding_unless_user_namespaced() {
        let p = pod(json!({"procMount": "Unmasked"}), json!({}));
        let e = run_rule("proc-mount", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.path, "/spec/containers/0/securityContext/procMount");
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "procMount (container \"app\" must not set securityContext.procMount to \"Unmasked\")"
        );
        let p = pod(
            json!({"procMount": "Unmasked"}),
            json!({"hostUsers": false}),
        );
        assert!(run_rule("proc-mount", &p, Tier::Foundation)
            .findings
            .is_empty());
    }
}
