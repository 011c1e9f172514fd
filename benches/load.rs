//! Load benchmark: `tiergate serve` against a floor server on the same stack.
//!
//! `make bench-load` (or `cargo bench --bench load`) starts two child
//! processes on 127.0.0.1:
//!
//! - **tiergate**: the release `tiergate serve` binary, every namespace at
//!   tier 3 (enterprise) in enforce mode, fixes on (the mutate webhook);
//! - **baseline**: this binary re-executed with `--baseline-server`: axum +
//!   hyper-util + rustls with tiergate's own TLS setup
//!   ([`tiergate::server::tls::server_config`]) and the same serving loop,
//!   whose handler parses the AdmissionReview into a `serde_json::Value` and
//!   answers `allowed: true` with the uid. No webhook can beat it.
//!
//! Both get the same deterministic corpus of AdmissionReviews (Pods,
//! Deployments, StatefulSets, CronJobs of 1 to 10 containers, half of them
//! violating a tier 3 rule), each review sent to `/mutate` and to
//! `/validate` as the apiserver does. A closed-loop client of our own
//! (hyper over tokio-rustls, HTTP/1.1 keep-alive, one connection per unit of
//! concurrency) drives them at concurrency 1, 16 and 64, in the order
//! tiergate, baseline, tiergate, baseline at each level. Per run: requests/s,
//! p50/p99/max latency, the server's peak RSS (VmHWM, reset through
//! /proc/PID/clear_refs before each run), CPU seconds per 1,000 reviews
//! (utime+stime from /proc/PID/stat); then the ratios tiergate/baseline. A
//! table goes to stdout and JSON to `target/bench-load.json`.
//!
//! Then the realistic review of the performance targets alone: the web
//! Deployment (two containers, about 1.5 KB) sent only to `/validate`, and
//! only to `/mutate`, at concurrency 16 and 64, with the server's CPU per
//! review (its own utime+stime over the window, divided by the requests):
//! on a 2-core machine shared with the client, throughput mixes both
//! processes, CPU per review does not.
//!
//! `--smoke` runs the same thing for a few seconds (CI keeps it from rotting).
//! Under `cargo test` (no `--bench` argument) only the corpus is checked.
//!
//! Hidden modes: `--baseline-server --cert F --key F --listen ADDR` is the
//! floor server; `--drive https://127.0.0.1:PORT --ca F --requests N
//! --concurrency C [--path /validate|/mutate]` only drives an already running server (for profiling
//! one under `valgrind --tool=callgrind`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tiergate::config::Config;
use tiergate::policy::{Action, Context, Engine, Mode, Options, Tier};
use tiergate::server::tls;

// ---------------------------------------------------------------- corpus

/// A small deterministic generator (xorshift64*), so every run and both
/// servers see the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KINDS: [&str; 4] = ["Pod", "Deployment", "StatefulSet", "CronJob"];
const APPS: [&str; 6] = [
    "storefront",
    "checkout",
    "search",
    "ledger",
    "mailer",
    "catalog",
];
const SIDECARS: [(&str, &str); 5] = [
    ("envoy", "docker.io/envoyproxy/envoy:v1.31.0"),
    ("statsd-exporter", "docker.io/prom/statsd-exporter:v0.26.0"),
    ("fluent-bit", "cr.fluentbit.io/fluent/fluent-bit:3.1.4"),
    ("oauth2-proxy", "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0"),
    (
        "otel-collector",
        "ghcr.io/open-telemetry/opentelemetry-collector:0.104.0",
    ),
];
/// What a violating object gets wrong (one each).
const VIOLATIONS: [&str; 8] = [
    "privileged",
    "no-resources",
    "latest-tag",
    "run-as-root",
    "host-network",
    "privilege-escalation",
    "no-probes",
    "no-business-labels",
];

fn digest(rng: &mut Rng) -> String {
    format!(
        "sha256:{:016x}{:016x}{:016x}{:016x}",
        rng.next(),
        rng.next(),
        rng.next(),
        rng.next()
    )
}

fn labels(app: &str, version: &str, component: &str, business: bool) -> Value {
    let mut l = json!({
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "shop",
    });
    if business {
        l["team"] = json!("payments");
        l["environment"] = json!("production");
        l["cost-center"] = json!("cc-4217");
    }
    l
}

fn container(rng: &mut Rng, i: usize, app: &str, version: &str) -> Value {
    let (name, image) = if i == 0 {
        (app.to_string(), format!("ghcr.io/acme/{app}:{version}"))
    } else {
        let (n, img) = SIDECARS[(i - 1) % SIDECARS.len()];
        let name = if i <= SIDECARS.len() {
            n.to_string()
        } else {
            format!("{n}-{i}")
        };
        (name, img.to_string())
    };
    let port = 8080 + i as u64;
    json!({
        "name": name,
        "image": format!("{image}@{}", digest(rng)),
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": format!("http-{i}"), "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": format!("{app}-db"), "key": "password"}}}
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"}
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]}
        },
        "livenessProbe": {"httpGet": {"path": "/livez", "port": port}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port}, "periodSeconds": 5},
        "startupProbe": {"httpGet": {"path": "/livez", "port": port}, "failureThreshold": 30},
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePolicy": "FallbackToLogsOnError"
    })
}

