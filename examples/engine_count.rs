//! Evaluate (and fix) the tier-3 web Deployment of the engine benchmark N
//! times: a fixed workload to count instructions under
//! `valgrind --tool=callgrind`, where wall-clock timing is too noisy to
//! compare two builds (this machine has no hardware counters).
//!
//!     cargo build --release --example engine_count
//!     valgrind --tool=callgrind target/release/examples/engine_count fix 1000
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tiergate::policy::{Context, Engine, Mode, Options, PolicyConfig, Tier};

fn main() {
    let mut args = std::env::args().skip(1);
    let fix = args.next().as_deref() == Some("fix");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut d: serde_json::Value =
        match serde_json::from_str(include_str!("../tests/data/web-deployment.json")) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("engine_count: {e}");
                std::process::exit(1);
            }
        };
    d["metadata"]["name"] = "web-0".into();
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
