//! Evaluate (and fix) the tier-3 web Deployment of the engine benchmark N
//! times: a fixed workload to count instructions under
//! `valgrind --tool=callgrind`, where wall-clock timing is too noisy to
//! compare two builds (this machine has no hardware counters).
//!
//!     cargo build --release --example engine_count
//!     valgrind --tool=callgrind target/release/examples/engine_count fix 1000
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use serde_json::json;
use tiergate::policy::{Context, Engine, Mode, Options, PolicyConfig, Tier};

fn main() {
    let mut args = std::env::args().skip(1);
    let fix = args.next().as_deref() == Some("fix");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let d = json!({
      "apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web"}},
      "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
          "spec": {"containers": [
            {"name": "web", "image": "ghcr.io/acme/web:2.4.1",
             "ports": [{"name": "http", "containerPort": 8080}],
             "env": [{"name": "LOG_LEVEL", "value": "info"}],
             "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
            {"name": "proxy", "image": "envoyproxy/envoy:v1.31.0",
             "ports": [{"containerPort": 9901}]}]}}}
    });
    let engine = Engine::new(PolicyConfig::default());
    let ctx = Context::new(Tier::Enterprise, Mode::Enforce);
    let opts = Options {
        fix,
        ..Options::default()
    };
    let mut findings = 0;
    for _ in 0..n {
        match engine.evaluate(&d, &ctx, &opts) {
            Ok(e) => findings += e.findings.len() + e.patch.0.len(),
            Err(e) => {
                eprintln!("engine_count: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{n} evaluations (fix: {fix}), {findings} findings and patch operations");
}
