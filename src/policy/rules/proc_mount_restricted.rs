//! PSS `procMount_restricted` (restricted, v1.35+): the default masked /proc,
//! even in a user namespace. Replaces `procMount` under restricted.
use super::prelude::*;
use super::proc_mount::{non_default_proc_mounts, non_default_proc_mounts_cel};

pub static RULE: Rule = Rule {
    id: "proc-mount-restricted",
    tier: Tier::Production,
    pss: Some(PssCheck {
        check_id: "procMount_restricted",
        level: PssLevel::Restricted,
        min_minor: 35,
        overrides: &["proc-mount"],
    }),
    summary: "containers must keep the default masked /proc, even with hostUsers: false",
    doc: "Pod Security Standards restricted (from v1.35) allows only `Default` (or \
unset) in `securityContext.procMount`, with no exception for pods in their own user \
namespace: an unmasked /proc still widens what a compromised process can probe and \
tune. It replaces the baseline `proc-mount` rule, which exempts user-namespace \
pods. Remove `procMount` from every container, init container and ephemeral \
container.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    non_default_proc_mounts(pod, out);
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    non_default_proc_mounts_cel()
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::pod;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn unset_proc_mount_passes() {
        let p = pod(json!({}), json!({"hostUsers": false}));
        assert!(run_rule("proc-mount-restricted", &p, Tier::Production)
            .findings
            .is_empty());
    }

    #[test]
    fn unmasked_is_a_finding_even_in_a_user_namespace() {
        let p = pod(
            json!({"procMount": "Unmasked"}),
            json!({"hostUsers": false}),
        );
        let e = run_rule("proc-mount-restricted", &p, Tier::Production);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(
            e.findings[0].path,
            "/spec/containers/0/securityContext/procMount"
        );
        assert_eq!(e.findings[0].container.as_deref(), Some("app"));
        assert_eq!(
            e.findings[0].message,
            "procMount (container \"app\" must not set securityContext.procMount to \"Unmasked\")"
        );
    }
}
