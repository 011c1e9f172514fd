//! Image verification (issue 14) against real tools: the CNCF distribution
//! registry on loopback with TLS (the run's CA), test images pushed with
//! `crane`, signatures and SLSA provenance attestations made by the real
//! `cosign` (`--tlog-upload=false`), all built by scripts/e2e-build.sh:
//! with keys, and keyless with certificates of a CA the test makes (as a
//! Fulcio would issue them; no Fulcio or Rekor runs here, so the
//! certificates are checked at the time of verification, as tiergate does).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tiergate::supply::{ImagesConfig, Outcome, Verifier, VerifyError};

use crate::harness::cluster;
use crate::harness::cluster::bin_dir;
use crate::harness::procs::{free_ports, spawn, tail, Guard};

const BUILDER: &str = "https://builder.example/tiergate-e2e@v1";

/// One registry, its images and keys, for every test of this file.
struct World {
    _registry: Guard,
    dir: PathBuf,
    host: String,
    debug_port: u16,
    ca_file: PathBuf,
    key_a: String,
    /// `app:signed`: signed by key A, provenance from BUILDER.
    signed: String,
    /// `app:unsigned`: nothing.
    unsigned: String,
    /// `app:other-key`: signed by key B.
    other_key: String,
    /// `app:stolen`: the signature object of `signed` copied to its digest.
    stolen: String,
    /// `app:bad-builder`: signed by A, provenance from another builder.
    bad_builder: String,
}

