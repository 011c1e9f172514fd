//! PSS `seccompProfile_restricted` (restricted, v1.19+; Windows pods exempt
//! from v1.25): every container must run with a RuntimeDefault or Localhost
//! seccomp profile. Replaces `seccompProfile_baseline` under restricted.
use super::prelude::*;
use serde_json::{json, Value};

use super::pss_common::{in_container, is_windows, msg, pod_sc_path, sc_path, who, windows_exempt};
use super::seccomp_profile::{
    explicit_field_violations, explicit_field_violations_cel, POD_VALID_CEL,
};
use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "seccomp-profile-restricted",
    tier: Tier::Production,
    pss: Some(PssCheck {
        check_id: "seccompProfile_restricted",
        level: PssLevel::Restricted,
        min_minor: 19,
        overrides: &["seccomp-profile"],
    }),
    summary: "every container must run with seccomp profile RuntimeDefault or Localhost",
    doc: "Without a seccomp profile a container may be unconfined (the kubelet's \
default unless SeccompDefault is on), able to make every system call the kernel \
offers. Pod Security Standards restricted requires `seccompProfile.type` to be \
`RuntimeDefault` or `Localhost`, set at pod level or on every container (policy \
v1.19+; Windows pods are exempt from v1.25). The fix sets the pod-level profile to \
`RuntimeDefault` when the pod sets none and some container has none of its own; \
explicit profiles are left alone. \
Safety: RuntimeDefault is the runtime's own default profile (what Docker always used), blocking only system calls containers should not make; a workload that needs more sets its own profile, which the fix never touches, and Windows pods get nothing.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "set pod securityContext.seccompProfile.type: RuntimeDefault",
        apply: FixFn::Pod(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if r.pss_has(PssChange::WindowsPodsExempt) && is_windows(&pod.spec) {
        return Ok(());
    }
    let pod_valid = explicit_field_violations(pod, out);
    if pod_valid {
        return Ok(());
    }
    for c in pod.containers() {
        if c.security_context
            .and_then(|s| s.seccomp_profile.as_ref())
            .is_none()
        {
            out.push(in_container(
                &c,
                format!("{}/seccompProfile", sc_path(&c)),
                msg(
                    "seccompProfile",
                    format!(
                        "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                        who(&c)
                    ),
                ),
            ));
        }
    }
    Ok(())
}

fn fix(pod: &PodTemplate, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    // seccompProfile is Linux-only: the API rejects it on Windows pods.
    if is_windows(&pod.spec) {
        return false;
    }
    let needs = pod.containers().iter().any(|c| {
        c.security_context
            .and_then(|s| s.seccomp_profile.as_ref())
            .is_none()
    });
    needs
        && fixutil::set_default(
            obj,
            &pod_sc_path(pod),
            "seccompProfile",
            json!({"type": "RuntimeDefault"}),
        )
}

/// The fix as CEL: the pod-level profile, when the pod sets none and some
/// container has none of its own.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let spec = p.spec_value();
    let when = format!(
        "!({}) && !{spec}.?securityContext.?seccompProfile.hasValue() && \
         {}.exists(c, !c.?securityContext.?seccompProfile.hasValue())",
        p.windows(),
        p.containers()
    );
    cel::CelPatch {
        patch: format!(
            "({when}) ? [{}] : []",
            p.add_under(
                &spec,
                &lit(p.spec),
                &p.type_of(""),
                &["securityContext", "seccompProfile"],
                |t| format!("{t}{{type: 'RuntimeDefault'}}"),
            )
        ),
        when,
        variables: Vec::new(),
        writes: vec![cel::Field::PodSecurityContext],
        ..Default::default()
    }
}

fn cel(cx: &CelCtx<'_>) -> String {
    windows_exempt(
        cx,
        format!(
            "{} + ({POD_VALID_CEL} ? [] : {})",
            explicit_field_violations_cel(),
            containers_where(
                "!c.?securityContext.?seccompProfile.hasValue()",
                &format!(
                    "'seccompProfile (pod or ' + {WHO} + ' must set \
                     securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")'"
                ),
            )
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::{cronjob, deployment, pod};
    use crate::policy::rules::testutil::{assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn pod_level_profile_passes() {
        let p = pod(
            json!({}),
            json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}),
        );
        assert!(run_rule("seccomp-profile-restricted", &p, Tier::Production)
            .findings
            .is_empty());
    }

    #[test]
    fn missing_and_unconfined_are_findings() {
        let p = pod(
            json!({"seccompProfile": {"type": "Unconfined"}}),
            json!({"initContainers": [{"name": "init", "image": "busybox:1.36"}]}),
        );
        let e = run_rule("seccomp-profile-restricted", &p, Tier::Production);
        assert_eq!(e.findings.len(), 2);
        assert_eq!(
            e.findings[0].path,
            "/spec/containers/0/securityContext/seccompProfile/type"
        );
        assert_eq!(
            e.findings[0].message,
            "seccompProfile (container \"app\" must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
        assert_eq!(
            e.findings[1].path,
            "/spec/initContainers/0/securityContext/seccompProfile"
        );
        assert_eq!(e.findings[1].container.as_deref(), Some("init"));
        assert_eq!(
            e.findings[1].message,
            "seccompProfile (pod or container \"init\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
    }

    #[test]
    fn windows_pods_are_exempt_and_untouched() {
        let p = pod(json!({}), json!({"os": {"name": "windows"}}));
        let e = run_rule("seccomp-profile-restricted", &p, Tier::Production);
        assert!(e.findings.is_empty());
        assert!(e.fixed.is_none());
    }

    #[test]
    fn fix_sets_pod_level_runtime_default() {
        let d = deployment(json!({
            "securityContext": {"runAsNonRoot": true},
            "containers": [
                {"name": "app", "image": "nginx:1.27"},
                {"name": "agent", "image": "agent:3",
                 "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "agent.json"}}}]}));
        let fixed = assert_fix_sound("seccomp-profile-restricted", &d, Tier::Production);
        let spec = &fixed["spec"]["template"]["spec"];
        assert_eq!(
            spec["securityContext"],
            json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
        );
        assert_eq!(
            spec["containers"][1]["securityContext"]["seccompProfile"]["type"],
            json!("Localhost")
        );
        let c = cronjob(json!({"restartPolicy": "OnFailure",
            "containers": [{"name": "report", "image": "report:2.1"}]}));
        let fixed = assert_fix_sound("seccomp-profile-restricted", &c, Tier::Production);
        assert_eq!(
            fixed.pointer(
                "/spec/jobTemplate/spec/template/spec/securityContext/seccompProfile/type"
            ),
            Some(&json!("RuntimeDefault"))
        );
    }

    #[test]
    fn fix_leaves_an_explicit_pod_profile() {
        let d = deployment(json!({
            "securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "app", "image": "nginx:1.27"}]}));
        let e = run_rule("seccomp-profile-restricted", &d, Tier::Production);
        assert!(e.fixed.is_none());
        assert_eq!(e.findings.len(), 2);
    }
}
