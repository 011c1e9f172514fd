//! `managed-secrets`: Secrets come from a controller, not from a manifest.
use super::prelude::*;
use k8s_openapi::api::core::v1::Secret;

pub static RULE: Rule = Rule {
    id: "managed-secrets",
    tier: Tier::Production,
    pss: None,
    summary: "Secrets with data come from a secrets controller",
    doc: "A Secret written by hand has its value in a manifest: in Git, in CI logs, in \
someone's shell history, and it is never rotated. The reference's secrets ladder: plain \
Secrets at tier 1, sealed or externally managed ones from tier 2 (this rule), external \
secret stores from tier 3 (`external-secret-store`). From the production tier on, Secret \
values come from a controller that keeps them out of Git and can rotate them: Sealed \
Secrets, External Secrets Operator (Vault, cloud secret managers), cert-manager, the Vault \
Secrets Operator or the CSI secrets store. A Secret passes when it is owned \
(`ownerReferences`) by such an object (SealedSecret, ExternalSecret, PushSecret, \
Certificate, VaultStaticSecret, VaultDynamicSecret, VaultPKISecret, \
SecretProviderClassPodStatus, OnePasswordItem) or by any controller (`controller: true`); \
when it carries a controller's marker (the `cert-manager.io/certificate-name` annotation, \
`sealedsecrets.bitnami.com/managed: \"true\"`, the `reconcile.external-secrets.io/managed` \
label or `reconcile.external-secrets.io/data-hash` annotation); when its type is \
`kubernetes.io/service-account-token` (filled by the token controller) or \
`helm.sh/release.v1` (Helm's own release record, written by the Helm client); or when it \
holds no `data` or `stringData` at all. Any other Secret with data is a finding: commit a \
SealedSecret or an ExternalSecret instead and let the controller create the Secret.",
    check: Check::Object(Kinds::Only(&[kinds::SECRET]), check),
    fix: Fix::None,
    cel: Cel::Webhook(
        "which controller made a Secret (owners, annotations, the secrets ladder) is not written in CEL yet",
    ),
};

/// Kinds whose controllers create Secrets and own them.
const OWNER_KINDS: &[&str] = &[
    "SealedSecret",
    "ExternalSecret",
    "PushSecret",
    "Certificate",
    "VaultStaticSecret",
    "VaultDynamicSecret",
    "VaultPKISecret",
    "SecretProviderClassPodStatus",
    "OnePasswordItem",
];

/// Secret types filled by Kubernetes or written by a tool, never by hand.
const MANAGED_TYPES: &[&str] = &["kubernetes.io/service-account-token", "helm.sh/release.v1"];

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let s: Secret = t.typed()?;
    let has_data = s.data.as_ref().is_some_and(|d| !d.is_empty());
    let has_string_data = s.string_data.as_ref().is_some_and(|d| !d.is_empty());
    if !(has_data || has_string_data) || is_managed(&s) {
        return Ok(());
    }
    out.push(Violation::new(
        if has_data { "/data" } else { "/stringData" },
        format!(
            "unmanaged Secret (Secret {:?} must be created by a secrets controller such as \
             Sealed Secrets, External Secrets or cert-manager, not hold hand-written data)",
            t.name()
        ),
    ));
    Ok(())
}

/// Who made a Secret, as the secrets ladder needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Maker {
    /// A hand-written value (a finding from tier 2).
    Hand,
    /// Sealed Secrets: an encrypted value in Git (enough at tier 2 only).
    Sealed,
    /// An external store, a generator (cert-manager, the token controller)
    /// or another controller.
    Store,
}

