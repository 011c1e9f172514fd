//! PSS `seccompProfile_baseline` (baseline): seccomp may not be turned off.
//! Up to v1.18 through the alpha annotations, from v1.19 through the
//! `seccompProfile` fields.
use super::prelude::*;
use k8s_openapi::api::core::v1::SeccompProfile;

use super::pss_common::{annotation_path, in_container, msg, pod_sc_path, q, sc_path, who};

pub static RULE: Rule = Rule {
    id: "seccomp-profile",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "seccompProfile_baseline",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "seccomp must not be disabled (profile RuntimeDefault or Localhost only)",
    doc: "Seccomp filters the system calls a container may make; the `Unconfined` \
profile lets it call everything the kernel offers, the usual first step of a kernel \
exploit. Pod Security Standards baseline allows `securityContext.seccompProfile.type` \
to be unset, `RuntimeDefault` or `Localhost` at pod and container level (policy \
v1.19+); for older policy versions it checks the alpha annotations \
`seccomp.security.alpha.kubernetes.io/pod` and \
`container.seccomp.security.alpha.kubernetes.io/<container>`, which may hold \
`runtime/default`, `docker/default` or `localhost/<profile>`. Remove the \
`Unconfined` profile or use `RuntimeDefault`.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

pub const POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
pub const CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// A seccomp profile type the standards accept.
pub fn valid_type(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

fn valid_annotation(v: &str) -> bool {
    v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/")
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if r.pss_has(PssChange::SeccompFields) {
        explicit_field_violations(pod, out);
        return Ok(());
    }
    let ann = pod.meta.annotations.as_ref();
    let get = |k: &str| ann.and_then(|a| a.get(k)).map(String::as_str);
    if let Some(v) = get(POD_ANNOTATION).filter(|v| !valid_annotation(v)) {
        out.push(Violation::new(
            annotation_path(pod, POD_ANNOTATION),
            msg(
                "seccompProfile",
                format!("forbidden annotation {POD_ANNOTATION}={}", q(v)),
            ),
        ));
    }
    for c in pod.containers() {
        let key = format!("{CONTAINER_ANNOTATION_PREFIX}{}", c.name);
        if let Some(v) = get(&key).filter(|v| !valid_annotation(v)) {
            out.push(in_container(
                &c,
                annotation_path(pod, &key),
                msg(
                    "seccompProfile",
                    format!("forbidden annotation {key}={}", q(v)),
                ),
            ));
        }
    }
    Ok(())
}

/// Where a profile's type is: the `type` field, or the profile itself when
/// `type` is missing.
fn type_path(base: String, p: &SeccompProfile) -> String {
    if p.type_.is_empty() {
        format!("{base}/seccompProfile")
    } else {
        format!("{base}/seccompProfile/type")
    }
}

/// Findings for the pod and containers that set a forbidden
/// `seccompProfile.type`. Returns whether the pod sets a valid profile.
pub fn explicit_field_violations(pod: &PodTemplate, out: &mut Vec<Violation>) -> bool {
    let mut pod_valid = false;
    if let Some(p) = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
    {
        if valid_type(&p.type_) {
            pod_valid = true;
        } else {
            out.push(Violation::new(
                type_path(pod_sc_path(pod), p),
                msg(
                    "seccompProfile",
                    format!(
                        "pod must not set securityContext.seccompProfile.type to {}",
                        q(&p.type_)
                    ),
                ),
            ));
        }
    }
    for c in pod.containers() {
        if let Some(p) = c.security_context.and_then(|s| s.seccomp_profile.as_ref()) {
            if !valid_type(&p.type_) {
                out.push(in_container(
                    &c,
                    type_path(sc_path(&c), p),
                    msg(
                        "seccompProfile",
                        format!(
                            "{} must not set securityContext.seccompProfile.type to {}",
                            who(&c),
                            q(&p.type_)
                        ),
                    ),
                ));
            }
        }
    }
    pod_valid
}

fn cel(cx: &CelCtx<'_>) -> String {
    if cx.pss_has(PssChange::SeccompFields) {
        return explicit_field_violations_cel();
    }
    let ann = "variables.podMeta.?annotations.orValue({})";
    let bad = |v: &str| {
        format!(
            "!({v} == 'runtime/default' || {v} == 'docker/default' || {v}.startsWith('localhost/'))"
        )
    };
    let pod_v = format!("{ann}[{}]", lit(POD_ANNOTATION));
    let c_key = format!("{} + c.name", lit(CONTAINER_ANNOTATION_PREFIX));
    let c_v = format!("{ann}[{c_key}]");
    format!(
        "(({} in {ann}) && {} ? ['seccompProfile (forbidden annotation {POD_ANNOTATION}=' + \
         {pod_v} + ')'] : []) + {}",
        lit(POD_ANNOTATION),
        bad(&pod_v),
        containers_where(
            &format!("({c_key}) in {ann} && {}", bad(&c_v)),
            &format!("'seccompProfile (forbidden annotation ' + {c_key} + '=' + {c_v} + ')'"),
        )
    )
}

/// [`explicit_field_violations`] in CEL (the messages; `pod_valid` is
/// [`POD_VALID_CEL`]).
pub fn explicit_field_violations_cel() -> String {
    let pod = "variables.pod.?securityContext.?seccompProfile";
    let containers = containers_where(
        "c.?securityContext.?seccompProfile.hasValue() && \
         !(c.securityContext.seccompProfile.?type.orValue('') in ['RuntimeDefault', 'Localhost'])",
        &format!(
            "'seccompProfile (' + {WHO} + ' must not set securityContext.seccompProfile.type to ' \
             + c.securityContext.seccompProfile.?type.orValue('') + ')'"
        ),
    );
    format!(
        "({pod}.hasValue() && !({POD_VALID_CEL}) ? ['seccompProfile (pod must not set \
         securityContext.seccompProfile.type to ' + {pod}.value().?type.orValue('') + ')'] : []) \
         + {containers}"
    )
}

/// The pod's own seccomp profile is RuntimeDefault or Localhost.
pub const POD_VALID_CEL: &str = "variables.pod.?securityContext.?seccompProfile.?type.orValue('') \
                                 in ['RuntimeDefault', 'Localhost']";

#[cfg(test)]
mod tests {
    use crate::policy::pss::{PssLevel, PssVersion};
    use crate::policy::rules::pss_common::test::pod;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::{Context, Engine, Mode, Options, Tier};
    use serde_json::json;

    #[test]
    fn unset_and_runtime_default_pass() {
        let p = pod(
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}),
            json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}),
        );
        assert!(run_rule("seccomp-profile", &p, Tier::Foundation)
            .findings
            .is_empty());
        let p = pod(json!({}), json!({}));
        assert!(run_rule("seccomp-profile", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn unconfined_is_a_finding() {
        let p = pod(
            json!({"seccompProfile": {"type": "Unconfined"}}),
            json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
        );
        let e = run_rule("seccomp-profile", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 2);
        assert_eq!(
            e.findings[0].path,
            "/spec/securityContext/seccompProfile/type"
        );
        assert_eq!(
            e.findings[0].message,
            "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
        assert_eq!(
            e.findings[1].path,
            "/spec/containers/0/securityContext/seccompProfile/type"
        );
        assert_eq!(e.findings[1].container.as_deref(), Some("app"));
        assert_eq!(
            e.findings[1].message,
            "seccompProfile (container \"app\" must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }

    #[test]
    fn old_versions_check_the_annotations() {
        let mut p = pod(json!({}), json!({}));
        p["metadata"]["annotations"] = json!({
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/app": "runtime/default"});
        let findings = |minor| {
            Engine::new(Default::default())
                .evaluate(
                    &p,
                    &Context::new(Tier::Foundation, Mode::Enforce),
                    &Options {
                        pss: Some((PssLevel::Baseline, PssVersion { minor })),
                        only: None,
                        fix: false,
                        exact_fixable: false,
                        skip_covered: false,
                    },
                )
                .unwrap()
                .findings
        };
        let f = findings(18);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].path,
            "/metadata/annotations/seccomp.security.alpha.kubernetes.io~1pod"
        );
        assert_eq!(
            f[0].message,
            "seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")"
        );
        assert!(findings(19).is_empty());
    }
}