fn tool(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Run a tool that must succeed; its stdout.
fn run(world_dir: &Path, ca: &Path, name: &str, args: &[&str]) -> String {
    let out = Command::new(tool(name))
        .args(args)
        .current_dir(world_dir)
        .env("SSL_CERT_FILE", ca)
        .env("COSIGN_PASSWORD", "")
        .env("HOME", world_dir)
        .env("DOCKER_CONFIG", world_dir.join("docker"))
        .env("TUF_ROOT", world_dir.join("tuf"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e} (run scripts/e2e-build.sh)"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Push a one-layer image `repo:tag` (its contents differ by tag, so its
/// digest does); the image by digest.
fn push_image(dir: &Path, ca: &Path, repo: &str, tag: &str) -> String {
    let file = dir.join(format!("{tag}.txt"));
    std::fs::write(&file, format!("tiergate e2e image {repo}:{tag}\n")).expect("file");
    let layer = dir.join(format!("{tag}.tar"));
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&layer)
        .arg("-C")
        .arg(dir)
        .arg(format!("{tag}.txt"))
        .status()
        .expect("tar");
    assert!(st.success());
    let reference = format!("{repo}:{tag}");
    let layer = layer.display().to_string();
    run(
        dir,
        ca,
        "crane",
        &["append", "-f", &layer, "-t", &reference],
    );
    format!("{repo}@{}", run(dir, ca, "crane", &["digest", &reference]))
}

/// A SLSA provenance v1 predicate naming `builder`, written in `dir`.
fn predicate(dir: &Path, builder: &str) -> PathBuf {
    let pred = dir.join("predicate.json");
    let body = serde_json::json!({
        "buildDefinition": {"buildType": "https://tiergate.dev/e2e", "externalParameters": {}},
        "runDetails": {"builder": {"id": builder}},
    });
    std::fs::write(&pred, body.to_string()).expect("predicate");
    pred
}

/// The tests of this file take turns: the registry's request count is
/// compared across one test's calls.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(make_world)
}

fn make_world() -> World {
    let c = cluster();
    let dir = c.dir.join("supply");
    std::fs::create_dir_all(&dir).expect("dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &c.ca_pem).expect("ca");
    let ports = free_ports(2);
    let host = format!("127.0.0.1:{}", ports[0]);
    let config = format!(
        "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  \
         delete: {{enabled: true}}\nhttp:\n  addr: {host}\n  tls:\n    certificate: {}\n    \
         key: {}\n  debug:\n    addr: 127.0.0.1:{}\n    prometheus: {{enabled: true, path: /metrics}}\n",
        dir.join("storage").display(),
        c.tiergate_cert.display(),
        c.tiergate_key.display(),
        ports[1]
    );
    let cfg = dir.join("registry.yaml");
    std::fs::write(&cfg, config).expect("registry config");
    let log = dir.join("registry.log");
    let out = std::fs::File::create(&log).expect("log");
    let err = out.try_clone().expect("log");
    let mut cmd = Command::new(tool("registry"));
    cmd.arg("serve")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let child = spawn(cmd).expect("registry (run scripts/e2e-build.sh)");
    let guard = Guard {
        name: "registry".into(),
        child: Some(child),
        log: log.clone(),
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&host).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the registry never listened:\n{}",
            tail(&log, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = |name: &str, args: &[&str]| run(&dir, &ca_file, name, args);
    // Keys A and B.
    for k in ["a", "b"] {
        std::fs::create_dir_all(dir.join(k)).expect("key dir");
        let out = Command::new(tool("cosign"))
            .args(["generate-key-pair"])
            .current_dir(dir.join(k))
            .env("COSIGN_PASSWORD", "")
            .env("HOME", &dir)
            .output()
            .expect("cosign generate-key-pair");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let key = |k: &str| dir.join(k).join("cosign.key").display().to_string();
    // Images: one layer each, different contents so different digests.
    let image = |tag: &str| push_image(&dir, &ca_file, &format!("{host}/app"), tag);
    let sign = |k: &str, pinned: &str| {
        r(
            "cosign",
            &[
                "sign",
                "--key",
                &key(k),
                "--tlog-upload=false",
                "--new-bundle-format=false",
                "--use-signing-config=false",
                "--yes",
                pinned,
            ],
        );
    };
    let attest = |k: &str, pinned: &str, builder: &str| {
        let pred = predicate(&dir, builder);
        r(
            "cosign",
            &[
                "attest",
                "--key",
                &key(k),
                "--type",
                "slsaprovenance1",
                "--predicate",
                &pred.display().to_string(),
                "--tlog-upload=false",
                "--new-bundle-format=false",
                "--use-signing-config=false",
                "--yes",
                pinned,
            ],
        );
    };
    let signed = image("signed");
    sign("a", &signed);
    attest("a", &signed, BUILDER);
    let unsigned = image("unsigned");
    let other_key = image("other-key");
    sign("b", &other_key);
    attest("b", &other_key, BUILDER);
    let stolen = image("stolen");
    let tag_of = |pinned: &str| {
        let d = pinned.split('@').nth(1).unwrap_or("");
        format!("{host}/app:{}.sig", d.replace(':', "-"))
    };
    r("crane", &["copy", &tag_of(&signed), &tag_of(&stolen)]);
    let bad_builder = image("bad-builder");
    sign("a", &bad_builder);
    attest("a", &bad_builder, "https://untrusted.example/builder");
    let key_a = std::fs::read_to_string(dir.join("a").join("cosign.pub")).expect("pub");
    World {
        _registry: guard,
        dir,
        host,
        debug_port: ports[1],
        ca_file,
        key_a,
        signed,
        unsigned,
        other_key,
        stolen,
        bad_builder,
    }
}

fn config(w: &World, provenance: bool, budget_ms: u64) -> ImagesConfig {
    let mut cfg = ImagesConfig {
        budget_ms,
        registry_ca: vec![std::fs::read_to_string(&w.ca_file).expect("ca")],
        ..ImagesConfig::default()
    };
    cfg.verify.push(tiergate::supply::VerifyRule {
        images: vec![format!("{}/", w.host)],
        tiers: vec![5],
        keys: vec![w.key_a.clone()],
        identities: vec![],
        trust_root: None,
        provenance: provenance.then(|| tiergate::supply::config::Provenance {
            builders: vec![BUILDER.to_string()],
            keys: vec![],
        }),
    });
    cfg
}

/// The registry's count of HTTP requests so far (its Prometheus metrics).
fn registry_requests(w: &World) -> f64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", w.debug_port)).expect("debug port");
    use std::io::{Read, Write};
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("registry_http_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn refused(o: &Result<Outcome, VerifyError>) -> String {
    match o {
        Ok(Outcome::Refused { reason, .. }) => reason.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_and_provenance_from_the_real_cosign() {
    let _turn = TURN.lock().await;
    let w = world();
    let v = Verifier::new(config(w, true, 5_000)).expect("verifier");
    let rule = v.rule_for(&w.signed, 5).expect("a rule for the registry");
    assert_eq!(v.rule_for(&w.signed, 3), None, "tier 5 only");
    // Signed with provenance from the allowed builder: verified, by tag too.
    let digest = w.signed.split('@').nth(1).expect("digest").to_string();
    assert_eq!(
        v.verify(&w.signed, rule).await,
        Ok(Outcome::Verified {
            digest: digest.clone()
        })
    );
    assert_eq!(
        v.verify(&format!("{}/app:signed", w.host), rule).await,
        Ok(Outcome::Verified { digest })
    );
    let r = refused(&v.verify(&w.unsigned, rule).await);
    assert!(r.contains("no cosign signature"), "{r}");
    let r = refused(&v.verify(&w.other_key, rule).await);
    assert!(r.contains("none by a trusted key"), "{r}");
    let r = refused(&v.verify(&w.stolen, rule).await);
    assert!(
        r.contains("no cosign signature") || r.contains("none by a trusted key"),
        "a signature over another digest: {r}"
    );
    let r = refused(&v.verify(&w.bad_builder, rule).await);
    assert!(r.contains("untrusted.example"), "{r}");
    // Without provenance in the rule, the signature alone is enough.
    let sig_only = Verifier::new(config(w, false, 5_000)).expect("verifier");
    assert!(matches!(
        sig_only.verify(&w.bad_builder, 0).await,
        Ok(Outcome::Verified { .. })
    ));
    let _ = &w.dir;
}

/// 1,000 concurrent first verifications of one new image: one verification,
/// one set of registry calls; then answers from the cache, none to the
/// registry. Figures printed (not asserted): the cold verification and a
/// cached answer, in the same process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_admissions_verify_once() {
    let _turn = TURN.lock().await;
    let w = world();
    let v = Verifier::new(config(w, true, 10_000)).expect("verifier");
    // A single cold verification, for the registry's cost of one. The
    // process's one-time costs (the reference parser's regex, the first
    // TLS connection) are paid first, on another image: the figure is what
    // one more new image costs.
    let single = Verifier::new(config(w, true, 10_000)).expect("verifier");
    let warm_up = single.verify(&w.unsigned, 0).await;
    assert!(
        matches!(warm_up, Ok(Outcome::Refused { .. })),
        "{warm_up:?}"
    );
    let before = registry_requests(w);
    let t0 = Instant::now();
    let one = single.verify(&w.other_key, 0).await;
    let cold = t0.elapsed();
    assert!(one.is_ok(), "{one:?}");
    let per_verification = registry_requests(w) - before;
    assert!(per_verification > 0.0, "the registry counts requests");

    let before = registry_requests(w);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let v = v.clone();
        let image = w.other_key.clone();
        tasks.push(tokio::spawn(async move { v.verify(&image, 0).await }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert!(matches!(r, Ok(Outcome::Refused { .. })), "{r:?}");
    }
    let calls = registry_requests(w) - before;
    let c = v.counters();
    assert_eq!(
        c.verifications.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one verification for 1,000 concurrent requests"
    );
    assert_eq!(
        calls, per_verification,
        "1,000 concurrent first admissions made the registry calls of one"
    );
    let before = registry_requests(w);
    let t0 = Instant::now();
    for _ in 0..1000 {
        let _ = v.verify(&w.other_key, 0).await;
    }
    let cached = t0.elapsed() / 1000;
    assert_eq!(
        registry_requests(w) - before,
        0.0,
        "cached: no registry call"
    );
    eprintln!(
        "e2e: supply: a cold key-based verification with provenance took {:.1} ms \
         ({per_verification} registry requests); a cached answer {:.1} µs (ratio {:.0}x)",
        cold.as_secs_f64() * 1e3,
        cached.as_secs_f64() * 1e6,
        cold.as_secs_f64() / cached.as_secs_f64().max(1e-9)
    );
}

/// A registry that is down answers an error at once (not "unsigned"); one
/// that accepts connections and never answers costs at most the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_within_and_beyond_the_budget() {
    let _turn = TURN.lock().await;
    let w = world();
    // Nothing listens on this port.
    let port = free_ports(1)[0];
    let mut cfg = config(w, false, 1_000);
    cfg.verify[0].images = vec![format!("127.0.0.1:{port}/")];
    let v = Verifier::new(cfg).expect("verifier");
    let t0 = Instant::now();
    let r = v.verify(&format!("127.0.0.1:{port}/app:1"), 0).await;
    assert!(matches!(r, Err(VerifyError::Registry { .. })), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(1) + Duration::from_millis(500));
    // A black hole: accepts, never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hole_port = hole.local_addr().expect("addr").port();
    let mut cfg = config(w, false, 300);
    cfg.verify[0].images = vec![format!("127.0.0.1:{hole_port}/")];
    let v = Verifier::new(cfg).expect("verifier");
    let t0 = Instant::now();
    let r = v.verify(&format!("127.0.0.1:{hole_port}/app:1"), 0).await;
    let took = t0.elapsed();
    assert_eq!(
        r,
        Err(VerifyError::Timeout(format!("127.0.0.1:{hole_port}/app:1")))
    );
    assert!(
        took < Duration::from_secs(2),
        "bounded by the budget: {took:?}"
    );
    drop(hole);
}

/// A tier-5 config in which only the two image rules judge, verifying the
/// test registry's images with key A and provenance from BUILDER.
fn admission_config(w: &World) -> String {
    let indent = |pem: &str, n: usize| {
        pem.lines()
            .map(|l| format!("{}{l}", " ".repeat(n)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ca = std::fs::read_to_string(&w.ca_file).expect("ca");
    let mut rules = String::from("rules:\n");
    for r in tiergate::policy::rules::ALL {
        if r.id != "image-signature" && r.id != "image-digest" {
            rules.push_str(&format!("  {}: {{action: off}}\n", r.id));
        }
    }
    format!(
        "defaults: {{tier: 5, mode: enforce}}\n{rules}images:\n  budgetMs: 2000\n  \
         registryCa:\n    - |\n{}\n  verify:\n    - images: [{}/]\n      keys:\n        - |\n{}\n      \
         provenance:\n        builders: [{BUILDER}]\n    - images: [{DOWN}/]\n      keys:\n        - |\n{}\n",
        indent(&ca, 6),
        w.host,
        indent(&w.key_a, 10),
        indent(&w.key_a, 10)
    )
}

/// A registry nobody serves (a port of the discard range that refuses).
const DOWN: &str = "127.0.0.1:9";

fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  selector:\n    \
         matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    \
         spec:\n      containers:\n        - name: app\n          image: {image}\n"
    )
}

/// Through the real apiserver: a signed image by tag is admitted and pinned
/// to the digest verified; an unsigned one, one signed by another key and
/// one whose provenance names another builder are denied, each saying why;
/// `tiergate check --verify-images` names the same rule with the same
/// message, and `tiergate fix --verify-images` pins to the same digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_unsigned_deployments_through_the_apiserver() {
    use crate::harness::{Scenario, Webhooks, KUBECTL_ADMIN, TIERGATE};
    let _turn = TURN.lock().await;
    let w = world();
    let cfg = admission_config(w);
    let mut s = Scenario::new("supply", 5, "enforce", &cfg, false, Webhooks::default()).await;
    s.register().await;

    let by_tag = format!("{}/app:signed", w.host);
    let digest = w.signed.split('@').nth(1).expect("digest").to_string();
    let r = s.apply(&KUBECTL_ADMIN, &deployment("signed", &by_tag), &[]);
    assert!(
        r.ok,
        "a signed image is admitted: {r:?}\n{}",
        s.tiergate.log()
    );
    assert!(
        r.warnings()
            .iter()
            .any(|l| l.starts_with("tiergate image-digest fix:")),
        "{r:?}"
    );
    let live = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "signed")
        .expect("stored");
    let stored = live["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_string();
    assert_eq!(
        stored,
        format!("{by_tag}@{digest}"),
        "pinned to the digest verified"
    );
    // Applied pinned: no fix, the same image (idempotent).
    let again = s.apply(&KUBECTL_ADMIN, &deployment("signed", &stored), &[]);
    assert!(again.ok, "{again:?}");
    assert!(
        !again
            .warnings()
            .iter()
            .any(|l| l.contains("image-digest fix")),
        "{again:?}"
    );
    let live = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "signed")
        .expect("stored");
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        serde_json::json!(stored)
    );

    let dir = w.dir.join("cli");
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg_file = dir.join("tiergate.yaml");
    std::fs::write(&cfg_file, &cfg).expect("config");
    for (name, image, why) in [
        ("unsigned", &w.unsigned, "no cosign signature"),
        ("other-key", &w.other_key, "none by a trusted key"),
        ("bad-builder", &w.bad_builder, "untrusted.example"),
    ] {
        let m = deployment(name, image);
        let r = s.apply(&KUBECTL_ADMIN, &m, &[]);
        assert!(!r.ok, "{name} must be denied: {r:?}");
        assert!(
            r.stderr.contains("image-signature") && r.stderr.contains(why),
            "{name}: {}",
            r.stderr
        );
        // The CLI, asking the same registry, says the same.
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, &m).expect("manifest");
        let out = Command::new(TIERGATE)
            .arg("check")
            .arg("--verify-images")
            .arg("--config")
            .arg(&cfg_file)
            .args(["-o", "json"])
            .arg(&file)
            .output()
            .expect("tiergate check");
        assert_eq!(out.status.code(), Some(1), "{name}: denied offline too");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check -o json");
        let text = report.to_string();
        let msg = report
            .pointer("/results/0/findings")
            .and_then(|f| f.as_array())
            .and_then(|f| f.iter().find(|x| x["rule"] == "image-signature"))
            .and_then(|x| x["message"].as_str())
            .unwrap_or_else(|| panic!("{name}: no image-signature finding offline: {text}"))
            .to_string();
        assert!(
            r.stderr.contains(&msg),
            "{name}: the webhook's denial carries the CLI's message {msg:?}: {}",
            r.stderr
        );
    }
    // A registry that is down: not "unsigned", but unverifiable, and
    // denied (onTimeout: deny) without waiting out the request.
    let t0 = Instant::now();
    let r = s.apply(
        &KUBECTL_ADMIN,
        &deployment("down", &format!("{DOWN}/app:1")),
        &[],
    );
    assert!(!r.ok, "{r:?}");
    assert!(
        r.stderr.contains("could not be verified") && r.stderr.contains("onTimeout is deny"),
        "{}",
        r.stderr
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // `tiergate fix --verify-images` writes the digest the webhook pinned.
    let file = dir.join("signed.yaml");
    std::fs::write(&file, deployment("signed", &by_tag)).expect("manifest");
    let out = Command::new(TIERGATE)
        .arg("fix")
        .arg("--verify-images")
        .arg("--config")
        .arg(&cfg_file)
        .arg(&file)
        .output()
        .expect("tiergate fix");
    let fixed = String::from_utf8_lossy(&out.stdout);
    assert!(
        fixed.contains(&stored),
        "{fixed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = s.tiergate.metrics();
    assert!(
        m.contains("tiergate_image_verifications_total{result=\"verified\"}")
            && m.contains("tiergate_image_verifications_total{result=\"refused\"}")
            && m.contains("tiergate_image_cache_total{result=\"hit\"}"),
        "{m}"
    );
}

/// A CA of the test's own (root and intermediate, as a Fulcio's) and
/// signing certificates it issues: keyless signing without a Fulcio, with
/// the real cosign (`sign --certificate --certificate-chain`).
struct TestCa {
    root_pem: String,
    chain_pem: String,
    intermediate: rcgen::Issuer<'static, rcgen::KeyPair>,
}

const OIDC: &str = "https://oidc.example";
const SIGNER: &str = "https://ci.example/acme/app/.ci/release@refs/heads/main";

fn test_ca(name: &str) -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca = |cn: String| {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        p
    };
    let root_key = KeyPair::generate().expect("key");
    let root = ca(format!("{name} root"));
    let root_cert = root.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root, root_key);
    let mid_key = KeyPair::generate().expect("key");
    let mid = ca(format!("{name} intermediate"));
    let mid_cert = mid.signed_by(&mid_key, &root_issuer).expect("intermediate");
    TestCa {
        root_pem: root_cert.pem(),
        chain_pem: format!("{}{}", mid_cert.pem(), root_cert.pem()),
        intermediate: Issuer::new(mid, mid_key),
    }
}

/// A code-signing certificate for `subject` from `OIDC`, its key imported
/// into cosign's format: the files `<name>.key`, `<name>.crt`,
/// `<name>.chain` in `dir`.
fn keyless_signer(dir: &Path, ca: &TestCa, name: &str, subject: &str) {
    use rcgen::{CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, KeyPair, SanType};
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.subject_alt_names = vec![SanType::URI(subject.try_into().expect("uri"))];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let mut issuer = vec![0x0c, OIDC.len() as u8];
    issuer.extend_from_slice(OIDC.as_bytes());
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
        issuer,
    )];
    let cert = p.signed_by(&key, &ca.intermediate).expect("leaf");
    std::fs::write(dir.join(format!("{name}.pem")), key.serialize_pem()).expect("key");
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("cert");
    std::fs::write(dir.join(format!("{name}.chain")), &ca.chain_pem).expect("chain");
    let _ = std::fs::remove_file(dir.join(format!("{name}.key")));
    let _ = std::fs::remove_file(dir.join(format!("{name}.pub")));
    run(
        dir,
        &world().ca_file,
        "cosign",
        &[
            "import-key-pair",
            "--key",
            &format!("{name}.pem"),
            "--output-key-prefix",
            name,
        ],
    );
}

