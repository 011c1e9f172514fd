//! `external-secret-store`: Secrets come from an external secret store.
use super::prelude::*;
use k8s_openapi::api::core::v1::Secret;

use super::managed_secrets::{maker, Maker};

pub static RULE: Rule = Rule {
    id: "external-secret-store",
    tier: Tier::Enterprise,
    pss: None,
    summary: "Secrets come from an external secret store, not a SealedSecret",
    doc: "The top rung of the reference's secrets ladder (tier 3: Vault and the External \
Secrets Operator). A SealedSecret keeps the value in Git, encrypted to one cluster's key: \
rotating it means a commit, the value cannot be revoked centrally, and every cluster needs \
its own copy. From the enterprise tier on, a Secret with data must come from an external \
store or generator: owned by an ExternalSecret, a Vault Secrets Operator object, the CSI \
secrets store, a OnePasswordItem, cert-manager or another controller, or carrying their \
markers, as `managed-secrets` lists them. A Secret a SealedSecret made is a finding here \
(and passes `managed-secrets`); a hand-written one is `managed-secrets`' finding and is not \
reported twice. Replace the SealedSecret with an ExternalSecret reading the value from the \
store.",
    check: Check::Object(Kinds::Only(&[kinds::SECRET]), check),
    fix: Fix::None,
    cel: Cel::Webhook(
        "which controller made a Secret (owners, annotations, the secrets ladder) is not written in CEL yet",
    ),
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let s: Secret = t.typed()?;
    if maker(&s) == Some(Maker::Sealed) {
        let path = if s.data.as_ref().is_some_and(|d| !d.is_empty()) {
            "/data"
        } else {
            "/stringData"
        };
        out.push(Violation::new(
            path,
            format!(
                "sealed Secret (Secret {:?} must come from an external secret store such as \
                 Vault through External Secrets, not from a SealedSecret)",
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
    use serde_json::{json, Value};

    fn secret(meta: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "data": {"password": "aHVudGVyMg=="}})
    }

    fn rules(s: &Value, rule: &str, tier: Tier) -> usize {
        run_rule(rule, s, tier).findings.len()
    }

    #[test]
    fn the_ladder_sealed_at_tier_2_a_store_at_tier_3() {
        let sealed = secret(
            json!({"name": "db", "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret", "name": "db", "uid": "1", "controller": true}]}),
        );
        let external = secret(
            json!({"name": "db", "ownerReferences": [{"apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret", "name": "db", "uid": "1", "controller": true}]}),
        );
        let hand = secret(json!({"name": "db"}));
        // Tier 2: sealed and external pass, hand-written does not.
        assert_eq!(rules(&sealed, "managed-secrets", Tier::Production), 0);
        assert_eq!(rules(&external, "managed-secrets", Tier::Production), 0);
        assert_eq!(rules(&hand, "managed-secrets", Tier::Production), 1);
        // Tier 3: a SealedSecret is not a store; a hand-written one is
        // managed-secrets' finding, not reported twice.
        assert_eq!(rules(&sealed, "external-secret-store", Tier::Enterprise), 1);
        assert_eq!(
            rules(&external, "external-secret-store", Tier::Enterprise),
            0
        );
        assert_eq!(rules(&hand, "external-secret-store", Tier::Enterprise), 0);
        let marked = secret(
            json!({"name": "db", "annotations": {"sealedsecrets.bitnami.com/managed": "true"}}),
        );
        assert_eq!(rules(&marked, "external-secret-store", Tier::Enterprise), 1);
        assert_eq!(
            run_rule("external-secret-store", &sealed, Tier::Enterprise).findings[0].message,
            "sealed Secret (Secret \"db\" must come from an external secret store such as Vault \
             through External Secrets, not from a SealedSecret)"
        );
    }
}
