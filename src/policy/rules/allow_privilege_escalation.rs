//! PSS `allowPrivilegeEscalation` (restricted, v1.8+; Windows pods exempt
//! from v1.25): every container must set allowPrivilegeEscalation: false.
use super::prelude::*;
use serde_json::Value;

use super::pss_common::{in_container, is_windows, msg, sc_path, who, windows_exempt};
use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "allow-privilege-escalation",
    tier: Tier::Production,
    pss: Some(PssCheck {
        check_id: "allowPrivilegeEscalation",
        level: PssLevel::Restricted,
        min_minor: 8,
        overrides: &[],
    }),
    summary: "containers must set allowPrivilegeEscalation: false",
    doc: "Unless `allowPrivilegeEscalation` is false, a process in the container can \
gain more privileges than its parent (setuid binaries, file capabilities): the \
classic way from an unprivileged foothold to root. Kubernetes leaves it on by \
default, so Pod Security Standards restricted requires every container to set \
`securityContext.allowPrivilegeEscalation: false` explicitly (policy v1.8+; Windows \
pods are exempt from v1.25). The fix sets it where it is unset, except on containers \
that are privileged or add CAP_SYS_ADMIN (the API rejects that combination); an \
explicit `true` is left for you to change. \
Safety: the flag only stops a process from gaining privileges it was not started with (setuid binaries, file capabilities); a workload that needs that is privileged or adds CAP_SYS_ADMIN, where the fix declines, or sets `true` explicitly, which it never overrides.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "set securityContext.allowPrivilegeEscalation: false where unset",
        apply: FixFn::Pod(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if r.pss_has(PssChange::WindowsPodsExempt) && is_windows(&pod.spec) {
        return Ok(());
    }
    for c in pod.containers() {
        if c.security_context
            .and_then(|s| s.allow_privilege_escalation)
            != Some(false)
        {
            out.push(in_container(
                &c,
                format!("{}/allowPrivilegeEscalation", sc_path(&c)),
                msg(
                    "allowPrivilegeEscalation != false",
                    format!(
                        "{} must set securityContext.allowPrivilegeEscalation=false",
                        who(&c)
                    ),
                ),
            ));
        }
    }
    Ok(())
}

/// Whether the API would reject `allowPrivilegeEscalation: false` next to
/// this security context (privileged, or CAP_SYS_ADMIN added).
fn needs_escalation(sc: Option<&Value>) -> bool {
    let Some(sc) = sc else { return false };
    if sc.get("privileged") == Some(&Value::Bool(true)) {
        return true;
    }
    sc.pointer("/capabilities/add")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN" || c == "SYS_ADMIN"))
}

fn fix(pod: &PodTemplate, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    // A Linux-only field: the API rejects it on Windows pods.
    if is_windows(&pod.spec) {
        return false;
    }
    let mut changed = false;
    for c in pod.containers() {
        let path = sc_path(&c);
        if needs_escalation(obj.pointer(&path)) {
            continue;
        }
        changed |= fixutil::set_default(obj, &path, "allowPrivilegeEscalation", Value::Bool(false));
    }
    changed
}

fn cel(cx: &CelCtx<'_>) -> String {
    windows_exempt(
        cx,
        containers_where(
            "c.?securityContext.?allowPrivilegeEscalation.orValue(true) != false",
            &format!(
                "'allowPrivilegeEscalation != false (' + {WHO} + ' must set \
                 securityContext.allowPrivilegeEscalation=false)'"
            ),
        ),
    )
}

