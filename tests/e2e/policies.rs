//! The generated admission policies (`tiergate export admission-policies`)
//! against the engine, through the real apiserver with no webhook: every
//! PSS fixture of v1.37, the realistic manifests and a corpus built to hit
//! every covered rule, created (server-side dry-run) in namespaces of every
//! tier and mode, must be judged with exactly the engine's verdict for every
//! covered rule: the same rules named, warned, denied or audited.
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::{json, Value};

use crate::harness::{admin, cluster, KUBECTL_ADMIN};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tiergate::config::Config;
use tiergate::export::{self, ExportOptions};
use tiergate::policy::context::{HpaFact, PdbFact, SaFact};
use tiergate::policy::namespace::{resolve, NamespaceInput};
use tiergate::policy::{Action, Engine, Fact, NamespaceFacts, Options};

/// Only objects with this label are judged by the test's bindings (the
/// policies must not touch the other scenarios running in parallel).
const OBJECT_LABEL: &str = "e2e.tiergate.io/vap";

const CONFIG: &str = "defaults: {tier: 5, mode: warn}
pssVersion: v1.37
registries:
  allowed: [ghcr.io/acme/, docker.io/library, Registry.Example, \"localhost:5000/\", index.docker.io/bitnami]
exemptions:
  - reason: legacy batch job
    namespaces: [e2e-vap-t3]
    names: [\"once*\"]
    rules: [image-tag, resources]
tiers:
  multi-cluster:
    resources:
      requests: {cpu: 200m, memory: 192Mi}
      limits: {cpu: 500m, memory: 256Mi}
";

/// (apiVersion, kind) -> (path prefix, plural, namespaced).
fn rest(api_version: &str, kind: &str) -> Option<(String, &'static str, bool)> {
    let base = |g: &str| {
        if g == "v1" {
            "/api/v1".to_string()
        } else {
            format!("/apis/{g}")
        }
    };
    let (plural, namespaced) = match (api_version, kind) {
        ("v1", "Pod") => ("pods", true),
        ("v1", "Service") => ("services", true),
        ("v1", "ConfigMap") => ("configmaps", true),
        ("v1", "ReplicationController") => ("replicationcontrollers", true),
        ("v1", "PodTemplate") => ("podtemplates", true),
        ("apps/v1", "Deployment") => ("deployments", true),
        ("apps/v1", "StatefulSet") => ("statefulsets", true),
        ("apps/v1", "DaemonSet") => ("daemonsets", true),
        ("apps/v1", "ReplicaSet") => ("replicasets", true),
        ("batch/v1", "Job") => ("jobs", true),
        ("batch/v1", "CronJob") => ("cronjobs", true),
        ("networking.k8s.io/v1", "Ingress") => ("ingresses", true),
        ("policy/v1", "PodDisruptionBudget") => ("poddisruptionbudgets", true),
        ("rbac.authorization.k8s.io/v1", "Role") => ("roles", true),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => ("rolebindings", true),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => ("clusterroles", false),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => ("clusterrolebindings", false),
        _ => return None,
    };
    Some((base(api_version), plural, namespaced))
}

/// What the apiserver answered to one dry-run create.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub warnings: Vec<String>,
    audit_id: Option<String>,
}

pub async fn dry_run_create(client: &Client, ns: Option<&str>, obj: &Value) -> Answer {
    let av = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    let (base, plural, namespaced) = rest(av, kind).expect("a kind the test knows");
    let path = match (namespaced, ns) {
        (true, Some(ns)) => format!("{base}/namespaces/{ns}/{plural}?dryRun=All"),
        _ => format!("{base}/{plural}?dryRun=All"),
    };
    let req = hyper::Request::post(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(
            serde_json::to_vec(obj).expect("json"),
        ))
        .expect("request");
    let resp = client.send(req).await.expect("the apiserver answers");
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        // The apiserver sends a warning's text as UTF-8 (an allow-list
        // shortened with "…"), which `to_str` refuses.
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let audit_id = resp
        .headers()
        .get("audit-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        warnings,
        audit_id,
    }
}

/// The rule ids named as `[id]` in `text`, among `known`.
fn named(text: &str, known: &BTreeSet<&'static str>) -> BTreeSet<&'static str> {
    known
        .iter()
        .copied()
        .filter(|id| text.contains(&format!("[{id}]")))
        .collect()
}

/// The apiserver's limit on the warnings of one response, in characters
/// (k8s.io/apiserver endpoints/filters/warning.go): past it, every warning
/// is cut to 256 characters, and those that no longer fit are dropped.
const APISERVER_WARNINGS_MAX: usize = 4096;

/// A warning header's text (`299 - "text"`), unescaped.
fn warning_text(header: &str) -> String {
    let (Some(a), Some(b)) = (header.find('"'), header.rfind('"')) else {
        return header.to_string();
    };
    if b <= a {
        return header.to_string();
    }
    header[a + 1..b].replace("\\\"", "\"").replace("\\\\", "\\")
}

/// Whether `warned` differs from the engine's `want` only because the
/// apiserver cut the warnings: the response's warnings reached its limit
/// (and were each cut to 256 characters, the policy's one warning naming
/// its rules in order among them), every rule warned is one the engine
/// warns, and every rule missing comes after every rule warned in the
/// policy's order (`order`, the catalog's, which is the order in which the
/// warn policy's message names them).
fn tail_dropped(
    warnings: &[String],
    warned: &BTreeSet<&str>,
    want: &BTreeSet<&str>,
    order: &[&str],
) -> bool {
    let texts: Vec<String> = warnings.iter().map(|w| warning_text(w)).collect();
    let total: usize = texts.iter().map(|w| w.chars().count()).sum();
    let cut = texts.iter().any(|w| w.chars().count() == 256);
    if (total + 256 < APISERVER_WARNINGS_MAX && !cut) || !warned.is_subset(want) {
        return false;
    }
    let at = |id: &str| order.iter().position(|o| *o == id).unwrap_or(usize::MAX);
    let last_warned = warned.iter().map(|id| at(id)).max();
    want.difference(warned)
        .all(|id| last_warned.is_none_or(|l| at(id) > l))
}

/// The rules that read the namespace's facts: their policies are apart
/// from the others' (`-facts`), so each group has its own warnings and a
/// denial names one group's rules (the apiserver stops at the first
/// policy that denies).
fn facts_rules() -> BTreeSet<&'static str> {
    tiergate::policy::rules::ALL
        .iter()
        .filter(|r| matches!(r.cel, tiergate::policy::cel::Cel::Facts(_)))
        .map(|r| r.id)
        .collect()
}

/// `rules` as (facts rules, the others).
fn by_policy(rules: &BTreeSet<&'static str>) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let facts = facts_rules();
    rules.iter().partition(|r| facts.contains(*r))
}

/// The objects to judge: (label for messages, object).
fn objects() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut add_text = |label: &str, text: &str| {
        let src = tiergate::manifest::parse_source(label, None, text).expect("parses");
        for (i, d) in src.documents.into_iter().enumerate() {
            if let Some(v) = d.value {
                let known = rest(
                    v["apiVersion"].as_str().unwrap_or(""),
                    v["kind"].as_str().unwrap_or(""),
                )
                .is_some();
                if known {
                    out.push((format!("{label}#{i}"), v));
                }
            }
        }
    };
    for (path, _, text) in crate::common::pss_fixtures() {
        if path.contains("/v1.37/") {
            add_text(&format!("pss/{path}"), &text);
        }
    }
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("realistic"))
        .expect("realistic")
        .map(|e| e.expect("entry").path())
        .collect();
    files.push(data.join("corpus/tektoncd+pipeline/config/webhook.yaml"));
    files.push(
        data.join("corpus/kubernetes+examples/_archived/cockroachdb/cockroachdb-statefulset.yaml"),
    );
    files.push(data.join("web-deployment.json"));
    let e2e = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/manifests");
    files.push(e2e.join("policy-corpus.yaml"));
    files.push(e2e.join("policy-corpus-cluster.yaml"));
    // More manifests to compare on, when given (not needed by CI).
    if let Ok(dir) = std::env::var("E2E_VAP_CORPUS") {
        for entry in walk(&PathBuf::from(dir)) {
            files.push(entry);
        }
    }
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("manifest");
        add_text(&f.display().to_string(), &text);
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p
            .extension()
            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        {
            out.push(p);
        }
    }
    out
}