/// Who made a Secret with data (`None`: it holds no data).
pub(crate) fn maker(s: &Secret) -> Option<Maker> {
    let has_data = s.data.as_ref().is_some_and(|d| !d.is_empty());
    let has_string_data = s.string_data.as_ref().is_some_and(|d| !d.is_empty());
    if !(has_data || has_string_data) {
        return None;
    }
    let meta = &s.metadata;
    let sealed_owner = meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "SealedSecret");
    let sealed_mark = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("sealedsecrets.bitnami.com/managed"))
        .is_some_and(|v| v == "true");
    let other_owner = meta.owner_references.iter().flatten().any(|o| {
        o.kind != "SealedSecret"
            && (o.controller == Some(true) || OWNER_KINDS.contains(&o.kind.as_str()))
    });
    Some(if other_owner {
        Maker::Store
    } else if sealed_owner || sealed_mark {
        Maker::Sealed
    } else if is_managed(s) {
        Maker::Store
    } else {
        Maker::Hand
    })
}

fn is_managed(s: &Secret) -> bool {
    let meta = &s.metadata;
    let owned = meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) || OWNER_KINDS.contains(&o.kind.as_str()));
    let annotations = meta.annotations.as_ref();
    let annotation = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let label = |k: &str| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(k))
            .map(String::as_str)
    };
    let marked = annotation("cert-manager.io/certificate-name").is_some_and(|v| !v.is_empty())
        || annotation("sealedsecrets.bitnami.com/managed") == Some("true")
        || label("reconcile.external-secrets.io/managed") == Some("true")
        || annotation("reconcile.external-secrets.io/data-hash").is_some();
    let typed = s
        .type_
        .as_deref()
        .is_some_and(|ty| MANAGED_TYPES.contains(&ty));
    owned || marked || typed
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::{json, Value};

    fn secret(meta: Value, rest: Value) -> Value {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta});
        if let (Some(m), Some(r)) = (s.as_object_mut(), rest.as_object()) {
            m.extend(r.clone());
        }
        s
    }

    fn findings(s: &Value) -> Vec<(String, String)> {
        run_rule("managed-secrets", s, Tier::Enterprise)
            .findings
            .into_iter()
            .map(|f| (f.path, f.message))
            .collect()
    }

    #[test]
    fn controller_secrets_pass() {
        let data = json!({"data": {"password": "aHVudGVyMg=="}});
        for meta in [
            json!({"name": "db", "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1",
                "kind": "SealedSecret", "name": "db", "uid": "1"}]}),
            json!({"name": "db", "ownerReferences": [{"apiVersion": "example.com/v1",
                "kind": "Database", "name": "db", "uid": "1", "controller": true}]}),
            json!({"name": "tls", "annotations": {"cert-manager.io/certificate-name": "web"}}),
            json!({"name": "db", "annotations": {"sealedsecrets.bitnami.com/managed": "true"}}),
            json!({"name": "db", "labels": {"reconcile.external-secrets.io/managed": "true"}}),
        ] {
            assert_eq!(
                findings(&secret(meta.clone(), data.clone())),
                vec![],
                "{meta}"
            );
        }
        let sa = secret(
            json!({"name": "t", "annotations": {"kubernetes.io/service-account.name": "app"}}),
            json!({"type": "kubernetes.io/service-account-token", "data": {"token": "eA=="}}),
        );
        assert_eq!(findings(&sa), vec![]);
        let helm = secret(
            json!({"name": "sh.helm.release.v1.web.v1"}),
            json!({"type": "helm.sh/release.v1", "data": {"release": "eA=="}}),
        );
        assert_eq!(findings(&helm), vec![]);
        // No data: nothing hand-written (a placeholder a controller fills).
        assert_eq!(
            findings(&secret(json!({"name": "e"}), json!({"data": {}}))),
            vec![]
        );
    }

    #[test]
    fn hand_written_secrets_are_findings() {
        let s = secret(
            json!({"name": "db", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                "name": "x", "uid": "1"}]}),
            json!({"type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
        );
        assert_eq!(
            findings(&s),
            vec![(
                "/data".to_string(),
                "unmanaged Secret (Secret \"db\" must be created by a secrets controller such \
                 as Sealed Secrets, External Secrets or cert-manager, not hold hand-written \
                 data)"
                    .to_string()
            )]
        );
        let s = secret(
            json!({"name": "api"}),
            json!({"stringData": {"token": "abc"}}),
        );
        let f = findings(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "/stringData");
    }
}
