//! The caches fed with synthetic watcher events (no apiserver), and the
//! context a request gets from them.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::watcher::Event;
use serde_json::{json, Value};

use super::summary::{Summarize, Summary};
use super::*;
use crate::admission::{AdmissionSettings, Lookup, ReviewBuilder, Webhook};
use crate::config::Config;
use crate::policy::config::{RuleId, RuleOverride};
use crate::policy::{Mode, Tier};

fn ns(name: &str, labels: &[(&str, &str)]) -> Summary<NsLabels> {
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()}
    }))
    .unwrap();
    ns.summarize()
}

fn netpol(ns: &str, name: &str, spec: Value) -> Summary<DefaultDeny> {
    let np: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns}, "spec": spec
    }))
    .unwrap();
    np.summarize()
}

fn named<P: summary::Payload>(ns: &str, name: &str, payload: P) -> Summary<P> {
    Summary {
        name: name.into(),
        namespace: Some(ns.into()),
        payload,
    }
}

fn pdb(ns: &str, name: &str, spec: Value) -> Summary<PdbSelector> {
    let p: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns}, "spec": spec
    }))
    .unwrap();
    p.summarize()
}

/// Initial list of `objs` on a writer.
fn list<P: summary::Payload>(w: &mut store::CacheWriter<P>, objs: Vec<Summary<P>>) {
    w.apply(&Event::Init);
    for o in objs {
        w.apply(&Event::InitApply(o));
    }
    assert!(w.apply(&Event::InitDone));
}

fn synced_empty() -> (Arc<Caches>, Writers) {
    let (c, mut w) = Caches::new();
    list_the_rest_empty(&mut w);
    (c, w)
}

/// An empty initial list on every writer that has not listed yet.
fn list_the_rest_empty(w: &mut Writers) {
    fn empty<P: summary::Payload>(w: &mut store::CacheWriter<P>) {
        if !w.cache_synced() {
            list(w, vec![]);
        }
    }
    empty(&mut w.namespaces);
    empty(&mut w.network_policies);
    empty(&mut w.resource_quotas);
    empty(&mut w.limit_ranges);
    empty(&mut w.pdbs);
    empty(&mut w.hpas);
    empty(&mut w.service_accounts);
    empty(&mut w.cluster_roles);
    empty(&mut w.exceptions);
}

fn request(kind: &str, namespace: &str) -> AdmissionRequest {
    let api_version = if kind == "Deployment" {
        "apps/v1"
    } else {
        "v1"
    };
    let obj = json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": "web", "namespace": namespace}});
    let body = ReviewBuilder::new("u", "CREATE", obj)
        .user("bob", &[])
        .body();
    AdmissionRequest::from_body(&body).unwrap()
}

#[test]
fn not_ready_until_every_cache_has_listed() {
    let (c, mut w) = Caches::new();
    let src = ClusterSource::new(c.clone());
    assert!(!src.ready());
    list(&mut w.namespaces, vec![]);
    list(&mut w.network_policies, vec![]);
    list(&mut w.resource_quotas, vec![]);
    list(&mut w.limit_ranges, vec![]);
    assert!(!src.ready());
    // Facts of unsynced caches stay unknown.
    assert_eq!(c.facts("shop").pdbs, Fact::Unknown);
    assert_eq!(c.facts("shop").resource_quotas, Fact::Known(vec![]));
    list(&mut w.pdbs, vec![]);
    assert!(!src.ready());
    assert_eq!(c.facts("shop").hpas, Fact::Unknown);
    list(&mut w.hpas, vec![]);
    assert!(!src.ready());
    list(&mut w.service_accounts, vec![]);
    assert!(!src.ready());
    assert_eq!(c.facts("shop").admin_cluster_roles, Fact::Unknown);
    list(&mut w.cluster_roles, vec![]);
    assert!(!src.ready());
    list(&mut w.exceptions, vec![]);
    assert!(src.ready());
    assert_eq!(c.facts("shop"), NamespaceFacts::known_empty());
}

