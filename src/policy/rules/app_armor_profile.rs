//! PSS `appArmorProfile` (baseline, v1.0+): AppArmor may not be turned off,
//! neither through the `appArmorProfile` fields nor the beta annotations.
use super::prelude::*;
use super::pss_common::{
    annotation_path, annotations, in_container, msg, pod_sc_path, q, sc_path, who,
};

pub static RULE: Rule = Rule {
    id: "app-armor-profile",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "appArmorProfile",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "AppArmor must not be disabled (profile RuntimeDefault or Localhost only)",
    doc: "On hosts with AppArmor the runtime confines every container with its default \
profile; `Unconfined` switches that off and removes a layer that blocks many container \
escapes. Pod Security Standards baseline allows only `RuntimeDefault` or `Localhost` in \
`securityContext.appArmorProfile.type` (pod and containers) and only `runtime/default`, \
`localhost/<name>` or empty in the older \
`container.apparmor.security.beta.kubernetes.io/<container>` annotations. Remove the \
override or name a Localhost profile that allows what the workload needs.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
const REASON: &str = "forbidden AppArmor profile";

fn allowed_type(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

fn allowed_annotation(v: &str) -> bool {
    v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")
}

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if let Some(p) = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref())
    {
        if !allowed_type(&p.type_) {
            out.push(Violation::new(
                format!("{}/appArmorProfile/type", pod_sc_path(pod)),
                msg(
                    REASON,
                    format!("pod must not set AppArmor profile type to {}", q(&p.type_)),
                ),
            ));
        }
    }
    let containers = pod.containers();
    for c in &containers {
        if let Some(p) = c
            .security_context
            .and_then(|s| s.app_armor_profile.as_ref())
        {
            if !allowed_type(&p.type_) {
                out.push(in_container(
                    c,
                    format!("{}/appArmorProfile/type", sc_path(c)),
                    msg(
                        REASON,
                        format!(
                            "{} must not set AppArmor profile type to {}",
                            who(c),
                            q(&p.type_)
                        ),
                    ),
                ));
            }
        }
    }
    for (k, v) in annotations(pod) {
        let Some(name) = k.strip_prefix(ANNOTATION_PREFIX) else {
            continue;
        };
        if allowed_annotation(v) {
            continue;
        }
        let mut viol = Violation::new(
            annotation_path(pod, k),
            msg(REASON, format!("{k}={}", q(v))),
        );
        if containers.iter().any(|c| c.name == name) {
            viol = viol.in_container(name);
        }
        out.push(viol);
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let bad = |p: &str| {
        format!(
            "{p}.hasValue() && !({p}.value().?type.orValue('') in ['RuntimeDefault', 'Localhost'])"
        )
    };
    let pod = bad("variables.pod.?securityContext.?appArmorProfile");
    let container = bad("c.?securityContext.?appArmorProfile");
    let containers = containers_where(
        &container,
        &format!(
            "'{REASON} (' + {WHO} + ' must not set AppArmor profile type to ' + \
                  c.securityContext.appArmorProfile.?type.orValue('') + ')'"
        ),
    );
    format!(
        "({pod} ? ['{REASON} (pod must not set AppArmor profile type to ' + \
         variables.pod.securityContext.appArmorProfile.?type.orValue('') + ')'] : []) + \
         {containers} + variables.podMeta.?annotations.orValue({{}}).filter(k, \
         k.startsWith('{ANNOTATION_PREFIX}') && !(variables.podMeta.annotations[k] == '' || \
         variables.podMeta.annotations[k] == 'runtime/default' || \
         variables.podMeta.annotations[k].startsWith('localhost/'))).map(k, '{REASON} (' + k + \
         '=' + variables.podMeta.annotations[k] + ')')"
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::{deployment, pod};
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn runtime_default_and_localhost_pass() {
        let p = pod(
            json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-nginx"}}),
            json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
        );
        assert!(run_rule("app-armor-profile", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn unconfined_field_is_a_finding() {
        let p = pod(
            json!({"appArmorProfile": {"type": "Unconfined"}}),
            json!({}),
        );
        let e = run_rule("app-armor-profile", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(
            f.path,
            "/spec/containers/0/securityContext/appArmorProfile/type"
        );
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "forbidden AppArmor profile (container \"app\" must not set AppArmor profile type to \"Unconfined\")"
        );
    }

    #[test]
    fn unconfined_annotation_is_a_finding() {
        let mut d = deployment(json!({"containers": [{"name": "app", "image": "nginx:1.27"}]}));
        d["spec"]["template"]["metadata"]["annotations"]
            ["container.apparmor.security.beta.kubernetes.io/app"] = json!("unconfined");
        let e = run_rule("app-armor-profile", &d, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(
            f.path,
            "/spec/template/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1app"
        );
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "forbidden AppArmor profile (container.apparmor.security.beta.kubernetes.io/app=\"unconfined\")"
        );
    }
}