fn pod_spec(rng: &mut Rng, app: &str, version: &str, containers: usize, job: bool) -> Value {
    let cs: Vec<Value> = (0..containers)
        .map(|i| container(rng, i, app, version))
        .collect();
    let mut spec = json!({
        "serviceAccountName": app,
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": app}}
        }],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        "containers": cs
    });
    if job {
        spec["restartPolicy"] = json!("OnFailure");
    }
    spec
}

/// Break one thing in `obj` (its pod spec at `spec_ptr`).
fn violate(obj: &mut Value, spec_ptr: &str, which: &str, rng: &mut Rng) {
    let Some(spec) = obj.pointer_mut(spec_ptr) else {
        return;
    };
    let n = spec["containers"].as_array().map_or(1, Vec::len) as u64;
    let c = rng.below(n) as usize;
    let ctr = &mut spec["containers"][c];
    match which {
        "privileged" => ctr["securityContext"]["privileged"] = json!(true),
        "no-resources" => {
            if let Some(m) = ctr.as_object_mut() {
                m.remove("resources");
            }
        }
        "latest-tag" => {
            let img = ctr["image"].as_str().unwrap_or("nginx");
            let base = img.split(['@', ':']).next().unwrap_or("nginx").to_string();
            ctr["image"] = json!(format!("{base}:latest"));
        }
        "run-as-root" => {
            ctr["securityContext"]["runAsNonRoot"] = json!(false);
            ctr["securityContext"]["runAsUser"] = json!(0);
        }
        "host-network" => spec["hostNetwork"] = json!(true),
        "privilege-escalation" => {
            ctr["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        }
        "no-probes" => {
            if let Some(m) = ctr.as_object_mut() {
                m.remove("livenessProbe");
                m.remove("readinessProbe");
                m.remove("startupProbe");
            }
        }
        "no-business-labels" => {
            for p in ["/metadata/labels", "/spec/template/metadata/labels"] {
                if let Some(l) = obj.pointer_mut(p).and_then(Value::as_object_mut) {
                    l.remove("team");
                    l.remove("cost-center");
                }
            }
        }
        _ => {}
    }
}

/// One object of the corpus.
fn object(i: usize, rng: &mut Rng) -> Value {
    let kind = KINDS[i % KINDS.len()];
    let app = APPS[rng.below(APPS.len() as u64) as usize];
    let version = format!("{}.{}.{}", 1 + rng.below(3), rng.below(20), rng.below(10));
    let containers = 1 + rng.below(10) as usize;
    let name = format!("{app}-{i}");
    let meta = |component: &str| {
        json!({
            "name": name,
            "namespace": "shop",
            "labels": labels(app, &version, component, true),
            "annotations": {"deployment.kubernetes.io/revision": "3", "owner": "team-payments@example.com"}
        })
    };
    let template = |rng: &mut Rng, job: bool| {
        json!({
            "metadata": {"labels": labels(app, &version, "server", true)},
            "spec": pod_spec(rng, app, &version, containers, job)
        })
    };
    let selector = json!({"matchLabels": {"app.kubernetes.io/name": app}});
    let (mut obj, spec_ptr) = match kind {
        "Pod" => {
            let t = template(rng, false);
            let mut m = meta("server");
            m["labels"] = t["metadata"]["labels"].clone();
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": t["spec"]}),
                "/spec",
            )
        }
        "Deployment" => (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("server"),
                   "spec": {"replicas": 3, "revisionHistoryLimit": 5, "selector": selector,
                            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                            "template": template(rng, false)}}),
            "/spec/template/spec",
        ),
        "StatefulSet" => (
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("database"),
                   "spec": {"replicas": 3, "serviceName": name, "selector": selector,
                            "template": template(rng, false),
                            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                              "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}}),
            "/spec/template/spec",
        ),
        _ => (
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("batch"),
                   "spec": {"schedule": "*/15 * * * *", "concurrencyPolicy": "Forbid",
                            "jobTemplate": {"spec": {"backoffLimit": 2, "template": template(rng, true)}}}}),
            "/spec/jobTemplate/spec/template/spec",
        ),
    };
    if i % 2 == 1 {
        let which = VIOLATIONS[(i / 2) % VIOLATIONS.len()];
        violate(&mut obj, spec_ptr, which, rng);
    }
    obj
}