#[test]
fn tier_mode_labels_and_facts_come_from_the_caches() {
    let (c, mut w) = Caches::new();
    list(
        &mut w.namespaces,
        vec![
            ns(
                "shop",
                &[
                    ("tiergate.io/tier", "2"),
                    ("tiergate.io/mode", "enforce"),
                    ("team", "a"),
                ],
            ),
            ns("other", &[("tiergate.io/tier", "5")]),
        ],
    );
    list(
        &mut w.network_policies,
        vec![
            netpol(
                "shop",
                "default-deny",
                json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            ),
            netpol(
                "shop",
                "allow-web",
                json!({"podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {}}]}]}),
            ),
            netpol("other", "deny", json!({"podSelector": {}})),
        ],
    );
    list(
        &mut w.resource_quotas,
        vec![named("shop", "compute", summary::Quota)],
    );
    list(
        &mut w.limit_ranges,
        vec![named("shop", "defaults", summary::Limits)],
    );
    list(
        &mut w.pdbs,
        vec![
            pdb(
                "shop",
                "web",
                json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
            ),
            pdb("shop", "none", json!({"minAvailable": 1})),
        ],
    );
    let src = ClusterSource::new(c);
    let r = src.context_within(
        &request("Deployment", "shop"),
        &PolicyConfig::default(),
        Duration::ZERO,
    );
    assert_eq!(r.ctx.tier, Tier::Production);
    assert_eq!(r.ctx.mode, Mode::Enforce);
    assert_eq!(r.ctx.namespace.as_deref(), Some("shop"));
    assert_eq!(
        r.ctx.namespace_labels.get("team").map(String::as_str),
        Some("a")
    );
    assert!(r.annotations.is_empty() && r.notes.is_empty());
    let f = &r.ctx.facts;
    assert_eq!(
        f.default_deny_policies,
        Fact::Known(vec!["default-deny".to_string()])
    );
    assert_eq!(f.resource_quotas, Fact::Known(vec!["compute".to_string()]));
    assert_eq!(f.limit_ranges, Fact::Known(vec!["defaults".to_string()]));
    let pdbs = f.pdbs.known().unwrap();
    assert_eq!(pdbs.len(), 1, "a PDB without a selector selects nothing");
    assert_eq!(pdbs[0].name, "web");
    assert_eq!(r.ctx.requester.as_ref().unwrap().username, "bob");

    let r = src.context_within(
        &request("Deployment", "other"),
        &PolicyConfig::default(),
        Duration::ZERO,
    );
    assert_eq!(r.ctx.tier, Tier::Hyperscale);
    assert_eq!(r.ctx.mode, Mode::Warn, "no mode label: the default");
    assert_eq!(r.ctx.facts.resource_quotas, Fact::Known(vec![]));
}

#[test]
fn watch_events_update_the_caches_in_place() {
    let (c, mut w) = synced_empty();
    let src = ClusterSource::new(c.clone());
    w.namespaces
        .apply(&Event::Apply(ns("shop", &[("tiergate.io/tier", "1")])));
    let tier = |src: &ClusterSource| {
        src.context_within(
            &request("Pod", "shop"),
            &PolicyConfig::default(),
            Duration::ZERO,
        )
        .ctx
        .tier
    };
    assert_eq!(tier(&src), Tier::Foundation);
    // Relabelled to tier 2: the next request sees it.
    w.namespaces
        .apply(&Event::Apply(ns("shop", &[("tiergate.io/tier", "2")])));
    assert_eq!(tier(&src), Tier::Production);

    let np = netpol("shop", "deny", json!({"podSelector": {}}));
    w.network_policies.apply(&Event::Apply(np.clone()));
    assert_eq!(
        c.facts("shop").default_deny_policies,
        Fact::Known(vec!["deny".into()])
    );
    // Edited to allow some ingress: no longer a default deny.
    w.network_policies.apply(&Event::Apply(netpol(
        "shop",
        "deny",
        json!({"podSelector": {}, "ingress": [{}]}),
    )));
    assert_eq!(c.facts("shop").default_deny_policies, Fact::Known(vec![]));
    w.network_policies.apply(&Event::Apply(np.clone()));
    w.network_policies.apply(&Event::Delete(np));
    assert_eq!(c.facts("shop").default_deny_policies, Fact::Known(vec![]));
    assert_eq!(c.network_policies.len(), 0);
}

#[test]
fn a_relist_keeps_serving_the_old_state_until_it_completes() {
    let (c, mut w) = synced_empty();
    w.resource_quotas
        .apply(&Event::Apply(named("shop", "old", summary::Quota)));
    // The watch broke and relists: until InitDone the old state serves.
    w.resource_quotas.apply(&Event::Init);
    w.resource_quotas
        .apply(&Event::InitApply(named("shop", "new", summary::Quota)));
    assert_eq!(
        c.facts("shop").resource_quotas,
        Fact::Known(vec!["old".into()])
    );
    assert!(c.synced(), "still ready while relisting");
    w.resource_quotas.apply(&Event::InitDone);
    // Objects missing from the relist are gone.
    assert_eq!(
        c.facts("shop").resource_quotas,
        Fact::Known(vec!["new".into()])
    );
}

#[test]
fn an_unknown_namespace_waits_then_uses_the_defaults_and_says_so() {
    let (c, _w) = synced_empty();
    let src = ClusterSource::new(c);
    let cfg = Config::from_yaml("defaults: {tier: 2, mode: enforce}\n", "t")
        .unwrap()
        .policy;
    let t0 = Instant::now();
    let r = src.context_within(&request("Pod", "new-ns"), &cfg, Duration::from_millis(100));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!((r.ctx.tier, r.ctx.mode), (Tier::Production, Mode::Enforce));
    assert_eq!(r.annotations.len(), 1);
    assert_eq!(r.annotations[0].0, "context");
    assert_eq!(
        r.annotations[0].1,
        "namespace \"new-ns\" is not in the cluster cache (waited 100 ms); decided on the config defaults: tier 2 (production), mode enforce"
    );
}

#[test]
fn a_namespace_arriving_during_the_wait_is_used() {
    let (c, mut w) = synced_empty();
    let src = ClusterSource::new(c);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w.namespaces
            .apply(&Event::Apply(ns("fresh", &[("tiergate.io/tier", "3")])));
        w
    });
    let t0 = Instant::now();
    let r = src.context_within(
        &request("Pod", "fresh"),
        &PolicyConfig::default(),
        Duration::from_secs(5),
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "woken by the change, not the timeout"
    );
    assert_eq!(r.ctx.tier, Tier::Enterprise);
    assert!(r.annotations.is_empty());
    let _ = t.join();
}

