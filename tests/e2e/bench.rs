//! `make bench-apiserver`: what tiergate costs a write, measured through the
//! real kube-apiserver and etcd of this harness.
//!
//! Configurations, in the same run, alternating: (a) a namespace no
//! webhook matches, (b) a namespace judged by tiergate's two webhooks
//! registered as deploy/ registers them (rules, timeouts, matchConditions)
//! with `defaults: {tier: enterprise, mode: warn}`, (c) a namespace with only
//! the built-in Pod Security Admission at `restricted` (enforce, warn and
//! audit labels), (e) hybrid mode at tier 3 (the admission policies of
//! `tiergate export admission-policies` and the webhooks narrowed to what
//! they leave), (f) and (g): (b) and (e) at tier 1, (h) the policies alone
//! at tier 1 with no webhook, (i), (j), (k) the floor of any admission
//! policy: one that always warns, one that patches once, both (what no
//! policy content can go below), (l) seven policies patching once each and
//! (m) one policy making the same seven changes in one patch (what a patch
//! costs per policy and per operation), (n) (e) with the fixes left to the
//! mutating webhook (`--fixes-in-webhook`), (o) the seven changes of (m)
//! in two JSONPatch mutations of one policy and (p) in one
//! ApplyConfiguration mutation (what a mutation costs, and the other patch
//! type), (z) the namespace of (a) with no admission policy in the cluster
//! at all (measured in a phase of each round with every policy deleted,
//! then applied again: the apiserver matches every policy's bindings,
//! parsing their namespace selectors, on every write of a kind the policy
//! matches in every namespace, so (a) pays for the policies of the other
//! configurations), (y) and (x): (h) and (a) in a phase with only one copy
//! of tiergate's policies in the cluster (those of (h)), (w) (k) and (v) a
//! validating and a mutating policy that match the write and are skipped
//! by a matchCondition, in a phase with only those floor policies in the
//! cluster (what no policy design can go below, without the selectors of
//! the run's other policies), and with `E2E_BENCH_BEFORE`, (d). Each
//! cell creates `E2E_BENCH_WRITES` Deployments (two
//! containers, unique names) from 1 or 16 clients, as server-side dry-runs
//! and as stored writes, for `E2E_BENCH_ROUNDS` rounds of (a, b, c).
//!
//! Reported per cell: p50/p90/p99 of the create, its ratios over (a) and (z),
//! the CPU per write of the apiserver, etcd and tiergate (utime+stime from
//! /proc over the cell, divided by the writes) and the apiserver's own
//! `apiserver_admission_webhook_admission_duration_seconds` per webhook. A
//! table goes to stderr and JSON to `target/bench-apiserver.json`.
//!
//! `E2E_BENCH=1` runs it (`make bench-apiserver`); `E2E_BENCH=smoke` runs a
//! few writes per cell so it cannot rot (CI); unset, it prints SKIPPED (the
//! e2e suite's `--ignored` pass). No timing is asserted: only that every
//! write succeeded and that tiergate answered the writes of (b).
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::{json, Value};

use crate::harness::{admin, cluster, metric_sum, Scenario, Webhooks, MUTATE, TIERGATE, VALIDATE};

