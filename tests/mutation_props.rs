//! Do no harm, as a property: over randomized well-formed workloads (every
//! pod kind; nulls; duplicate names; init, sidecar and ephemeral containers;
//! Windows pods; pod-level resources; odd labels and images; controller-owned
//! objects; CREATE and UPDATE; every tier; warn and enforce; default fixes and
//! every fix turned on), the mutating answer:
//! - applies (with `json-patch`), and the patched object still deserializes as
//!   its k8s-openapi type;
//! - is a fixed point: mutating the patched object gives no patch;
//! - changes and drops no value the user wrote (fixes only add);
//! - adds no Linux-only field to a Windows pod, no container value for a
//!   resource set at pod level, and nothing to an object a controller made;
//!
//! and the validating answer never carries a patch.
mod common;

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};
use tiergate::admission::{self, AdmissionSettings, DefaultsSource, ReviewBuilder, Webhook};
use tiergate::config::Config;
use tiergate::policy::{rules, Engine};

fn arb_image() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("nginx")),
        Just(json!("nginx:1.27")),
        Just(json!("ghcr.io/acme/web:2.4.1")),
        Just(json!(
            "registry.k8s.io/pause@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097"
        )),
        Just(json!("localhost:5000/x:latest")),
        Just(Value::Null),
    ]
}

fn arb_security_context() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        prop_oneof![Just(None), Just(Some(0)), Just(Some(1000))],
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        prop_oneof![
            Just(Value::Null),
            Just(json!({"drop": ["ALL"]})),
            Just(json!({"add": ["NET_ADMIN"]})),
            Just(json!({"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE"]})),
        ],
        any::<bool>(),
    )
        .prop_map(|(non_root, user, privileged, caps, null)| {
            if null {
                return Value::Null;
            }
            let mut sc = serde_json::Map::new();
            if let Some(v) = non_root {
                sc.insert("runAsNonRoot".into(), json!(v));
            }
            if let Some(v) = user {
                sc.insert("runAsUser".into(), json!(v));
            }
            if let Some(v) = privileged {
                sc.insert("privileged".into(), json!(v));
            }
            if !caps.is_null() {
                sc.insert("capabilities".into(), caps);
            }
            Value::Object(sc)
        })
}

fn arb_resources() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!({})),
        Just(json!({"requests": {"cpu": "50m"}})),
        Just(json!({"limits": {"memory": "2Gi"}})),
        Just(
            json!({"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}})
        ),
        Just(json!({"requests": null})),
    ]
}

fn arb_container(prefix: &'static str) -> impl Strategy<Value = Value> {
    (
        0usize..3,
        arb_image(),
        arb_security_context(),
        arb_resources(),
        prop_oneof![
            Just(Value::Null),
            Just(json!([{"containerPort": 8080}])),
            Just(json!([{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 9090}]))
        ],
        any::<bool>(),
        prop_oneof![
            Just(Value::Null),
            Just(json!([{"name": "LOG_LEVEL", "value": "info"}])),
            Just(json!([{"name": "DB_PASSWORD", "value": "hunter2"}])),
        ],
    )
        .prop_map(move |(n, image, sc, res, ports, probes, env)| {
            let mut c = json!({"name": format!("{prefix}{n}")});
            for (k, v) in [
                ("image", image),
                ("securityContext", sc),
                ("resources", res),
                ("ports", ports),
                ("env", env),
            ] {
                if !v.is_null() || n == 2 {
                    c[k] = v;
                }
            }
            if probes {
                c["readinessProbe"] = json!({"tcpSocket": {"port": 8080}});
                c["livenessProbe"] = json!({"httpGet": {"path": "/healthz", "port": 8080}});
            }
            c
        })
}

