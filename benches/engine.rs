//! Engine benchmarks: evaluating plus fixing a typical web Deployment at tier 3,
//! and `check` over 10,000 generated objects (the CLI's judge path, in process).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use tiergate::cli::judge_sources;
use tiergate::config::Config;
use tiergate::manifest::parse_source;
use tiergate::policy::{Context, Engine, Mode, Options, PolicyConfig, Tier};

/// The typical web Deployment (two containers) every benchmark uses
/// (tests/data/web-deployment.json), named `web-I`.
fn web_deployment(i: usize) -> Value {
    let mut d: Value =
        serde_json::from_str(include_str!("../tests/data/web-deployment.json")).unwrap_or_default();
    d["metadata"]["name"] = Value::from(format!("web-{i}"));
    d
}

fn bench_engine(c: &mut Criterion) {
    let engine = Engine::new(PolicyConfig::default());
    let ctx = Context::new(Tier::Enterprise, Mode::Enforce);
    let d = web_deployment(0);
    let fix = Options {
        fix: true,
        ..Options::default()
    };
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.bench_function("evaluate_deployment_tier3", |b| {
        b.iter(|| engine.evaluate(&d, &ctx, &Options::default()))
    });
    g.bench_function("evaluate_and_fix_deployment_tier3", |b| {
        b.iter(|| engine.evaluate(&d, &ctx, &fix))
    });
    // Baseline in the same process: what parsing the pod template alone costs.
    g.bench_function("baseline_parse_target_only", |b| {
        b.iter(|| tiergate::policy::Target::parse(&d).map(|t| t.pod.is_some()))
    });
    g.finish();

    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(&web_deployment(i)).unwrap_or_default());
    }
    let mut g = c.benchmark_group("check");
    g.sample_size(10);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("check_10000_objects_tier3", |b| {
        b.iter_batched(
            || text.clone(),
            |t| {
                let src = parse_source("bench.yaml", None, &t).map(|s| vec![s]);
                src.map(|s| {
                    judge_sources(
                        &engine,
                        &s,
                        &tiergate::cli::Settings::check(Some(Tier::Enterprise)),
                    )
                    .map(|j| j.len())
                })
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
      "metadata": {"name": "api-0", "namespace": "shop", "labels": {"app": "api"}},
      "spec": {"containers": [
        {"name": "api", "image": "ghcr.io/acme/api:1.8.0",
         "ports": [{"containerPort": 8080}],
         "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
                             "capabilities": {"drop": ["ALL"]}},
         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                       "limits": {"cpu": "500m", "memory": "256Mi"}}}]}})
}

fn review(object: &Value) -> Vec<u8> {
    tiergate::admission::ReviewBuilder::new(
        "0b8b2f0c-1d7e-4f00-9a55-3b7e0c1d2e3f",
        "CREATE",
        object.clone(),
    )
    .namespace(Some("shop"))
    .user("dev@example.com", &["system:authenticated"])
    .body()
}

fn bench_admission(c: &mut Criterion) {
    use tiergate::admission::decide::{decide_in, Progress};
    use tiergate::admission::{
        handle, AdmissionRequest, AdmissionSettings, ContextSource, DefaultsSource, Webhook,
    };
    // Namespaces at tier 3, enforcing, as in the load benchmark.
    let cfg = Config::from_yaml("defaults: {tier: enterprise, mode: enforce}\n", "bench")
        .map(|c| c.policy)
        .unwrap_or_default();
    let engine = Engine::new(cfg);
    let ctx = Context::new(Tier::Enterprise, Mode::Enforce);
    let p = pod();
    let body = review(&web_deployment(0));
    let mut g = c.benchmark_group("admission");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_review_deployment", |b| {
        b.iter(|| AdmissionRequest::from_body(&body).is_ok())
    });
    g.bench_function("evaluate_pod_tier3", |b| {
        b.iter(|| engine.evaluate(&p, &ctx, &Options::default()))
    });
    if let Ok(req) = AdmissionRequest::from_body(&body) {
        let settings = AdmissionSettings::new(Webhook::Validate);
        let decided = decide_in(&req, &engine, settings, &mut Progress::default(), |cfg| {
            DefaultsSource.try_context(&req, cfg)
        });
        if let Some((response, _)) = decided {
            g.bench_function("render_response", |b| {
                b.iter(|| serde_json::to_vec(&response).map(|v| v.len()))
            });
        }
    }
    for (name, webhook) in [
        ("handle_validate_deployment", Webhook::Validate),
        ("handle_mutate_deployment", Webhook::Mutate),
    ] {
        let settings = AdmissionSettings::new(webhook);
        g.bench_function(name, |b| {
            b.iter(|| handle(&body, &engine, &DefaultsSource, settings).body.len())
        });
    }
    g.finish();
}

/// One application of a repository: a Deployment, its Service, its PDB and
/// its ConfigMap, in one of eight namespaces (4 objects).
fn app_yaml(i: usize) -> String {
    let ns = format!("team-{}", i % 8);
    let app = format!("app-{i}");
    let objs = [
        web_deployment(i),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": app, "namespace": ns},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": app, "namespace": ns},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": app}}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": app, "namespace": ns}, "data": {"LOG_LEVEL": "info"}}),
    ];
    let mut text = String::new();
    for mut o in objs {
        if o["kind"] == "Deployment" {
            o["metadata"]["namespace"] = json!(ns);
            o["metadata"]["name"] = json!(app);
            o["spec"]["selector"]["matchLabels"]["app"] = json!(app);
            o["spec"]["template"]["metadata"]["labels"]["app"] = json!(app);
        }
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(&o).unwrap_or_default());
    }
    text
}

/// `check` at 2k, 8k and 32k objects in eight namespaces: time per object
/// must stay flat (linear in the input), which the throughput figures show.
fn bench_scale(c: &mut Criterion) {
    let engine = Engine::new(Config::embedded().policy);
    let settings = tiergate::cli::Settings::check(Some(Tier::Production));
    let mut g = c.benchmark_group("check_scale");
    g.sample_size(10);
    for objects in [2_000usize, 8_000, 32_000] {
        // One file per application, as a repository holds them.
        let files: Vec<String> = (0..objects / 4).map(app_yaml).collect();
        g.throughput(Throughput::Elements(objects as u64));
        g.bench_function(format!("check_{objects}_objects_tier2"), |b| {
            b.iter(|| {
                let sources: Vec<_> = files
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| parse_source(&format!("app-{i}.yaml"), None, t).ok())
                    .collect();
                judge_sources(&engine, &sources, &settings).map(|j| j.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_engine, bench_admission, bench_scale);
criterion_main!(benches);