/// The Deployment of every write: the web Deployment of `make bench-load`
/// (two containers, tests/data/web-deployment.json), named `name`, in the
/// namespace it is created in. `E2E_BENCH_OBJECT=compliant`: the same
/// Deployment written to pass every rule of tier 1 that the object alone
/// decides (tests/data/web-deployment-compliant.json), what an enforced
/// namespace mostly sees.
fn deployment(name: &str) -> Deployment {
    let text = if std::env::var("E2E_BENCH_OBJECT").as_deref() == Ok("compliant") {
        include_str!("../data/web-deployment-compliant.json")
    } else {
        include_str!("../data/web-deployment.json")
    };
    let mut d: serde_json::Value = serde_json::from_str(text).expect("the bench Deployment");
    d["metadata"]["name"] = name.into();
    if let Some(m) = d["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    serde_json::from_value(d).expect("the bench Deployment")
}

/// utime+stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// The apiserver's webhook admission duration: (sum seconds, count) per
/// webhook name.
async fn webhook_durations(
    client: &Client,
    validate: &[String],
    mutate: &[String],
) -> Vec<(String, f64, f64)> {
    let req = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .expect("metrics request");
    let text = client.request_text(req).await.unwrap_or_default();
    let sum_over = |names: &[String], metric: &str| {
        names
            .iter()
            .map(|n| metric_sum(&text, metric, &[("name", n.as_str())]))
            .sum::<f64>()
    };
    let mut out: Vec<(String, f64, f64)> = [(VALIDATE, validate), (MUTATE, mutate)]
        .into_iter()
        .map(|(name, names)| {
            (
                name.to_string(),
                sum_over(
                    names,
                    "apiserver_admission_webhook_admission_duration_seconds_sum",
                ),
                sum_over(
                    names,
                    "apiserver_admission_webhook_admission_duration_seconds_count",
                ),
            )
        })
        .collect();
    // The admission policies' own evaluation time, every policy summed.
    let policy = |metric: &str| metric_sum(&text, metric, &[]);
    out.push((
        POLICIES.to_string(),
        policy("apiserver_validating_admission_policy_check_duration_seconds_sum"),
        policy("apiserver_validating_admission_policy_check_duration_seconds_count"),
    ));
    out
}

/// The admission policies' row in [`webhook_durations`].
const POLICIES: &str = "admission policies";

/// One cell's result.
#[derive(Default, Clone)]
struct Cell {
    latencies_us: Vec<u64>,
    errors: usize,
    seconds: f64,
    apiserver_cpu: f64,
    etcd_cpu: f64,
    tiergate_cpu: f64,
    /// (webhook, seconds, calls) the apiserver measured.
    webhooks: Vec<(String, f64, f64)>,
}

/// `writes` creates into `ns` from `clients` concurrent clients.
async fn write_cell(
    client: &Client,
    ns: &str,
    prefix: &str,
    writes: usize,
    clients: usize,
    dry_run: bool,
) -> (Vec<u64>, usize) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let prefix = prefix.to_string();
        let n = writes / clients + usize::from(c < writes % clients);
        tasks.push(tokio::spawn(async move {
            let pp = PostParams {
                dry_run,
                ..PostParams::default()
            };
            let mut lat = Vec::with_capacity(n);
            let mut errors = 0;
            for i in 0..n {
                let d = deployment(&format!("{prefix}-{c}-{i}"));
                let t = Instant::now();
                match api.create(&pp, &d).await {
                    Ok(_) => lat.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("bench-apiserver: a write failed: {e}");
                        }
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("a writer task");
        lat.extend(l);
        errors += e;
    }
    (lat, errors)
}

/// A namespace judged by tiergate (`bin`) at `tier` in warn mode, its
/// webhooks registered as deploy/ registers them; in hybrid mode with the
/// validating webhook narrowed as `tiergate export admission-policies
/// --webhooks` narrows it (the policies are applied by the caller).
async fn judged_by(bin: &str, name: &str, tier: u8, hybrid: bool) -> Scenario {
    judged_by_with(bin, name, tier, hybrid, false).await
}

/// [`judged_by`]; `fixes_in_webhook`: hybrid mode exported with
/// `--fixes-in-webhook` (the mutating webhook keeps every fix).
async fn judged_by_with(
    bin: &str,
    name: &str,
    tier: u8,
    hybrid: bool,
    fixes_in_webhook: bool,
) -> Scenario {
    let config = format!(
        "defaults: {{tier: {tier}, mode: warn}}\n{}",
        if hybrid {
            "admissionPolicies: hybrid\n"
        } else {
            ""
        }
    );
    let policy = tiergate::config::Config::from_yaml(&config, "bench config")
        .expect("bench config")
        .policy;
    let mut s = Scenario::with_bin(
        bin,
        name,
        tier,
        "warn",
        &config,
        false,
        Webhooks {
            hybrid: hybrid.then_some(policy),
            fixes_in_webhook,
            ..Webhooks::default()
        },
    )
    .await;
    s.register().await;
    s
}

/// Apply the admission policies `tiergate export admission-policies` makes
/// for the hybrid scenarios' config, bound to their namespaces only; wait
/// until the apiserver enforces them. The names of the validating and the
/// mutating webhooks, narrowed ones included, for the apiserver's metrics.
async fn apply_policies(scenarios: &[&Scenario], also: &[&str]) -> (Vec<String>, Vec<String>) {
    use tiergate::export;
    let cfg =
        tiergate::config::Config::from_yaml(BENCH_CONFIG, "bench config").expect("bench config");
    // Those exported with `--fixes-in-webhook` get their own copy, with no
    // mutating policy.
    let mut names: Vec<&str> = scenarios
        .iter()
        .filter(|s| !s.webhooks.fixes_in_webhook)
        .map(|s| s.name.as_str())
        .collect();
    names.extend(also);
    crate::policies::apply_bound_policies(&cfg, "bench", &names).await;
    let in_webhook: Vec<&str> = scenarios
        .iter()
        .filter(|s| s.webhooks.fixes_in_webhook)
        .map(|s| s.name.as_str())
        .collect();
    if !in_webhook.is_empty() {
        let opts = export::ExportOptions {
            fixes_in_webhook: true,
            ..export::ExportOptions::default()
        };
        crate::policies::apply_bound_policies_with(&cfg, &opts, "benchwf", &in_webhook).await;
    }
    let names_of = |narrowed: Value, out: &mut Vec<String>| {
        for w in narrowed["webhooks"].as_array().into_iter().flatten() {
            if let Some(n) = w["name"].as_str() {
                if !out.iter().any(|o| o == n) {
                    out.push(n.to_string());
                }
            }
        }
    };
    let (mut validate, mut mutate) = (vec![VALIDATE.to_string()], vec![MUTATE.to_string()]);
    for s in scenarios {
        if let Some(cfg) = &s.webhooks.hybrid {
            let v = json!({"webhooks": [{"name": VALIDATE}]});
            names_of(export::hybrid_webhooks(&v, cfg), &mut validate);
            let m = json!({"webhooks": [{"name": MUTATE}]});
            let fixed = s.webhooks.policy_fixes(cfg);
            names_of(
                export::hybrid_mutating_webhooks(&m, cfg, &fixed),
                &mut mutate,
            );
        }
    }
    (validate, mutate)
}

/// The floor of any admission policy, whatever it checks: (i) one
/// ValidatingAdmissionPolicy whose one validation always fails, with a
/// messageExpression, bound with Warn (what a warning from a policy costs
/// at least), (j) one MutatingAdmissionPolicy that adds a label once (what
/// a patch from a policy costs at least: the apiserver's encode, patch,
/// decode and reinvocation), (k) both. The namespaces are labelled
/// `e2e.tiergate.io/floor` (warn, patch, both), which no tiergate binding
/// selects. Waits until the apiserver acts on all of them.
///
/// `alone`: only (k)'s two policies, and the two of (v), bound to the
/// namespace labelled `skip`, whose matchConditions skip every write but
/// the canary's (what a policy that judges a write and finds nothing costs
/// at least), for the phase with nothing else in the cluster.
async fn apply_floor(client: &kube::Client, alone: bool) {
    const LABEL: &str = "e2e.tiergate.io/floor";
    let mut yaml = floor_warn("bench-floor-warn", &["warn", "both"], false);
    if alone {
        yaml.push_str(&floor_patch(
            "bench-floor-patch",
            &["patch", "both"],
            &["floor.e2e.tiergate.io~1patched"],
        ));
        yaml.push_str("\n---\n");
        yaml.push_str(&floor_warn("bench-floor-skip", &["skip"], true));
        yaml.push_str(&floor_mutations_if(
            "bench-floor-skip",
            &["skip"],
            &[&["floor.e2e.tiergate.io~1patched"]],
            false,
            CANARY_ONLY,
        ));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let obj: Namespace = serde_json::from_value(json!({"metadata": {
            "name": "bench-floor-skip", "labels": {LABEL: "skip"}}}))
        .expect("namespace");
        let _ = namespaces.create(&PostParams::default(), &obj).await;
        crate::policies::apply(&yaml);
        floor_acts(client, &["both", "skip"]).await;
        return;
    }
    // (j) one MutatingAdmissionPolicy adding a label; (l) seven adding a
    // label each, (m) one adding the same seven labels in one mutation:
    // what a patch costs per policy, against per operation (tier 3 patches
    // a usual Deployment with seven fixes).
    yaml.push_str(&floor_patch(
        "bench-floor-patch",
        &["patch", "both"],
        &["floor.e2e.tiergate.io~1patched"],
    ));
    let seven: Vec<String> = (1..=7)
        .map(|n| format!("floor.e2e.tiergate.io~1p{n}"))
        .collect();
    for (n, key) in seven.iter().enumerate() {
        yaml.push_str(&floor_patch(
            &format!("bench-floor-seven-{n}"),
            &["seven"],
            &[key.as_str()],
        ));
    }
    let keys: Vec<&str> = seven.iter().map(String::as_str).collect();
    yaml.push_str(&floor_patch(
        "bench-floor-one-of-seven",
        &["oneofseven"],
        &keys,
    ));
    // (o) the same seven labels in two JSONPatch mutations of one policy
    // (tier 3's Deployment policy has two); (p) in one ApplyConfiguration
    // mutation, which merges by key where JSONPatch adds whole fields.
    yaml.push_str(&floor_mutations(
        "bench-floor-two-mutations",
        &["twomutations"],
        &[&keys[..4], &keys[4..]],
        false,
    ));
    yaml.push_str(&floor_mutations(
        "bench-floor-apply",
        &["apply"],
        &[&keys],
        true,
    ));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    const FLOORS: [&str; 7] = [
        "warn",
        "patch",
        "both",
        "seven",
        "oneofseven",
        "twomutations",
        "apply",
    ];
    for which in FLOORS {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {
            "name": format!("bench-floor-{which}"), "labels": {LABEL: which}}}))
        .expect("namespace");
        let _ = namespaces.create(&PostParams::default(), &obj).await;
    }
    crate::policies::apply(&yaml);
    floor_acts(client, &FLOORS).await;
}

