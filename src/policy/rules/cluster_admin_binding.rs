//! `cluster-admin-binding`: `cluster-admin`, and any ClusterRole that is
//! cluster-admin in all but name, is bound only to system groups.
use super::prelude::*;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};

pub static RULE: Rule = Rule {
    id: "cluster-admin-binding",
    tier: Tier::Production,
    pss: None,
    summary: "ClusterRole cluster-admin (or one granting as much) is bound only to system groups",
    doc: "`cluster-admin` can do anything to anything: read every Secret, create privileged \
pods, rewrite RBAC. Binding it to an application's ServiceAccount, a user or a team group \
turns any compromise of that identity into a cluster compromise. A RoleBinding or \
ClusterRoleBinding whose roleRef is the ClusterRole `cluster-admin` may only name \
Kubernetes' own `system:` groups (such as `system:masters`); every other subject (users, \
ServiceAccounts, other groups, and the all-encompassing `system:authenticated`, \
`system:unauthenticated` and `system:serviceaccounts[:<namespace>]` groups) is a finding. \
Bind a Role or ClusterRole that grants only what the subject needs (`admin`, `edit`, \
`view` or your own). \
The same holds for a ClusterRole that is cluster-admin in all but name: one whose rules grant \
every verb (`*`) on every resource (`*`) in every API group (`*`). Which ClusterRoles those \
are is a cluster fact: offline, from the ClusterRoles in the input; online, from a watch \
cache of ClusterRoles (an aggregated role by the rules the controller wrote into it). A \
binding to a ClusterRole that is in neither (not yet created, or the input does not hold \
it) is judged by the role's name alone.",
    check: Check::Object(
        Kinds::Only(&[kinds::ROLE_BINDING, kinds::CLUSTER_ROLE_BINDING]),
        check,
    ),
    fix: Fix::None,
    cel: Cel::Webhook(
        "\"or one granting as much\" reads the ClusterRoles a binding names (a cluster fact)",
    ),
};

fn check(t: &Target<'_>, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let (role_ref, subjects): (RoleRef, Option<Vec<Subject>>) = if t.kind == "RoleBinding" {
        let b: RoleBinding = t.typed()?;
        (b.role_ref, b.subjects)
    } else {
        let b: ClusterRoleBinding = t.typed()?;
        (b.role_ref, b.subjects)
    };
    if role_ref.kind != "ClusterRole" {
        return Ok(());
    }
    let named = role_ref.name == "cluster-admin";
    let equivalent = !named
        && r.ctx
            .facts
            .admin_cluster_roles
            .known()
            .is_some_and(|roles| roles.contains(&role_ref.name));
    if !named && !equivalent {
        return Ok(());
    }
    let role = if named {
        "ClusterRole \"cluster-admin\"".to_string()
    } else {
        format!(
            "ClusterRole {:?}, which grants every verb on every resource in every API group \
             (cluster-admin in all but name),",
            role_ref.name
        )
    };
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
                "cluster-admin binding ({} {:?} must not grant {role} to {who}; bind a narrower \
                 role)",
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

    #[test]
    fn a_role_that_is_cluster_admin_in_all_but_name_counts_when_known() {
        use crate::policy::rules::testutil::run_rule_with;
        use crate::policy::{Context, Fact, Mode};
        let b = binding(
            "ClusterRoleBinding",
            "ops-all",
            json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "ops"}]),
        );
        let ctx = |roles: Fact<Vec<String>>| {
            let mut c = Context::new(Tier::Production, Mode::Enforce);
            std::sync::Arc::make_mut(&mut c.facts).admin_cluster_roles = roles;
            c
        };
        let run = |roles| run_rule_with("cluster-admin-binding", &b, &ctx(roles), "").findings;
        let f = run(Fact::Known(vec!["ops-all".into()]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "/subjects/0");
        assert_eq!(
            f[0].message,
            "cluster-admin binding (ClusterRoleBinding \"admins\" must not grant ClusterRole \
             \"ops-all\", which grants every verb on every resource in every API group \
             (cluster-admin in all but name), to Group \"ops\"; bind a narrower role)"
        );
        // Another role known to be admin, no known roles, or unknown: judged by name.
        assert!(run(Fact::Known(vec!["other".into()])).is_empty());
        assert!(run(Fact::Known(vec![])).is_empty());
        assert!(run(Fact::Unknown).is_empty());
        // System groups stay allowed, as for cluster-admin itself.
        let b = binding(
            "RoleBinding",
            "ops-all",
            json!([{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}]),
        );
        let e = run_rule_with(
            "cluster-admin-binding",
            &b,
            &ctx(Fact::Known(vec!["ops-all".into()])),
            "",
        );
        assert!(e.findings.is_empty());
    }
}