/// The review an apiserver sends for `obj`, as an Argo CD sync would: with
/// `requestKind`, the service account's uid and groups, and create options.
fn review(i: usize, obj: &Value) -> Value {
    let mut review = tiergate::admission::ReviewBuilder::new(
        &format!("00000000-0000-4000-8000-{i:012}"),
        "CREATE",
        obj.clone(),
    )
    .namespace(Some("shop"))
    .with(
        "userInfo",
        json!({"username": "system:serviceaccount:argocd:argocd-application-controller",
               "uid": "6f1c2a3e-5b1d-4f0e-9a7c-1d2e3f4a5b6c",
               "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"]}),
    )
    .with(
        "options",
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "argocd-controller"}),
    )
    .build();
    let request = &mut review["request"];
    request["requestKind"] = request["kind"].clone();
    request["requestResource"] = request["resource"].clone();
    review
}

/// The realistic review of the performance targets: the tier-3 web
/// Deployment of the engine benchmark (two containers, about 1.5 KB as a
/// review, tests/data/web-deployment.json), as the apiserver sends it.
fn web_deployment() -> Value {
    serde_json::from_str(include_str!("../tests/data/web-deployment.json")).unwrap_or_default()
}

/// The web Deployment's review sent to one endpoint only (64 uids).
fn deployment_requests(path: &'static str) -> Arc<Vec<Req>> {
    let obj = web_deployment();
    Arc::new(
        (0..64)
            .map(|i| Req {
                path,
                body: Bytes::from(serde_json::to_vec(&review(i, &obj)).unwrap_or_default()),
                uid: format!("00000000-0000-4000-8000-{i:012}"),
            })
            .collect(),
    )
}

const CORPUS_OBJECTS: usize = 256;

/// The objects and their review bodies.
fn corpus() -> Vec<(Value, Vec<u8>)> {
    let mut rng = Rng(0x7469_6572_6761_7465);
    (0..CORPUS_OBJECTS)
        .map(|i| {
            let obj = object(i, &mut rng);
            let body = serde_json::to_vec(&review(i, &obj)).unwrap_or_default();
            (obj, body)
        })
        .collect()
}

/// The embedded defaults with every namespace at tier 3, enforce.
fn bench_config() -> String {
    tiergate::config::DEFAULT_YAML
        .replace("tier: foundation ", "tier: enterprise ")
        .replace("mode: warn ", "mode: enforce ")
}

struct CorpusStats {
    objects: usize,
    violating: usize,
    fixable: usize,
    mean_containers: f64,
    mean_body_bytes: f64,
}

/// Judge the corpus in process: how many objects the engine denies at tier 3.
fn corpus_stats(corpus: &[(Value, Vec<u8>)]) -> anyhow::Result<CorpusStats> {
    let cfg = Config::from_yaml(&bench_config(), "bench")?.policy;
    if cfg.defaults.tier != Tier::Enterprise || cfg.defaults.mode != Mode::Enforce {
        bail!("the bench config is not tier 3 enforce");
    }
    let engine = Engine::new(cfg);
    let mut ctx = Context::new(Tier::Enterprise, Mode::Enforce);
    ctx.namespace = Some("shop".into());
    let opts = Options {
        fix: true,
        ..Options::default()
    };
    let (mut violating, mut fixable, mut containers, mut bytes) = (0, 0, 0usize, 0usize);
    for (obj, body) in corpus {
        let e = engine.evaluate(obj, &ctx, &opts)?;
        if e.findings.iter().any(|f| f.action == Action::Deny) {
            violating += 1;
        }
        if !e.patch.0.is_empty() {
            fixable += 1;
        }
        containers += [
            "/spec",
            "/spec/template/spec",
            "/spec/jobTemplate/spec/template/spec",
        ]
        .iter()
        .filter_map(|p| obj.pointer(&format!("{p}/containers")))
        .filter_map(Value::as_array)
        .map(Vec::len)
        .sum::<usize>();
        bytes += body.len();
    }
    let n = corpus.len().max(1) as f64;
    Ok(CorpusStats {
        objects: corpus.len(),
        violating,
        fixable,
        mean_containers: containers as f64 / n,
        mean_body_bytes: bytes as f64 / n,
    })
}

// ---------------------------------------------------------- baseline server

async fn baseline_review(body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let uid = v.pointer("/request/uid").cloned().unwrap_or(Value::Null);
    let answer = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": true}
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
        .into_response()
}

/// The floor: tiergate's TLS config and serving loop, a handler that only
/// parses and echoes the uid.
fn baseline_server(cert: &Path, key: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let pair = tls::load_pair(&std::fs::read(cert)?, &std::fs::read(key)?)?;
        let store = Arc::new(tls::CertStore::new(pair.key));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(store)?));
        // As tiergate: bodies up to 8 MiB (axum's default limit is 2 MiB).
        let app = Router::new()
            .route("/validate", post(baseline_review))
            .route("/mutate", post(baseline_review))
            .layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10));
                let _ = builder
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    })
}