/// The fix as CEL: the same containers, the same field.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let cond = "!c.?securityContext.?allowPrivilegeEscalation.hasValue() && \
                !(c.?securityContext.?privileged.orValue(false) == true || \
                c.?securityContext.?capabilities.?add.orValue([]).exists(x, x == 'CAP_SYS_ADMIN' \
                || x == 'SYS_ADMIN'))";
    cel::CelPatch {
        when: format!("!({}) && {}.exists(c, {cond})", p.windows(), p.containers()),
        patch: format!(
            "({}) ? [] : {}",
            p.windows(),
            p.per_container(cond, |at, ty| {
                p.add_under(
                    "c",
                    at,
                    ty,
                    &["securityContext", "allowPrivilegeEscalation"],
                    |_| "false".into(),
                )
            })
        ),
        variables: Vec::new(),
        writes: vec![cel::Field::ContainerSecurityContext],
        writes_where: vec![(
            cel::Field::ContainerSecurityContext,
            format!("!({}) && {cond}", p.windows()),
        )],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::{cronjob, deployment, pod};
    use crate::policy::rules::testutil::{assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn explicit_false_passes() {
        let p = pod(json!({"allowPrivilegeEscalation": false}), json!({}));
        assert!(run_rule("allow-privilege-escalation", &p, Tier::Production)
            .findings
            .is_empty());
    }

    #[test]
    fn unset_is_a_finding() {
        let p = pod(json!({}), json!({}));
        let e = run_rule("allow-privilege-escalation", &p, Tier::Production);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(
            f.path,
            "/spec/containers/0/securityContext/allowPrivilegeEscalation"
        );
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false)"
        );
    }

    #[test]
    fn windows_pods_are_exempt_and_untouched() {
        let p = pod(json!({}), json!({"os": {"name": "windows"}}));
        let e = run_rule("allow-privilege-escalation", &p, Tier::Production);
        assert!(e.findings.is_empty());
        assert!(e.fixed.is_none());
    }

    #[test]
    fn fix_sets_false_where_unset() {
        let d = deployment(json!({
            "initContainers": [{"name": "migrate", "image": "migrate:4", "restartPolicy": "Always"}],
            "containers": [
                {"name": "app", "image": "nginx:1.27", "securityContext": {"runAsUser": 101}},
                {"name": "sidecar", "image": "envoy:1.31"}]}));
        let fixed = assert_fix_sound("allow-privilege-escalation", &d, Tier::Production);
        let spec = &fixed["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["securityContext"],
            json!({"runAsUser": 101, "allowPrivilegeEscalation": false})
        );
        assert_eq!(
            spec["containers"][1]["securityContext"]["allowPrivilegeEscalation"],
            json!(false)
        );
        assert_eq!(
            spec["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"],
            json!(false)
        );
        let c = cronjob(json!({"restartPolicy": "OnFailure",
            "containers": [{"name": "report", "image": "report:2.1"}]}));
        assert_fix_sound("allow-privilege-escalation", &c, Tier::Production);
    }

    #[test]
    fn fix_leaves_privileged_sys_admin_and_explicit_true() {
        let d = deployment(json!({"containers": [
            {"name": "priv", "image": "x:1", "securityContext": {"privileged": true}},
            {"name": "admin", "image": "x:1",
             "securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}},
            {"name": "yes", "image": "x:1", "securityContext": {"allowPrivilegeEscalation": true}},
            {"name": "plain", "image": "x:1"}]}));
        let e = run_rule("allow-privilege-escalation", &d, Tier::Production);
        let fixed = e.fixed.expect("plain container fixed");
        let cs = &fixed["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["securityContext"], json!({"privileged": true}));
        assert_eq!(
            cs[1]["securityContext"],
            json!({"capabilities": {"add": ["CAP_SYS_ADMIN"]}})
        );
        assert_eq!(
            cs[2]["securityContext"]["allowPrivilegeEscalation"],
            json!(true)
        );
        assert_eq!(
            cs[3]["securityContext"]["allowPrivilegeEscalation"],
            json!(false)
        );
        // The three the fix left stay findings.
        assert_eq!(e.findings.len(), 4);
        let after = run_rule("allow-privilege-escalation", &fixed, Tier::Production);
        assert_eq!(after.findings.len(), 3);
        assert!(after.fixed.is_none());
    }
}