/// The namespaces of the test: name -> labels.
fn namespaces() -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    let mut ns = |name: &str, pairs: &[(&str, &str)]| {
        let mut l: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert("e2e.tiergate.io/scenario".into(), "vap".into());
        out.push((name.to_string(), l));
    };
    for t in 1..=5 {
        let tier = t.to_string();
        ns(
            &format!("e2e-vap-t{t}"),
            &[("tiergate.io/tier", &tier), ("tiergate.io/mode", "warn")],
        );
    }
    ns(
        "e2e-vap-enforce",
        &[
            ("tiergate.io/tier", "hyperscale"),
            ("tiergate.io/mode", "enforce"),
        ],
    );
    ns(
        "e2e-vap-enforce2",
        &[("tiergate.io/tier", "2"), ("tiergate.io/mode", "Enforce")],
    );
    ns(
        "e2e-vap-audit",
        &[("tiergate.io/tier", "3"), ("tiergate.io/mode", "audit")],
    );
    ns(
        "e2e-vap-cased",
        &[
            ("tiergate.io/tier", "Enterprise"),
            ("tiergate.io/mode", "WARN"),
        ],
    );
    ns("e2e-vap-gold", &[("tiergate.io/tier", "gold")]);
    // A tenant's namespace, enrolled in the mesh (sandboxed-runtime and
    // mesh-enrolled read the namespace's labels); the platform's own, in
    // ambient mode; a tier-4 one enrolled by revision.
    ns(
        "e2e-vap-tenant",
        &[
            ("tiergate.io/tier", "5"),
            ("tiergate.io/mode", "warn"),
            ("tiergate.io/tenant", "acme"),
            ("istio-injection", "enabled"),
        ],
    );
    ns(
        "e2e-vap-platform",
        &[
            ("tiergate.io/tier", "5"),
            ("tiergate.io/mode", "warn"),
            ("tiergate.io/tenant", "false"),
            ("istio.io/dataplane-mode", "ambient"),
        ],
    );
    ns(
        "e2e-vap-mesh",
        &[
            ("tiergate.io/tier", "4"),
            ("tiergate.io/mode", "warn"),
            ("istio.io/rev", "1-24"),
        ],
    );
    ns(
        "e2e-vap-webhook",
        &[
            ("tiergate.io/tier", "5"),
            ("tiergate.io/admission", "webhook"),
        ],
    );
    out
}

/// What the corpus needs of the cluster: the priority class it names (the
/// apiserver's Priority admission refuses an unknown one).
fn corpus_prerequisites() {
    apply(
        &json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": "high"}, "value": 1000})
        .to_string(),
    );
}

/// The facts of a namespace that holds none of what the facts rules look
/// for but its `default` ServiceAccount (what tiergate serve writes for a
/// new namespace); the cluster-wide facts and the exceptions stay unknown,
/// as for a webhook with no cluster caches.
pub fn bare_facts() -> NamespaceFacts {
    NamespaceFacts {
        service_accounts: Fact::Known(vec![SaFact {
            name: "default".into(),
            automount: None,
        }]),
        admin_cluster_roles: Fact::Unknown,
        exceptions: Fact::Unknown,
        ..NamespaceFacts::known_empty()
    }
}

/// Write `facts` as the NamespaceFacts object of `ns`, as tiergate serve
/// does.
pub fn write_facts(ns: &str, facts: &NamespaceFacts) {
    let obj = export::facts::object(ns, facts).expect("known facts");
    apply(&obj.to_string());
}

/// The name s30 creates object number `idx` under.
fn created_name(original: &Value, idx: usize) -> String {
    let name: String = original["metadata"]["name"]
        .as_str()
        .unwrap_or("obj")
        .chars()
        .take(40)
        .collect();
    format!("{name}-{idx}")
}