#[test]
fn namespace_objects_use_their_own_labels_and_cluster_scoped_objects_the_defaults() {
    let (c, mut w) = synced_empty();
    w.namespaces
        .apply(&Event::Apply(ns("shop", &[("tiergate.io/tier", "1")])));
    let src = ClusterSource::new(c);
    let obj = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"tiergate.io/tier": "4"}}});
    let body = ReviewBuilder::new("u", "UPDATE", obj)
        .namespace(None)
        .body();
    let req = AdmissionRequest::from_body(&body).unwrap();
    let r = src.context_within(&req, &PolicyConfig::default(), Duration::from_secs(5));
    assert_eq!(r.ctx.tier, Tier::MultiCluster);
    assert!(r.annotations.is_empty());

    let mut crb = request("ClusterRoleBinding", "");
    crb.namespace = None;
    let t0 = Instant::now();
    let r = src.context_within(&crb, &PolicyConfig::default(), Duration::from_secs(5));
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "no namespace, no wait"
    );
    assert_eq!(r.ctx.tier, Tier::Foundation);
    // Only the cluster-wide facts are known for a cluster-scoped object.
    let expected = NamespaceFacts {
        admin_cluster_roles: Fact::Known(vec![]),
        ..NamespaceFacts::default()
    };
    assert_eq!(*r.ctx.facts, expected);
}