// ------------------------------------------------------------------ client

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

fn client_config(ca_pem: &[u8]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        let c: CertificateDer<'static> = c?;
        roots.add(c)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request: (path, body, uid).
struct Req {
    path: &'static str,
    body: Bytes,
    uid: String,
}

/// Eight UPDATE reviews of about 3 MiB each (object and oldObject both carry
/// a 1.5 MiB annotation), sent to /mutate and /validate.
fn big_requests() -> Arc<Vec<Req>> {
    let mut out = Vec::new();
    for i in 0..8 {
        let blob = "x".repeat(1536 * 1024 - 64 + i);
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("big-{i}"), "namespace": "shop",
                         "annotations": {"example.com/blob": blob}},
            "spec": {"containers": [{"name": "app", "image": "ghcr.io/acme/app:1.0"}]}});
        let mut old = pod.clone();
        old["metadata"]["labels"] = json!({"rev": "1"});
        let body = tiergate::admission::ReviewBuilder::new(&format!("big-{i}"), "UPDATE", pod)
            .old(old)
            .body();
        for path in ["/mutate", "/validate"] {
            out.push(Req {
                path,
                body: Bytes::from(body.clone()),
                uid: format!("big-{i}"),
            });
        }
    }
    Arc::new(out)
}

fn requests(corpus: &[(Value, Vec<u8>)]) -> Arc<Vec<Req>> {
    let mut out = Vec::with_capacity(corpus.len() * 2);
    for (i, (_, body)) in corpus.iter().enumerate() {
        let uid = format!("00000000-0000-4000-8000-{i:012}");
        for path in ["/mutate", "/validate"] {
            out.push(Req {
                path,
                body: Bytes::from(body.clone()),
                uid: uid.clone(),
            });
        }
    }
    Arc::new(out)
}

#[derive(Default)]
struct WorkerResult {
    latencies_us: Vec<u32>,
    errors: u64,
    denied: u64,
    patched: u64,
    bad_uid: u64,
}

