//! PSS `runAsNonRoot` (restricted, v1.0+; from v1.35 user-namespace pods are
//! exempt): every container must be required to run as a non-root user.
use super::prelude::*;
use serde_json::Value;

use super::pss_common::{in_container, msg, pod_sc_path, sc_path, user_namespace, who};
use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "run-as-non-root",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "runAsNonRoot",
        level: PssLevel::Restricted,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "containers must run with runAsNonRoot: true",
    doc: "With `runAsNonRoot: true` the kubelet refuses to start a container whose \
user would be root, so an image that forgot its USER line fails loudly instead of \
running as root. Pod Security Standards restricted requires it: set \
`securityContext.runAsNonRoot: true` at pod level (or on every container), and no \
container may set it to false (from v1.35 pods with `hostUsers: false` are exempt). \
The fix is opt-in because an image that does run as root will then fail to start: \
it sets the pod-level field only when it is unset and leaves explicit container \
values alone. \
Safety: opt-in, because an image that runs as root stops starting (the kubelet refuses it); it never changes an explicit value.",
    check: Check::Pod(check),
    fix: Fix::OptIn {
        summary: "set pod securityContext.runAsNonRoot: true",
        apply: FixFn::Pod(fix),
    },
    cel: Cel::Findings(cel),
};

const REASON: &str = "runAsNonRoot != true";

fn exempt(pod: &PodTemplate, r: &RuleCtx<'_>) -> bool {
    r.pss_has(PssChange::UserNamespacePods) && user_namespace(&pod.spec)
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if exempt(pod, r) {
        return Ok(());
    }
    let pod_value = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root);
    if pod_value == Some(false) {
        out.push(Violation::new(
            format!("{}/runAsNonRoot", pod_sc_path(pod)),
            msg(
                REASON,
                "pod must not set securityContext.runAsNonRoot=false",
            ),
        ));
    }
    for c in pod.containers() {
        let path = format!("{}/runAsNonRoot", sc_path(&c));
        match c.security_context.and_then(|s| s.run_as_non_root) {
            Some(true) => {}
            Some(false) => out.push(in_container(
                &c,
                path,
                msg(
                    REASON,
                    format!(
                        "{} must not set securityContext.runAsNonRoot=false",
                        who(&c)
                    ),
                ),
            )),
            None if pod_value != Some(true) => out.push(in_container(
                &c,
                path,
                msg(
                    REASON,
                    format!(
                        "pod or {} must set securityContext.runAsNonRoot=true",
                        who(&c)
                    ),
                ),
            )),
            None => {}
        }
    }
    Ok(())
}

fn fix(pod: &PodTemplate, r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    if exempt(pod, r) {
        return false;
    }
    let needs = pod
        .containers()
        .iter()
        .any(|c| c.security_context.and_then(|s| s.run_as_non_root).is_none());
    needs && fixutil::set_default(obj, &pod_sc_path(pod), "runAsNonRoot", Value::Bool(true))
}

fn cel(cx: &CelCtx<'_>) -> String {
    let pod = "variables.pod.?securityContext.?runAsNonRoot";
    let findings = format!(
        "({pod}.orValue(true) == false ? ['{REASON} (pod must not set \
         securityContext.runAsNonRoot=false)'] : []) + {}",
        containers_where(
            &format!("!c.?securityContext.?runAsNonRoot.orValue({pod}.orValue(false))"),
            &format!(
                "'{REASON} (' + (c.?securityContext.?runAsNonRoot.hasValue() ? {WHO} + ' must \
                 not set securityContext.runAsNonRoot=false' : 'pod or ' + {WHO} + ' must set \
                 securityContext.runAsNonRoot=true') + ')'"
            ),
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
    use crate::policy::rules::pss_common::test::{cronjob, deployment, pod};
    use crate::policy::rules::testutil::{assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn pod_level_true_passes() {
        let p = pod(
            json!({}),
            json!({"securityContext": {"runAsNonRoot": true}}),
        );
        assert!(run_rule("run-as-non-root", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn unset_and_false_are_findings() {
        let p = pod(
            json!({"runAsNonRoot": false}),
            json!({"initContainers": [{"name": "init", "image": "busybox:1.36"}]}),
        );
        let e = run_rule("run-as-non-root", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 2);
        assert_eq!(
            e.findings[0].path,
            "/spec/initContainers/0/securityContext/runAsNonRoot"
        );
        assert_eq!(e.findings[0].container.as_deref(), Some("init"));
        assert_eq!(
            e.findings[0].message,
            "runAsNonRoot != true (pod or container \"init\" must set securityContext.runAsNonRoot=true)"
        );
        assert_eq!(
            e.findings[1].path,
            "/spec/containers/0/securityContext/runAsNonRoot"
        );
        assert_eq!(
            e.findings[1].message,
            "runAsNonRoot != true (container \"app\" must not set securityContext.runAsNonRoot=false)"
        );
    }

    #[test]
    fn user_namespace_pods_are_exempt_from_v1_35() {
        let p = pod(json!({}), json!({"hostUsers": false}));
        assert!(run_rule("run-as-non-root", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn fix_sets_pod_level_and_keeps_user_values() {
        let d = deployment(json!({
            "securityContext": {"fsGroup": 2000},
            "containers": [
                {"name": "app", "image": "nginx:1.27", "securityContext": {"runAsUser": 101}},
                {"name": "sidecar", "image": "envoy:1.31", "securityContext": {"runAsNonRoot": true}}]}));
        let fixed = assert_fix_sound("run-as-non-root", &d, Tier::Foundation);
        assert_eq!(
            fixed["spec"]["template"]["spec"]["securityContext"],
            json!({"fsGroup": 2000, "runAsNonRoot": true})
        );
        assert_eq!(
            fixed["spec"]["template"]["spec"]["containers"][1]["securityContext"],
            json!({"runAsNonRoot": true})
        );

        let c = cronjob(json!({"restartPolicy": "OnFailure",
            "containers": [{"name": "report", "image": "report:2.1"}]}));
        let fixed = assert_fix_sound("run-as-non-root", &c, Tier::Foundation);
        assert_eq!(
            fixed.pointer("/spec/jobTemplate/spec/template/spec/securityContext/runAsNonRoot"),
            Some(&json!(true))
        );
    }

    #[test]
    fn fix_leaves_explicit_false() {
        let d = deployment(json!({"containers": [
            {"name": "app", "image": "nginx:1.27", "securityContext": {"runAsNonRoot": false}}]}));
        let e = run_rule("run-as-non-root", &d, Tier::Foundation);
        assert!(e.fixed.is_none(), "{:?}", e.patch);
        assert_eq!(e.findings.len(), 1);
    }
}