/// The matchCondition of (v)'s policies: only the canary of
/// [`floor_acts`] is judged, so that the wait can see them act.
const CANARY_ONLY: &str = "object.metadata.name == 'floor-canary'";

/// Waits until the floor policies act on a canary Deployment in each
/// `bench-floor-{which}` namespace: a warning and a patch where both are
/// bound, seven labels where seven are added.
async fn floor_acts(client: &kube::Client, floors: &[&str]) {
    let canary = serde_json::to_value(deployment("floor-canary")).expect("json");
    let start = Instant::now();
    for &which in floors {
        loop {
            let a = crate::policies::dry_run_create(
                client,
                Some(&format!("bench-floor-{which}")),
                &canary,
            )
            .await;
            let warned = a.warnings.iter().any(|w| w.contains("[floor]"));
            let labels = &a.body["metadata"]["labels"];
            let patched = match which {
                "seven" | "oneofseven" | "twomutations" | "apply" => {
                    (1..=7).all(|n| labels[format!("floor.e2e.tiergate.io/p{n}")] == "true")
                }
                _ => labels["floor.e2e.tiergate.io/patched"] == "true",
            };
            let want = (matches!(which, "warn" | "both" | "skip"), which != "warn");
            if a.status == 201 && (warned, patched) == want {
                break;
            }
            assert!(
                start.elapsed().as_secs() < 120,
                "the floor policies never acted in bench-floor-{which}: HTTP {} {:?}",
                a.status,
                a.warnings
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// A floor ValidatingAdmissionPolicy and its binding (YAML, no leading
/// `---`): one validation that always fails, bound with Warn in the
/// namespaces whose `e2e.tiergate.io/floor` label is one of `which`;
/// `canary_only`: skipped, by a matchCondition, for every write but the
/// canary's.
fn floor_warn(name: &str, which: &[&str], canary_only: bool) -> String {
    let conditions = if canary_only {
        format!("  matchConditions:\n  - name: canary-only\n    expression: \"{CANARY_ONLY}\"\n")
    } else {
        String::new()
    };
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
{conditions}  validations:
  - expression: "false"
    messageExpression: "'[floor] ' + object.metadata.name + ' always warns'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Warn]
  matchResources:
    namespaceSelector:
      matchExpressions: [{{key: e2e.tiergate.io/floor, operator: In, values: [{}]}}]
"#,
        which.join(", ")
    )
}

/// A floor MutatingAdmissionPolicy and its binding (YAML, each document
/// after `---`): adds each label key (a JSON pointer token) with value
/// `true`, once, in one mutation, in the namespaces whose
/// `e2e.tiergate.io/floor` label is one of `which`.
fn floor_patch(name: &str, which: &[&str], keys: &[&str]) -> String {
    floor_mutations(name, which, &[keys], false)
}

/// [`floor_patch`] with the keys in several mutations (one per group), as
/// JSONPatch or, with `apply`, as ApplyConfiguration (a merge by key).
fn floor_mutations(name: &str, which: &[&str], groups: &[&[&str]], apply: bool) -> String {
    floor_mutations_if(name, which, groups, apply, "true")
}

/// [`floor_mutations`] for the writes where the CEL `only` holds.
fn floor_mutations_if(
    name: &str,
    which: &[&str],
    groups: &[&[&str]],
    apply: bool,
    only: &str,
) -> String {
    let mutation = |keys: &[&str]| {
        if apply {
            let entries: Vec<String> = keys
                .iter()
                .map(|k| format!("'{}': 'true'", k.replace("~1", "/")))
                .collect();
            format!(
                "  - patchType: ApplyConfiguration\n    applyConfiguration:\n      expression: \
                 \"Object{{metadata: Object.metadata{{labels: {{{}}}}}}}\"\n",
                entries.join(", ")
            )
        } else {
            let ops: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!("JSONPatch{{op: 'add', path: '/metadata/labels/{k}', value: 'true'}}")
                })
                .collect();
            format!(
                "  - patchType: JSONPatch\n    jsonPatch:\n      expression: \"[{}]\"\n",
                ops.join(", ")
            )
        }
    };
    let mutations: String = groups.iter().map(|g| mutation(g)).collect();
    let first = groups
        .first()
        .and_then(|g| g.first())
        .map_or(String::new(), |k| k.replace("~1", "/"));
    format!(
        r#"
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  matchConstraints:
    resourceRules:
    - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
  matchConditions:
  - name: not-patched
    expression: "{only} && (!has(object.metadata.labels) || !('{first}' in object.metadata.labels))"
  mutations:
{}---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  matchResources:
    namespaceSelector:
      matchExpressions: [{{key: e2e.tiergate.io/floor, operator: In, values: [{}]}}]
"#,
        mutations,
        which.join(", ")
    )
}

/// The configuration measured with no admission policy in the cluster.
const BARE: &str = "z no policy in the cluster";
/// (h) and (a) measured with only one copy of tiergate's policies in the
/// cluster.
const ALONE_H: &str = "y h, tiergate's policies alone in the cluster";
const ALONE_A: &str = "x a, tiergate's policies alone in the cluster";
/// (k) measured with only its two policies in the cluster, and (v): a
/// validating and a mutating policy bound to the namespace and skipped by
/// a matchCondition, alone in the cluster.
const FLOOR_W: &str = "w k, the floor alone in the cluster";
const FLOOR_V: &str = "v floor matched and skipped, alone in the cluster";

/// The phase of a round a configuration is measured in, when not with the
/// others.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No admission policy in the cluster.
    Bare,
    /// Only tiergate's policies bound to (h)'s namespace.
    Alone,
    /// Only the floor policies of (w) and (v).
    Floor,
}

