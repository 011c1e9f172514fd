//! `rbac-group-subjects`: roles are granted to groups, not to people.
use super::prelude::*;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, Subject};

pub static RULE: Rule = Rule {
    id: "rbac-group-subjects",
    tier: Tier::MultiCluster,
    pss: None,
    summary: "RoleBindings and ClusterRoleBindings name groups or ServiceAccounts, not users",
    doc: "With many clusters, access is managed once, in the identity provider: people get \
groups there (through OIDC), and each cluster binds roles to those groups. A binding to an \
individual user must be found and removed in every cluster when that person changes team \
or leaves, and it is the binding that is forgotten. A RoleBinding or ClusterRoleBinding \
subject of kind `User` is a finding, except Kubernetes' own component identities \
(`system:` users such as `system:kube-scheduler`). Bind the role to the person's group \
(`kind: Group`), or to a ServiceAccount for a workload.",
    check: Check::Object(
        Kinds::Only(&[kinds::ROLE_BINDING, kinds::CLUSTER_ROLE_BINDING]),
        check,
    ),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let subjects: Option<Vec<Subject>> = if t.kind == "RoleBinding" {
        t.typed::<RoleBinding>()?.subjects
    } else {
        t.typed::<ClusterRoleBinding>()?.subjects
    };
    for (i, s) in subjects.iter().flatten().enumerate() {
        if s.kind == "User" && !s.name.starts_with("system:") {
            out.push(Violation::new(
                format!("/subjects/{i}"),
                format!(
                    "user subject ({} {:?} must bind groups or ServiceAccounts, not User {:?})",
                    t.kind,
                    t.name(),
                    s.name
                ),
            ));
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    "variables.obj.?subjects.orValue([]).filter(s, s.kind == 'User' && \
     !s.name.startsWith('system:')).map(s, 'user subject (' + request.kind.kind + ' \"' + \
     variables.obj.metadata.?name.orValue(request.name) + '\" must bind groups or \
     ServiceAccounts, not User \"' + s.name + '\")')"
        .to_string()
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::{json, Value};

    fn binding(kind: &str, subjects: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": "devs", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": subjects})
    }

    #[test]
    fn users_are_findings_groups_and_service_accounts_are_not() {
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            let b = binding(
                kind,
                json!([
                    {"kind": "Group", "name": "team-shop", "apiGroup": "rbac.authorization.k8s.io"},
                    {"kind": "ServiceAccount", "name": "ci", "namespace": "shop"},
                    {"kind": "User", "name": "system:kube-scheduler", "apiGroup": "rbac.authorization.k8s.io"},
                    {"kind": "User", "name": "alice@example.com", "apiGroup": "rbac.authorization.k8s.io"},
                ]),
            );
            let f = run_rule("rbac-group-subjects", &b, Tier::MultiCluster).findings;
            assert_eq!(f.len(), 1, "{kind}: {f:?}");
            assert_eq!(f[0].path, "/subjects/3");
            assert_eq!(
                f[0].message,
                format!(
                    "user subject ({kind} \"devs\" must bind groups or ServiceAccounts, not \
                     User \"alice@example.com\")"
                )
            );
        }
        let ok = binding(
            "RoleBinding",
            json!([{"kind": "Group", "name": "team-shop"}]),
        );
        assert!(run_rule("rbac-group-subjects", &ok, Tier::MultiCluster)
            .findings
            .is_empty());
    }
}
