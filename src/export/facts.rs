//! A namespace's facts as the admission policies' params: the rules that
//! read cluster facts (PodDisruptionBudgets, HorizontalPodAutoscalers,
//! quotas, NetworkPolicies, ServiceAccounts; [`Cel::Facts`]) run as
//! ValidatingAdmissionPolicies whose bindings take as params the
//! `NamespaceFacts` object named [`NAME`] in the namespace of the request
//! (`paramRef` without a namespace). `tiergate serve`, in hybrid and
//! managed mode, keeps one in every namespace from its watch caches
//! (`crate::server::facts`); the e2e test writes them from the same
//! [`NamespaceFacts`] it gives the engine, so the policies and the engine
//! judge the same facts. The CRD is `deploy/base/crd-namespacefacts.yaml`.
//!
//! Every field of `spec` is always present (a fact the caches do not know
//! yet is not written: the object is written only once they all are), so
//! the rules' CEL needs no presence tests. A PodDisruptionBudget's
//! selector is written as its requirements (`matchLabels` as `In` with one
//! value), only when it parses: one that does not selects nothing, as in
//! the engine.
//!
//! [`Cel::Facts`]: crate::policy::cel::Cel::Facts
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use crate::policy::{Fact, NamespaceFacts};

pub const GROUP: &str = "tiergate.io";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "NamespaceFacts";
pub const PLURAL: &str = "namespacefacts";
/// The name of the one object in each namespace.
pub const NAME: &str = "tiergate";
/// The fields of `spec`, as the CRD declares them.
pub const FIELDS: [&str; 6] = [
    "defaultDenyNetworkPolicies",
    "resourceQuotas",
    "limitRanges",
    "podDisruptionBudgets",
    "horizontalPodAutoscalers",
    "serviceAccounts",
];

/// A selector as requirements (see the module doc).
fn requirements(sel: &LabelSelector) -> Vec<Value> {
    let mut out: Vec<Value> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| json!({"key": k, "operator": "In", "values": [v]}))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        out.push(json!({"key": e.key, "operator": e.operator,
                        "values": e.values.clone().unwrap_or_default()}));
    }
    out
}

/// The `spec` of a namespace's facts object; `None` while a fact it holds
/// is unknown.
pub fn spec(facts: &NamespaceFacts) -> Option<Value> {
    let known = |f: &Fact<Vec<String>>| f.known().cloned();
    let pdbs: Vec<Value> = facts
        .pdbs
        .known()?
        .iter()
        .filter(|p| p.selector_parses())
        .map(|p| {
            let mut v = json!({"name": p.name, "selector": requirements(&p.selector)});
            if let Some(m) = p.min_available {
                v["minAvailable"] = json!(m);
            }
            v
        })
        .collect();
    let hpas: Vec<Value> = facts
        .hpas
        .known()?
        .iter()
        .map(|h| {
            json!({"name": h.name, "kind": h.target_kind, "target": h.target_name,
                   "minReplicas": h.min_replicas})
        })
        .collect();
    let sas: Vec<Value> = facts
        .service_accounts
        .known()?
        .iter()
        .map(|a| {
            let mut v = json!({"name": a.name});
            if let Some(b) = a.automount {
                v["automount"] = json!(b);
            }
            v
        })
        .collect();
    Some(json!({
        "defaultDenyNetworkPolicies": known(&facts.default_deny_policies)?,
        "resourceQuotas": known(&facts.resource_quotas)?,
        "limitRanges": known(&facts.limit_ranges)?,
        "podDisruptionBudgets": pdbs,
        "horizontalPodAutoscalers": hpas,
        "serviceAccounts": sas,
    }))
}

/// The facts object of `namespace` to apply; `None` while a fact is unknown.
pub fn object(namespace: &str, facts: &NamespaceFacts) -> Option<Value> {
    Some(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "tiergate"},
        },
        "spec": spec(facts)?,
    }))
}

/// A policy's `paramKind`.
pub fn param_kind() -> Value {
    json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": KIND})
}

/// A binding's `paramRef`: the object in the request's namespace. While it
/// is missing (a namespace created a moment ago, before tiergate wrote
/// it) the binding's action applies, as a webhook's `failurePolicy: Fail`
/// does while it cannot be called: refused in enforce, a warning in warn.
pub fn param_ref() -> Value {
    json!({"name": NAME, "parameterNotFoundAction": "Deny"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::{HpaFact, PdbFact, SaFact};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn unknown_facts_write_nothing() {
        assert_eq!(object("a", &NamespaceFacts::default()), None);
        let mut f = NamespaceFacts::known_empty();
        f.hpas = Fact::Unknown;
        assert_eq!(object("a", &f), None);
    }

    #[test]
    fn the_spec_holds_every_field_the_crd_declares() {
        let crd: Value =
            crate::yaml::from_str(include_str!("../../deploy/base/crd-namespacefacts.yaml"))
                .expect("the CRD parses");
        assert_eq!(crd["spec"]["names"]["kind"], KIND);
        assert_eq!(crd["spec"]["names"]["plural"], PLURAL);
        assert_eq!(crd["spec"]["group"], GROUP);
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let declared: Vec<&str> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        let written = spec(&NamespaceFacts::known_empty()).expect("known");
        let mut written: Vec<&str> = written
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        written.sort();
        let mut fields = FIELDS.to_vec();
        fields.sort();
        let mut declared_sorted = declared.clone();
        declared_sorted.sort();
        assert_eq!(written, fields);
        assert_eq!(declared_sorted, fields);
        assert_eq!(schema["required"], json!(FIELDS));
    }

    #[test]
    fn selectors_become_requirements_and_bad_ones_are_left_out() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Exists".into(),
                values: None,
            }]),
        };
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "Sometimes".into(),
                values: None,
            }]),
            ..Default::default()
        };
        let mut f = NamespaceFacts::known_empty();
        f.pdbs = Fact::Known(vec![
            PdbFact::new("good".into(), sel).with_min_available(Some(
                &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2),
            )),
            PdbFact::new("bad".into(), bad),
        ]);
        f.hpas = Fact::Known(vec![HpaFact {
            name: "h".into(),
            target_kind: "Deployment".into(),
            target_name: "web".into(),
            min_replicas: 1,
        }]);
        f.service_accounts = Fact::Known(vec![SaFact {
            name: "default".into(),
            automount: Some(false),
        }]);
        let s = spec(&f).expect("known");
        assert_eq!(
            s["podDisruptionBudgets"],
            json!([{"name": "good", "minAvailable": 2, "selector": [
                {"key": "app", "operator": "In", "values": ["web"]},
                {"key": "tier", "operator": "Exists", "values": []}]}])
        );
        assert_eq!(
            s["horizontalPodAutoscalers"],
            json!([{"name": "h", "kind": "Deployment", "target": "web", "minReplicas": 1}])
        );
        assert_eq!(
            s["serviceAccounts"],
            json!([{"name": "default", "automount": false}])
        );
    }
}