/// Keyless signatures and provenance, made by the real cosign with
/// certificates of a CA of the test's own: the trusted identity is
/// verified (signature and provenance), another identity, another CA's
/// certificate and a key-only signature are refused, and a rule with keys
/// and identities takes either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_signatures_from_the_real_cosign() {
    let _turn = TURN.lock().await;
    let w = world();
    let dir = w.dir.join("keyless");
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = test_ca("tiergate e2e");
    let foreign = test_ca("someone else");
    keyless_signer(&dir, &ca, "good", SIGNER);
    keyless_signer(
        &dir,
        &ca,
        "other",
        "https://ci.example/mallory/app/.ci/release",
    );
    keyless_signer(&dir, &foreign, "foreign", SIGNER);
    let root = dir.join("root.pem");
    std::fs::write(&root, &ca.root_pem).expect("root");
    let r = |args: &[&str]| run(&dir, &w.ca_file, args[0], &args[1..]);
    let image = |tag: &str| push_image(&dir, &w.ca_file, &format!("{}/keyless", w.host), tag);
    let keyless = |who: &str| {
        vec![
            "--key".to_string(),
            format!("{who}.key"),
            "--certificate".into(),
            format!("{who}.crt"),
            "--certificate-chain".into(),
            format!("{who}.chain"),
            "--tlog-upload=false".into(),
            "--new-bundle-format=false".into(),
            "--use-signing-config=false".into(),
            "--yes".into(),
        ]
    };
    let sign = |who: &str, pinned: &str| {
        let mut a = vec!["cosign".to_string(), "sign".into()];
        a.extend(keyless(who));
        a.push(pinned.into());
        r(&a.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let pred = predicate(&dir, BUILDER);
    let good = image("good");
    sign("good", &good);
    let mut a = vec!["cosign".to_string(), "attest".into()];
    a.extend(keyless("good"));
    a.extend([
        "--type".into(),
        "slsaprovenance1".into(),
        "--predicate".into(),
        pred.display().to_string(),
        good.clone(),
    ]);
    r(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let other = image("other");
    sign("other", &other);
    let foreign_signed = image("foreign");
    sign("foreign", &foreign_signed);

    let rule = |keys: Vec<String>| tiergate::supply::VerifyRule {
        images: vec![format!("{}/", w.host)],
        tiers: vec![5],
        keys,
        identities: vec![tiergate::supply::config::Identity {
            issuer: OIDC.into(),
            subject: None,
            subject_reg_exp: Some("https://ci\\.example/acme/.*".into()),
        }],
        trust_root: Some(root.display().to_string()),
        provenance: Some(tiergate::supply::config::Provenance {
            builders: vec![BUILDER.to_string()],
            keys: vec![],
        }),
    };
    let cfg = |keys: Vec<String>| ImagesConfig {
        verify: vec![rule(keys)],
        budget_ms: 10_000,
        registry_ca: vec![std::fs::read_to_string(&w.ca_file).expect("ca")],
        ..ImagesConfig::default()
    };
    assert_eq!(cfg(vec![]).validate(), Ok(()));
    let v = Verifier::new(cfg(vec![])).expect("verifier");
    let digest = good.split('@').nth(1).expect("digest").to_string();
    assert_eq!(
        v.verify(&good, 0).await,
        Ok(Outcome::Verified { digest }),
        "the trusted identity, signature and provenance"
    );
    let why = refused(&v.verify(&other, 0).await);
    assert!(
        why.contains("not a trusted identity") && why.contains("mallory"),
        "{why}"
    );
    let why = refused(&v.verify(&foreign_signed, 0).await);
    assert!(why.contains("does not chain"), "{why}");
    let why = refused(&v.verify(&w.signed, 0).await);
    assert!(
        why.contains("no keyless signature"),
        "a key-only signature: {why}"
    );
    let why = refused(&v.verify(&w.unsigned, 0).await);
    assert!(why.contains("no cosign signature"), "{why}");
    // Keys and identities: either signs. (w.signed's provenance is signed
    // by key A, the rule's key.)
    let both = Verifier::new(cfg(vec![w.key_a.clone()])).expect("verifier");
    for i in [&good, &w.signed] {
        assert!(
            matches!(both.verify(i, 0).await, Ok(Outcome::Verified { .. })),
            "{i}"
        );
    }
    let why = refused(&both.verify(&other, 0).await);
    assert!(
        why.contains("none by a trusted key") && why.contains("not a trusted identity"),
        "{why}"
    );
}