#[test]
fn an_invalid_tier_label_in_the_cache_keeps_the_default_with_a_note() {
    let (c, mut w) = synced_empty();
    w.namespaces
        .apply(&Event::Apply(ns("shop", &[("tiergate.io/tier", "gold")])));
    let r = ClusterSource::new(c).context_within(
        &request("Pod", "shop"),
        &PolicyConfig::default(),
        Duration::ZERO,
    );
    assert_eq!(r.ctx.tier, Tier::Foundation);
    assert!(
        r.notes[0].contains("tiergate.io/tier=\"gold\" is not a tier; using foundation"),
        "{:?}",
        r.notes
    );
}

#[test]
fn the_webhook_decides_on_cached_facts() {
    // End to end through admission::decide: tier 2 enforce, the
    // default-deny-network-policy rule on, nothing else.
    let (c, mut w) = synced_empty();
    w.namespaces.apply(&Event::Apply(ns(
        "shop",
        &[("tiergate.io/tier", "2"), ("tiergate.io/mode", "enforce")],
    )));
    let mut cfg = PolicyConfig::default();
    for rule in crate::policy::rules::ALL {
        if rule.id != "default-deny-network-policy" {
            cfg.rules.insert(
                RuleId(rule.id.to_string()),
                RuleOverride {
                    action: Some(crate::policy::Action::Off),
                    fix: None,
                },
            );
        }
    }
    let engine = crate::policy::Engine::new(cfg);
    let src = ClusterSource::new(c);
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}});
    let body = ReviewBuilder::new("u", "CREATE", deploy)
        .user("bob", &[])
        .build();
    let settings = AdmissionSettings::new(Webhook::Validate);
    let decide = |engine: &crate::policy::Engine, src: &ClusterSource| -> Value {
        let a = crate::admission::handle(body.to_string().as_bytes(), engine, src, settings);
        serde_json::from_slice(&a.body).unwrap()
    };
    let resp = decide(&engine, &src);
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    let msg = resp["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("default-deny-network-policy"), "{msg}");
    w.network_policies.apply(&Event::Apply(netpol(
        "shop",
        "default-deny",
        json!({"podSelector": {}}),
    )));
    let resp = decide(&engine, &src);
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
}

/// An invalid tier label means the same on both sides: the webhook (cluster
/// caches) and `tiergate check` (the Namespace in the input) both judge at the
/// default tier and say so in the same words, and both deny the same rules.
#[test]
fn an_invalid_tier_label_reads_the_same_online_and_offline() {
    let labels = [
        ("tiergate.io/tier", "gold"),
        ("tiergate.io/mode", "enforce"),
    ];
    let (c, mut w) = synced_empty();
    w.namespaces.apply(&Event::Apply(ns("shop", &labels)));
    let src = ClusterSource::new(c);
    let cfg = Config::from_yaml("defaults: {tier: production, mode: warn}\n", "t").unwrap();
    let engine = crate::policy::Engine::new(cfg.policy.clone());

    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": "nginx",
            "securityContext": {"privileged": true}}]}});
    let body = ReviewBuilder::new("u", "CREATE", pod)
        .user("bob", &[])
        .build();
    let a = crate::admission::handle(
        body.to_string().as_bytes(),
        &engine,
        &src,
        AdmissionSettings::new(Webhook::Validate),
    );
    let online: Value = serde_json::from_slice(&a.body).unwrap();
    let rec = a.record.unwrap();
    assert_eq!(rec.tier, Some(Tier::Production), "the default tier");
    assert_eq!(rec.mode, Some(Mode::Enforce), "the valid mode label holds");
    let warnings: Vec<String> = online["response"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    let note = "namespace \"shop\": tiergate.io/tier=\"gold\" is not a tier; using production";
    let online_note = warnings
        .iter()
        .find(|w| w.starts_with(note))
        .unwrap_or_else(|| panic!("no note in {warnings:?}"))
        .clone();
    assert_eq!(online["response"]["allowed"], false);

    let manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    tiergate.io/tier: gold\n    tiergate.io/mode: enforce\n---\n{}",
        serde_json::to_string(&body["request"]["object"]).unwrap()
    );
    let src_file = crate::manifest::parse_source("in.yaml", None, &manifest).unwrap();
    let judged =
        crate::cli::judge_sources(&engine, &[src_file], &crate::cli::Settings::check(None))
            .unwrap();
    let offline = judged.iter().find(|j| j.kind == "Pod").unwrap();
    assert_eq!(offline.tier, Tier::Production);
    // The same note; the webhook's warning is cut to the 120-character limit.
    assert_eq!(offline.notes.len(), 1);
    assert_eq!(
        crate::admission::limits::truncate(
            &offline.notes[0],
            crate::admission::limits::WARNING_MAX
        ),
        online_note
    );
    fn denied(findings: &[crate::policy::Finding]) -> Vec<&'static str> {
        let mut r: Vec<&'static str> = findings
            .iter()
            .filter(|f| f.action == crate::policy::Action::Deny)
            .map(|f| f.rule)
            .collect();
        r.sort();
        r.dedup();
        r
    }
    assert!(denied(&rec.findings).contains(&"privileged"));
    assert_eq!(denied(&offline.eval.findings), denied(&rec.findings));
}