#[derive(Debug, Clone)]
struct Case {
    object: Value,
    update: bool,
    tier: u8,
    enforce: bool,
    all_fixes: bool,
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        0usize..9,
        prop::collection::vec(arb_container("app"), 1..4),
        prop::collection::vec(arb_container("init"), 0..3),
        any::<bool>(),
        prop_oneof![Just(0u8), Just(1), Just(2), Just(3)],
        prop_oneof![
            Just(Value::Null),
            Just(json!({})),
            Just(json!({"app.kubernetes.io/name": "web"})),
            Just(json!({"odd/label.x": "", "app": "web"})),
        ],
        (any::<bool>(), any::<bool>()),
        (1u8..6, any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(kind, containers, inits, sidecar, extra, labels, (update, owned), (tier, enforce, all_fixes))| {
                let mut inits = inits;
                if sidecar {
                    if let Some(first) = inits.first_mut() {
                        first["restartPolicy"] = json!("Always");
                    }
                }
                let mut spec = json!({"containers": containers});
                if !inits.is_empty() {
                    spec["initContainers"] = json!(inits);
                }
                match extra {
                    1 => spec["os"] = json!({"name": "windows"}),
                    2 => {
                        spec["resources"] =
                            json!({"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}})
                    }
                    3 => spec["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 1000}),
                    _ => {}
                }
                let mut meta = json!({"name": "web", "namespace": "shop"});
                if !labels.is_null() {
                    meta["labels"] = labels.clone();
                }
                if owned {
                    meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "web-6d4cf56db6", "uid": "u", "controller": true}]);
                }
                let template = json!({"metadata": {"labels": if labels.is_null() { json!({"app": "web"}) } else { labels }}, "spec": spec.clone()});
                let selector = json!({"matchLabels": {"app": "web"}});
                let object = match kind {
                    0 => {
                        if extra == 0 {
                            spec["ephemeralContainers"] =
                                json!([{"name": "debug", "image": "busybox"}]);
                        }
                        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
                    }
                    1 => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                                "spec": {"replicas": 1, "selector": selector, "template": template}}),
                    2 => json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
                                "spec": {"serviceName": "web", "selector": selector, "template": template}}),
                    3 => json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
                                "spec": {"selector": selector, "template": template}}),
                    4 => json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
                                "spec": {"selector": selector, "template": template}}),
                    5 => {
                        let mut t = template;
                        t["spec"]["restartPolicy"] = json!("OnFailure");
                        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                               "spec": {"template": t}})
                    }
                    6 => {
                        let mut t = template;
                        t["spec"]["restartPolicy"] = json!("Never");
                        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                               "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": t}}}})
                    }
                    7 => json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": meta,
                                "spec": {"selector": {"app": "web"}, "template": template}}),
                    _ => json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta,
                                "template": template}),
                };
                Case {
                    object,
                    update,
                    tier,
                    enforce,
                    all_fixes,
                }
            },
        )
}

fn engine(case: &Case) -> Engine {
    let mut yaml = format!(
        "defaults: {{tier: {}, mode: {}}}\n",
        case.tier,
        if case.enforce { "enforce" } else { "warn" }
    );
    if case.all_fixes {
        yaml.push_str("fixes: {livenessProbe: on}\nrules:\n");
        for r in rules::ALL.iter().filter(|r| r.fix.exists()) {
            yaml.push_str(&format!("  {}: {{fix: on}}\n", r.id));
        }
        yaml.push_str(
            "tiers:\n  foundation:\n    resources:\n      requests: {cpu: 100m, memory: 128Mi}\n      limits: {cpu: '1', memory: 512Mi}\n",
        );
    }
    Engine::new(Config::from_yaml(&yaml, "props").expect("config").policy)
}

fn review(case: &Case, object: &Value) -> Vec<u8> {
    if case.update {
        let mut old = object.clone();
        old["metadata"]["annotations"] = json!({"old": "1"});
        ReviewBuilder::new("p", "UPDATE", object.clone())
            .old(old)
            .body()
    } else {
        ReviewBuilder::new("p", "CREATE", object.clone()).body()
    }
}

fn answer(engine: &Engine, body: &[u8], webhook: Webhook) -> Value {
    let a = admission::handle(
        body,
        engine,
        &DefaultsSource,
        AdmissionSettings::new(webhook),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v: Value = serde_json::from_slice(&a.body).expect("json answer");
    v["response"].clone()
}

fn patch_of(resp: &Value) -> Option<json_patch::Patch> {
    let b64 = resp.get("patch")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 patch");
    Some(serde_json::from_slice(&bytes).expect("JSON patch"))
}

/// Every non-null leaf of `v`, as (pointer, value).
fn leaves(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                leaves(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, format!("{at}/{i}"), out);
            }
        }
        // Absent, null or empty: a fix may fill it in.
        Value::Null | Value::Object(_) | Value::Array(_) => {}
        other => out.push((at, other.clone())),
    }
}