async fn send(s: &mut Sender, r: &Req) -> anyhow::Result<Bytes> {
    s.ready().await?;
    let req = Request::post(r.path)
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, */*")
        .body(Full::new(r.body.clone()))?;
    let resp = s.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK {
        bail!("HTTP {status}");
    }
    Ok(body)
}

/// Closed loop on one connection until `deadline` or `max` requests. The
/// answers to every 17th request of the list are parsed and their uid
/// checked (17 is odd: the list alternates /mutate and /validate and odd
/// objects violate, so an even stride would sample one kind of answer only).
async fn worker(
    mut s: Sender,
    reqs: Arc<Vec<Req>>,
    start: usize,
    deadline: Instant,
    max: usize,
) -> (Sender, WorkerResult) {
    let mut res = WorkerResult {
        latencies_us: Vec::with_capacity(1 << 14),
        ..WorkerResult::default()
    };
    let mut i = start;
    let mut n = 0usize;
    while n < max && Instant::now() < deadline {
        let r = &reqs[i % reqs.len()];
        let t = Instant::now();
        let out = send(&mut s, r).await;
        let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        match out {
            Ok(body) => {
                res.latencies_us.push(us);
                if i % 17 == 0 {
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(v) => {
                            let resp = &v["response"];
                            if resp["uid"].as_str() != Some(r.uid.as_str()) {
                                res.bad_uid += 1;
                            }
                            if resp["allowed"] == json!(false) {
                                res.denied += 1;
                            }
                            if resp.get("patch").is_some() {
                                res.patched += 1;
                            }
                        }
                        Err(_) => res.bad_uid += 1,
                    }
                }
            }
            Err(_) => res.errors += 1,
        }
        i += 1;
        n += 1;
    }
    (s, res)
}

struct Load {
    requests: usize,
    errors: u64,
    bad_uid: u64,
    sampled_denied: u64,
    sampled_patched: u64,
    seconds: f64,
    /// utime+stime of the server over the measured window.
    server_cpu_ticks: u64,
    latencies_us: Vec<u32>,
}

/// The shape of one run.
#[derive(Clone, Copy)]
struct Shot {
    conc: usize,
    warmup: Duration,
    dur: Duration,
    max_requests: usize,
}

/// Open `conc` connections, warm them for `warmup`, then drive for `dur`
/// (or `max_requests`); the server's CPU is read around the measured window.
async fn drive(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    reqs: Arc<Vec<Req>>,
    shot: Shot,
    server_pid: Option<u32>,
) -> anyhow::Result<Load> {
    let Shot {
        conc,
        warmup,
        dur,
        max_requests,
    } = shot;
    let mut senders = Vec::with_capacity(conc);
    for _ in 0..conc {
        senders.push(connect(addr, tls.clone()).await?);
    }
    let stride = reqs.len() / conc.max(1);
    let per_worker = max_requests.div_ceil(conc.max(1));
    // Warm-up: the same loop on the same connections, results dropped.
    if !warmup.is_zero() {
        let until = Instant::now() + warmup;
        let mut warm = Vec::with_capacity(conc);
        for (w, s) in senders.into_iter().enumerate() {
            warm.push(tokio::spawn(worker(
                s,
                reqs.clone(),
                w * stride + 1,
                until,
                usize::MAX,
            )));
        }
        senders = Vec::with_capacity(conc);
        for h in warm {
            senders.push(h.await?.0);
        }
    }
    let cpu0 = server_pid.map(cpu_ticks).transpose()?;
    let started = Instant::now();
    let deadline = started + dur;
    let mut tasks = Vec::new();
    for (w, s) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(worker(
            s,
            reqs.clone(),
            w * stride,
            deadline,
            per_worker,
        )));
    }
    let mut load = Load {
        requests: 0,
        errors: 0,
        bad_uid: 0,
        sampled_denied: 0,
        sampled_patched: 0,
        seconds: 0.0,
        server_cpu_ticks: 0,
        latencies_us: Vec::new(),
    };
    for t in tasks {
        let (_, r) = t.await?;
        load.requests += r.latencies_us.len();
        load.errors += r.errors;
        load.bad_uid += r.bad_uid;
        load.sampled_denied += r.denied;
        load.sampled_patched += r.patched;
        load.latencies_us.extend(r.latencies_us);
    }
    load.seconds = started.elapsed().as_secs_f64();
    if let (Some(pid), Some(c0)) = (server_pid, cpu0) {
        load.server_cpu_ticks = cpu_ticks(pid)?.saturating_sub(c0);
    }
    Ok(load)
}

// ------------------------------------------------------------- processes

struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn wait_listening(child: &mut Child, addr: SocketAddr, name: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if let Some(st) = child.try_wait()? {
            bail!("{name} exited early: {st}");
        }
        if StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("{name} did not listen on {addr} within 60 s")
}

fn start_tiergate(bin: &Path, dir: &Path, name: &'static str) -> anyhow::Result<Server> {
    let addr = free_port()?;
    let admin = free_port()?;
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(dir.join("config.yaml"))
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--admin-listen")
        .arg(admin.to_string())
        .arg("--ca-out")
        .arg(dir.join("unused-ca.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    wait_listening(&mut child, addr, "tiergate")?;
    Ok(Server { name, child, addr })
}

fn start_baseline(dir: &Path) -> anyhow::Result<Server> {
    let addr = free_port()?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--baseline-server")
        .arg("--cert")
        .arg(dir.join("tls.crt"))
        .arg("--key")
        .arg(dir.join("tls.key"))
        .arg("--listen")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_listening(&mut child, addr, "baseline")?;
    Ok(Server {
        name: "baseline",
        child,
        addr,
    })
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of `pid` in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let utime: u64 = f.get(11).ok_or_else(|| anyhow!("no utime"))?.parse()?;
    let stime: u64 = f.get(12).ok_or_else(|| anyhow!("no stime"))?.parse()?;
    Ok(utime + stime)
}

fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

/// Reset the peak RSS to the current RSS (Linux >= 4.0); false when refused.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

// ----------------------------------------------------------------- report

struct Run {
    server: &'static str,
    workload: &'static str,
    concurrency: usize,
    round: usize,
    load: Load,
    cpu_seconds: f64,
    peak_rss_kib: u64,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)]) / 1000.0
}

struct Summary {
    requests: usize,
    errors: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    peak_rss_mib: f64,
    cpu_s_per_1000: f64,
}

fn summarize(runs: &[&Run]) -> Summary {
    let mut lat: Vec<u32> = runs
        .iter()
        .flat_map(|r| r.load.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let requests: usize = runs.iter().map(|r| r.load.requests).sum();
    let seconds: f64 = runs.iter().map(|r| r.load.seconds).sum();
    let cpu: f64 = runs.iter().map(|r| r.cpu_seconds).sum();
    Summary {
        requests,
        errors: runs.iter().map(|r| r.load.errors).sum(),
        rps: requests as f64 / seconds.max(1e-9),
        p50_ms: pct(&lat, 50.0),
        p99_ms: pct(&lat, 99.0),
        max_ms: lat.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        peak_rss_mib: runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        cpu_s_per_1000: cpu / (requests.max(1) as f64) * 1000.0,
    }
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "requests": s.requests, "errors": s.errors,
        "requests_per_second": round2(s.rps),
        "p50_ms": round3(s.p50_ms), "p99_ms": round3(s.p99_ms), "max_ms": round3(s.max_ms),
        "peak_rss_mib": round2(s.peak_rss_mib),
        "cpu_seconds_per_1000": round3(s.cpu_s_per_1000),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        round2(a / b)
    } else {
        0.0
    }
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu_model": model,
        "kernel": kernel.trim(),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn target_dir() -> PathBuf {
    // .../target/release/deps/load-HASH -> .../target
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent()?.parent().map(Path::to_path_buf))
        .filter(|p| p.file_name().is_some_and(|n| n == "target"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

// -------------------------------------------------------------------- main

struct Plan {
    smoke: bool,
    /// `--big`: 3 MiB reviews (an UPDATE of a Pod with a 1.5 MiB annotation,
    /// old and new), the largest the apiserver sends, to measure peak RSS.
    big: bool,
    levels: Vec<usize>,
    /// Concurrency levels of the web Deployment's per-endpoint runs.
    deployment_levels: Vec<usize>,
    rounds: usize,
    warmup: Duration,
    duration: Duration,
    max_requests: usize,
}

/// A workload of the run: its name, its requests, its concurrency levels.
type Workload<'a> = (&'static str, Arc<Vec<Req>>, &'a [usize]);

fn bench(plan: &Plan) -> anyhow::Result<()> {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_tiergate"));
    let dir = tempfile::tempdir()?;
    let g = tls::generate(&tls::default_serve_names())?;
    std::fs::write(dir.path().join("tls.crt"), &g.cert_pem)?;
    std::fs::write(dir.path().join("tls.key"), &g.key_pem)?;
    std::fs::write(dir.path().join("config.yaml"), bench_config())?;
    let corpus = corpus();
    let stats = corpus_stats(&corpus)?;
    // The cells: (workload, requests, concurrency levels).
    let corpus_reqs = if plan.big {
        big_requests()
    } else {
        requests(&corpus)
    };
    let mut cells: Vec<Workload<'_>> = vec![(
        if plan.big { "big" } else { "corpus" },
        corpus_reqs,
        &plan.levels,
    )];
    if !plan.deployment_levels.is_empty() {
        for path in ["/validate", "/mutate"] {
            let name = if path == "/validate" {
                "web /validate"
            } else {
                "web /mutate"
            };
            cells.push((name, deployment_requests(path), &plan.deployment_levels));
        }
    }
    let tls_client = client_config(g.ca_pem.as_bytes())?;
    let hz = clock_ticks();
    let load_before = loadavg();

    let mut servers = vec![
        start_tiergate(&bin, dir.path(), "tiergate")?,
        start_baseline(dir.path())?,
    ];
    // `BENCH_LOAD_BEFORE=PATH`: another tiergate binary (an earlier commit's)
    // in the same run, for before/after figures.
    if let Some(before) = std::env::var_os("BENCH_LOAD_BEFORE") {
        servers.push(start_tiergate(Path::new(&before), dir.path(), "before")?);
    }
    eprintln!(
        "bench-load: tiergate pid {} on {}, baseline pid {} on {}; corpus {} objects \
         ({} denied at tier 3, {} patched, {:.1} containers and {:.0} bytes per review on average), \
         each sent to /mutate and /validate; {} s per run after {} s warm-up",
        servers[0].child.id(),
        servers[0].addr,
        servers[1].child.id(),
        servers[1].addr,
        stats.objects,
        stats.violating,
        stats.fixable,
        stats.mean_containers,
        stats.mean_body_bytes,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut runs: Vec<Run> = Vec::new();
    let mut lifetime_peak = vec![0u64; servers.len()];
    let mut rss_reset = true;
    for (workload, reqs, levels) in &cells {
        for &conc in levels.iter() {
            for round in 0..plan.rounds {
                for (si, s) in servers.iter().enumerate() {
                    let pid = s.child.id();
                    lifetime_peak[si] = lifetime_peak[si].max(status_kib(pid, "VmHWM:")?);
                    rss_reset &= reset_peak_rss(pid);
                    let load = rt.block_on(drive(
                        s.addr,
                        tls_client.clone(),
                        reqs.clone(),
                        Shot {
                            conc,
                            warmup: plan.warmup,
                            dur: plan.duration,
                            max_requests: plan.max_requests,
                        },
                        Some(pid),
                    ))?;
                    let peak = status_kib(pid, "VmHWM:")?;
                    lifetime_peak[si] = lifetime_peak[si].max(peak);
                    let run = Run {
                        server: s.name,
                        workload,
                        concurrency: conc,
                        round,
                        cpu_seconds: load.server_cpu_ticks as f64 / hz,
                        peak_rss_kib: peak,
                        load,
                    };
                    eprintln!(
                        "  {:<13} {:>8} c={:<3} round {}: {:>7} requests in {:.2} s, {} errors; \
                     of the sampled answers {} denied, {} patched",
                        run.workload,
                        run.server,
                        conc,
                        round + 1,
                        run.load.requests,
                        run.load.seconds,
                        run.load.errors,
                        run.load.sampled_denied,
                        run.load.sampled_patched
                    );
                    runs.push(run);
                }
            }
        }
    }
    let load_after = loadavg();
    drop(rt);
    drop(servers);

    let _ = &lifetime_peak;
    let mut table = String::new();
    table.push_str(&format!(
        "\n{:<13} {:<9} {:>4} {:>10} {:>9} {:>9} {:>9} {:>9} {:>13} {:>7}\n",
        "workload",
        "server",
        "conc",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "RSS MiB",
        "CPU µs/review",
        "errors"
    ));
    let mut levels_json = Vec::new();
    let mut runs_json = Vec::new();
    for r in &runs {
        let s = summarize(&[r]);
        let mut j = summary_json(&s);
        j["server"] = json!(r.server);
        j["workload"] = json!(r.workload);
        j["concurrency"] = json!(r.concurrency);
        j["round"] = json!(r.round + 1);
        j["seconds"] = json!(round3(r.load.seconds));
        j["bad_uid"] = json!(r.load.bad_uid);
        j["sampled_denied"] = json!(r.load.sampled_denied);
        j["sampled_patched"] = json!(r.load.sampled_patched);
        runs_json.push(j);
    }
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for r in &runs {
        if !seen.contains(&(r.workload, r.concurrency)) {
            seen.push((r.workload, r.concurrency));
        }
    }
    for (workload, conc) in seen {
        let pick = |name: &str| -> Vec<&Run> {
            runs.iter()
                .filter(|r| r.server == name && r.concurrency == conc && r.workload == workload)
                .collect()
        };
        let t = summarize(&pick("tiergate"));
        let b = summarize(&pick("baseline"));
        let before = pick("before");
        let bf = (!before.is_empty()).then(|| summarize(&before));
        let mut rows = vec![("tiergate", &t), ("baseline", &b)];
        if let Some(bf) = &bf {
            rows.push(("before", bf));
        }
        for (name, s) in rows {
            table.push_str(&format!(
                "{:<13} {:<9} {:>4} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.1} {:>13.1} {:>7}\n",
                workload,
                name,
                conc,
                s.rps,
                s.p50_ms,
                s.p99_ms,
                s.max_ms,
                s.peak_rss_mib,
                s.cpu_s_per_1000 * 1000.0,
                s.errors
            ));
        }
        // A row of ratios: `a` over the baseline.
        let ratio_row = |label: &str, a: &Summary| {
            format!(
                "{:<13} {:<9} {:>4} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>13.2}\n",
                workload,
                label,
                conc,
                ratio(a.rps, b.rps),
                ratio(a.p50_ms, b.p50_ms),
                ratio(a.p99_ms, b.p99_ms),
                ratio(a.max_ms, b.max_ms),
                ratio(a.peak_rss_mib, b.peak_rss_mib),
                ratio(a.cpu_s_per_1000, b.cpu_s_per_1000),
            )
        };
        table.push_str(&ratio_row("ratio", &t));
        if let Some(bf) = &bf {
            table.push_str(&ratio_row("bef/base", bf));
        }
        levels_json.push(json!({
            "workload": workload,
            "concurrency": conc,
            "tiergate": summary_json(&t),
            "baseline": summary_json(&b),
            "before": bf.as_ref().map(summary_json),
            "ratio_tiergate_over_baseline": {
                "requests_per_second": ratio(t.rps, b.rps),
                "p50": ratio(t.p50_ms, b.p50_ms),
                "p99": ratio(t.p99_ms, b.p99_ms),
                "max": ratio(t.max_ms, b.max_ms),
                "peak_rss": ratio(t.peak_rss_mib, b.peak_rss_mib),
                "cpu_per_review": ratio(t.cpu_s_per_1000, b.cpu_s_per_1000),
            }
        }));
    }
    table.push_str(&format!(
        "lifetime peak RSS: tiergate {:.1} MiB, baseline {:.1} MiB; load average {} before, {} after\n",
        lifetime_peak[0] as f64 / 1024.0,
        lifetime_peak[1] as f64 / 1024.0,
        load_before,
        load_after
    ));
    println!("{table}");
    let report = json!({
        "benchmark": "tiergate bench-load",
        "smoke": plan.smoke,
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "setup": {
            "tiergate": "release `tiergate serve`, defaults tier enterprise (3), mode enforce, fixes on (/mutate), logs at info to /dev/null",
            "baseline": "axum + hyper-util + rustls with tiergate's TLS config and serving loop; parses the review into serde_json::Value, answers allowed with the uid",
            "client": "closed loop, hyper HTTP/1.1 over tokio-rustls, keep-alive, one connection per unit of concurrency, in the same machine",
            "order": "at each concurrency: tiergate, baseline, repeated `rounds` times",
            "rounds": plan.rounds,
            "warmup_seconds": plan.warmup.as_secs_f64(),
            "seconds_per_run": plan.duration.as_secs_f64(),
            "max_requests_per_run": plan.max_requests,
            "peak_rss_reset_per_run": rss_reset,
            "cpu_note": "CPU of the server process over the measured window (utime+stime, clock ticks)",
        },
        "corpus": {
            "objects": stats.objects,
            "denied_at_tier3": stats.violating,
            "patched_by_mutate": stats.fixable,
            "mean_containers": round2(stats.mean_containers),
            "mean_review_bytes": stats.mean_body_bytes.round(),
            "requests_per_object": 2,
        },
        "web_deployment": {
            "review_bytes": deployment_requests("/validate").first().map_or(0, |r| r.body.len()),
            "note": "the engine benchmark's tier-3 web Deployment (two containers), sent to one endpoint per run",
        },
        "lifetime_peak_rss_mib": {
            "tiergate": round2(lifetime_peak[0] as f64 / 1024.0),
            "baseline": round2(lifetime_peak[1] as f64 / 1024.0),
        },
        "levels": levels_json,
        "runs": runs_json,
    });
    let out = target_dir().join("bench-load.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench-load: wrote {}", out.display());
    let errors: u64 = runs.iter().map(|r| r.load.errors + r.load.bad_uid).sum();
    if errors > 0 {
        bail!("{errors} requests failed or answered with the wrong uid");
    }
    Ok(())
}

fn arg_value(args: &[String], name: &str) -> anyhow::Result<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| anyhow!("{name} VALUE is required"))
}

/// `--drive URL --ca F --requests N --concurrency C`: only drive a running server.
fn drive_only(args: &[String]) -> anyhow::Result<()> {
    let url = arg_value(args, "--drive")?;
    let addr: SocketAddr = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()?;
    let ca = std::fs::read(arg_value(args, "--ca")?)?;
    let n: usize = arg_value(args, "--requests")?.parse()?;
    let conc: usize = arg_value(args, "--concurrency")
        .unwrap_or_else(|_| "1".into())
        .parse()?;
    // `--path /validate` or `/mutate`: the web Deployment to that endpoint
    // only; else the corpus to both.
    let reqs = match arg_value(args, "--path").as_deref() {
        Ok("/validate") => deployment_requests("/validate"),
        Ok("/mutate") => deployment_requests("/mutate"),
        _ => requests(&corpus()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let load = rt.block_on(drive(
        addr,
        client_config(&ca)?,
        reqs,
        Shot {
            conc,
            warmup: Duration::ZERO,
            dur: Duration::from_secs(3600),
            max_requests: n,
        },
        None,
    ))?;
    let mut lat = load.latencies_us.clone();
    lat.sort_unstable();
    println!(
        "{} requests in {:.2} s ({:.0}/s), p50 {:.3} ms, p99 {:.3} ms, {} errors",
        load.requests,
        load.seconds,
        load.requests as f64 / load.seconds.max(1e-9),
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        load.errors
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let result = if has("--baseline-server") {
        (|| {
            let cert = PathBuf::from(arg_value(&args, "--cert")?);
            let key = PathBuf::from(arg_value(&args, "--key")?);
            let listen: SocketAddr = arg_value(&args, "--listen")?.parse()?;
            baseline_server(&cert, &key, listen)
        })()
    } else if has("--drive") {
        drive_only(&args)
    } else if !has("--bench") {
        // `cargo test --all-targets` runs this binary without `--bench`: no
        // timing, only the corpus is checked.
        corpus_stats(&corpus()).and_then(|s| {
            println!(
                "bench-load corpus: {} objects, {} denied at tier 3, {} patched \
                 (run `make bench-load` for the benchmark)",
                s.objects, s.violating, s.fixable
            );
            if s.violating * 2 != s.objects {
                bail!(
                    "half the corpus should violate tier 3, {} of {} do",
                    s.violating,
                    s.objects
                );
            }
            Ok(())
        })
    } else {
        let smoke = has("--smoke");
        let plan = if has("--big") {
            Plan {
                smoke,
                big: true,
                levels: vec![64],
                deployment_levels: vec![],
                rounds: 2,
                warmup: Duration::from_millis(500),
                duration: Duration::from_secs(if smoke { 1 } else { 5 }),
                max_requests: 100_000,
            }
        } else if smoke {
            Plan {
                smoke,
                big: false,
                levels: vec![1, 16, 64],
                deployment_levels: vec![16, 64],
                rounds: 2,
                warmup: Duration::from_millis(100),
                duration: Duration::from_millis(250),
                max_requests: 20_000,
            }
        } else {
            Plan {
                smoke,
                big: false,
                levels: vec![1, 16, 64],
                deployment_levels: vec![16, 64],
                rounds: 2,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(5),
                max_requests: 1_000_000,
            }
        };
        bench(&plan)
    };
    if let Err(e) = result {
        eprintln!("bench-load: {e:#}");
        std::process::exit(1);
    }
}