impl Phase {
    fn of(config: &str) -> Option<Phase> {
        match config {
            BARE => Some(Phase::Bare),
            ALONE_H | ALONE_A => Some(Phase::Alone),
            FLOOR_W | FLOOR_V => Some(Phase::Floor),
            _ => None,
        }
    }
}

/// The config of the hybrid configurations' policies.
const BENCH_CONFIG: &str = "defaults: {tier: enterprise, mode: warn}\nadmissionPolicies: hybrid\n";

/// One cell: `writes` creates of the bench Deployment in `ns`, with the
/// CPU of the apiserver, etcd and tiergate (`tg_pid`) over it and the
/// apiserver's admission metrics.
#[allow(clippy::too_many_arguments)]
async fn measure(
    client: &Client,
    c: &crate::harness::cluster::Cluster,
    ns: &str,
    prefix: &str,
    writes: usize,
    clients: usize,
    dry_run: bool,
    tg_pid: Option<u32>,
    validate_names: &[String],
    mutate_names: &[String],
) -> Cell {
    let api_pid = c.apiserver_pid();
    let tg_cpu = || tg_pid.map_or(0.0, cpu_seconds);
    let cpu0 = (cpu_seconds(api_pid), cpu_seconds(c.etcd_pid), tg_cpu());
    let wh0 = webhook_durations(client, validate_names, mutate_names).await;
    let t = Instant::now();
    let (lat, errors) = write_cell(client, ns, prefix, writes, clients, dry_run).await;
    let seconds = t.elapsed().as_secs_f64();
    let wh1 = webhook_durations(client, validate_names, mutate_names).await;
    Cell {
        latencies_us: lat,
        errors,
        seconds,
        apiserver_cpu: cpu_seconds(api_pid) - cpu0.0,
        etcd_cpu: cpu_seconds(c.etcd_pid) - cpu0.1,
        tiergate_cpu: tg_cpu() - cpu0.2,
        webhooks: wh1
            .iter()
            .zip(&wh0)
            .map(|(a, b)| (a.0.clone(), a.1 - b.1, a.2 - b.2))
            .collect(),
    }
}

