//! Engine benchmarks: evaluating plus fixing a typical web Deployment at tier 3,
//! and `check` over 10,000 generated objects (the CLI's judge path, in process),
//! and what a cached image verification adds to an admission request.
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

criterion_group!(
    benches,
    bench_engine,
    bench_admission,
    bench_scale,
    bench_supply
);
criterion_main!(benches);

/// A trusted key for the `images.verify` rule of the supply benchmark (any
/// valid P-256 public key: the cached path never checks a signature).
const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgQxLcFMCKvjuBkfTj8qJb7azHBuh
0SN9O1l60AI7KsO/2i+HE8+GGz5HMDk2GPgFnHqgQXyJI7Vmm0DAAw+IiQ==
-----END PUBLIC KEY-----
";

/// The cost a cached image verification adds to a request (issue 14's
/// target: < 50 µs): the webhook's path (context, the images to verify,
/// their facts, the answer) at tier 5 for the typical Deployment, with no
/// `images.verify` (the baseline) and with every image required and its
/// verdict in the verifier's cache. Run in the same process, so the ratio
/// and the difference are both meaningful.
fn bench_supply(c: &mut Criterion) {
    use tiergate::admission::{
        answer_resolved, images_to_verify, AdmissionRequest, AdmissionSettings, ContextSource,
        DefaultsSource, Lookup, Webhook,
    };
    use tiergate::supply::{image_facts, images_of, Outcome, Verifier};
    let indented: String = KEY.lines().map(|l| format!("          {l}\n")).collect();
    let plain = "defaults: {tier: hyperscale, mode: enforce}\n".to_string();
    let verifying = format!(
        "{plain}images:\n  cache: {{tagSeconds: 86400}}\n  verify:\n    - images: ['*']\n      \
         keys:\n        - |\n{indented}"
    );
    let (Ok(plain), Ok(verifying)) = (
        Config::from_yaml(&plain, "bench"),
        Config::from_yaml(&verifying, "bench"),
    ) else {
        eprintln!("supply bench: the configs do not load");
        return;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    let body = review(&web_deployment(0));
    let Ok(req) = AdmissionRequest::from_body(&body) else {
        return;
    };
    let Ok(verifier) = Verifier::new(verifying.policy.images.clone()) else {
        eprintln!("supply bench: the verifier does not build");
        return;
    };
    let digest = format!("sha256:{}", "ab".repeat(32));
    rt.block_on(async {
        let obj = req.object.clone().unwrap_or_default();
        for image in images_of(&obj) {
            if let Some(rule) = verifier.rule_for(&image, 5) {
                let verified = Outcome::Verified {
                    digest: digest.clone(),
                };
                verifier.prime(&image, rule, verified).await;
            }
        }
    });
    // The path measured must be the cached one: every image verified from
    // the cache, no verification run.
    let facts = rt.block_on(image_facts(
        &verifier,
        &images_of(&req.object.clone().unwrap_or_default()),
        5,
        Default::default(),
        std::time::Duration::from_secs(2),
    ));
    let all_verified = facts.verdicts.len() == 2
        && facts
            .verdicts
            .values()
            .all(|v| matches!(v, tiergate::policy::ImageVerdict::Verified { .. }));
    let registry_calls = || {
        let c = verifier.counters();
        c.verifications.load(std::sync::atomic::Ordering::Relaxed)
            + c.tag_lookups.load(std::sync::atomic::Ordering::Relaxed)
    };
    if !all_verified || registry_calls() != 0 {
        eprintln!("supply bench: the cache was not primed: {facts:?}");
        return;
    }
    let mut g = c.benchmark_group("supply");
    g.throughput(Throughput::Elements(1));
    for (webhook, name) in [(Webhook::Validate, "validate"), (Webhook::Mutate, "mutate")] {
        let settings = AdmissionSettings::new(webhook);
        for (label, engine) in [
            ("no_verification", Engine::new(plain.policy.clone())),
            ("cached_verification", Engine::new(verifying.policy.clone())),
        ] {
            g.bench_function(format!("{name}_{label}"), |b| {
                b.iter(|| {
                    rt.block_on(async {
                        let Lookup::Ready(mut resolved) =
                            DefaultsSource.try_context(&req, engine.config())
                        else {
                            return 0;
                        };
                        if let Some((images, unchanged)) =
                            images_to_verify(&req, engine.config(), settings, &resolved.ctx)
                        {
                            let facts = image_facts(
                                &verifier,
                                &images,
                                resolved.ctx.tier.number(),
                                unchanged,
                                std::time::Duration::from_secs(2),
                            )
                            .await;
                            resolved.ctx.images =
                                tiergate::policy::Fact::Known(std::sync::Arc::new(facts));
                        }
                        answer_resolved(&req, &engine, settings, resolved)
                            .body
                            .len()
                    })
                })
            });
        }
    }
    g.finish();
    // The tag cache lasts a day here, so nothing above reached a registry.
    if registry_calls() != 0 {
        eprintln!("supply bench: a registry was called; the figures above are not the cached path");
    }
}
