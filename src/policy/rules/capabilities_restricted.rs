//! PSS `capabilities_restricted` (restricted, v1.22+; Windows pods exempt
//! from v1.25): drop ALL capabilities, add back at most NET_BIND_SERVICE.
//! Replaces `capabilities_baseline` under restricted.
use super::prelude::*;
use serde_json::Value;

use super::pss_common::{
    in_container, is_windows, known_non_root, msg, q, sc_path, who, windows_exempt,
};
use crate::policy::fixutil;
use crate::policy::target::ContainerView;

pub static RULE: Rule = Rule {
    id: "capabilities-restricted",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "capabilities_restricted",
        level: PssLevel::Restricted,
        min_minor: 22,
        overrides: &["capabilities-baseline"],
    }),
    summary: "containers must drop ALL capabilities and add back only NET_BIND_SERVICE",
    doc: "Even the runtime's default capabilities (CHOWN, DAC_OVERRIDE, SETUID, \
NET_RAW...) are more than most programs need, and each one widens what an attacker \
inside the container can do. Pod Security Standards restricted requires every \
container to set `securityContext.capabilities.drop: [\"ALL\"]` and to add back at \
most `NET_BIND_SERVICE` (policy v1.22+; Windows pods are exempt from v1.25). \
Fix and its safety: it appends \"ALL\" to `capabilities.drop` (keeping what is \
listed; capabilities the container adds are left for you to review) only on \
containers known not to run as root (a non-zero `runAsUser`, or `runAsNonRoot: true`, \
at container or pod level): a process that starts as root (the official nginx, redis, \
postgres, mysql, wordpress and mongo images do) needs CHOWN, SETUID and SETGID to \
switch user, and would crash-loop without them. On other containers it declines and \
the finding says so; it never touches a Windows pod.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "add \"ALL\" to securityContext.capabilities.drop",
        apply: FixFn::Pod(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

const REASON: &str = "unrestricted capabilities";

/// Why the fix leaves a container alone.
const MAY_RUN_AS_ROOT: &str = "the container may start as root and need CHOWN/SETUID/SETGID; \
set runAsNonRoot: true or a non-zero runAsUser first";

fn drops<'a>(c: &ContainerView<'a>) -> &'a [String] {
    c.security_context
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|caps| caps.drop.as_deref())
        .unwrap_or_default()
}

