//! `rbac-wildcards`: no `*` in the verbs, resources or apiGroups of a role.
use super::prelude::*;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};

pub static RULE: Rule = Rule {
    id: "rbac-wildcards",
    tier: Tier::Enterprise,
    pss: None,
    summary: "Roles and ClusterRoles grant no wildcard verbs, resources or apiGroups",
    doc: "A `*` in a role grants everything that exists today and everything added \
tomorrow: `verbs: [\"*\"]` includes `escalate`, `bind` and `impersonate`, `resources: \
[\"*\"]` includes Secrets and every CRD installed later, `apiGroups: [\"*\"]` every API \
group. Least privilege needs the list spelled out. Every entry of `rules[].verbs`, \
`rules[].resources` (including `*/scale` and `pods/*` forms) and `rules[].apiGroups` that \
contains `*` is a finding; list the verbs, resources and groups the subject needs instead. \
An aggregated ClusterRole (one with an `aggregationRule`) passes whatever its `rules` say: \
the aggregation controller overwrites them from the roles it selects, which are judged \
themselves.",
    check: Check::Object(Kinds::Only(&[kinds::ROLE, kinds::CLUSTER_ROLE]), check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let rules: Vec<PolicyRule> = if t.kind == "Role" {
        let r: Role = t.typed()?;
        r.rules.unwrap_or_default()
    } else {
        let r: ClusterRole = t.typed()?;
        if r.aggregation_rule.is_some() {
            return Ok(());
        }
        r.rules.unwrap_or_default()
    };
    for (i, rule) in rules.iter().enumerate() {
        for (field, values) in [
            ("verbs", Some(&rule.verbs)),
            ("resources", rule.resources.as_ref()),
            ("apiGroups", rule.api_groups.as_ref()),
        ] {
            for (j, v) in values.into_iter().flatten().enumerate() {
                if v.contains('*') {
                    out.push(Violation::new(
                        format!("/rules/{i}/{field}/{j}"),
                        format!(
                            "RBAC wildcard ({} {:?} rule {i} must not grant {v:?} in {field}; \
                             list what it needs)",
                            t.kind,
                            t.name()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let wild = |f: &str| format!("r.?{f}.orValue([]).filter(v, v.contains('*'))");
    let all = format!(
        "({} + {} + {})",
        wild("verbs"),
        wild("resources"),
        wild("apiGroups")
    );
    format!(
        "request.kind.kind == 'ClusterRole' && variables.obj.?aggregationRule.hasValue() ? [] : \
         variables.obj.?rules.orValue([]).filter(r, size({all}) > 0).map(r, 'RBAC wildcard (' + \
         request.kind.kind + ' \"' + variables.obj.metadata.?name.orValue(request.name) + '\" \
         must not grant ' + {all}.join(', ') + '; list what it needs)')"
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::{json, Value};

    fn role(kind: &str, extra: Value) -> Value {
        let mut r = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                           "metadata": {"name": "ops"}});
        if let (Some(m), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        r
    }

    fn findings(r: &Value) -> Vec<(String, String)> {
        run_rule("rbac-wildcards", r, Tier::Enterprise)
            .findings
            .into_iter()
            .map(|f| (f.path, f.message))
            .collect()
    }

    #[test]
    fn explicit_rules_and_aggregated_roles_pass() {
        let r = role(
            "Role",
            json!({"rules": [{"apiGroups": ["apps"],
            "resources": ["deployments", "deployments/scale"], "verbs": ["get", "list", "patch"]}]}),
        );
        assert_eq!(findings(&r), vec![]);
        let r = role(
            "ClusterRole",
            json!({"aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"rbac.example.com/aggregate-to-ops": "true"}}]}}),
        );
        assert_eq!(findings(&r), vec![]);
        let r = role(
            "ClusterRole",
            json!({"aggregationRule": {"clusterRoleSelectors": []},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        );
        assert_eq!(findings(&r), vec![]);
    }

    #[test]
    fn wildcards_are_findings_at_their_entry() {
        let r = role(
            "ClusterRole",
            json!({"rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": ["", "*"], "resources": ["*/scale"], "verbs": ["get", "*"]}]}),
        );
        assert_eq!(
            findings(&r),
            vec![
                (
                    "/rules/1/verbs/1".to_string(),
                    "RBAC wildcard (ClusterRole \"ops\" rule 1 must not grant \"*\" in verbs; \
                     list what it needs)"
                        .to_string()
                ),
                (
                    "/rules/1/resources/0".to_string(),
                    "RBAC wildcard (ClusterRole \"ops\" rule 1 must not grant \"*/scale\" in \
                     resources; list what it needs)"
                        .to_string()
                ),
                (
                    "/rules/1/apiGroups/1".to_string(),
                    "RBAC wildcard (ClusterRole \"ops\" rule 1 must not grant \"*\" in \
                     apiGroups; list what it needs)"
                        .to_string()
                ),
            ]
        );
        let r = role(
            "Role",
            json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]}),
        );
        assert_eq!(findings(&r).len(), 1);
    }
}
