//! `no-default-namespace`: nothing is deployed into the `default` namespace.
use super::prelude::*;

pub static RULE: Rule = Rule {
    id: "no-default-namespace",
    tier: Tier::Production,
    pss: None,
    summary: "nothing is deployed into the default namespace",
    doc: "The `default` namespace is where everything lands that nobody placed on purpose: \
it has no owner, no quota, no network policy and usually the widest RBAC, and a `kubectl \
apply` without `-n` silently targets it. Production workloads, Services, ConfigMaps, \
Secrets, Ingresses, Roles and RoleBindings belong in a namespace of their own that carries \
a tier, quotas and policies. Set `metadata.namespace` (or deploy with `-n`) to the \
application's namespace. The namespace is the one the object is admitted into, else its \
`metadata.namespace`; an object without a namespace in the CLI's input is not judged to be \
in `default`. The two objects the control plane itself keeps in `default` (the `kubernetes` \
Service and the `kube-root-ca.crt` ConfigMap) are not findings.",
    check: Check::Object(
        Kinds::WorkloadsAnd(&[
            kinds::SERVICE,
            kinds::CONFIG_MAP,
            kinds::SECRET,
            kinds::INGRESS,
            kinds::INGRESS_EXTENSIONS,
            kinds::ROLE,
            kinds::ROLE_BINDING,
        ]),
        check,
    ),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let ns = r.ctx.namespace.as_deref().or(t.meta.namespace.as_deref());
    if ns != Some("default") {
        return Ok(());
    }
    let system = matches!(
        (t.kind, t.name()),
        ("Service", "kubernetes") | ("ConfigMap", "kube-root-ca.crt")
    );
    if system {
        return Ok(());
    }
    out.push(Violation::new(
        "/metadata/namespace",
        format!(
            "default namespace ({} {:?} must not be deployed into the \"default\" namespace; \
             use the application's own namespace)",
            t.kind,
            t.name()
        ),
    ));
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    "request.namespace == 'default' && !((request.kind.kind == 'Service' && request.name == \
     'kubernetes') || (request.kind.kind == 'ConfigMap' && request.name == 'kube-root-ca.crt')) \
     ? ['default namespace (' + request.kind.kind + ' \"' + request.name + '\" must not be \
     deployed into the \"default\" namespace; use the application\\'s own namespace)'] : []"
        .to_string()
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{run_rule, run_rule_with};
    use crate::policy::{Context, Mode, Tier};
    use serde_json::{json, Value};

    fn svc(ns: Option<&str>) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                           "spec": {"ports": [{"port": 80}]}});
        if let Some(ns) = ns {
            v["metadata"]["namespace"] = json!(ns);
        }
        v
    }

    #[test]
    fn other_and_missing_namespaces_pass() {
        assert!(
            run_rule("no-default-namespace", &svc(Some("shop")), Tier::Production)
                .findings
                .is_empty()
        );
        assert!(
            run_rule("no-default-namespace", &svc(None), Tier::Production)
                .findings
                .is_empty()
        );
    }

    #[test]
    fn default_namespace_is_a_finding() {
        let e = run_rule(
            "no-default-namespace",
            &svc(Some("default")),
            Tier::Production,
        );
        assert_eq!(e.findings.len(), 1);
        assert_eq!(e.findings[0].path, "/metadata/namespace");
        assert_eq!(
            e.findings[0].message,
            "default namespace (Service \"web\" must not be deployed into the \"default\" \
             namespace; use the application's own namespace)"
        );
    }

    #[test]
    fn the_admission_namespace_wins() {
        let mut c = Context::new(Tier::Production, Mode::Enforce);
        c.namespace = Some("default".into());
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "app", "image": "x"}]}});
        let e = run_rule_with("no-default-namespace", &pod, &c, "");
        assert_eq!(e.findings.len(), 1);
        assert!(e.findings[0]
            .message
            .starts_with("default namespace (Pod \"p\""));
        c.namespace = Some("shop".into());
        let e = run_rule_with("no-default-namespace", &svc(Some("default")), &c, "");
        assert!(e.findings.is_empty());
    }

    #[test]
    fn control_plane_objects_in_default_pass() {
        let mut s = svc(Some("default"));
        s["metadata"]["name"] = json!("kubernetes");
        assert!(run_rule("no-default-namespace", &s, Tier::Production)
            .findings
            .is_empty());
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": "default"}});
        assert!(run_rule("no-default-namespace", &cm, Tier::Production)
            .findings
            .is_empty());
    }
}
