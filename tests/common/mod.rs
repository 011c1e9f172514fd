//! Shared helpers for integration tests.
#![allow(dead_code)]
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every object of the realistic manifests, with its file name.
pub fn realistic() -> Vec<(String, Value)> {
    let dir = data_dir().join("realistic");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/realistic")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read manifest");
        let src = tiergate::manifest::parse_source(&f.display().to_string(), Some(&f), &text)
            .expect("parse manifest");
        for d in src.documents {
            if let Some(v) = d.value {
                out.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
            }
        }
    }
    out
}

/// Whether the object parses as its kind's k8s-openapi type (kinds without
/// a pod template pass).
pub fn parses_typed(v: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    let r = match v.get("kind").and_then(Value::as_str).unwrap_or("") {
        "Pod" => core::Pod::deserialize(v).map(drop),
        "PodTemplate" => core::PodTemplate::deserialize(v).map(drop),
        "ReplicationController" => core::ReplicationController::deserialize(v).map(drop),
        "Deployment" => apps::Deployment::deserialize(v).map(drop),
        "StatefulSet" => apps::StatefulSet::deserialize(v).map(drop),
        "DaemonSet" => apps::DaemonSet::deserialize(v).map(drop),
        "ReplicaSet" => apps::ReplicaSet::deserialize(v).map(drop),
        "Job" => batch::Job::deserialize(v).map(drop),
        "CronJob" => batch::CronJob::deserialize(v).map(drop),
        _ => Ok(()),
    };
    r.map_err(|e| e.to_string())
}

/// The object parses as its kind's k8s-openapi type.
pub fn assert_parses_typed(v: &Value) {
    if let Err(e) = parses_typed(v) {
        panic!("fixed {} no longer parses: {e}\n{v:#}", v["kind"]);
    }
}

/// The one TLS test client: trusts exactly `cas` (PEM), 10 s timeout.
pub fn client_builder(cas: &[&str]) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10));
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    b
}

pub fn client(cas: &[&str]) -> reqwest::Client {
    client_builder(cas).build().unwrap()
}

/// A client that makes a new connection (and TLS handshake) per request.
pub fn fresh_client(cas: &[&str]) -> reqwest::Client {
    client_builder(cas)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// A raw TLS connection (HTTP/1.1 only) to `addr`, trusting `ca_pem`, for
/// tests that write requests byte by byte.
pub async fn tls_connect(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    server_name: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(
            rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

pub fn url(addr: std::net::SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

/// A Pod whose containers meet tier 1's non-root and dropped-capabilities
/// rules unless they say otherwise, so tests see just the rule they exercise.
pub fn pod(name: &str, mut containers: Value) -> Value {
    for c in containers.as_array_mut().into_iter().flatten() {
        if let Some(obj) = c.as_object_mut() {
            let sc = obj.entry("securityContext").or_insert_with(|| json!({}));
            if let Some(sc) = sc.as_object_mut() {
                sc.entry("runAsNonRoot").or_insert(json!(true));
                sc.entry("capabilities").or_insert(json!({"drop": ["ALL"]}));
            }
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "shop"},
           "spec": {"containers": containers}})
}

pub fn privileged_pod() -> Value {
    pod(
        "web",
        json!([{"name": "app", "image": "nginx",
        "securityContext": {"privileged": true},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                      "limits": {"cpu": "1", "memory": "1Gi"}}}]),
    )
}

pub fn bare_pod() -> Value {
    pod("web", json!([{"name": "app", "image": "nginx"}]))
}

/// A review of `object` in namespace `shop`; `request.kind` is `kind` of the
/// core group when it is not the object's own kind.
pub fn review(uid: &str, op: &str, kind: &str, object: Value) -> Value {
    let own = object.get("kind").and_then(Value::as_str) == Some(kind);
    let b = tiergate::admission::ReviewBuilder::new(uid, op, object).namespace(Some("shop"));
    if own { b } else { b.kind("", "v1", kind) }.build()
}

/// POST a review, assert HTTP 200 and a well-formed answer, return `response`.
pub async fn admit(
    c: &reqwest::Client,
    addr: std::net::SocketAddr,
    path: &str,
    body: &Value,
) -> Value {
    let r = c
        .post(url(addr, path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], body["request"]["uid"]);
    if path == "/validate" {
        assert!(v["response"].get("patch").is_none());
        assert!(v["response"].get("patchType").is_none());
    }
    v["response"].clone()
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// `key="value"` pairs, sorted.
    pub labels: Vec<String>,
    pub value: f64,
}

/// The one metrics parser: the samples of a Prometheus text exposition.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let mut ls: Vec<String> = rest
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    ls.sort();
                    (name, ls)
                }
            };
            Some(Sample {
                name: name.to_string(),
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// Prometheus text format → `name{sorted labels}` → value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .map(|s| {
            let key = if s.labels.is_empty() {
                s.name
            } else {
                format!("{}{{{}}}", s.name, s.labels.join(","))
            };
            (key, s.value)
        })
        .collect()
}

/// Sum of the samples of `name` whose labels include all of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|s| s.value)
        .sum()
}

pub async fn metrics(admin: std::net::SocketAddr) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_metrics(&text)
}

pub fn metric(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// Wait until `f` holds (polling), up to 15 s.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every Pod Security Standards fixture (`tests/data/pss`, see its README):
/// (path `<level>/v1.<N>/<pass|fail>/<name>.yaml`, content id, YAML text),
/// in path order, expanded from the compact store.
pub fn pss_fixtures() -> Vec<(String, String, String)> {
    let dir = data_dir().join("pss");
    let index = std::fs::read_to_string(dir.join("index.tsv")).expect("tests/data/pss/index.tsv");
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in index
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (path, id) = line.split_once('\t').expect("index line: path<TAB>id");
        let text = texts
            .entry(id.to_string())
            .or_insert_with(|| {
                std::fs::read_to_string(dir.join("contents").join(format!("{id}.yaml")))
                    .unwrap_or_else(|e| panic!("tests/data/pss/contents/{id}.yaml: {e}"))
            })
            .clone();
        out.push((path.to_string(), id.to_string(), text));
    }
    out
}

/// The status of a plain HTTP/1.0 GET on `addr` (5 s timeout), or `None`.
pub fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split(' ').nth(1)?.parse().ok()
}
