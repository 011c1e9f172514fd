//! Namespace facts from a set of objects: how the CLI fills a [`Context`] from
//! the other objects of its input. Pure: the caller reads the files.
//!
//! A namespace's facts are all known (possibly empty) when its `Namespace`
//! object is in the input: the input then claims to describe the namespace.
//! Otherwise each fact is known only when at least one object of its kind
//! (NetworkPolicy, ResourceQuota, LimitRange, PodDisruptionBudget) for that
//! namespace is present, and unknown else. Objects without
//! `metadata.namespace` belong to no namespace here (they are not taken to be
//! in `default`). `List` objects are read item by item; objects that do not
//! parse as their kind are ignored (evaluating them reports the error).
//!
//! [`Context`]: super::Context
use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::core::{Selector, SelectorExt};
use serde::Deserialize;
use serde_json::Value;

use super::context::{Fact, HpaFact, NamespaceFacts, PdbFact, SaFact};
use super::exception::{self, ExceptionFact};

/// What the input says about one namespace so far (`None`: no object of the kind).
#[derive(Default)]
struct NamespaceSoFar {
    declared: bool,
    default_deny: Option<Vec<String>>,
    quotas: Option<Vec<String>>,
    limits: Option<Vec<String>>,
    pdbs: Option<Vec<PdbFact>>,
    hpas: Option<Vec<HpaFact>>,
    sas: Option<Vec<SaFact>>,
    exceptions: Option<Vec<ExceptionFact>>,
}

/// The key under which [`facts_of_input`] keeps the facts of the objects
/// that name no namespace (they land in one namespace when applied).
pub const NO_NAMESPACE: &str = "";

/// The facts of each namespace of an input. `complete`: the input holds the
/// whole of each namespace it mentions (`check --complete`), so what is not
/// in it does not exist: every fact is known. Otherwise a fact is known only
/// for a namespace whose Namespace object is in the input, or that has
/// objects of that kind in it. The objects that name no namespace are one
/// namespace, [`NO_NAMESPACE`] (they land in one when applied). A namespace
/// not in the map is one the input says nothing about
/// (`NamespaceFacts::default()`, every fact unknown).
pub fn facts_of_input<'a>(
    objs: impl IntoIterator<Item = &'a Value>,
    complete: bool,
) -> BTreeMap<String, NamespaceFacts> {
    let mut acc: BTreeMap<String, NamespaceSoFar> = BTreeMap::new();
    // Cluster-wide: every namespace sees the same ClusterRoles.
    let mut admin_roles: Option<Vec<String>> = None;
    for obj in flatten(objs) {
        let (kind, api_version) = kind_of(obj);
        let Some(meta) = meta_of(obj) else { continue };
        let name = meta
            .name
            .clone()
            .or_else(|| meta.generate_name.clone())
            .unwrap_or_default();
        if kind == "Namespace" && api_version == "v1" {
            if !name.is_empty() {
                acc.entry(name).or_default().declared = true;
            }
            continue;
        }
        let ns = match meta.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => ns,
            None => NO_NAMESPACE,
        };
        let a = acc.entry(ns.to_string()).or_default();
        match (kind, api_version) {
            ("NetworkPolicy", "networking.k8s.io/v1") => {
                let Ok(np) = NetworkPolicy::deserialize(obj) else {
                    continue;
                };
                let list = a.default_deny.get_or_insert_with(Vec::new);
                if denies_ingress_by_default(&np.spec.unwrap_or_default()) {
                    list.push(name);
                }
            }
            ("ResourceQuota", "v1") => a.quotas.get_or_insert_with(Vec::new).push(name),
            ("LimitRange", "v1") => a.limits.get_or_insert_with(Vec::new).push(name),
            ("PodDisruptionBudget", "policy/v1" | "policy/v1beta1") => {
                // v1beta1 has the same spec (only its empty selector differs),
                // so read the spec alone: the typed object checks apiVersion.
                let spec = match obj.get("spec") {
                    None | Some(Value::Null) => Ok(PodDisruptionBudgetSpec::default()),
                    Some(s) => PodDisruptionBudgetSpec::deserialize(s),
                };
                let Ok(spec) = spec else { continue };
                let list = a.pdbs.get_or_insert_with(Vec::new);
                let min = spec.min_available.clone();
                let selector = spec.selector;
                // A null selector selects no pods; so does an empty one in v1beta1.
                match selector {
                    Some(s) if api_version == "policy/v1" || !selects_everything(&s) => {
                        list.push(PdbFact::new(name, s).with_min_available(min.as_ref()))
                    }
                    _ => {}
                }
            }
            ("ServiceAccount", "v1") => a.sas.get_or_insert_with(Vec::new).push(SaFact {
                name,
                automount: obj
                    .get("automountServiceAccountToken")
                    .and_then(Value::as_bool),
            }),
            ("ClusterRole", "rbac.authorization.k8s.io/v1") => {
                let Ok(role) = ClusterRole::deserialize(obj) else {
                    continue;
                };
                let list = admin_roles.get_or_insert_with(Vec::new);
                if grants_everything(role.rules.as_deref().unwrap_or_default()) {
                    list.push(name);
                }
            }
            (exception::KIND, exception::API_VERSION) => {
                // One that does not read is not an exception (the CLI reports
                // it; the webhook refuses it).
                let list = a.exceptions.get_or_insert_with(Vec::new);
                if let Ok(mut e) = exception::parse(obj) {
                    e.namespace = ns.to_string();
                    list.push(e);
                }
            }
            ("HorizontalPodAutoscaler", v) if v.starts_with("autoscaling/") => {
                let list = a.hpas.get_or_insert_with(Vec::new);
                list.extend(HpaFact::from_object(&name, obj));
            }
            _ => {}
        }
    }
    acc.into_iter()
        .map(|(ns, a)| {
            fn fact<T>(declared: bool, v: Option<Vec<T>>) -> Fact<Vec<T>> {
                match v {
                    Some(v) => Fact::Known(v),
                    None if declared => Fact::Known(Vec::new()),
                    None => Fact::Unknown,
                }
            }
            let d = a.declared || complete;
            let facts = NamespaceFacts {
                default_deny_policies: fact(d, a.default_deny),
                resource_quotas: fact(d, a.quotas),
                limit_ranges: fact(d, a.limits),
                pdbs: fact(d, a.pdbs),
                hpas: fact(d, a.hpas),
                service_accounts: fact(d, a.sas),
                admin_cluster_roles: fact(complete, admin_roles.clone()),
                exceptions: fact(d, a.exceptions),
            };
            (ns, facts)
        })
        .collect()
}