/// The fast path: a namespace the cache knows is resolved without waiting;
/// only an unknown one asks for a thread that may wait. Namespace objects and
/// cluster-scoped objects never wait.
#[test]
fn the_cache_is_tried_without_blocking_first() {
    let (c, mut w) = synced_empty();
    w.namespaces
        .apply(&Event::Apply(ns("shop", &[("tiergate.io/tier", "3")])));
    let src = ClusterSource::new(c);
    let cfg = PolicyConfig::default();
    match src.try_context(&request("Pod", "shop"), &cfg) {
        Lookup::Ready(r) => assert_eq!(r.ctx.tier, Tier::Enterprise),
        Lookup::WouldBlock => panic!("a cached namespace must not wait"),
    }
    assert!(matches!(
        src.try_context(&request("Pod", "not-yet"), &cfg),
        Lookup::WouldBlock
    ));
    let ns_obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "new"}});
    let body = ReviewBuilder::new("u", "CREATE", ns_obj)
        .namespace(None)
        .body();
    let req = AdmissionRequest::from_body(&body).unwrap();
    assert!(matches!(src.try_context(&req, &cfg), Lookup::Ready(_)));
    let mut crb = request("ClusterRoleBinding", "");
    crb.namespace = None;
    assert!(matches!(src.try_context(&crb, &cfg), Lookup::Ready(_)));
}

#[test]
fn autoscalers_are_namespace_facts() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let (c, mut w) = synced_empty();
    let hpa = |ns: &str, name: &str, target: &str, min: Option<i32>| {
        let h: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"maxReplicas": 5, "minReplicas": min,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}}
        }))
        .unwrap();
        h.summarize()
    };
    list(
        &mut w.hpas,
        vec![
            hpa("shop", "web", "web", Some(3)),
            hpa("shop", "api", "api", None),
            hpa("other", "x", "x", Some(2)),
        ],
    );
    let hpas = c.facts("shop").hpas.known().cloned().unwrap();
    assert_eq!(
        hpas,
        vec![
            crate::policy::context::HpaFact {
                name: "api".into(),
                target_kind: "Deployment".into(),
                target_name: "api".into(),
                min_replicas: 1,
            },
            crate::policy::context::HpaFact {
                name: "web".into(),
                target_kind: "Deployment".into(),
                target_name: "web".into(),
                min_replicas: 3,
            },
        ]
    );
}

