//! Helpers for the webhook integration tests: a reqwest client that trusts
//! the generated CA, review builders and a Prometheus text parser.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

pub fn client(cas: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10));
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// A client that makes a new connection (and TLS handshake) per request.
pub fn fresh_client(cas: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

pub fn url(addr: std::net::SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

pub fn pod(name: &str, containers: Value) -> Value {
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

pub fn review(uid: &str, op: &str, kind: &str, object: Value) -> Value {
    let resource = match kind {
        "Namespace" => "namespaces",
        "Deployment" => "deployments",
        _ => "pods",
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": resource},
            "name": object.pointer("/metadata/name").cloned().unwrap_or(json!("")),
            "namespace": "shop", "operation": op,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false}})
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

/// Prometheus text format → `name{sorted labels}` → value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (key, val) = line.rsplit_once(' ').unwrap();
        let key = match key.split_once('{') {
            None => key.to_string(),
            Some((name, rest)) => {
                let labels = rest.trim_end_matches('}');
                let mut ls: Vec<&str> = labels.split(',').filter(|s| !s.is_empty()).collect();
                ls.sort();
                format!("{name}{{{}}}", ls.join(","))
            }
        };
        out.insert(key, val.parse().unwrap());
    }
    out
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