/// Fields the apiserver rejects on a Windows pod.
const LINUX_ONLY: &[&str] = &[
    "readOnlyRootFilesystem",
    "capabilities",
    "seccompProfile",
    "seLinuxOptions",
    "allowPrivilegeEscalation",
    "privileged",
    "procMount",
    "runAsUser",
    "runAsGroup",
    "appArmorProfile",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutations_never_harm_a_workload(case in arb_case()) {
        let engine = engine(&case);
        let body = review(&case, &case.object);
        let validated = answer(&engine, &body, Webhook::Validate);
        prop_assert!(validated.get("patch").is_none() && validated.get("patchType").is_none());
        let mutated = answer(&engine, &body, Webhook::Mutate);
        prop_assert_eq!(&mutated["allowed"], true);
        let Some(patch) = patch_of(&mutated) else { return Ok(()) };
        prop_assert!(
            case.object.pointer("/metadata/ownerReferences").is_none(),
            "an object a controller made was patched: {:?}", patch
        );
        let mut patched = case.object.clone();
        json_patch::patch(&mut patched, &patch)
            .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}\n{patch:?}")))?;
        common::parses_typed(&patched).map_err(|e| TestCaseError::fail(format!("patched object: {e}")))?;
        // Nothing the user wrote is changed or dropped.
        let mut before = Vec::new();
        leaves(&case.object, String::new(), &mut before);
        for (ptr, value) in &before {
            prop_assert_eq!(patched.pointer(ptr), Some(value), "{} changed", ptr);
        }
        // Windows pods get no Linux-only field; a resource set at pod level
        // gets no container value.
        let spec = pod_spec_pointer(&case.object);
        let windows = case.object.pointer(&format!("{spec}/os/name")) == Some(&json!("windows"));
        if windows {
            for op in &patch.0 {
                let path = op_path(op);
                prop_assert!(
                    !LINUX_ONLY.iter().any(|f| path.ends_with(f) || path.contains(&format!("/{f}/"))),
                    "Linux-only field added to a Windows pod: {}", path
                );
            }
        }
        if case.object.pointer(&format!("{spec}/resources/requests/memory")).is_some() {
            for op in &patch.0 {
                let path = op_path(op);
                prop_assert!(!path.ends_with("/requests/memory") && !path.ends_with("/limits/memory"),
                    "container memory added under pod-level resources: {}", path);
            }
        }
        // A fixed point: the patched object needs no further patch.
        let again = answer(&engine, &review(&case, &patched), Webhook::Mutate);
        prop_assert!(again.get("patch").is_none(), "second mutate patched again: {:?}", patch_of(&again));
        // `fix` writes the same change into the YAML text, adding lines only.
        let text = serde_saphyr::to_string(&case.object).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let read = |t: &str| tiergate::manifest::parse_document(t).ok().flatten();
        prop_assume!(read(&text).as_ref() == Some(&case.object));
        let written = tiergate::cli::edit::write_fix(&text, &case.object, &patched, read)
            .map_err(|e| TestCaseError::fail(format!("fix not written: {e:?}\n{text}")))?;
        // (An empty `key: {}` it fills loses its `{}`: the content follows.)
        let mut rest = written.lines();
        let unfilled = |l: &str| [" {}", " []", " null"].iter().find_map(|e| l.strip_suffix(e)).unwrap_or(l).to_string();
        prop_assert!(text.lines().all(|l| rest.any(|n| n == l || n == unfilled(l))), "fix changed lines:\n{}", written);
    }
}

/// Where the object keeps its pod spec.
fn pod_spec_pointer(obj: &Value) -> String {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    tiergate::policy::kinds::workload_of(
        tiergate::policy::kinds::group_of(api_version),
        obj["kind"].as_str().unwrap_or(""),
    )
    .map_or_else(String::new, |w| w.spec.to_string())
}

fn op_path(op: &json_patch::PatchOperation) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.get("path").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// The property above is not vacuous: most generated workloads get a patch,
/// and some are Windows pods, pod-level resources and owned objects.
#[test]
fn the_generator_covers_patches_windows_pod_level_and_owned_objects() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut patched, mut windows, mut pod_level, mut owned) = (0, 0, 0, 0);
    for _ in 0..300 {
        let case = arb_case().new_tree(&mut runner).expect("case").current();
        let spec = pod_spec_pointer(&case.object);
        windows += usize::from(case.object.pointer(&format!("{spec}/os")).is_some());
        pod_level += usize::from(case.object.pointer(&format!("{spec}/resources")).is_some());
        owned += usize::from(case.object.pointer("/metadata/ownerReferences").is_some());
        let resp = answer(
            &engine(&case),
            &review(&case, &case.object),
            Webhook::Mutate,
        );
        patched += usize::from(patch_of(&resp).is_some());
    }
    assert!(patched > 100, "only {patched} of 300 cases patched");
    assert!(
        windows > 30 && pod_level > 30 && owned > 50,
        "{windows} {pod_level} {owned}"
    );
}