/// s30's facts for its namespace number `i`, varied so that each facts
/// rule both passes and finds something: quotas, limit ranges and a
/// default-deny NetworkPolicy in some; PodDisruptionBudgets selecting by
/// `Exists`, `NotIn` and `matchLabels`, with and without a numeric
/// `minAvailable`, or none; in every third, an autoscaler for every other
/// Deployment and StatefulSet of the corpus (`minReplicas` 1 or 3); a
/// `default` ServiceAccount that turns the token off in every other one.
fn varied_facts(i: usize, objects: &[(String, Value)]) -> NamespaceFacts {
    let names = |v: &[&str]| Fact::Known(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let expr = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    };
    let even = i % 2 == 0;
    let pdbs = if i % 3 == 2 {
        Vec::new()
    } else if even {
        vec![PdbFact::new(
            "by-app".into(),
            LabelSelector {
                match_expressions: Some(vec![expr("app", "Exists", &[])]),
                ..Default::default()
            },
        )
        .with_min_available(Some(&IntOrString::Int(2)))]
    } else {
        vec![
            PdbFact::new(
                "not-web".into(),
                LabelSelector {
                    match_expressions: Some(vec![
                        expr("app", "NotIn", &["web", "nginx"]),
                        expr("tier", "DoesNotExist", &[]),
                    ]),
                    ..Default::default()
                },
            ),
            PdbFact::new(
                "web".into(),
                LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
            )
            .with_min_available(Some(&IntOrString::Int(1))),
        ]
    };
    let mut hpas = Vec::new();
    if i % 3 == 0 {
        for (idx, (_, o)) in objects.iter().enumerate() {
            let kind = o["kind"].as_str().unwrap_or("");
            if idx % 2 == 0 && (kind == "Deployment" || kind == "StatefulSet") {
                hpas.push(HpaFact {
                    name: format!("h-{idx}"),
                    target_kind: kind.to_string(),
                    target_name: created_name(o, idx),
                    min_replicas: if idx % 4 == 0 { 1 } else { 3 },
                });
            }
        }
    }
    NamespaceFacts {
        default_deny_policies: if i % 2 == 1 {
            names(&["deny-all"])
        } else {
            names(&[])
        },
        resource_quotas: if i % 3 != 1 {
            names(&["quota"])
        } else {
            names(&[])
        },
        limit_ranges: if i % 3 != 2 {
            names(&["limits"])
        } else {
            names(&[])
        },
        pdbs: Fact::Known(pdbs),
        hpas: Fact::Known(hpas),
        service_accounts: Fact::Known(vec![SaFact {
            name: "default".into(),
            automount: even.then_some(false),
        }]),
        ..NamespaceFacts::default()
    }
}