fn drops_all(c: &ContainerView<'_>) -> bool {
    drops(c).iter().any(|x| x == "ALL")
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if r.pss_has(PssChange::WindowsPodsExempt) && is_windows(&pod.spec) {
        return Ok(());
    }
    for c in pod.containers() {
        if !drops_all(&c) {
            let v = in_container(
                &c,
                format!("{}/capabilities/drop", sc_path(&c)),
                msg(
                    REASON,
                    format!(
                        "{} must set securityContext.capabilities.drop=[\"ALL\"]{}",
                        who(&c),
                        // `all` is not `ALL`: capability names are matched exactly.
                        if drops(&c).iter().any(|x| x.eq_ignore_ascii_case("all")) {
                            " (capability names are case-sensitive: \"all\" is not \"ALL\")"
                        } else {
                            ""
                        }
                    ),
                ),
            );
            out.push(if known_non_root(pod, &c) {
                v
            } else {
                v.declined(MAY_RUN_AS_ROOT)
            });
        }
        let adds = c
            .security_context
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.as_ref());
        for (k, cap) in adds.into_iter().flatten().enumerate() {
            if cap != "NET_BIND_SERVICE" {
                out.push(in_container(
                    &c,
                    format!("{}/capabilities/add/{k}", sc_path(&c)),
                    msg(
                        REASON,
                        format!(
                            "{} must not include {} in securityContext.capabilities.add",
                            who(&c),
                            q(cap)
                        ),
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn fix(pod: &PodTemplate, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    // Capabilities are Linux-only: the API rejects them on Windows pods.
    if is_windows(&pod.spec) {
        return false;
    }
    let mut changed = false;
    for c in pod
        .containers()
        .into_iter()
        .filter(|c| known_non_root(pod, c))
    {
        let Some(caps) = fixutil::object_at(obj, &format!("{}/capabilities", sc_path(&c))) else {
            continue;
        };
        let drop = caps.entry("drop").or_insert(Value::Null);
        if drop.is_null() {
            *drop = Value::Array(Vec::new());
        }
        if let Some(list) = drop.as_array_mut() {
            if !list.iter().any(|x| x == "ALL") {
                list.push(Value::String("ALL".into()));
                changed = true;
            }
        }
    }
    changed
}

/// The fix as CEL: "ALL" appended to (or made) `capabilities.drop` of the
/// containers known not to run as root.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let spec = p.spec_value();
    // known_non_root: the container's runAsUser, else the pod's; non-zero,
    // or, when neither sets one, runAsNonRoot (container's, else pod's).
    let user = format!("c.?securityContext.?runAsUser.or({spec}.?securityContext.?runAsUser)");
    let cond = format!(
        "({user}.hasValue() ? {user}.value() > 0 : \
         c.?securityContext.?runAsNonRoot.or({spec}.?securityContext.?runAsNonRoot).orValue(false)) \
         && !c.?securityContext.?capabilities.?drop.orValue([]).exists(x, x == 'ALL')"
    );
    cel::CelPatch {
        when: format!("!({}) && {}.exists(c, {cond})", p.windows(), p.containers()),
        patch: format!(
            "({}) ? [] : {}",
            p.windows(),
            p.per_container(&cond, |at, ty| {
                format!(
                    "c.?securityContext.?capabilities.?drop.hasValue() ? {} : {}",
                    cel::patch_add(
                        &format!("{at} + '/securityContext/capabilities/drop/-'"),
                        "'ALL'"
                    ),
                    p.add_under(
                        "c",
                        at,
                        ty,
                        &["securityContext", "capabilities", "drop"],
                        |_| "['ALL']".into()
                    )
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

fn cel(cx: &CelCtx<'_>) -> String {
    let caps = "c.?securityContext.?capabilities";
    let findings = format!(
        "{} + {}",
        containers_where(
            &format!("!({caps}.?drop.orValue([]).exists(x, x == 'ALL'))"),
            &format!(
                "'{REASON} (' + {WHO} + ' must set securityContext.capabilities.drop=[\"ALL\"])'"
            ),
        ),
        containers_where(
            &format!("{caps}.?add.orValue([]).exists(x, x != 'NET_BIND_SERVICE')"),
            &format!(
                "'{REASON} (' + {WHO} + ' must not include ' + \
                 c.securityContext.capabilities.add.filter(x, x != 'NET_BIND_SERVICE').join(', ') \
                 + ' in securityContext.capabilities.add)'"
            ),
        )
    );
    windows_exempt(cx, findings)
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::{cronjob, deployment, pod};
    use crate::policy::rules::testutil::{assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn drop_all_with_net_bind_service_passes() {
        let p = pod(
            json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}),
            json!({}),
        );
        assert!(run_rule("capabilities-restricted", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn missing_drop_and_extra_add_are_findings() {
        let p = pod(
            json!({"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}}),
            json!({}),
        );
        let e = run_rule("capabilities-restricted", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 2);
        assert_eq!(
            e.findings[0].path,
            "/spec/containers/0/securityContext/capabilities/drop"
        );
        assert_eq!(e.findings[0].container.as_deref(), Some("app"));
        assert!(
            e.findings[0].message.starts_with(
            "unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]); not fixed: the container may start as root"
        ), "{}", e.findings[0].message);
        assert!(!e.findings[0].fixable);
        assert_eq!(
            e.findings[1].path,
            "/spec/containers/0/securityContext/capabilities/add/1"
        );
        assert_eq!(
            e.findings[1].message,
            "unrestricted capabilities (container \"app\" must not include \"CHOWN\" in securityContext.capabilities.add)"
        );
    }

    #[test]
    fn replaces_capabilities_baseline_from_v1_22() {
        use crate::policy::pss::{PssLevel, PssVersion};
        use crate::policy::{Context, Engine, Mode, Options};
        let p = pod(json!({"capabilities": {"add": ["SYS_ADMIN"]}}), json!({}));
        let rules = |minor| {
            let opts = Options {
                pss: Some((PssLevel::Restricted, PssVersion { minor })),
                only: None,
                fix: false,
                exact_fixable: false,
                skip_covered: false,
            };
            let mut r: Vec<&str> = Engine::new(Default::default())
                .evaluate(&p, &Context::new(Tier::Hyperscale, Mode::Enforce), &opts)
                .unwrap()
                .findings
                .iter()
                .filter(|f| f.rule.starts_with("capabilities"))
                .map(|f| f.rule)
                .collect();
            r.dedup();
            r
        };
        assert_eq!(rules(21), vec!["capabilities-baseline"]);
        assert_eq!(rules(22), vec!["capabilities-restricted"]);
    }

    #[test]
    fn windows_pods_are_exempt() {
        let p = pod(json!({}), json!({"os": {"name": "windows"}}));
        let e = run_rule("capabilities-restricted", &p, Tier::Foundation);
        assert!(e.findings.is_empty());
        assert!(e.fixed.is_none());
    }

    #[test]
    fn fix_appends_all_and_keeps_user_values() {
        let d = deployment(json!({
            "securityContext": {"runAsNonRoot": true},
            "initContainers": [{"name": "migrate", "image": "migrate:4"}],
            "containers": [
                {"name": "app", "image": "nginx:1.27",
                 "securityContext": {"readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE"]}}},
                {"name": "sidecar", "image": "envoy:1.31",
                 "securityContext": {"capabilities": {"drop": ["ALL"]}}}]}));
        let fixed = assert_fix_sound("capabilities-restricted", &d, Tier::Foundation);
        let spec = &fixed["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["securityContext"],
            json!({"readOnlyRootFilesystem": true,
                   "capabilities": {"drop": ["NET_RAW", "ALL"], "add": ["NET_BIND_SERVICE"]}})
        );
        assert_eq!(
            spec["containers"][1]["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
        assert_eq!(
            spec["initContainers"][0]["securityContext"],
            json!({"capabilities": {"drop": ["ALL"]}})
        );

        let c = cronjob(json!({"restartPolicy": "Never",
            "containers": [{"name": "report", "image": "report:2.1",
                "securityContext": {"runAsUser": 1000}}]}));
        let fixed = assert_fix_sound("capabilities-restricted", &c, Tier::Foundation);
        assert_eq!(
            fixed.pointer(
                "/spec/jobTemplate/spec/template/spec/containers/0/securityContext/capabilities/drop"
            ),
            Some(&json!(["ALL"]))
        );
    }

    #[test]
    fn a_lowercase_all_is_named_as_the_reason() {
        let p = pod(json!({"capabilities": {"drop": ["all"]}}), json!({}));
        let e = run_rule("capabilities-restricted", &p, Tier::Foundation);
        assert!(
            e.findings[0]
                .message
                .contains("case-sensitive: \"all\" is not \"ALL\""),
            "{}",
            e.findings[0].message
        );
    }

    /// Images that start as root (nginx, redis, postgres...) need CHOWN,
    /// SETUID and SETGID: the fix leaves containers that may run as root.
    #[test]
    fn containers_that_may_run_as_root_are_not_fixed() {
        for (pod_sc, container_sc) in [
            (json!(null), json!(null)),
            (json!({"runAsNonRoot": true}), json!({"runAsUser": 0})),
            (json!({"runAsUser": 0}), json!({})),
            (json!({"runAsNonRoot": false}), json!({})),
        ] {
            let d = deployment(json!({"securityContext": pod_sc,
                "containers": [{"name": "db", "image": "postgres:16", "securityContext": container_sc}]}));
            let e = run_rule("capabilities-restricted", &d, Tier::Foundation);
            assert!(
                e.patch.0.is_empty(),
                "{pod_sc} {container_sc}: patched {:?}",
                e.patch
            );
            assert!(e.findings.iter().all(|f| !f.fixable));
            assert!(e.findings[0].message.contains("may start as root"));
        }
        // Known non-root at the container, whatever the pod says.
        let d = deployment(json!({"securityContext": {"runAsUser": 0},
            "containers": [{"name": "app", "image": "app:1", "securityContext": {"runAsUser": 1000}}]}));
        let e = run_rule("capabilities-restricted", &d, Tier::Foundation);
        assert!(!e.patch.0.is_empty());
    }
}
