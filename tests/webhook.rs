//! `tiergate serve` over real TLS: a server started in-process on 127.0.0.1:0
//! with a generated CA, and a rustls client (reqwest) that trusts only it.
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use tiergate::server::{self, ServeOptions, TlsSource};

async fn start_with(config: Option<&str>, dry_run: bool) -> (server::Handle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ServeOptions::local();
    if let Some(text) = config {
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, text).unwrap();
        opts.config = Some(p);
    }
    opts.dry_run = dry_run;
    opts.poll = Duration::from_millis(200);
    (server::start(opts).await.unwrap(), dir)
}

/// The embedded default config with another default tier and mode (a config
/// file replaces the embedded one, so the tier resource defaults come along).
fn config(tier: &str, mode: &str) -> String {
    let text = tiergate::config::DEFAULT_YAML
        .replace("tier: foundation ", &format!("tier: {tier} "))
        .replace("mode: warn ", &format!("mode: {mode} "));
    assert!(text.contains(&format!("mode: {mode} ")));
    text
}

fn enforce() -> String {
    config("foundation", "enforce")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_per_mode_echo_the_uid() {
    for (mode, allowed) in [("enforce", false), ("warn", true), ("audit", true)] {
        let (h, _d) = start_with(Some(&config("foundation", mode)), false).await;
        let c = client(&[h.ca_pem.as_deref().unwrap()]);
        let uid = format!("uid-{mode}");
        let r = admit(
            &c,
            h.addr,
            "/validate",
            &review(&uid, "CREATE", "Pod", privileged_pod()),
        )
        .await;
        assert_eq!(r["allowed"], allowed, "{mode}: {r}");
        match mode {
            "enforce" => {
                assert_eq!(r["status"]["code"], 403);
                let msg = r["status"]["message"].as_str().unwrap();
                assert!(msg.starts_with("Pod \"web\" in namespace \"shop\" violates tiergate tier 1 (foundation): privileged (container \"app\""), "{msg}");
                assert!(msg.contains("/spec/containers/0/securityContext/privileged"));
                assert!(msg.contains("`tiergate rules`"));
            }
            "warn" => assert_eq!(
                r["warnings"][0],
                "privileged (container \"app\" must not set securityContext.privileged=true)"
            ),
            _ => {
                assert!(r.get("warnings").is_none());
                assert_eq!(r["auditAnnotations"]["findings"], "audit: privileged");
            }
        }
        h.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_warn_and_namespace_labels_set_their_mode() {
    let (h, _d) = start_with(None, false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    // Embedded defaults: tier 1, warn.
    let r = admit(
        &c,
        h.addr,
        "/validate",
        &review("u1", "CREATE", "Pod", privileged_pod()),
    )
    .await;
    assert_eq!(r["allowed"], true);
    assert_eq!(r["warnings"].as_array().unwrap().len(), 1);
    // A Namespace object is judged by its own labels (no Namespace rules yet:
    // allowed, but the context shows in the annotations).
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod",
        "labels": {"tiergate.io/tier": "3", "tiergate.io/mode": "audit"}}});
    let r = admit(
        &c,
        h.addr,
        "/validate",
        &review("u2", "CREATE", "Namespace", ns),
    )
    .await;
    assert_eq!(r["allowed"], true);
    assert_eq!(r["auditAnnotations"]["tier"], "3 (enterprise)");
    assert_eq!(r["auditAnnotations"]["mode"], "audit");
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_switch_denies_and_patches_nothing_but_records() {
    let (h, _d) = start_with(Some(&enforce()), true).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let r = admit(
        &c,
        h.addr,
        "/validate",
        &review("u1", "CREATE", "Pod", privileged_pod()),
    )
    .await;
    assert_eq!(r["allowed"], true);
    assert!(r["auditAnnotations"]["would-deny"]
        .as_str()
        .unwrap()
        .contains("privileged"));
    let r = admit(
        &c,
        h.addr,
        "/mutate",
        &review("u2", "CREATE", "Pod", bare_pod()),
    )
    .await;
    assert!(r.get("patch").is_none());
    assert_eq!(r["auditAnnotations"]["would-patch"], "resources");
    let m = metrics(h.admin_addr).await;
    assert_eq!(metric(&m, "tiergate_admission_requests_total{decision=\"would_deny\",kind=\"Pod\",operation=\"CREATE\",webhook=\"validate\"}"), 1.0);
    assert_eq!(metric(&m, "tiergate_admission_requests_total{decision=\"would_patch\",kind=\"Pod\",operation=\"CREATE\",webhook=\"mutate\"}"), 1.0);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_requests_delete_connect_generate_name_subresources_ephemeral() {
    let (h, _d) = start_with(Some(&enforce()), false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    // DELETE: object null, oldObject set.
    let mut del = review("d", "DELETE", "Pod", Value::Null);
    del["request"]["name"] = json!("web");
    del["request"]["oldObject"] = privileged_pod();
    for path in ["/validate", "/mutate"] {
        let r = admit(&c, h.addr, path, &del).await;
        assert_eq!(r["allowed"], true);
        assert!(r.get("patch").is_none());
    }
    // CONNECT (kubectl exec).
    let exec = json!({"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"], "container": "app"});
    let mut conn = review("c", "CONNECT", "PodExecOptions", exec);
    conn["request"]["subResource"] = json!("exec");
    for path in ["/validate", "/mutate"] {
        let r = admit(&c, h.addr, path, &conn).await;
        assert_eq!(r["allowed"], true);
        assert!(r.get("patch").is_none());
    }
    // generateName with an empty name.
    let mut obj = privileged_pod();
    obj["metadata"] = json!({"generateName": "web-", "namespace": "shop"});
    let r = admit(&c, h.addr, "/validate", &review("g", "CREATE", "Pod", obj)).await;
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Pod with generateName \"web-\""));
    // Subresources without a pod spec.
    for sub in ["status", "scale", "eviction"] {
        let mut b = review(sub, "UPDATE", "Pod", privileged_pod());
        b["request"]["subResource"] = json!(sub);
        let r = admit(&c, h.addr, "/validate", &b).await;
        assert_eq!(r["allowed"], true, "{sub}");
    }
    // kubectl debug: pods/ephemeralcontainers, kind Pod.
    let old = bare_pod();
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger", "image": "busybox", "securityContext": {"privileged": true}}]);
    let mut b = review("e", "UPDATE", "Pod", new);
    b["request"]["subResource"] = json!("ephemeralcontainers");
    b["request"]["oldObject"] = old;
    let r = admit(&c, h.addr, "/validate", &b).await;
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .contains("container \"debugger\""));
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_http_errors() {
    let (h, _d) = start_with(Some("maxRequestBytes: 65536\n"), false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let send = |method: reqwest::Method, ct: Option<&'static str>, body: Vec<u8>| {
        let mut r = c.request(method, url(h.addr, "/validate")).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    let json_ct = Some("application/json");
    let r = send(reqwest::Method::POST, json_ct, b"{oops".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("malformed JSON"));
    let r = send(reqwest::Method::POST, json_ct, Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("empty body"));
    let r = send(
        reqwest::Method::POST,
        json_ct,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("no `request`"));
    let r = send(reqwest::Method::GET, None, Vec::new()).await.unwrap();
    assert_eq!(r.status(), 405);
    let r = send(reqwest::Method::PUT, json_ct, b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = send(reqwest::Method::POST, Some("text/plain"), b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = send(reqwest::Method::POST, None, b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = send(
        reqwest::Method::POST,
        Some("application/json; charset=utf-8"),
        review("ok", "CREATE", "Pod", bare_pod())
            .to_string()
            .into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // Over the limit, with a Content-Length: 413 at once.
    let mut big = review("big", "CREATE", "Pod", bare_pod());
    big["request"]["object"]["metadata"]["annotations"] = json!({"pad": "x".repeat(100_000)});
    let r = send(reqwest::Method::POST, json_ct, big.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("65536"));
    // Over the limit without a Content-Length (chunked): 413 after the limit.
    let status = raw_chunked_post(&h, 200_000).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    let m = metrics(h.admin_addr).await;
    assert_eq!(
        metric(
            &m,
            "tiergate_errors_total{kind=\"bad_request\",webhook=\"validate\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            "tiergate_errors_total{kind=\"too_large\",webhook=\"validate\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "tiergate_errors_total{kind=\"content_type\",webhook=\"validate\"}"
        ),
        2.0
    );
    h.shutdown().await.unwrap();
}

async fn raw_chunked_post(h: &server::Handle, total: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tls_connect(h.addr, h.ca_pem.as_deref().unwrap(), "localhost").await;
    s.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
    let chunk = vec![b' '; 8192];
    let mut sent = 0;
    while sent < total {
        let head = format!("{:x}\r\n", chunk.len());
        if s.write_all(head.as_bytes()).await.is_err()
            || s.write_all(&chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

fn decode_patch(r: &Value) -> json_patch::Patch {
    assert_eq!(r["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_apply_and_a_second_pass_is_empty() {
    let (h, _d) = start_with(None, false).await; // embedded defaults: warn, fixes on
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"initContainers": [{"name": "init", "image": "busybox", "resources": {"limits": {"memory": "64Mi"}}}],
                     "containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "envoy", "resources": null}]}}}});
    let r = admit(
        &c,
        h.addr,
        "/mutate",
        &review("m1", "CREATE", "Deployment", deploy.clone()),
    )
    .await;
    let patch = decode_patch(&r);
    let mut fixed = deploy.clone();
    json_patch::patch(&mut fixed, &patch).unwrap();
    assert_eq!(
        fixed.pointer("/spec/template/spec/initContainers/0/resources/requests/memory"),
        Some(&json!("64Mi"))
    );
    // Requests are filled; limits are not guessed by default.
    assert_eq!(
        fixed.pointer("/spec/template/spec/containers/1/resources/requests/cpu"),
        Some(&json!("100m"))
    );
    assert!(fixed
        .pointer("/spec/template/spec/containers/1/resources/limits")
        .is_none());
    let _: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(fixed.clone()).unwrap();
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings.contains(
            &"tiergate resources fix: set missing cpu/memory requests (and limits, where the tier opts in)"
        ),
        "{warnings:?}"
    );
    let r2 = admit(
        &c,
        h.addr,
        "/mutate",
        &review("m2", "CREATE", "Deployment", fixed.clone()),
    )
    .await;
    assert!(r2.get("patch").is_none(), "{r2}");
    // The validating webhook then sees only what no safe fix covers, each
    // declined finding saying why.
    let r3 = admit(
        &c,
        h.addr,
        "/validate",
        &review("m3", "CREATE", "Deployment", fixed),
    )
    .await;
    // (run-as-non-root remains: its fix is opt-in; limits and dropping
    // capabilities of containers that may run as root are declined.)
    let left: Vec<&str> = r3["warnings"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|w| w.starts_with("runAsNonRoot") || w.contains("; not fixed: ")),
        "{r3}"
    );
    assert!(
        !left.iter().any(|w| w.contains("resources.requests")),
        "{r3}"
    );
    let m = metrics(h.admin_addr).await;
    assert_eq!(
        metric(&m, "tiergate_patches_total{rule=\"resources\"}"),
        1.0
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_and_annotations_stay_within_limits() {
    let (h, _d) = start_with(None, false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let containers: Vec<Value> = (0..120)
        .map(|i| json!({"name": format!("c{i}-{}", "n".repeat(50)), "image": "x", "securityContext": {"privileged": true}}))
        .collect();
    let r = admit(
        &c,
        h.addr,
        "/validate",
        &review("w", "CREATE", "Pod", pod("many", json!(containers))),
    )
    .await;
    let w: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(w.iter().all(|x| x.chars().count() < 120), "{w:?}");
    assert!(w.iter().map(|x| x.len()).sum::<usize>() < 4096);
    assert!(w.last().unwrap().starts_with("and ") && w.last().unwrap().contains(" more"));
    assert!(w[0].starts_with("privileged"));
    for k in r["auditAnnotations"].as_object().unwrap().keys() {
        assert!(
            k.len() <= 63
                && !k.contains('/')
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)),
            "{k}"
        );
    }
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes() {
    let (h, _d) = start_with(Some(&enforce()), false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    admit(
        &c,
        h.addr,
        "/validate",
        &review("a", "CREATE", "Pod", privileged_pod()),
    )
    .await;
    admit(
        &c,
        h.addr,
        "/mutate",
        &review("b", "CREATE", "Pod", bare_pod()),
    )
    .await;
    let w = json!({"apiVersion": "x.io/v1", "kind": "Widget", "metadata": {"name": "w"}});
    admit(&c, h.addr, "/validate", &review("c", "CREATE", "Widget", w)).await;
    let m = metrics(h.admin_addr).await;
    for (k, v) in [
        ("tiergate_admission_requests_total{decision=\"deny\",kind=\"Pod\",operation=\"CREATE\",webhook=\"validate\"}", 1.0),
        ("tiergate_admission_requests_total{decision=\"patch\",kind=\"Pod\",operation=\"CREATE\",webhook=\"mutate\"}", 1.0),
        ("tiergate_admission_requests_total{decision=\"allow\",kind=\"other\",operation=\"CREATE\",webhook=\"validate\"}", 1.0),
        ("tiergate_rule_findings_total{action=\"deny\",rule=\"privileged\",tier=\"1\"}", 1.0),
        ("tiergate_patches_total{rule=\"resources\"}", 1.0),
        ("tiergate_admission_duration_seconds_count{webhook=\"validate\"}", 2.0),
        ("tiergate_config_reloads_total{result=\"success\"}", 0.0),
        ("tiergate_tls_reloads_total{result=\"error\"}", 0.0),
        ("tiergate_build_info{version=\"0.1.0\"}", 1.0),
    ] {
        assert_eq!(m.get(k).copied(), Some(v), "{k}");
    }
    assert!(m.contains_key(
        "tiergate_admission_duration_seconds_bucket{le=\"0.0001\",webhook=\"validate\"}"
    ));
    assert!(
        m.contains_key("tiergate_admission_duration_seconds_bucket{le=\"1\",webhook=\"validate\"}")
    );
    let expiry = metric(&m, "tiergate_tls_cert_expiry_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now + 300.0 * 86400.0, "{expiry}");
    // Bounded labels: no namespace or name anywhere.
    assert!(m
        .keys()
        .all(|k| !k.contains("\"shop\"") && !k.contains("\"web\"")));
    let live = reqwest::get(format!("http://{}/livez", h.admin_addr))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready = reqwest::get(format!("http://{}/readyz", h.admin_addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemptions_are_recorded_in_annotations_and_metrics() {
    let cfg = enforce().replace(
        "exemptions: []",
        "exemptions:\n  - reason: CNI agent needs the host\n    users: [alice]\n    rules: [privileged]\n",
    );
    let (h, _d) = start_with(Some(&cfg), false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let r = admit(
        &c,
        h.addr,
        "/validate",
        &review("x", "CREATE", "Pod", privileged_pod()),
    )
    .await;
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["auditAnnotations"]["exempted"],
        "privileged (CNI agent needs the host)"
    );
    let m = metrics(h.admin_addr).await;
    assert_eq!(
        metric(&m, "tiergate_exemptions_total{rule=\"privileged\"}"),
        1.0
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_good_and_bad() {
    let (h, d) = start_with(Some("defaults: {tier: 1, mode: warn}\n"), false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let body = review("r", "CREATE", "Pod", privileged_pod());
    assert_eq!(admit(&c, h.addr, "/validate", &body).await["allowed"], true);
    let p = d.path().join("config.yaml");
    std::fs::write(&p, enforce()).unwrap();
    let admin = h.admin_addr;
    eventually("a good reload", || async move {
        metric(
            &metrics(admin).await,
            "tiergate_config_reloads_total{result=\"success\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(
        admit(&c, h.addr, "/validate", &body).await["allowed"],
        false
    );
    std::fs::write(&p, "defaults: {tier: gold}\n").unwrap();
    eventually("a failed reload", || async move {
        metric(
            &metrics(admin).await,
            "tiergate_config_reloads_total{result=\"error\"}",
        ) == 1.0
    })
    .await;
    // The last good config stays.
    assert_eq!(
        admit(&c, h.addr, "/validate", &body).await["allowed"],
        false
    );
    h.shutdown().await.unwrap();
}

/// A rotated registry-credentials Secret is read again (counted), and a bad
/// one is reported once while the last good credentials stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_credentials_reload_when_the_secret_rotates() {
    let secret = tempfile::tempdir().unwrap();
    let file = secret.path().join(".dockerconfigjson");
    std::fs::write(
        &file,
        r#"{"auths": {"reg.example": {"auth": "dXNlcjpvbGQ="}}}"#,
    )
    .unwrap();
    let key = "-----BEGIN PUBLIC KEY-----\n\
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgQxLcFMCKvjuBkfTj8qJb7azHBuh\n\
0SN9O1l60AI7KsO/2i+HE8+GGz5HMDk2GPgFnHqgQXyJI7Vmm0DAAw+IiQ==\n\
-----END PUBLIC KEY-----\n";
    let indented: String = key.lines().map(|l| format!("          {l}\n")).collect();
    let cfg = format!(
        "images:\n  credentialsFile: {}\n  verify:\n    - images: [reg.example/]\n      \
         keys:\n        - |\n{indented}",
        file.display()
    );
    let (h, _d) = start_with(Some(&cfg), false).await;
    let admin = h.admin_addr;
    let count = |result: &'static str| async move {
        metric(
            &metrics(admin).await,
            &format!("tiergate_image_credentials_reloads_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(count("success").await, 0.0, "unchanged: nothing to reload");
    std::fs::write(
        &file,
        r#"{"auths": {"reg.example": {"auth": "dXNlcjpuZXc="}}}"#,
    )
    .unwrap();
    eventually("the rotated credentials", || async move {
        count("success").await == 1.0
    })
    .await;
    std::fs::write(&file, "{torn").unwrap();
    eventually("a bad credentials file", || async move {
        count("error").await == 1.0
    })
    .await;
    // Polled again and again (every 200 ms here): still reported once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(count("error").await, 1.0);
    assert_eq!(count("success").await, 1.0);
    h.shutdown().await.unwrap();
}

/// Write a Secret-volume-like directory: `..data` symlink to a timestamped
/// directory, `tls.crt` and `tls.key` symlinks through `..data`.
fn write_secret_volume(dir: &Path, gen: usize, cert: &str, key: &str) {
    let real = dir.join(format!("..2026_{gen}"));
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("tls.crt"), cert).unwrap();
    std::fs::write(real.join("tls.key"), key).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(real.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_rotation_while_a_client_keeps_sending() {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let a = server::tls::generate(&names).unwrap();
    let b = server::tls::generate(&names).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_secret_volume(dir.path(), 1, &a.cert_pem, &a.key_pem);
    let mut opts = ServeOptions::local();
    opts.tls = TlsSource::Files {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    opts.poll = Duration::from_millis(200);
    let h = server::start(opts).await.unwrap();
    assert!(h.ca_pem.is_none());
    let addr = h.addr;
    let admin = h.admin_addr;

    // A client that trusts both CAs, new connection per request, keeps sending.
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (sent, failed, stop) = (sent.clone(), failed.clone(), stop.clone());
        let c = if w == 0 {
            fresh_client(&[&a.ca_pem, &b.ca_pem])
        } else {
            client(&[&a.ca_pem, &b.ca_pem])
        };
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let body = review(&format!("w{w}-{i}"), "CREATE", "Pod", bare_pod());
                let ok = match c
                    .post(url(addr, "/validate"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(r) => {
                        r.status() == 200
                            && r.json::<Value>()
                                .await
                                .map(|v| v["response"]["uid"] == body["request"]["uid"])
                                .unwrap_or(false)
                    }
                    Err(_) => false,
                };
                sent.fetch_add(1, Ordering::SeqCst);
                if !ok {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let only_b = fresh_client(&[&b.ca_pem]);
    let probe = review("probe", "CREATE", "Pod", bare_pod()).to_string();
    let serves_b = |c: reqwest::Client, body: String| async move {
        c.post(url(addr, "/validate"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .is_ok()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !serves_b(only_b.clone(), probe.clone()).await,
        "B served before rotation"
    );

    // A torn write (certificate of B, key of A): kept A, counted an error.
    write_secret_volume(dir.path(), 2, &b.cert_pem, &a.key_pem);
    eventually("a failed TLS reload", || async move {
        metric(
            &metrics(admin).await,
            "tiergate_tls_reloads_total{result=\"error\"}",
        ) >= 1.0
    })
    .await;
    assert!(!serves_b(only_b.clone(), probe.clone()).await);

    // The full pair B.
    write_secret_volume(dir.path(), 3, &b.cert_pem, &b.key_pem);
    eventually("a good TLS reload", || async move {
        metric(
            &metrics(admin).await,
            "tiergate_tls_reloads_total{result=\"success\"}",
        ) >= 1.0
    })
    .await;
    assert!(
        serves_b(only_b.clone(), probe.clone()).await,
        "B not served after rotation"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        sent.load(Ordering::SeqCst) > 10,
        "too few requests: {}",
        sent.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during rotation"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_requests_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (h, _d) = start_with(Some(&enforce()), false).await;
    let ca = h.ca_pem.clone().unwrap();
    let (addr, admin) = (h.addr, h.admin_addr);
    // Three requests in flight: headers and half the body sent.
    let mut streams = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..3 {
        let body = review(&format!("inflight-{i}"), "CREATE", "Pod", privileged_pod()).to_string();
        let mut s = tls_connect(addr, &ca, "localhost").await;
        let head = format!("POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body.as_bytes()[..body.len() / 2])
            .await
            .unwrap();
        s.flush().await.unwrap();
        streams.push(s);
        bodies.push(body);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shutdown = tokio::spawn(h.shutdown());
    // Not ready at once, while draining.
    eventually("readyz to fail", || async move {
        match reqwest::get(format!("http://{admin}/readyz")).await {
            Ok(r) => r.status() == 503,
            Err(_) => false,
        }
    })
    .await;
    // No new connections.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
    // The in-flight requests finish and are answered.
    for (mut s, body) in streams.into_iter().zip(bodies) {
        s.write_all(&body.as_bytes()[body.len() / 2..])
            .await
            .unwrap();
        s.flush().await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        let json = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(
            Some(v["response"]["uid"].as_str().unwrap()),
            body.split("\"uid\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
        );
    }
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_examples_decide_as_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let body: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/review-deny.json")).unwrap(),
    )
    .unwrap();
    // Embedded defaults (mode warn): allowed with warnings.
    let (h, _d) = start_with(None, false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let r = admit(&c, h.addr, "/validate", &body).await;
    assert_eq!(r["allowed"], true);
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("privileged (container \"app\"")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("resources (container \"sidecar\"")),
        "{warnings:?}"
    );
    h.shutdown().await.unwrap();
    // examples/enforce.yaml: denied.
    let mut opts = ServeOptions::local();
    opts.config = Some(root.join("examples/enforce.yaml"));
    let h = server::start(opts).await.unwrap();
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let r = admit(&c, h.addr, "/validate", &body).await;
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_http1_are_both_served() {
    let (h, _d) = start_with(None, false).await;
    let ca = h.ca_pem.clone().unwrap();
    let body = review("h2", "CREATE", "Pod", bare_pod()).to_string();
    for (c, want) in [
        (client(&[&ca]), reqwest::Version::HTTP_2),
        (
            client_builder(&[&ca]).http1_only().build().unwrap(),
            reqwest::Version::HTTP_11,
        ),
    ] {
        let r = c
            .post(url(h.addr, "/validate?timeout=10s"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), want);
        assert_eq!(r.status(), 200);
    }
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_config_is_refused_and_weakening_is_counted() {
    let (h, d) = start_with(Some(&enforce()), false).await;
    let c = client(&[h.ca_pem.as_deref().unwrap()]);
    let body = review("r", "CREATE", "Pod", privileged_pod());
    let admin = h.admin_addr;
    let m = metrics(admin).await;
    assert_eq!(metric(&m, "tiergate_config_dry_run"), 0.0);
    assert_eq!(metric(&m, "tiergate_config_default_tier"), 1.0);
    assert_eq!(
        metric(&m, "tiergate_config_default_mode{mode=\"enforce\"}"),
        1.0
    );
    assert!(
        m.keys()
            .any(|k| k.starts_with("tiergate_config_info{hash=")),
        "{m:?}"
    );
    // A file caught half-written (empty, or only comments) is refused.
    let p = d.path().join("config.yaml");
    std::fs::write(&p, "# truncated\n").unwrap();
    eventually("a refused reload", || async move {
        metric(
            &metrics(admin).await,
            "tiergate_config_reloads_total{result=\"error\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(
        admit(&c, h.addr, "/validate", &body).await["allowed"],
        false
    );
    // A reload to warn mode and dry-run works, and is counted as weakening.
    std::fs::write(
        &p,
        config("foundation", "warn").replace("dryRun: false", "dryRun: true"),
    )
    .unwrap();
    eventually("a weakening reload", || async move {
        let m = metrics(admin).await;
        metric(&m, "tiergate_config_weakened_total") == 1.0
            && metric(&m, "tiergate_config_dry_run") == 1.0
            && metric(&m, "tiergate_config_default_mode{mode=\"warn\"}") == 1.0
    })
    .await;
    assert_eq!(admit(&c, h.addr, "/validate", &body).await["allowed"], true);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_not_held() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut opts = ServeOptions::local();
    opts.first_request_timeout = Duration::from_millis(300);
    let h = server::start(opts).await.unwrap();
    let ca = h.ca_pem.clone().unwrap();
    // Handshake, then nothing: closed after the first-request timeout.
    let mut s = tls_connect(h.addr, &ca, "localhost").await;
    let mut buf = Vec::new();
    let t0 = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "an idle connection was held over 5 s");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // A body that trickles in: answered 408 within the request's ?timeout=.
    let mut s = tls_connect(h.addr, &ca, "localhost").await;
    s.write_all(b"POST /validate?timeout=1s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    s.flush().await.unwrap();
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    h.shutdown().await.unwrap();
}

/// SIGTERM under HTTP/2 load, as the apiserver sends it: /readyz fails at
/// once while the listener stays open for the shutdown delay; a client that
/// stops sending when the endpoint goes unready loses no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_http2_load_loses_nothing() {
    let mut opts = ServeOptions::local();
    opts.shutdown_delay = Duration::from_millis(800);
    let h = server::start(opts).await.unwrap();
    let ca = h.ca_pem.clone().unwrap();
    let (addr, admin) = (h.addr, h.admin_addr);
    let unready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let unready = unready.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(r) = reqwest::get(format!("http://{admin}/readyz")).await {
                    if r.status() == 503 {
                        unready.store(true, Ordering::SeqCst);
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut senders = Vec::new();
    for t in 0..4 {
        let c = client(&[&ca]);
        let unready = unready.clone();
        senders.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, Vec::new());
            let mut i = 0;
            while !unready.load(Ordering::SeqCst) {
                let body = review(&format!("h2-{t}-{i}"), "CREATE", "Pod", privileged_pod());
                match c
                    .post(url(addr, "/validate"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 && r.version() == reqwest::Version::HTTP_2 => {
                        ok += 1
                    }
                    Ok(r) => failed.push(format!("{} {:?}", r.status(), r.version())),
                    Err(e) => failed.push(e.to_string()),
                }
                i += 1;
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shutdown = tokio::spawn(h.shutdown());
    assert!(tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .unwrap()
        .unwrap());
    let (mut total, mut failures) = (0, Vec::new());
    for s in senders {
        let (ok, failed) = s.await.unwrap();
        total += ok;
        failures.extend(failed);
    }
    assert!(total > 10, "only {total} requests were sent");
    assert!(
        failures.is_empty(),
        "{} of {} failed: {failures:?}",
        failures.len(),
        total + failures.len()
    );
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