/// Delete every admission policy and binding of the cluster, and wait
/// until the apiserver no longer acts on them (the floor that both warns
/// and patches does neither).
async fn remove_policies(client: &Client) {
    let run = crate::harness::KUBECTL_ADMIN.run(
        &[
            "delete",
            "validatingadmissionpolicybindings,validatingadmissionpolicies,\
             mutatingadmissionpolicybindings,mutatingadmissionpolicies",
            "--all",
        ],
        None,
    );
    assert!(run.ok, "deleting the admission policies: {}", run.stderr);
    let canary = serde_json::to_value(deployment("bare-canary")).expect("json");
    let start = Instant::now();
    loop {
        let a = crate::policies::dry_run_create(client, Some("bench-floor-both"), &canary).await;
        let patched = a.body["metadata"]["labels"]["floor.e2e.tiergate.io/patched"] == "true";
        if a.status == 201 && !patched && !a.warnings.iter().any(|w| w.contains("[floor]")) {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "the apiserver still applies the deleted policies: {:?}",
            a.warnings
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The informers of every policy kind, not only the floor's, have seen
    // the deletions by now; a second more for the slowest.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: make bench-apiserver (E2E_BENCH=1), or its smoke (E2E_BENCH=smoke)"]
async fn apiserver_write_cost() {
    let mode = std::env::var("E2E_BENCH").unwrap_or_default();
    if mode.is_empty() {
        eprintln!("SKIPPED: apiserver_write_cost runs under `make bench-apiserver` (E2E_BENCH=1)");
        return;
    }
    let smoke = mode == "smoke";
    let writes = env_usize("E2E_BENCH_WRITES", if smoke { 32 } else { 1000 });
    let rounds = env_usize("E2E_BENCH_ROUNDS", if smoke { 1 } else { 5 });
    let c = cluster();
    let client = admin().await;

    // (b) tiergate, registered as deploy/ registers it, at tier 3; (e) the
    // same in hybrid mode; (f) and (g): both at tier 1.
    let tiergate = judged_by(TIERGATE, "bench", 3, false).await;
    let hybrid = judged_by(TIERGATE, "bench-hybrid", 3, true).await;
    let tiergate1 = judged_by(TIERGATE, "bench-t1", 1, false).await;
    let hybrid1 = judged_by(TIERGATE, "bench-hybrid-t1", 1, true).await;
    // (n) (e) exported with `--fixes-in-webhook`: the mutating webhook
    // applies the fixes, no mutating policy.
    let hybrid_wf = judged_by_with(TIERGATE, "bench-hybrid-wf", 3, true, true).await;
    // (h) the policies alone at tier 1, no webhook: what hybrid costs where
    // no remaining rule or fix needs tiergate.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let policies_only: Namespace = serde_json::from_value(json!({"metadata": {
        "name": "bench-policies", "labels": {"tiergate.io/tier": "1", "tiergate.io/mode": "warn",
                                             "e2e.tiergate.io/scenario": "bench-policies"}}}))
    .expect("namespace");
    let _ = namespaces
        .create(&PostParams::default(), &policies_only)
        .await;
    let (validate_names, mutate_names) =
        apply_policies(&[&hybrid, &hybrid1, &hybrid_wf], &["bench-policies"]).await;
    // (i), (j), (k): the floor of any policy that warns or patches.
    apply_floor(&client, false).await;
    // (a) nothing, (c) Pod Security Admission at restricted.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (ns, labels) in [
        ("bench-none", json!({})),
        (
            "bench-psa",
            json!({"pod-security.kubernetes.io/enforce": "restricted",
                   "pod-security.kubernetes.io/warn": "restricted",
                   "pod-security.kubernetes.io/audit": "restricted"}),
        ),
    ] {
        let obj: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}}))
                .expect("namespace");
        let _ = namespaces.create(&PostParams::default(), &obj).await;
    }
    let pid_of = |s: &Scenario| {
        s.tiergate
            .proc
            .child
            .as_ref()
            .map(std::process::Child::id)
            .expect("tiergate's pid")
    };
    // (name, namespace, the pid of its tiergate).
    let mut configs: Vec<(&str, String, Option<u32>)> = vec![
        ("a none", "bench-none".to_string(), None),
        ("b tiergate", tiergate.ns.clone(), Some(pid_of(&tiergate))),
        ("c psa", "bench-psa".to_string(), None),
        ("e hybrid", hybrid.ns.clone(), Some(pid_of(&hybrid))),
        (
            "f t1 tiergate",
            tiergate1.ns.clone(),
            Some(pid_of(&tiergate1)),
        ),
        ("g t1 hybrid", hybrid1.ns.clone(), Some(pid_of(&hybrid1))),
        ("h t1 policies", "bench-policies".to_string(), None),
        ("i floor warn", "bench-floor-warn".to_string(), None),
        ("j floor patch", "bench-floor-patch".to_string(), None),
        ("k floor both", "bench-floor-both".to_string(), None),
        ("l floor seven", "bench-floor-seven".to_string(), None),
        (
            "n hybrid fixes in webhook",
            hybrid_wf.ns.clone(),
            Some(pid_of(&hybrid_wf)),
        ),
        (
            "m floor one of seven",
            "bench-floor-oneofseven".to_string(),
            None,
        ),
        (
            "o floor seven in two mutations",
            "bench-floor-twomutations".to_string(),
            None,
        ),
        (
            "p floor seven as apply",
            "bench-floor-apply".to_string(),
            None,
        ),
        // Measured in a phase of each round with no admission policy in
        // the cluster at all: the apiserver matches every policy's
        // bindings (parsing their selectors) on every write of a kind the
        // policy matches, in every namespace, so (a) pays for the policies
        // applied for the other configurations.
        (BARE, "bench-none".to_string(), None),
        // Measured in a phase with only one copy of tiergate's policies in
        // the cluster (those of (h), bound to its namespace): (y) is (h)
        // and (x) is (a) as they would be with tiergate's policies alone.
        (ALONE_H, "bench-policies".to_string(), None),
        (ALONE_A, "bench-none".to_string(), None),
        // Measured in a phase with only the floor's policies in the
        // cluster: (w) what warning and patching once costs a write, and
        // (v) what a policy costs that matches a write and finds nothing,
        // with no other policy's selectors parsed.
        (FLOOR_W, "bench-floor-both".to_string(), None),
        (FLOOR_V, "bench-floor-skip".to_string(), None),
    ];
    // `E2E_BENCH_CONFIGS=a,h`: only these configurations (by letter), e.g.
    // while a profile of the apiserver is taken.
    if let Ok(only) = std::env::var("E2E_BENCH_CONFIGS") {
        let keep: Vec<&str> = only.split(',').map(str::trim).collect();
        configs.retain(|(name, _, _)| keep.iter().any(|k| name.starts_with(&format!("{k} "))));
    }
    // `E2E_BENCH_BEFORE=PATH`: (d) the same webhooks as (b) served by
    // another tiergate binary (an earlier commit's), for before/after.
    let _before = match std::env::var("E2E_BENCH_BEFORE") {
        Ok(bin) if !bin.is_empty() => {
            let s = judged_by(&bin, "bench-before", 3, false).await;
            configs.push(("d before", s.ns.clone(), Some(pid_of(&s))));
            Some(s)
        }
        _ => None,
    };
    let mut cells: Vec<((bool, usize, usize), Cell)> = Vec::new();
    // One cell of `writes` creates in `ns`, for every phase alike.
    let cell_of = async |ns: &str, prefix: &str, clients, dry_run, tg_pid| {
        measure(
            &client,
            c,
            ns,
            prefix,
            writes,
            clients,
            dry_run,
            tg_pid,
            &validate_names,
            &mutate_names,
        )
        .await
    };
    // A short warm-up before a cell (16 dry-run creates), so that the
    // first configuration measured does not pay for cold connections.
    let warm_up = async |ns: &str, prefix: &str, clients| {
        let _ = write_cell(&client, ns, prefix, 16, clients, true).await;
    };
    let began = Instant::now();
    // The configurations measured in their own phase of each round.
    let phased: Vec<(usize, Phase)> = configs
        .iter()
        .enumerate()
        .filter_map(|(ci, (name, _, _))| Some((ci, Phase::of(name)?)))
        .collect();
    let bare = configs.iter().position(|(name, _, _)| *name == BARE);
    let bench_cfg =
        tiergate::config::Config::from_yaml(BENCH_CONFIG, "bench config").expect("bench config");
    for round in 0..rounds {
        // (z) with every admission policy removed, then (y) and (x) with
        // only one copy of tiergate's (those of (h)), then (w) and (v) with
        // only the floor's; then every policy of the other configurations
        // applied again (each apply waits until the apiserver acts on it).
        if !phased.is_empty() {
            remove_policies(&client).await;
            for phase in [Phase::Bare, Phase::Alone, Phase::Floor] {
                if !phased.iter().any(|(_, p)| *p == phase) {
                    continue;
                }
                match phase {
                    Phase::Bare => {}
                    // (Bound to (g)'s namespace too: the wait for them to
                    // act is there.)
                    Phase::Alone => {
                        crate::policies::apply_bound_policies(
                            &bench_cfg,
                            "bench",
                            &[hybrid1.name.as_str(), "bench-policies"],
                        )
                        .await;
                    }
                    Phase::Floor => {
                        remove_policies(&client).await;
                        apply_floor(&client, true).await;
                    }
                }
                for &(ci, _) in phased.iter().filter(|(_, p)| *p == phase) {
                    for dry_run in [true, false] {
                        for clients in [1usize, 16] {
                            let ns = &configs[ci].1;
                            warm_up(ns, &format!("warm-{round}-{ci}"), clients).await;
                            let prefix = format!(
                                "p{round}-{}-{clients}-{ci}",
                                if dry_run { "d" } else { "s" }
                            );
                            let cell = cell_of(ns, &prefix, clients, dry_run, None).await;
                            cells.push(((dry_run, clients, ci), cell));
                        }
                    }
                }
            }
            remove_policies(&client).await;
            apply_policies(&[&hybrid, &hybrid1, &hybrid_wf], &["bench-policies"]).await;
            apply_floor(&client, false).await;
        }
        for dry_run in [true, false] {
            for clients in [1usize, 16] {
                // A short warm-up per (writes, clients) so the first
                // configuration does not pay for cold connections.
                for (ci, (name, ns, _)) in configs.iter().enumerate() {
                    if Phase::of(name).is_some() {
                        continue;
                    }
                    warm_up(ns, &format!("warm-{round}-{ci}"), clients).await;
                }
                for (ci, (name, ns, tg_pid)) in configs.iter().enumerate() {
                    if Phase::of(name).is_some() {
                        continue;
                    }
                    let prefix = format!(
                        "w{round}-{}-{clients}-{ci}",
                        if dry_run { "d" } else { "s" }
                    );
                    let cell = cell_of(ns, &prefix, clients, dry_run, *tg_pid).await;
                    cells.push(((dry_run, clients, ci), cell));
                }
            }
        }
    }

    // Combine the rounds of each cell.
    let mut rows = Vec::new();
    let mut table = format!(
        "\nbench-apiserver: {writes} writes per cell, {rounds} round(s), {:.0} s; p50/p90/p99 ms, CPU ms per write\n\
         {:<8} {:>3} {:<13} {:>8} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>9} {:>11} {:>11} {:>11}\n",
        began.elapsed().as_secs_f64(),
        "writes", "cl", "config", "p50", "p90", "p99", "p50/a", "p50/z", "apiserver", "etcd", "tiergate",
        "validate ms", "mutate ms", "policies ms"
    );
    let mut total_errors = 0;
    let mut tiergate_calls = 0.0;
    for dry_run in [true, false] {
        for clients in [1usize, 16] {
            let mut base = (0.0, 0.0);
            let latencies = |ci: usize| -> Vec<u64> {
                let mut lat: Vec<u64> = cells
                    .iter()
                    .filter(|(k, _)| *k == (dry_run, clients, ci))
                    .flat_map(|(_, c)| c.latencies_us.iter().copied())
                    .collect();
                lat.sort_unstable();
                lat
            };
            // (z), no policy in the cluster, when measured.
            let bare_p50 = bare.map_or(0.0, |zi| pct(&latencies(zi), 50.0));
            for (ci, (cname, _, _)) in configs.iter().enumerate() {
                let mine: Vec<&Cell> = cells
                    .iter()
                    .filter(|(k, _)| *k == (dry_run, clients, ci))
                    .map(|(_, c)| c)
                    .collect();
                let lat = latencies(ci);
                let n = lat.len().max(1) as f64;
                let errors: usize = mine.iter().map(|c| c.errors).sum();
                total_errors += errors;
                let sum = |f: fn(&Cell) -> f64| mine.iter().map(|c| f(c)).sum::<f64>();
                let per_write = |cpu: f64| cpu / n * 1000.0;
                let wh = |name: &str| -> (f64, f64) {
                    mine.iter()
                        .flat_map(|c| c.webhooks.iter())
                        .filter(|(w, _, _)| w == name)
                        .fold((0.0, 0.0), |acc, (_, s, k)| (acc.0 + s, acc.1 + k))
                };
                let (vs, vn) = wh(VALIDATE);
                let (ms, mn) = wh(MUTATE);
                let (ps, pn) = wh(POLICIES);
                if ci == 1 {
                    tiergate_calls += vn + mn;
                }
                let mean_ms = |s: f64, k: f64| if k > 0.0 { s / k * 1000.0 } else { 0.0 };
                let (p50, p90, p99) = (pct(&lat, 50.0), pct(&lat, 90.0), pct(&lat, 99.0));
                if ci == 0 {
                    base = (p50, p99);
                }
                let ratio = |x: f64, b: f64| if b > 0.0 { x / b } else { 0.0 };
                let writes_kind = if dry_run { "dry-run" } else { "stored" };
                table.push_str(&format!(
                    "{:<8} {:>3} {:<13} {:>8.2} {:>8.2} {:>8.2} {:>7.2} {:>7.2} {:>9.2} {:>9.2} {:>9.2} {:>11.3} {:>11.3} {:>11.3}\n",
                    writes_kind,
                    clients,
                    cname,
                    p50,
                    p90,
                    p99,
                    ratio(p50, base.0),
                    ratio(p50, bare_p50),
                    per_write(sum(|c| c.apiserver_cpu)),
                    per_write(sum(|c| c.etcd_cpu)),
                    per_write(sum(|c| c.tiergate_cpu)),
                    mean_ms(vs, vn),
                    mean_ms(ms, mn),
                    ps / n * 1000.0,
                ));
                let seconds = sum(|c| c.seconds);
                rows.push(json!({
                    "writes": writes_kind, "clients": clients, "config": cname,
                    "count": lat.len(), "errors": errors,
                    "writes_per_second": if seconds > 0.0 { lat.len() as f64 / seconds } else { 0.0 },
                    "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
                    "p50_over_none": ratio(p50, base.0), "p99_over_none": ratio(p99, base.1),
                    "p50_over_no_policy": ratio(p50, bare_p50),
                    "cpu_ms_per_write": {
                        "apiserver": per_write(sum(|c| c.apiserver_cpu)),
                        "etcd": per_write(sum(|c| c.etcd_cpu)),
                        "tiergate": per_write(sum(|c| c.tiergate_cpu)),
                    },
                    "apiserver_webhook_ms": {"validate": mean_ms(vs, vn), "mutate": mean_ms(ms, mn),
                                             "validate_calls": vn, "mutate_calls": mn,
                                             "policies_per_write": ps / n * 1000.0, "policy_checks": pn},
                }));
            }
        }
    }
    eprintln!("{table}");
    let report = json!({
        "benchmark": "tiergate bench-apiserver",
        "smoke": smoke,
        "writes_per_cell": writes,
        "object": std::env::var("E2E_BENCH_OBJECT").unwrap_or_else(|_| "web".to_string()),
        "rounds": rounds,
        "configs": {
            "a none": "no webhook matches the namespace",
            "b tiergate": "tiergate's validating and mutating webhooks as in deploy/ (rules, matchConditions), defaults tier enterprise, mode warn",
            "c psa": "built-in Pod Security Admission at restricted (enforce, warn, audit)",
            "e hybrid": "admissionPolicies: hybrid: tiergate's ValidatingAdmissionPolicies (tiergate export admission-policies) and its webhooks narrowed to what they leave, tier enterprise, mode warn",
            "f t1 tiergate": "as b, at tier foundation",
            "g t1 hybrid": "as e, at tier foundation",
            "h t1 policies": "the admission policies alone at tier foundation, no webhook (hybrid where no remaining rule or fix needs tiergate)",
            "i floor warn": "one ValidatingAdmissionPolicy whose one validation always fails, bound with Warn: the least a warning from any policy costs",
            "j floor patch": "one MutatingAdmissionPolicy adding a label once: the least a patch from any policy costs",
            "k floor both": "i and j together: the least any policy that warns and patches (as h does on the usual web Deployment) costs",
            "l floor seven": "seven MutatingAdmissionPolicies adding a label each: what a patch costs per policy",
            "m floor one of seven": "one MutatingAdmissionPolicy adding the same seven labels in one mutation: what a patch costs per operation",
            "n hybrid fixes in webhook": "as e, exported with --fixes-in-webhook: the mutating webhook applies every fix, no MutatingAdmissionPolicy",
            BARE: "a with no admission policy in the cluster at all (its own phase of each round)",
            ALONE_H: "h with only one copy of tiergate's policies in the cluster (its own phase)",
            ALONE_A: "a with only one copy of tiergate's policies in the cluster (its own phase)",
            FLOOR_W: "k with only its two policies in the cluster (its own phase): the least warning and patching once costs",
            FLOOR_V: "one ValidatingAdmissionPolicy and one MutatingAdmissionPolicy bound to the namespace and skipped by a matchCondition, alone in the cluster: the least a policy costs that judges a write and finds nothing",
        },
        "cells": rows,
    });
    let out =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-apiserver.json");
    let _ = std::fs::write(&out, serde_json::to_vec_pretty(&report).unwrap_or_default());
    eprintln!("bench-apiserver: wrote {}", out.display());
    assert_eq!(total_errors, 0, "writes failed");
    let judged_by_b = configs.iter().any(|(name, _, _)| name.starts_with("b "));
    assert!(
        !judged_by_b || tiergate_calls >= (writes * rounds * 8) as f64,
        "the apiserver called tiergate {tiergate_calls} times for the (b) writes"
    );
}
