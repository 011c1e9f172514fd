//! The `tiergate` binary: `certs` writes a usable set, `serve` drains on
//! SIGTERM (in-flight requests answered) and exits 0.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::client::danger::ServerCertVerifier as _;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tiergate");

/// The JSON log lines of a child's stdout (not a terminal, so JSON), as they
/// come.
fn json_log_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<Value> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

#[test]
fn certs_writes_a_ca_a_pair_and_prints_the_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "certs",
            "--service",
            "gate",
            "--namespace",
            "infra",
            "--out",
        ])
        .arg(dir.path().join("set"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set = dir.path().join("set");
    let ca = std::fs::read_to_string(set.join("ca.crt")).unwrap();
    let cert = std::fs::read_to_string(set.join("tls.crt")).unwrap();
    let key = std::fs::read_to_string(set.join("tls.key")).unwrap();
    let bundle = String::from_utf8(out.stdout).unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle.trim())
        .unwrap();
    assert_eq!(decoded, ca.as_bytes());
    tiergate::server::tls::load_pair(cert.as_bytes(), key.as_bytes()).unwrap();
    // The certificate is signed by the CA and valid for the Service names.
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let leaf = rustls_pemfile::certs(&mut cert.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    for name in [
        "gate",
        "gate.infra",
        "gate.infra.svc",
        "gate.infra.svc.cluster.local",
    ] {
        let sn = rustls::pki_types::ServerName::try_from(name).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &sn, &[], rustls::pki_types::UnixTime::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(set.join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "tls.key readable by others");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drains_on_sigterm_and_exits_zero() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--shutdown-delay",
            "1",
            "--ca-out",
        ])
        .arg(&ca_path)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // JSON logs (stdout is not a terminal): find the listening line.
    let rx = json_log_lines(&mut child);
    let mut addrs = None;
    let mut logged_ca = false;
    while addrs.is_none() {
        let v = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no listening log line");
        if v["fields"]["ca"].as_str().is_some() {
            logged_ca = true;
        }
        if let (Some(w), Some(a)) = (
            v["fields"]["webhook_addr"].as_str(),
            v["fields"]["admin_addr"].as_str(),
        ) {
            addrs = Some((w.parse::<std::net::SocketAddr>().unwrap(), a.to_string()));
        }
    }
    assert!(logged_ca, "the CA location is not logged");
    let (addr, admin) = addrs.unwrap();
    let ca = std::fs::read_to_string(&ca_path).unwrap();

    let mut s = common::tls_connect(addr, &ca, "127.0.0.1").await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}]}});
    let body = tiergate::admission::ReviewBuilder::new("in-flight", "CREATE", pod)
        .namespace(Some("default"))
        .build()
        .to_string();
    let head = format!("POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body.as_bytes()[..10]).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // Readiness fails while the request is in flight.
    let mut saw_503 = false;
    for _ in 0..40 {
        match reqwest::get(format!("http://{admin}/readyz")).await {
            Ok(r) if r.status() == 503 => {
                saw_503 = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    assert!(saw_503, "readyz did not fail while draining");
    s.write_all(&body.as_bytes()[10..]).await.unwrap();
    s.flush().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"uid\":\"in-flight\""), "{text}");
    assert!(text.contains("\"allowed\":true"), "{text}"); // embedded default mode: warn

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// With a low open-file limit and more idle connections than it allows, the
/// webhook port stops accepting at its cap instead of running out of
/// descriptors, and the admin port keeps answering /readyz.
#[cfg(unix)]
#[test]
fn a_flood_of_idle_connections_leaves_the_admin_port_answering() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "ulimit -n 160 && exec {BIN} serve --no-cluster --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --ca-out {}",
        dir.path().join("ca.pem").display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = json_log_lines(&mut child);
    let (mut webhook, mut admin, mut cap) = (None, None, None);
    while webhook.is_none() || cap.is_none() {
        let v = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no listening line");
        if let Some(c) = v["fields"]["max_connections"].as_u64() {
            cap = Some(c);
        }
        if let (Some(w), Some(a)) = (
            v["fields"]["webhook_addr"].as_str(),
            v["fields"]["admin_addr"].as_str(),
        ) {
            webhook = Some(w.parse::<std::net::SocketAddr>().unwrap());
            admin = Some(a.parse::<std::net::SocketAddr>().unwrap());
        }
    }
    let cap = cap.expect("the connection cap is logged");
    assert!(cap < 160, "cap {cap} is not under the fd limit");
    // Up to twice the fd limit of idle TCP connections (no TLS handshake, no
    // request); past the cap they wait in the kernel's listen backlog, and
    // once that is full, connecting times out.
    let mut idle = Vec::new();
    for _ in 0..320 {
        match std::net::TcpStream::connect_timeout(&webhook.unwrap(), Duration::from_millis(200)) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    assert!(
        idle.len() as u64 > cap,
        "only {} connections were made",
        idle.len()
    );
    std::thread::sleep(Duration::from_millis(300));
    let readyz = common::http_status(admin.unwrap(), "/readyz");
    assert_eq!(
        readyz,
        Some(200),
        "/readyz did not answer with {} idle connections",
        idle.len()
    );
    drop(idle);
    let _ = child.kill();
    let _ = child.wait();
}
