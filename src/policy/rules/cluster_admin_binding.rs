//! `cluster-admin-binding`: `cluster-admin` is bound only to system groups.
use super::prelude::*;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};

pub static RULE: Rule = Rule {
    id: "cluster-admin-binding",
    tier: Tier::Production,
    pss: None,
    summary: "ClusterRole cluster-admin is bound only to system groups",
    doc: "`cluster-admin` can do anything to anything: read every Secret, create privileged \
pods, rewrite RBAC. Binding it to an application's ServiceAccount, a user or a team group \
turns any compromise of that identity into a cluster compromise. A RoleBinding or \
ClusterRoleBinding whose roleRef is the ClusterRole `cluster-admin` may only name \
Kubernetes' own `system:` groups (such as `system:masters`); every other subject (users, \
ServiceAccounts, other groups, and the all-encompassing `system:authenticated`, \
`system:unauthenticated` and `system:serviceaccounts[:<namespace>]` groups) is a finding. \
Bind a Role or ClusterRole that grants only what the subject needs (`admin`, `edit`, \
`view` or your own).",
    check: Check::Object(
        Kinds::Only(&[kinds::ROLE_BINDING, kinds::CLUSTER_ROLE_BINDING]),
        check,
    ),
    fix: Fix::None,
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let (role_ref, subjects): (RoleRef, Option<Vec<Subject>>) = if t.kind == "RoleBinding" {
        let b: RoleBinding = t.typed()?;
        (b.role_ref, b.subjects)
    } else {
        let b: ClusterRoleBinding = t.typed()?;
        (b.role_ref, b.subjects)
    };
    if role_ref.kind != "ClusterRole" || role_ref.name != "cluster-admin" {
        return Ok(());
    }
    for (i, s) in subjects.iter().flatten().enumerate() {
        if s.kind == "Group" && is_narrow_system_group(&s.name) {
            continue;
        }
        let who = match (s.kind.as_str(), s.namespace.as_deref()) {
            ("ServiceAccount", Some(ns)) => format!("ServiceAccount \"{ns}/{}\"", s.name),
            (kind, _) => format!("{kind} {:?}", s.name),
        };
        out.push(Violation::new(
            format!("/subjects/{i}"),
            format!(
                "cluster-admin binding ({} {:?} must not grant ClusterRole \"cluster-admin\" to \
                 {who}; bind a narrower role)",
                t.kind,
                t.name()
            ),
        ));
    }
    Ok(())
}

/// A `system:` group of Kubernetes' own components, not one that stands for
/// every (service) account.
fn is_narrow_system_group(name: &str) -> bool {
    name.starts_with("system:")
        && !matches!(
            name,
            "system:authenticated" | "system:unauthenticated" | "system:serviceaccounts"
        )
        && !name.starts_with("system:serviceaccounts:")
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::{json, Value};

    fn binding(kind: &str, role: &str, subjects: Value) -> Value {
        let mut b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": "admins"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects});
        if kind == "RoleBinding" {
            b["metadata"]["namespace"] = json!("shop");
        }
        b
    }

    fn findings(b: &Value) -> Vec<(String, String)> {
        run_rule("cluster-admin-binding", b, Tier::Production)
            .findings
            .into_iter()
            .map(|f| (f.path, f.message))
            .collect()
    }

    #[test]
    fn system_groups_and_other_roles_pass() {
        let b = binding(
            "ClusterRoleBinding",
            "cluster-admin",
            json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}]),
        );
        assert_eq!(findings(&b), vec![]);
        let b = binding(
            "RoleBinding",
            "edit",
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]),
        );
        assert_eq!(findings(&b), vec![]);
        let b = binding("ClusterRoleBinding", "cluster-admin", json!(null));
        assert_eq!(findings(&b), vec![]);
    }

    #[test]
    fn other_subjects_are_findings() {
        let b = binding(
            "ClusterRoleBinding",
            "cluster-admin",
            json!([
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"},
                {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"},
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"},
            ]),
        );
        assert_eq!(
            findings(&b),
            vec![
                (
                    "/subjects/1".to_string(),
                    "cluster-admin binding (ClusterRoleBinding \"admins\" must not grant \
                     ClusterRole \"cluster-admin\" to ServiceAccount \"ci/deployer\"; bind a \
                     narrower role)"
                        .to_string()
                ),
                (
                    "/subjects/2".to_string(),
                    "cluster-admin binding (ClusterRoleBinding \"admins\" must not grant \
                     ClusterRole \"cluster-admin\" to Group \"system:authenticated\"; bind a \
                     narrower role)"
                        .to_string()
                ),
            ]
        );
        let b = binding(
            "RoleBinding",
            "cluster-admin",
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]),
        );
        let f = findings(&b);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "/subjects/0");
        assert!(f[0].1.contains("RoleBinding \"admins\""));
        assert!(f[0].1.contains("to User \"alice\""));
    }
}
