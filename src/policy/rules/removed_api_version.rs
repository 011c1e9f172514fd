//! `removed-api-version`: no API versions that Kubernetes has removed.
use super::prelude::*;

pub static RULE: Rule = Rule {
    id: "removed-api-version",
    tier: Tier::Foundation,
    pss: None,
    summary: "objects use an API version the cluster still serves",
    doc: "Kubernetes removes beta API versions a few releases after their stable \
replacement ships; a manifest still written against one is refused by every cluster \
since that release (`no matches for kind \\\"Deployment\\\" in version \
\\\"extensions/v1beta1\\\"`), usually in the middle of an upgrade. The finding names the \
Kubernetes version that removed it and what replaces it: `extensions/v1beta1` and \
`apps/v1beta1`/`v1beta2` workloads (1.16, `apps/v1`), `extensions/v1beta1` and \
`networking.k8s.io/v1beta1` Ingresses (1.22, `networking.k8s.io/v1`), \
`rbac.authorization.k8s.io/v1beta1` (1.22, `v1`), `apiextensions.k8s.io/v1beta1` \
CustomResourceDefinitions and `admissionregistration.k8s.io/v1beta1` webhook \
configurations (1.22, `v1`), `batch/v1beta1` CronJobs (1.25, `batch/v1`), \
`policy/v1beta1` PodDisruptionBudgets (1.25, `policy/v1`) and PodSecurityPolicies \
(1.25, removed: use Pod Security Admission), `autoscaling/v2beta1` (1.25) and \
`v2beta2` (1.26) HorizontalPodAutoscalers (`autoscaling/v2`). The apiserver itself \
refuses these, so this rule matters offline (`tiergate check`). There is no fix: a \
new API version can differ in fields (an `apps/v1` Deployment requires a selector).",
    check: Check::Object(Kinds::All, check),
    fix: Fix::None,
    cel: Cel::Apiserver(
        "every version it names was removed by Kubernetes 1.26: an apiserver of 1.30 or later \
         does not serve it, so a write in it never reaches admission",
    ),
};

/// (apiVersion, kinds (empty: all), removed in, replacement).
const REMOVED: &[(&str, &[&str], &str, &str)] = &[
    (
        "extensions/v1beta1",
        &["Deployment", "DaemonSet", "ReplicaSet"],
        "1.16",
        "apps/v1",
    ),
    (
        "extensions/v1beta1",
        &["NetworkPolicy"],
        "1.16",
        "networking.k8s.io/v1",
    ),
    (
        "extensions/v1beta1",
        &["Ingress"],
        "1.22",
        "networking.k8s.io/v1",
    ),
    (
        "extensions/v1beta1",
        &["PodSecurityPolicy"],
        "1.16",
        "nothing (PodSecurityPolicy is gone since 1.25: use Pod Security Admission)",
    ),
    ("apps/v1beta1", &[], "1.16", "apps/v1"),
    ("apps/v1beta2", &[], "1.16", "apps/v1"),
    (
        "networking.k8s.io/v1beta1",
        &[],
        "1.22",
        "networking.k8s.io/v1",
    ),
    (
        "rbac.authorization.k8s.io/v1beta1",
        &[],
        "1.22",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "apiextensions.k8s.io/v1beta1",
        &[],
        "1.22",
        "apiextensions.k8s.io/v1",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        &[],
        "1.22",
        "admissionregistration.k8s.io/v1",
    ),
    (
        "scheduling.k8s.io/v1beta1",
        &[],
        "1.22",
        "scheduling.k8s.io/v1",
    ),
    (
        "storage.k8s.io/v1beta1",
        &["CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"],
        "1.22",
        "storage.k8s.io/v1",
    ),
    ("batch/v1beta1", &["CronJob"], "1.25", "batch/v1"),
    (
        "policy/v1beta1",
        &["PodDisruptionBudget"],
        "1.25",
        "policy/v1",
    ),
    (
        "policy/v1beta1",
        &["PodSecurityPolicy"],
        "1.25",
        "nothing (use Pod Security Admission)",
    ),
    ("autoscaling/v2beta1", &[], "1.25", "autoscaling/v2"),
    ("autoscaling/v2beta2", &[], "1.26", "autoscaling/v2"),
];

/// When `apiVersion` was removed for `kind`, and what replaces it.
pub fn removed(api_version: &str, kind: &str) -> Option<(&'static str, &'static str)> {
    REMOVED
        .iter()
        .find(|(v, kinds, _, _)| *v == api_version && (kinds.is_empty() || kinds.contains(&kind)))
        .map(|(_, _, since, to)| (*since, *to))
}

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let api_version = t
        .raw
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some((since, to)) = removed(api_version, t.kind) {
        out.push(Violation::new(
            "/apiVersion",
            format!(
                "removed API version ({} {:?} uses {api_version}, which Kubernetes {since} \
                 removed; use {to})",
                t.kind,
                t.name()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    /// `Cel::Apiserver` holds only while every removal predates the oldest
    /// apiserver the policy export targets.
    #[test]
    fn every_removal_predates_the_oldest_export_target() {
        for (version, _, since, _) in super::REMOVED {
            let minor: u32 = since
                .strip_prefix("1.")
                .and_then(|m| m.parse().ok())
                .expect("a 1.N version");
            assert!(
                minor < *crate::export::KUBE_MINORS.start(),
                "{version} removed in {since}: the export's Cel::Apiserver no longer holds"
            );
        }
    }

    #[test]
    fn removed_versions_name_the_release_and_the_replacement() {
        let d = json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment",
            "metadata": {"name": "old"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}});
        let e = run_rule("removed-api-version", &d, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(
            e.findings[0].message,
            "removed API version (Deployment \"old\" uses extensions/v1beta1, which Kubernetes 1.16 removed; use apps/v1)"
        );
        let pdb = json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "p"}, "spec": {"minAvailable": 1}});
        let e = run_rule("removed-api-version", &pdb, Tier::Foundation);
        assert!(e.findings[0]
            .message
            .contains("1.25 removed; use policy/v1"));
    }

    #[test]
    fn served_versions_pass() {
        for (v, k) in [
            ("apps/v1", "ControllerRevision"),
            ("networking.k8s.io/v1", "Ingress"),
            ("policy/v1", "PodDisruptionBudget"),
            ("v1", "ConfigMap"),
            ("example.com/v1beta1", "Widget"),
        ] {
            let o = json!({"apiVersion": v, "kind": k, "metadata": {"name": "x"}});
            assert!(
                run_rule("removed-api-version", &o, Tier::Foundation)
                    .findings
                    .is_empty(),
                "{v} {k}"
            );
        }
    }
}