/// The labels of every `Namespace` object in the input, by namespace name.
pub fn namespace_labels<'a>(
    objs: impl IntoIterator<Item = &'a Value>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for obj in flatten(objs) {
        if kind_of(obj) != ("Namespace", "v1") {
            continue;
        }
        let Some(meta) = meta_of(obj) else { continue };
        if let Some(name) = meta.name.filter(|n| !n.is_empty()) {
            out.insert(name, meta.labels.unwrap_or_default());
        }
    }
    out
}

/// Whether a NetworkPolicy denies all ingress to every pod of its namespace by
/// default: it selects every pod (an absent `podSelector` defaults to empty),
/// its policy types include `Ingress` (an absent or empty `policyTypes`
/// defaults to `Ingress`, plus `Egress` when egress rules exist, so ingress is
/// always included), and it has no ingress rules (`ingress: [{}]` allows all).
pub fn denies_ingress_by_default(spec: &NetworkPolicySpec) -> bool {
    let selects_all = spec.pod_selector.as_ref().is_none_or(selects_everything);
    let ingress_type = match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => types.iter().any(|t| t == "Ingress"),
        _ => true,
    };
    let no_rules = spec.ingress.as_ref().is_none_or(|r| r.is_empty());
    selects_all && ingress_type && no_rules
}

/// Whether a ClusterRole's rules make it cluster-admin in all but name: one
/// rule grants every verb (`*`) on every resource (`*`) in every API group
/// (`*`), with no `resourceNames` to narrow it. An aggregated ClusterRole is
/// judged by the rules the aggregation controller wrote into it (online);
/// offline its `rules` are usually empty, and it is not taken for one.
pub fn grants_everything(rules: &[PolicyRule]) -> bool {
    let star = |v: Option<&Vec<String>>| v.is_some_and(|v| v.iter().any(|x| x == "*"));
    rules.iter().any(|r| {
        star(Some(&r.verbs))
            && star(r.api_groups.as_ref())
            && star(r.resources.as_ref())
            && r.resource_names.as_ref().is_none_or(Vec::is_empty)
    })
}

/// Whether a label selector selects everything (it is empty), as
/// apimachinery reads it (through kube's [`Selector`]).
pub fn selects_everything(s: &LabelSelector) -> bool {
    Selector::try_from(s.clone()).is_ok_and(|s| s.selects_all())
}