/// The context the engine gives a namespace with these labels under `cfg`
/// (its facts unknown).
fn ns_context(
    cfg: &Config,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> tiergate::policy::Context {
    resolve(
        NamespaceInput {
            name: Some(name),
            labels: Some(labels),
            ..Default::default()
        },
        &cfg.policy,
    )
    .ctx
}

/// Whether the facts rules' policy warns in this namespace under `cfg`
/// (tier 2 or more, warn mode, not left to the webhook).
fn facts_warn(cfg: &Config, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let ctx = ns_context(cfg, name, labels);
    ctx.tier >= tiergate::policy::Tier::Production
        && ctx.mode == tiergate::policy::Mode::Warn
        && !tiergate::policy::cel::webhook_only(labels)
}

/// Wait until the apiserver has loaded the policy each of these namespaces
/// is judged by: `canary` (which breaks a rule of every tier) is warned,
/// denied, or (audit mode) audited there, and, in the namespaces of
/// `facts_in`, warned by the facts rules' policy too (`canary` has no
/// replicas: `min-replicas` finds it). The policies are compiled one by one
/// after an apply, so one policy acting says nothing of another.
async fn wait_until_judged(
    client: &Client,
    namespaces: &[String],
    canary: &Value,
    facts_in: &BTreeSet<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for ns in namespaces {
        loop {
            let a = dry_run_create(client, Some(ns), canary).await;
            // The facts policies see the namespace's NamespaceFacts once
            // the apiserver's params informer has it.
            let no_params = a.warnings.iter().any(|w| w.contains("no params found"))
                || a.body.to_string().contains("no params found");
            let facts_acted =
                !facts_in.contains(ns) || a.warnings.iter().any(|w| w.contains("-facts'"));
            let acted = !no_params
                && facts_acted
                && (a.warnings.iter().any(|w| w.contains("tiergate-"))
                    || (a.status >= 400 && a.body.to_string().contains("tiergate")));
            let audited = || async {
                let Some(id) = &a.audit_id else { return false };
                audit_annotations().await.get(id).is_some_and(|ann| {
                    ann.contains_key("validation.policy.admission.k8s.io/validation_failure")
                })
            };
            if acted || audited().await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the policies never applied in {ns}: HTTP {} {:?}",
                a.status,
                a.warnings
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// The audit log's annotations, by audit ID, once the apiserver has written
/// the events of the requests just made.
async fn audit_annotations() -> BTreeMap<String, serde_json::Map<String, Value>> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = std::fs::read_to_string(&cluster().audit_log).unwrap_or_default();
    let mut out: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for line in log.lines() {
        let Ok(e) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(id), Some(ann)) = (e["auditID"].as_str(), e["annotations"].as_object()) {
            out.entry(id.to_string()).or_default().extend(ann.clone());
        }
    }
    out
}

/// The corpus object `original` (number `idx`) to create: named apart from
/// the others, with no namespace of its own.
fn copy_of(original: &Value, idx: usize) -> Value {
    let mut obj = original.clone();
    obj["metadata"]["name"] = json!(created_name(original, idx));
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    obj
}

/// Delete generated objects, last first.
fn delete_all(objects: &[Value]) {
    for o in objects.iter().rev() {
        let kind = o["kind"].as_str().unwrap_or("").to_ascii_lowercase();
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        let _ = KUBECTL_ADMIN.run(&["delete", &kind, name, "--ignore-not-found"], None);
    }
}

/// Apply the admission policies of `cfg`, named `PREFIX-tiergate-*` and
/// bound only to the namespaces of these scenarios (so they judge nothing
/// else of the run), and wait until the apiserver enforces them in the
/// first one (a latest-tagged Pod warns). The objects, to delete.
pub async fn apply_bound_policies(cfg: &Config, prefix: &str, scenarios: &[&str]) -> Vec<Value> {
    apply_bound_policies_with(cfg, &ExportOptions::default(), prefix, scenarios).await
}

/// [`apply_bound_policies`], exported with these options.
pub async fn apply_bound_policies_with(
    cfg: &Config,
    opts: &ExportOptions,
    prefix: &str,
    scenarios: &[&str],
) -> Vec<Value> {
    let mut exported = export::admission_policies(cfg, opts).expect("export");
    for o in &mut exported.objects {
        let name = format!("{prefix}-{}", o["metadata"]["name"].as_str().unwrap_or(""));
        o["metadata"]["name"] = json!(name);
        if o["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("AdmissionPolicyBinding"))
        {
            o["spec"]["policyName"] = json!(name);
            if let Some(list) =
                o["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"].as_array_mut()
            {
                list.push(json!({"key": "e2e.tiergate.io/scenario", "operator": "In",
                                 "values": scenarios}));
            }
        }
    }
    apply(&export::to_yaml(&exported.objects).expect("yaml"));
    let client = admin().await;
    let ns = format!("e2e-{}", scenarios[0]);
    let canary = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "canary"},
        "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}});
    let warn_policy = format!("{prefix}-tiergate-warn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dry_run_create(&client, Some(&ns), &canary)
        .await
        .warnings
        .iter()
        .any(|w| w.contains(&warn_policy))
    {
        assert!(
            Instant::now() < deadline,
            "the policies never applied in {ns}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every namespace bound (each tier has policies of its own, compiled
    // one by one).
    let listed: Api<Namespace> = Api::all(client.clone());
    let selector = format!("e2e.tiergate.io/scenario in ({})", scenarios.join(","));
    let listed = listed
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("namespaces")
        .items;
    let judged: Vec<String> = listed
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let facts_in: BTreeSet<String> = listed
        .iter()
        .filter(|n| {
            facts_warn(
                cfg,
                n.metadata.name.as_deref().unwrap_or(""),
                &n.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    // Their facts, as tiergate serve writes them in hybrid mode.
    for ns in &judged {
        write_facts(ns, &bare_facts());
    }
    // A Deployment: a Pod would need each namespace's ServiceAccount.
    let canary = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "canary"},
        "spec": {"selector": {"matchLabels": {"app": "canary"}},
                 "template": {"metadata": {"labels": {"app": "canary"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}}}});
    wait_until_judged(&client, &judged, &canary, &facts_in).await;
    exported.objects
}

pub fn apply(yaml: &str) {
    let t = Instant::now();
    let r = KUBECTL_ADMIN.run(&["apply", "--server-side", "-f", "-"], Some(yaml));
    assert!(r.ok, "kubectl apply: {}\n{}", r.stderr, r.stdout);
    eprintln!(
        "e2e: applied {} KiB of admission policies in {:.1}s",
        yaml.len() / 1024,
        t.elapsed().as_secs_f64()
    );
}

/// Wait until every policy's type checking is done; its warnings.
fn type_check_warnings(names: &[String]) -> Vec<String> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(240);
    let mut out = Vec::new();
    for name in names {
        loop {
            let r = KUBECTL_ADMIN.run(
                &["get", "validatingadmissionpolicy", name, "-o", "json"],
                None,
            );
            assert!(r.ok, "kubectl get: {}", r.stderr);
            let p: Value = serde_json::from_str(&r.stdout).expect("policy json");
            if let Some(tc) = p.pointer("/status/typeChecking") {
                for w in tc["expressionWarnings"].as_array().into_iter().flatten() {
                    out.push(format!("{name}: {} {}", w["fieldRef"], w["warning"]));
                }
                eprintln!(
                    "e2e: {name} type-checked after {:.1}s",
                    start.elapsed().as_secs_f64()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the apiserver never type-checked {name}: {}",
                p["status"]
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s30_admission_policies_give_the_engines_verdicts() {
    cluster()
        .policy_status_controller()
        .expect("kube-controller-manager");
    let client = admin().await;
    let cfg = Config::from_yaml(CONFIG, "test config").expect("config");
    let exported = export::admission_policies(&cfg, &ExportOptions::default()).expect("export");
    let covered: BTreeSet<&'static str> = exported.covered.iter().copied().collect();
    assert!(covered.len() >= 25, "{covered:?}");
    // The validating policies only (s32 compares the mutating ones).
    let mut objects_yaml: Vec<Value> = exported
        .objects
        .iter()
        .filter(|o| {
            o["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("Validating"))
        })
        .cloned()
        .collect();
    for o in &mut objects_yaml {
        if o["kind"] == "ValidatingAdmissionPolicyBinding" {
            o["spec"]["matchResources"]["objectSelector"] =
                json!({"matchLabels": {OBJECT_LABEL: "1"}});
        }
    }
    let policy_names: Vec<String> = exported
        .objects
        .iter()
        .filter(|o| o["kind"] == "ValidatingAdmissionPolicy")
        .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    apply(&export::to_yaml(&objects_yaml).expect("yaml"));
    corpus_prerequisites();
    // No controller-manager runs the ServiceAccount controller here.
    // Each namespace's facts, as tiergate serve would write them, and the
    // same for the engine.
    let all_objects = objects();
    let mut ns_facts: BTreeMap<String, NamespaceFacts> = BTreeMap::new();
    for (i, (name, labels)) in namespaces().into_iter().enumerate() {
        apply(
            &json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": name, "labels": labels}},
                {"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "default", "namespace": name}}]})
            .to_string(),
        );
        let facts = varied_facts(i, &all_objects);
        write_facts(&name, &facts);
        ns_facts.insert(name, facts);
    }
    let default_facts = varied_facts(1, &all_objects);
    write_facts("default", &default_facts);
    ns_facts.insert("default".into(), default_facts);

    // Wait until the apiserver enforces the policies: a failing canary warns.
    let canary = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "canary", "labels": {OBJECT_LABEL: "1"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = dry_run_create(&client, Some("e2e-vap-t5"), &canary).await;
        if a.warnings.iter().any(|w| w.contains("tiergate-warn")) {
            break;
        }
        if Instant::now() >= deadline {
            let r = KUBECTL_ADMIN.run(
                &[
                    "create",
                    "--dry-run=server",
                    "-n",
                    "e2e-vap-t5",
                    "-f",
                    "-",
                    "-o",
                    "name",
                ],
                Some(&canary.to_string()),
            );
            panic!(
                "the policies never applied: HTTP {} {:?} {}; kubectl: {} {}",
                a.status, a.warnings, a.body, r.stdout, r.stderr
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And in every namespace the policies judge (each tier and mode has a
    // policy of its own).
    let judged: Vec<String> = namespaces()
        .into_iter()
        .filter(|(_, l)| {
            l.get(export::ADMISSION_LABEL).map(String::as_str) != Some(export::WEBHOOK_VALUE)
        })
        .map(|(n, _)| n)
        .collect();
    // And the facts rules' policy where it warns (every such namespace's
    // facts leave a finding for the canary Pod).
    let facts_in: BTreeSet<String> = namespaces()
        .into_iter()
        .filter(|(n, l)| facts_warn(&cfg, n, l))
        .map(|(n, _)| n)
        .collect();
    wait_until_judged(&client, &judged, &canary, &facts_in).await;

    let engine = Engine::new(cfg.policy.clone());
    let expect = |obj: &Value, ns: Option<&(String, BTreeMap<String, String>)>| {
        let input = match ns {
            Some((name, labels)) => NamespaceInput {
                name: Some(name),
                labels: Some(labels),
                facts: std::sync::Arc::new(ns_facts.get(name).cloned().unwrap_or_default()),
                ..Default::default()
            },
            None => NamespaceInput::default(),
        };
        let ctx = resolve(input, &cfg.policy).ctx;
        let eval = engine
            .evaluate(obj, &ctx, &Options::default())
            .expect("the engine judges what the apiserver admitted");
        let mut by_action: BTreeMap<Action, BTreeSet<&'static str>> = BTreeMap::new();
        for f in eval.findings.iter().filter(|f| covered.contains(f.rule)) {
            by_action.entry(f.action).or_default().insert(f.rule);
        }
        by_action
    };

    let namespaces = namespaces();
    let objects = all_objects;
    let mut mismatches = Vec::new();
    let (mut judged, mut invalid, mut findings_seen) = (0usize, 0usize, BTreeSet::new());
    let mut capped = 0usize;
    let mut audits: Vec<(String, String, BTreeSet<&'static str>)> = Vec::new();
    for (idx, (label, original)) in objects.iter().enumerate() {
        let mut obj = original.clone();
        obj["metadata"]["name"] = json!(created_name(original, idx));
        obj["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("namespace");
        if let Some(m) = obj["metadata"].as_object_mut() {
            let labels = m.entry("labels").or_insert(json!({}));
            labels[OBJECT_LABEL] = json!("1");
        }
        let namespaced = rest(
            obj["apiVersion"].as_str().unwrap_or(""),
            obj["kind"].as_str().unwrap_or(""),
        )
        .is_some_and(|r| r.2);
        let in_default = original["metadata"]["namespace"] == json!("default");
        let targets: Vec<Option<&(String, BTreeMap<String, String>)>> = if !namespaced || in_default
        {
            vec![None]
        } else {
            namespaces.iter().map(Some).collect()
        };
        // The object as admitted in a warn namespace, to judge the enforce
        // and audit ones (where the policies may deny it) with the engine.
        let mut admitted: Option<Value> = None;
        for target in targets {
            let ns_name = match target {
                Some((n, _)) => Some(n.as_str()),
                None if in_default => Some("default"),
                None => None,
            };
            let default_ns;
            let target = match (target, in_default) {
                (None, true) => {
                    default_ns = ("default".to_string(), BTreeMap::new());
                    Some(&default_ns)
                }
                (t, _) => t,
            };
            let a = dry_run_create(&client, ns_name, &obj).await;
            if a.status == 422 {
                // Refused by the apiserver's own validation, not by a
                // policy (whose errors must never pass for invalid input).
                let message = a.body["message"].as_str().unwrap_or("");
                if message.contains("AdmissionPolicy") {
                    mismatches.push(format!("{label}: a policy refused it: {message}"));
                }
                invalid += 1;
                break;
            }
            let mode = target
                .and_then(|(_, l)| l.get("tiergate.io/mode"))
                .map(|m| m.to_ascii_lowercase());
            let enforcing = mode.as_deref() == Some("enforce");
            let judged_obj = if a.status == 201 || a.status == 200 {
                admitted.get_or_insert_with(|| a.body.clone());
                a.body.clone()
            } else if a.status == 403 && enforcing {
                match &admitted {
                    Some(o) => {
                        let mut o = o.clone();
                        o["metadata"]["namespace"] = json!(ns_name);
                        o
                    }
                    None => {
                        mismatches.push(format!("{label} in {ns_name:?}: denied before any warn namespace admitted it: {}", a.body));
                        continue;
                    }
                }
            } else {
                panic!("{label} in {ns_name:?}: HTTP {}: {}", a.status, a.body);
            };
            judged += 1;
            let webhook_only = target.is_some_and(|(_, l)| {
                l.get(export::ADMISSION_LABEL).map(String::as_str) == Some(export::WEBHOOK_VALUE)
            });
            let want = if webhook_only {
                BTreeMap::new()
            } else {
                expect(&judged_obj, target)
            };
            for set in want.values() {
                findings_seen.extend(set.iter().copied());
            }
            let where_ = format!("{label} in {}", ns_name.unwrap_or("(cluster)"));
            let vap_warned: BTreeSet<&str> = a
                .warnings
                .iter()
                .filter(|w| w.contains("ValidatingAdmissionPolicy 'tiergate-"))
                .flat_map(|w| named(w, &covered))
                .collect();
            let denied_msg = if a.status == 403 {
                a.body["message"].as_str().unwrap_or("").to_string()
            } else {
                String::new()
            };
            let vap_denied = named(&denied_msg, &covered);
            let none = BTreeSet::new();
            let want_warn = want.get(&Action::Warn).unwrap_or(&none);
            let want_deny = want.get(&Action::Deny).unwrap_or(&none);
            // Per group of policies (the facts rules' and the others'):
            // the same, or only the last of a group's warnings dropped.
            let group_ok = |got: &BTreeSet<&'static str>, want: &BTreeSet<&'static str>| {
                got == want || tail_dropped(&a.warnings, got, want, &exported.covered)
            };
            if &vap_warned != want_warn {
                let ((gf, go), (wf, wo)) = (by_policy(&vap_warned), by_policy(want_warn));
                if group_ok(&gf, &wf) && group_ok(&go, &wo) {
                    capped += 1;
                } else {
                    mismatches.push(format!(
                        "{where_}: warned {vap_warned:?}, the engine warns {want_warn:?}"
                    ));
                }
            }
            // The apiserver names the rules of the first policy that
            // denies: the facts rules' or the others'.
            let (deny_facts, deny_others) = by_policy(want_deny);
            let one_policy =
                !vap_denied.is_empty() && (vap_denied == deny_facts || vap_denied == deny_others);
            if &vap_denied != want_deny && !one_policy {
                mismatches.push(format!(
                    "{where_}: denied {vap_denied:?} (HTTP {}: {denied_msg}), the engine denies \
                     {want_deny:?}",
                    a.status
                ));
            }
            if let Some(want_audit) = want.get(&Action::Audit) {
                if let Some(id) = &a.audit_id {
                    audits.push((where_.clone(), id.clone(), want_audit.clone()));
                }
            } else if mode.as_deref() == Some("audit") {
                if let Some(id) = &a.audit_id {
                    audits.push((where_.clone(), id.clone(), BTreeSet::new()));
                }
            }
        }
    }

    // Audit: the apiserver's audit log carries the policies' failures.
    let failures: BTreeMap<String, String> = audit_annotations()
        .await
        .into_iter()
        .filter_map(|(id, ann)| {
            ann.get("validation.policy.admission.k8s.io/validation_failure")
                .and_then(Value::as_str)
                .map(|f| (id, f.to_string()))
        })
        .collect();
    let mut audited = 0;
    for (where_, id, want) in &audits {
        let got = failures
            .get(id)
            .map(|f| named(f, &covered))
            .unwrap_or_default();
        audited += usize::from(!got.is_empty());
        if &got != want {
            mismatches.push(format!(
                "{where_}: audited {got:?}, the engine audits {want:?}"
            ));
        }
    }
    let unseen: Vec<&&str> = covered
        .iter()
        .filter(|r| !findings_seen.contains(**r))
        .collect();
    eprintln!(
        "e2e: admission policies: {} objects, {judged} judgements in {} namespaces, {invalid} \
         refused as invalid by the apiserver, {audited} audited, {capped} with the last \
         warnings dropped by the apiserver's 4 KiB limit; {} covered rules, every one found \
         somewhere except {unseen:?}",
        objects.len(),
        namespaces.len(),
        covered.len()
    );
    // The apiserver's type checking (by the controller-manager, slow for
    // many expressions over many kinds: done while the objects were judged).
    let warnings = type_check_warnings(&policy_names);
    // Clean up before asserting: the policies must not outlive the test.
    delete_all(&exported.objects);
    let _ = KUBECTL_ADMIN.run(
        &[
            "delete",
            "namespacefacts",
            "tiergate",
            "-n",
            "default",
            "--ignore-not-found",
        ],
        None,
    );
    assert!(
        warnings.is_empty(),
        "type checking warned:\n{}",
        warnings.join("\n")
    );
    assert!(
        mismatches.is_empty(),
        "{} differences:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // proc-mount: the apiserver refuses a non-default procMount unless the
    // pod sets hostUsers: false, which the check (from v1.35) exempts.
    let unseen: Vec<&&str> = unseen.into_iter().filter(|r| **r != "proc-mount").collect();
    assert!(
        unseen.is_empty(),
        "covered rules no object hits: {unseen:?}"
    );
}

/// Hybrid mode end to end: tiergate with `admissionPolicies: hybrid`, its
/// webhooks narrowed as `export --webhooks` narrows them, and the policies
/// bound to the namespace. For every object of the corpus the rules named
/// by the policies (warnings) and by the webhooks (their `findings` audit
/// annotations) together are exactly the rules the engine finds with every
/// rule on: nothing is lost by leaving rules to the apiserver, nor by not
/// calling the webhooks where the narrowing says nothing can be found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_hybrid_mode_loses_no_finding() {
    use crate::harness::{config, Scenario, Webhooks};
    let hybrid_cfg = config(3, "warn", "admissionPolicies: hybrid\n");
    let cfg = Config::from_yaml(&hybrid_cfg, "test config").expect("config");
    let mut s = Scenario::new(
        "hybrid",
        3,
        "warn",
        &hybrid_cfg,
        false,
        Webhooks {
            hybrid: Some(cfg.policy.clone()),
            ..Webhooks::default()
        },
    )
    .await;
    s.register().await;
    corpus_prerequisites();
    let policies = apply_bound_policies(&cfg, "e2e-hybrid", &["hybrid"]).await;
    let client = admin().await;

    // The engine as the webhook runs it (no cluster: the config's defaults,
    // the cluster-wide facts and exceptions unknown), with every rule, and
    // the namespace's facts the policies read (`apply_bound_policies`
    // wrote them).
    let full = Config::from_yaml(&config(3, "warn", ""), "full").expect("config");
    let engine = Engine::new(full.policy.clone());
    let ctx = resolve(
        NamespaceInput {
            facts: std::sync::Arc::new(bare_facts()),
            ..NamespaceInput::default()
        },
        &full.policy,
    )
    .ctx;
    let all: BTreeSet<&'static str> = tiergate::policy::rules::ALL.iter().map(|r| r.id).collect();
    let mut pending = Vec::new();
    let mut skipped_calls = 0usize;
    for (idx, (label, original)) in objects().iter().enumerate() {
        let namespaced = rest(
            original["apiVersion"].as_str().unwrap_or(""),
            original["kind"].as_str().unwrap_or(""),
        )
        .is_some_and(|r| r.2);
        if !namespaced || label.contains("/pss/") {
            continue;
        }
        let obj = copy_of(original, idx);
        let a = dry_run_create(&client, Some(&s.ns), &obj).await;
        if a.status == 422 {
            assert!(
                !a.body.to_string().contains("AdmissionPolicy"),
                "{label}: a policy refused it: {}",
                a.body
            );
            continue;
        }
        assert!(
            a.status == 201 || a.status == 200,
            "{label}: HTTP {}: {}",
            a.status,
            a.body
        );
        let eval = engine
            .evaluate(&a.body, &ctx, &Options::default())
            .expect("the engine judges it");
        let want: BTreeSet<&'static str> = eval.findings.iter().map(|f| f.rule).collect();
        let warned: BTreeSet<&'static str> = a
            .warnings
            .iter()
            .filter(|w| w.contains("ValidatingAdmissionPolicy 'e2e-hybrid-"))
            .flat_map(|w| named(w, &all))
            .collect();
        pending.push((
            label.clone(),
            a.audit_id.clone().expect("audit id"),
            want,
            warned,
            a.warnings.clone(),
        ));
    }
    // The webhooks' findings, from the audit log.
    let by_id: BTreeMap<String, String> = audit_annotations()
        .await
        .into_iter()
        .map(|(id, ann)| {
            let text: String = ann
                .iter()
                .filter(|(k, _)| k.ends_with("validate.tiergate.io/findings"))
                .filter_map(|(_, v)| v.as_str())
                .map(|v| format!(" {v}"))
                .collect();
            (id, text)
        })
        .collect();
    // The policies' rules in the order of their validations.
    let covered = export::admission_policies(&cfg, &ExportOptions::default())
        .expect("export")
        .covered;
    let mut mismatches = Vec::new();
    let mut capped = 0usize;
    for (label, id, want, warned, warnings) in &pending {
        let webhook = by_id.get(id).map(String::as_str).unwrap_or("");
        if webhook.is_empty() {
            skipped_calls += 1;
        }
        // `rules_by_action` names rules bare ("warn: a, b"): match words.
        let by_webhook: BTreeSet<&'static str> = all
            .iter()
            .copied()
            .filter(|r| webhook.split([' ', ',', ';', ':']).any(|w| w == *r))
            .collect();
        let got: BTreeSet<&'static str> = warned.union(&by_webhook).copied().collect();
        // The apiserver dropped the last of the policies' warnings (past
        // its 4 KiB of warnings per response; the webhooks' own warnings
        // count too), as s30 allows.
        let want_policies: BTreeSet<&str> = want
            .iter()
            .copied()
            .filter(|r| !by_webhook.contains(r) && covered.contains(r))
            .collect();
        let warned_policies: BTreeSet<&str> = warned.iter().copied().collect();
        let only_policies_missing = want.difference(&got).all(|r| covered.contains(r));
        if &got != want
            && only_policies_missing
            && got.is_subset(want)
            && tail_dropped(warnings, &warned_policies, &want_policies, &covered)
        {
            capped += 1;
            continue;
        }
        if &got != want {
            mismatches.push(format!(
                "{label}: policies {warned:?} + webhook {by_webhook:?}, the engine {want:?}"
            ));
        }
    }
    eprintln!(
        "e2e: hybrid: {} objects, {skipped_calls} with no validating webhook finding (not called \
         or nothing found), {capped} with the last warnings dropped by the apiserver's 4 KiB limit",
        pending.len()
    );
    delete_all(&policies);
    assert!(pending.len() > 20, "only {} objects", pending.len());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Only namespaces with this label are s32's: its mutating bindings select
/// them alone (the objects themselves carry no label of the test's, so
/// those without labels show how the policies add a labels map).
const MAP_SCENARIO: (&str, &str) = ("e2e.tiergate.io/scenario", "map");

/// Remove what the apiserver sets on every create (uid, timestamps,
/// managed fields), the namespace, and the status it derives after
/// admission (a Pod's qosClass, from the resources a fix may have filled
/// in; no fix writes a status).
fn without_server_fields(o: &mut Value) {
    if let Some(m) = o["metadata"].as_object_mut() {
        for k in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
            "managedFields",
            "namespace",
        ] {
            m.remove(k);
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
}

/// An object as the apiserver returned it, without what the apiserver sets
/// on every create (uid, timestamps, managed fields) and the namespace.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    without_server_fields(&mut o);
    // The ServiceAccount admission plugin names the token volume at random;
    // a Job's labels carry its uid.
    let mut text = o.to_string();
    if let Some(uid) = obj["metadata"]["uid"].as_str().filter(|u| !u.is_empty()) {
        text = text.replace(uid, "UID");
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("kube-api-access-") {
        let end = i + "kube-api-access-".len();
        out.push_str(&rest[..end]);
        out.push('*');
        rest = rest[end..].trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    }
    out.push_str(rest);
    serde_json::from_str(&out).unwrap_or(o)
}

/// The generated MutatingAdmissionPolicies against `tiergate fix`: every
/// object of the corpus, created (server-side dry-run) in namespaces of
/// every tier and mode with only the mutating policies bound and no
/// webhook, comes back exactly as the engine's fixes (those rules, at that
/// tier and mode) make the object the apiserver admitted with no policy.
///
/// Twice: with the built-in fix options, and with `fixes.livenessProbe: on`,
/// where the startup-probe fix copies the liveness probe the probes fix
/// adds (its patch in a later mutation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s32_mutating_policies_make_the_engines_fixes() {
    let client = admin().await;
    mutating_policies_make_the_engines_fixes(&client, "").await;
    mutating_policies_make_the_engines_fixes(&client, "fixes: {livenessProbe: on}\n").await;
}

/// s32 with `extra` appended to its config.
async fn mutating_policies_make_the_engines_fixes(client: &kube::Client, extra: &str) {
    let liveness = extra.contains("livenessProbe");
    // The exemption of CONFIG names e2e-vap-t3: here it is e2e-map-t3.
    let config = CONFIG.replace("e2e-vap-t3", "e2e-map-t3") + extra;
    let cfg = Config::from_yaml(&config, "test config").expect("config");
    // Every fix's policy in every tier it is on: here no mutating webhook
    // applies them where hybrid mode would call it anyway.
    let opts = ExportOptions {
        without_mutating_webhook: true,
        ..ExportOptions::default()
    };
    let exported = export::admission_policies(&cfg, &opts).expect("export");
    let fixed: Vec<String> = exported.fixed.iter().map(|s| s.to_string()).collect();
    assert!(
        fixed.len() >= 4,
        "the policies apply only the fixes {fixed:?}"
    );
    let mut mutating: Vec<Value> = exported
        .objects
        .iter()
        .filter(|o| {
            o["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("Mutating"))
        })
        .cloned()
        .collect();
    for o in &mut mutating {
        let name = format!("e2e-map-{}", o["metadata"]["name"].as_str().unwrap_or(""));
        o["metadata"]["name"] = json!(name);
        if o["kind"] == "MutatingAdmissionPolicyBinding" {
            o["spec"]["policyName"] = json!(name);
            let (key, value) = MAP_SCENARIO;
            let exprs = &mut o["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"];
            match exprs.as_array_mut() {
                Some(list) => list.push(json!({"key": key, "operator": "In", "values": [value]})),
                None => *exprs = json!([{"key": key, "operator": "In", "values": [value]}]),
            }
        }
    }
    assert!(mutating.len() >= 6, "{} mutating objects", mutating.len());
    apply(&export::to_yaml(&mutating).expect("yaml"));
    corpus_prerequisites();
    let mut namespaces = namespaces();
    for (name, labels) in &mut namespaces {
        *name = name.replace("e2e-vap-", "e2e-map-");
        labels.insert(MAP_SCENARIO.0.into(), MAP_SCENARIO.1.into());
        // Labels for business-labels to copy (not cost-center: that one
        // stays a finding).
        if name == "e2e-map-t4" {
            labels.insert("team".into(), "payments".into());
            labels.insert("environment".into(), "production".into());
        }
    }
    for (name, labels) in &namespaces {
        apply(
            &json!({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": name, "labels": labels}},
                {"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "default", "namespace": name}}]})
            .to_string(),
        );
    }
    let baseline_ns = "e2e-map-webhook";

    // Wait until the apiserver applies them: a container with no
    // securityContext comes back with one (and with the liveness option, a
    // liveness probe).
    let canary = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "canary"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
                                 "ports": [{"containerPort": 80}]}]}});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = dry_run_create(client, Some("e2e-map-t5"), &canary).await;
        let c = &a.body["spec"]["containers"][0];
        if c["securityContext"].is_object() && (!liveness || c["livenessProbe"].is_object()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mutating policies never applied: HTTP {} {}",
            a.status,
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The engine with only those fixes on (the others stay the webhook's).
    let mut only = config;
    only.push_str("rules:\n");
    for r in tiergate::policy::rules::ALL {
        if r.fix.exists() && !fixed.iter().any(|f| f == r.id) {
            only.push_str(&format!("  {}: {{fix: false}}\n", r.id));
        }
    }
    let engine = Engine::new(Config::from_yaml(&only, "fixes").expect("config").policy);
    let only = Options {
        fix: true,
        ..Options::default()
    };
    let (mut compared, mut changed, mut invalid) = (0usize, 0usize, 0usize);
    let (mut shared_labels_added, mut shared_sc_added) = (0usize, 0usize);
    let mut fixes_seen: BTreeSet<&'static str> = BTreeSet::new();
    let mut mismatches = Vec::new();
    for (idx, (label, original)) in objects().iter().enumerate() {
        let namespaced = rest(
            original["apiVersion"].as_str().unwrap_or(""),
            original["kind"].as_str().unwrap_or(""),
        )
        .is_some_and(|r| r.2);
        let is_workload = tiergate::policy::kinds::WORKLOADS.iter().any(|w| {
            original["kind"] == w.gk.kind
                && tiergate::policy::kinds::group_of(original["apiVersion"].as_str().unwrap_or(""))
                    == w.gk.group
        });
        if !namespaced || !is_workload {
            continue;
        }
        let obj = copy_of(original, idx);
        // The object as admitted where no policy mutates (the webhook-only
        // namespace): what the webhook would be sent.
        let base = dry_run_create(client, Some(baseline_ns), &obj).await;
        if base.status == 422 {
            assert!(
                !base.body.to_string().contains("AdmissionPolicy"),
                "{label}: a policy refused it: {}",
                base.body
            );
            invalid += 1;
            continue;
        }
        assert!(
            base.status == 201 || base.status == 200,
            "{label}: HTTP {}: {}",
            base.status,
            base.body
        );
        for (ns, labels) in namespaces.iter().filter(|(n, _)| n != baseline_ns) {
            let a = dry_run_create(client, Some(ns), &obj).await;
            assert!(
                a.status == 201 || a.status == 200,
                "{label} in {ns}: HTTP {}: {}",
                a.status,
                a.body
            );
            let mut admitted = base.body.clone();
            admitted["metadata"]["namespace"] = json!(ns);
            let ctx = ns_context(&cfg, ns, labels);
            // The mutating webhook patches nothing in audit mode.
            // What the webhook is sent: the object as admitted with no
            // policy; for a Job, the object as created, since the apiserver
            // makes a Job's selector after admission and then, where the
            // Job has no labels, gives it the template's (a fix that adds
            // labels first changes that, on a webhook's patch as on a
            // policy's).
            let batch = original["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("batch/"));
            let job = batch && original["kind"] == "Job";
            let sent = if job {
                let mut sent = obj.clone();
                sent["metadata"]["namespace"] = json!(ns);
                sent
            } else {
                admitted.clone()
            };
            let want = if ctx.mode == tiergate::policy::Mode::Audit {
                admitted.clone()
            } else {
                let eval = engine
                    .evaluate(&sent, &ctx, &only)
                    .expect("the engine judges it");
                fixes_seen.extend(eval.fixes.iter().map(|f| f.rule));
                match eval.fixed {
                    // The apiserver defaults what a patch adds and derives
                    // pod-level resources from the containers' after
                    // admission, on a webhook's patch as on a policy's: the
                    // engine's fix is admitted again, with no policy, to
                    // compare like with like. (A CronJob's is compared
                    // as the engine makes it.)
                    Some(fixed) if comparable(&fixed) != comparable(&sent) && (!batch || job) => {
                        let mut again = fixed;
                        without_server_fields(&mut again);
                        let r = dry_run_create(client, Some(baseline_ns), &again).await;
                        assert!(
                            r.status == 201 || r.status == 200,
                            "{label} again: HTTP {}: {}",
                            r.status,
                            r.body
                        );
                        r.body
                    }
                    Some(fixed) if !job => fixed,
                    _ => admitted.clone(),
                }
            };
            compared += 1;
            let (got, want) = (comparable(&a.body), comparable(&want));
            if got != comparable(&admitted) {
                changed += 1;
            }
            // Where two fixes of one mutation write a field that was
            // missing (it is added empty first): the object's labels, a
            // container's securityContext.
            if admitted["metadata"].get("labels").is_none()
                && got["metadata"].get("labels").is_some()
            {
                shared_labels_added += 1;
            }
            shared_sc_added += containers_given_both(&admitted, &got);
            if got != want {
                let patch = json_patch::diff(&want, &got);
                mismatches.push(format!(
                    "{label} in {ns}: the policies' object differs from the engine's fix by {}",
                    serde_json::to_string(&patch).unwrap_or_default()
                ));
            }
        }
    }
    eprintln!(
        "e2e: mutating policies ({}): {compared} objects compared with the engine's fixes ({changed} \
         changed by the policies, {invalid} refused as invalid; labels added to \
         {shared_labels_added} objects without, securityContext with both \
         allowPrivilegeEscalation and capabilities to {shared_sc_added} containers without); fixes \
         seen: {fixes_seen:?}",
        if extra.is_empty() {
            "built-in fix options"
        } else {
            extra.trim()
        }
    );
    delete_all(&mutating);
    assert!(compared > 200, "only {compared} comparisons");
    assert!(
        mismatches.is_empty(),
        "{} differences:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    let unseen: Vec<&String> = fixed
        .iter()
        .filter(|r| !fixes_seen.contains(r.as_str()))
        .collect();
    assert!(unseen.is_empty(), "fixes no object needs: {unseen:?}");
    assert!(
        shared_labels_added > 0 && shared_sc_added > 0,
        "no object shows two fixes writing one missing field: labels {shared_labels_added}, \
         securityContext {shared_sc_added}"
    );
}

/// How many containers of `got` have a securityContext with both
/// `allowPrivilegeEscalation` and `capabilities` where the same container
/// of `before` had none.
fn containers_given_both(before: &Value, got: &Value) -> usize {
    let spec = |o: &Value| -> Value {
        [
            "/spec/template/spec",
            "/spec/jobTemplate/spec/template/spec",
            "/template/spec",
            "/spec",
        ]
        .iter()
        .find_map(|p| {
            o.pointer(p)
                .filter(|v| v.get("containers").is_some())
                .cloned()
        })
        .unwrap_or(Value::Null)
    };
    let (b, g) = (spec(before), spec(got));
    let mut n = 0;
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let (bl, gl) = (b[list].as_array(), g[list].as_array());
        for (bc, gc) in bl.into_iter().flatten().zip(gl.into_iter().flatten()) {
            let sc = &gc["securityContext"];
            if bc.get("securityContext").is_none()
                && sc.get("allowPrivilegeEscalation").is_some()
                && sc.get("capabilities").is_some()
            {
                n += 1;
            }
        }
    }
    n
}