#[test]
fn admin_equivalent_cluster_roles_are_a_cluster_fact_that_follows_the_watch() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let (c, mut w) = synced_empty();
    let role = |name: &str, verbs: &[&str]| {
        let r: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": verbs}]
        }))
        .unwrap();
        r.summarize()
    };
    list(
        &mut w.cluster_roles,
        vec![role("view-all", &["get"]), role("ops-all", &["*"])],
    );
    assert_eq!(
        c.facts("shop").admin_cluster_roles,
        Fact::Known(vec!["ops-all".to_string()])
    );
    // A change is seen by the next read (the memo follows the cache).
    w.cluster_roles
        .apply(&Event::Apply(role("view-all", &["*"])));
    assert_eq!(
        c.cluster_facts().admin_cluster_roles,
        Fact::Known(vec!["ops-all".to_string(), "view-all".to_string()])
    );
    w.cluster_roles
        .apply(&Event::Delete(role("ops-all", &["*"])));
    assert_eq!(
        c.facts("other").admin_cluster_roles,
        Fact::Known(vec!["view-all".to_string()])
    );
}

#[test]
fn tier_exceptions_are_namespace_facts_and_metrics() {
    use super::summary::TierException;
    use prometheus::core::Collector;
    let (c, mut w) = synced_empty();
    let ex = |ns: &str, name: &str, owner: &str, expires: i64| {
        let e: TierException = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"reason": "r", "owner": owner, "expires": crate::policy::exception::rfc3339(expires),
                "rules": ["privileged"], "match": {"kinds": ["Pod"]}}
        }))
        .unwrap();
        e.summarize()
    };
    list(
        &mut w.exceptions,
        vec![
            ex("shop", "a", "team-a", 2_000_000_000),
            ex("shop", "old", "team-a", 1_000_000_000),
            // Invalid (no owner): kept, but excepts nothing.
            ex("shop", "bad", "", 2_000_000_000),
            ex("other", "b", "team-b", 2_000_000_000),
        ],
    );
    let got: Vec<String> = c
        .facts("shop")
        .exceptions
        .known()
        .unwrap()
        .iter()
        .map(|e| e.id())
        .collect();
    assert_eq!(got, ["shop/a", "shop/old"]);
    let m = ExceptionMetrics::new(c.clone()).unwrap();
    let fams = m.collect();
    let live = &fams[0];
    assert_eq!(live.name(), "tiergate_exceptions");
    let by_ns: Vec<(String, f64)> = live
        .get_metric()
        .iter()
        .map(|x| {
            (
                x.get_label()[0].value().to_string(),
                x.get_gauge().get_value(),
            )
        })
        .collect();
    // collect() refreshes at the real clock; the 2033 ones are live, the
    // 2001 one is not.
    assert!(by_ns.contains(&("shop".into(), 1.0)), "{by_ns:?}");
    assert!(by_ns.contains(&("other".into(), 1.0)), "{by_ns:?}");
    assert_eq!(
        fams[1].get_metric().len(),
        3,
        "one expiry per valid exception"
    );
}

#[test]
fn each_namespace_gets_its_facts_object_once_every_cache_has_synced() {
    let (c, mut w) = Caches::new();
    list(
        &mut w.namespaces,
        vec![ns("shop", &[]), ns("kube-system", &[]), ns("empty", &[])],
    );
    list(
        &mut w.network_policies,
        vec![netpol(
            "shop",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        )],
    );
    list(
        &mut w.pdbs,
        vec![pdb(
            "shop",
            "web",
            json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
        )],
    );
    // Not every cache has listed: nothing is known, nothing written.
    assert!(c.facts_objects(&["kube-system"]).is_empty());
    let before = c.facts_generation();
    list_the_rest_empty(&mut w);
    assert_ne!(c.facts_generation(), before, "a relist is a change");
    let objs = c.facts_objects(&["kube-system"]);
    let names: Vec<&str> = objs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["empty", "shop"]);
    let shop = &objs[1].1;
    assert_eq!(shop["metadata"]["namespace"], "shop");
    assert_eq!(shop["spec"]["defaultDenyNetworkPolicies"], json!(["deny"]));
    assert_eq!(
        shop["spec"]["podDisruptionBudgets"],
        json!([{"name": "web", "minAvailable": 1,
                "selector": [{"key": "app", "operator": "In", "values": ["web"]}]}])
    );
    assert_eq!(objs[0].1["spec"]["resourceQuotas"], json!([]));
}