/// Whether a label selector matches a set of labels, as
/// `metav1.LabelSelectorAsSelector` evaluates it (through kube's
/// [`Selector`]): every `matchLabels` pair and every `matchExpressions`
/// requirement must hold; an empty selector matches everything; a selector
/// that does not parse (an unknown operator, `In` without values) matches
/// nothing.
pub fn selects(s: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::try_from(s.clone()).is_ok_and(|s| s.matches(labels))
}

fn kind_of(obj: &Value) -> (&str, &str) {
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    (s("kind"), s("apiVersion"))
}

fn meta_of(obj: &Value) -> Option<ObjectMeta> {
    match obj.get("metadata") {
        None | Some(Value::Null) => Some(ObjectMeta::default()),
        Some(m) => ObjectMeta::deserialize(m).ok(),
    }
}

/// Every object, with the items of `List` objects (`v1 List`, `PodList`, ...) in
/// place of the list.
fn flatten<'a>(objs: impl IntoIterator<Item = &'a Value>) -> Vec<&'a Value> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>, depth: u8) {
        let is_list = kind_of(v).0.ends_with("List");
        match v.get("items").and_then(Value::as_array) {
            Some(items) if is_list && depth < 8 => {
                for i in items {
                    walk(i, out, depth + 1);
                }
            }
            _ => out.push(v),
        }
    }
    let mut out = Vec::new();
    for o in objs {
        walk(o, &mut out, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    /// Facts of an input that is not said to be complete.
    fn facts_from_objects<'a>(
        objs: impl IntoIterator<Item = &'a Value>,
    ) -> BTreeMap<String, NamespaceFacts> {
        facts_of_input(objs, false)
    }
    use super::*;
    use serde_json::json;

    fn ns(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": {"tiergate.io/tier": "production"}}})
    }

    fn netpol(name: &str, namespace: &str, spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": name, "namespace": namespace}, "spec": spec})
    }

    fn named(kind: &str, api: &str, name: &str, namespace: &str) -> Value {
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}})
    }

    fn pdb(api: &str, name: &str, selector: Value) -> Value {
        json!({"apiVersion": api, "kind": "PodDisruptionBudget",
               "metadata": {"name": name, "namespace": "shop"},
               "spec": {"minAvailable": 1, "selector": selector}})
    }

    fn names(v: &[&str]) -> Fact<Vec<String>> {
        Fact::Known(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_declared_namespace_knows_everything() {
        let f = facts_from_objects(&[ns("shop")]);
        // Everything but the cluster-wide ClusterRoles, which a Namespace
        // says nothing about.
        let expected = NamespaceFacts {
            admin_cluster_roles: Fact::Unknown,
            ..NamespaceFacts::known_empty()
        };
        assert_eq!(f.get("shop"), Some(&expected));
        assert_eq!(
            facts_of_input(&[ns("shop")], true).get("shop"),
            Some(&NamespaceFacts::known_empty())
        );

        let f = facts_from_objects(&[
            named("ResourceQuota", "v1", "compute", "shop"),
            ns("shop"),
            netpol(
                "deny",
                "shop",
                json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            ),
            netpol(
                "allow-web",
                "shop",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}),
            ),
            pdb("policy/v1", "web", json!({"matchLabels": {"app": "web"}})),
        ]);
        let s = &f["shop"];
        assert_eq!(s.default_deny_policies, names(&["deny"]));
        assert_eq!(s.resource_quotas, names(&["compute"]));
        assert_eq!(s.limit_ranges, names(&[]));
        let Fact::Known(pdbs) = &s.pdbs else {
            panic!("pdbs unknown")
        };
        assert_eq!(pdbs.len(), 1);
        assert_eq!(pdbs[0].name, "web");
        assert_eq!(
            pdbs[0].selector.match_labels.as_ref().unwrap()["app"],
            "web"
        );
    }

    #[test]
    fn admin_equivalent_cluster_roles_are_known_in_every_namespace() {
        let role = |name: &str, rules: Value| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": name}, "rules": rules})
        };
        let all = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
        let f = facts_from_objects(&[
            role("ops-all", all.clone()),
            role(
                "one-secret",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"],
                        "resourceNames": ["x"]}]),
            ),
            role(
                "read-all",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}]),
            ),
            role(
                "split",
                json!([{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["*"]},
                       {"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}]),
            ),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "aggregated"},
                   "aggregationRule": {"clusterRoleSelectors": [{}]}}),
            named("RoleBinding", "rbac.authorization.k8s.io/v1", "b", "shop"),
        ]);
        assert_eq!(f["shop"].admin_cluster_roles, names(&["ops-all"]));
        assert_eq!(f[NO_NAMESPACE].admin_cluster_roles, names(&["ops-all"]));
        // No ClusterRole in an input that is not complete: unknown.
        let f = facts_from_objects(&[named(
            "RoleBinding",
            "rbac.authorization.k8s.io/v1",
            "b",
            "shop",
        )]);
        assert_eq!(f["shop"].admin_cluster_roles, Fact::Unknown);
        assert!(grants_everything(
            &serde_json::from_value::<Vec<PolicyRule>>(all).unwrap()
        ));
    }

    #[test]
    fn undeclared_namespaces_know_only_what_is_present() {
        let f = facts_from_objects(&[
            named("LimitRange", "v1", "defaults", "a"),
            netpol("allow", "b", json!({"podSelector": {}, "ingress": [{}]})),
            named("Deployment", "apps/v1", "web", "c"),
        ]);
        let a = &f["a"];
        assert_eq!(a.limit_ranges, names(&["defaults"]));
        assert_eq!(a.resource_quotas, Fact::Unknown);
        assert_eq!(a.default_deny_policies, Fact::Unknown);
        assert_eq!(a.pdbs, Fact::Unknown);
        // A NetworkPolicy that is not default-deny still makes the fact known.
        assert_eq!(f["b"].default_deny_policies, names(&[]));
        assert_eq!(f["b"].limit_ranges, Fact::Unknown);
        assert_eq!(f["c"], NamespaceFacts::default());
        assert!(!f.contains_key("default"));
    }

    #[test]
    fn objects_without_namespace_or_of_other_groups_are_ignored() {
        let f = facts_from_objects(&[
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}}),
            json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "x", "namespace": "shop"}, "spec": {}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "bad", "namespace": "shop"}, "spec": {"ingress": 7}}),
        ]);
        assert!(!f.contains_key("default"));
        assert_eq!(f["shop"], NamespaceFacts::default());
    }

    #[test]
    fn default_deny_follows_api_defaulting() {
        let spec = |v: Value| NetworkPolicySpec::deserialize(v).unwrap();
        // Deny: empty or absent selector, Ingress implied or listed, no rules.
        for v in [
            json!({"podSelector": {}}),
            json!({}),
            json!({"podSelector": {"matchLabels": {}}, "policyTypes": []}),
            json!({"podSelector": {}, "ingress": []}),
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            // Egress rules without policyTypes: Ingress is still defaulted in.
            json!({"podSelector": {}, "egress": [{"to": [{"podSelector": {}}]}]}),
        ] {
            assert!(denies_ingress_by_default(&spec(v.clone())), "{v}");
        }
        for v in [
            json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            json!({"podSelector": {}, "ingress": [{}]}),
            json!({"podSelector": {"matchLabels": {"app": "web"}}}),
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}),
        ] {
            assert!(!denies_ingress_by_default(&spec(v.clone())), "{v}");
        }
        // A NetworkPolicy without a spec is all defaults: deny.
        let f = facts_from_objects(&[json!({"apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy", "metadata": {"name": "d", "namespace": "n"}})]);
        assert_eq!(f["n"].default_deny_policies, names(&["d"]));
    }

    #[test]
    fn pdb_selectors_that_select_nothing_are_dropped() {
        let f = facts_from_objects(&[
            pdb("policy/v1", "all", json!({})),
            pdb("policy/v1", "none", json!(null)),
            pdb("policy/v1beta1", "old-empty", json!({})),
            pdb(
                "policy/v1beta1",
                "old",
                json!({"matchLabels": {"app": "db"}}),
            ),
        ]);
        let Fact::Known(pdbs) = &f["shop"].pdbs else {
            panic!("pdbs unknown")
        };
        let got: Vec<&str> = pdbs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(got, vec!["all", "old"]);
    }

    #[test]
    fn lists_are_flattened() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            ns("shop"), named("ResourceQuota", "v1", "q", "shop")]});
        let f = facts_from_objects(std::slice::from_ref(&list));
        assert_eq!(f["shop"].resource_quotas, names(&["q"]));
        assert_eq!(f["shop"].pdbs, Fact::Known(vec![]));
        assert_eq!(namespace_labels(&[list]).len(), 1);
    }

    #[test]
    fn namespace_labels_are_collected() {
        let bare = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bare"}});
        let l = namespace_labels(&[ns("shop"), bare, named("ConfigMap", "v1", "c", "shop")]);
        assert_eq!(l.len(), 2);
        assert_eq!(l["shop"]["tiergate.io/tier"], "production");
        assert!(l["bare"].is_empty());
    }
}
