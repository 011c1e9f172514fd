//! The scenarios of issue 4, each a test against the real apiserver.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{json, Value};

use crate::harness::{
    admin, config, manifest, Scenario, Webhooks, KUBECTL_ADMIN, KUBECTL_DEV, MUTATE, TIERGATE,
    VALIDATE,
};

/// Opt-in fixes turned on as well (and limits for tier 2): every finding of
/// deployment-root.yaml at tier 2 can then be fixed. Running as non-root is
/// what lets capabilities-restricted drop ALL, in the same pass.
const FIXES_ON: &str = "rules:\n  run-as-non-root: {fix: on}\n  read-only-root-filesystem: {fix: on}\n\
tiers:\n  production:\n    resources:\n      requests: {cpu: 100m, memory: 128Mi}\n      limits: {cpu: '1', memory: 512Mi}\n";

const RUN_AS_NON_ROOT: &str =
    r#"runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)"#;

fn denied_by_tiergate(stderr: &str) -> bool {
    stderr.contains(&format!(
        "admission webhook \"{VALIDATE}\" denied the request"
    ))
}

/// Every leaf of `want` is in `have` with the same value (`have` may hold
/// more: the apiserver's defaults).
fn assert_subset(want: &Value, have: &Value, path: &str) {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            for (k, v) in w {
                let hv = h
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}/{k} missing in the stored object"));
                assert_subset(v, hv, &format!("{path}/{k}"));
            }
        }
        (Value::Array(w), Value::Array(h)) => {
            assert_eq!(w.len(), h.len(), "{path}: array lengths differ");
            for (i, (a, b)) in w.iter().zip(h).enumerate() {
                assert_subset(a, b, &format!("{path}/{i}"));
            }
        }
        _ => assert_eq!(want, have, "{path}"),
    }
}

/// `tiergate fix` of a manifest under a config, offline, as JSON.
fn offline_fix(manifest_text: &str, cfg: &str) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = dir.path().join("m.yaml");
    let c = dir.path().join("c.yaml");
    std::fs::write(&m, manifest_text).expect("write manifest");
    std::fs::write(&c, cfg).expect("write config");
    let out = Command::new(TIERGATE)
        .arg("fix")
        .arg("--config")
        .arg(&c)
        .arg(&m)
        .output()
        .expect("tiergate fix");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let src = tiergate::manifest::parse_source("fixed", None, &text).expect("fixed manifest");
    src.documents
        .into_iter()
        .find_map(|d| d.value)
        .expect("a fixed object")
}

fn rv(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

// 1 ---------------------------------------------------------------------------

/// A tier 2 namespace in enforce mode rejects a Deployment that runs as
/// root; `kubectl apply` prints tiergate's message, for the admin and for a
/// plain RBAC user alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_enforce_rejects_a_root_deployment_with_tiergates_message() {
    let mut s = Scenario::new(
        "enforce",
        2,
        "enforce",
        &config(2, "enforce", ""),
        false,
        Webhooks::default(),
    )
    .await;
    s.register().await;
    let m = manifest("deployment-root.yaml");
    for who in [&KUBECTL_ADMIN, &KUBECTL_DEV] {
        let r = s.apply(who, &m, &[]);
        assert!(!r.ok, "{} applied a root Deployment: {r:?}", who.context);
        assert!(denied_by_tiergate(&r.stderr), "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "Deployment \"shop\" in namespace \"{}\" violates tiergate tier 2 (production): ",
                s.ns
            )),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!(
                "{RUN_AS_NON_ROOT} at /spec/template/spec/containers/0/securityContext/runAsNonRoot"
            )),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("see `tiergate rules`"), "{}", r.stderr);
    }
    assert!(KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .is_none());
    // The dev identity is confined by RBAC: outside its namespace the
    // apiserver forbids it before any webhook runs.
    let r = KUBECTL_DEV.apply("default", &m, &[]);
    assert!(!r.ok && r.stderr.contains("forbidden"), "{r:?}");
    assert!(
        r.stderr.contains("e2e-dev") && !r.stderr.contains("tiergate"),
        "{r:?}"
    );
}

// 2 ---------------------------------------------------------------------------

/// With fixes on, the same Deployment is admitted with the patch applied;
/// the stored object carries what offline `tiergate fix` produces, and
/// applying or replacing it again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_fixes_on_admits_the_patched_deployment_idempotently() {
    let cfg = config(2, "enforce", FIXES_ON);
    let mut s = Scenario::new("fix", 2, "enforce", &cfg, false, Webhooks::default()).await;
    s.register().await;
    let m = manifest("deployment-root.yaml");
    let r = s.apply(&KUBECTL_ADMIN, &m, &[]);
    assert!(r.ok, "{r:?}");
    assert!(r.stdout.contains("deployment.apps/shop created"), "{r:?}");
    let fix_lines: Vec<String> = r
        .warnings()
        .into_iter()
        .filter(|w| w.starts_with("tiergate "))
        .collect();
    for rule in [
        "run-as-non-root",
        "capabilities-restricted",
        "allow-privilege-escalation",
        "seccomp-profile-restricted",
        "resources",
        "graceful-shutdown",
        "read-only-root-filesystem",
    ] {
        assert!(
            fix_lines
                .iter()
                .any(|w| w.starts_with(&format!("tiergate {rule} fix:"))),
            "no fix warning for {rule}: {fix_lines:?}"
        );
    }

    let deployments: Api<Deployment> = Api::namespaced(admin().await, &s.ns);
    let live = serde_json::to_value(deployments.get("shop").await.expect("stored Deployment"))
        .expect("json");
    let spec = &live["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], json!(true));
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        json!("RuntimeDefault")
    );
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"],
        json!(false)
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], json!(true));
    assert_eq!(c["resources"]["requests"]["cpu"], json!("100m"));
    assert_eq!(c["resources"]["limits"]["memory"], json!("512Mi"));
    assert!(c["lifecycle"]["preStop"].is_object(), "{c:#}");
    assert!(spec["terminationGracePeriodSeconds"].is_number());
    // What the apiserver stored is what offline `tiergate fix` writes (plus
    // the apiserver's defaults).
    let offline = offline_fix(&m, &cfg);
    assert_subset(
        &offline["spec"]["template"]["spec"],
        spec,
        "/spec/template/spec",
    );

    // Applying the same manifest again changes nothing.
    let before = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .expect("stored");
    let r = s.apply(&KUBECTL_ADMIN, &m, &[]);
    assert!(r.ok && r.stdout.contains("unchanged"), "{r:?}");
    // An UPDATE of the stored (fixed) object is not even sent to tiergate
    // (nothing the rules read changed: not-unchanged-update); the
    // apiserver sees a no-op and keeps the version.
    let patched_before = s.tiergate.counter(
        "tiergate_admission_requests_total",
        &[("webhook", "mutate"), ("decision", "patch")],
    );
    let updates_before = s.tiergate.counter(
        "tiergate_admission_requests_total",
        &[("webhook", "mutate"), ("operation", "UPDATE")],
    );
    // (Through the API: `kubectl replace` would rewrite its last-applied
    // annotation and so the object.)
    let stored: Deployment = serde_json::from_value(before.clone()).expect("typed");
    deployments
        .replace("shop", &PostParams::default(), &stored)
        .await
        .expect("replace with the stored object");
    let replaced = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .expect("stored");
    assert_eq!(
        rv(&before),
        rv(&replaced),
        "a no-op replace wrote a new version:\n{before:#}\n{replaced:#}"
    );
    assert_eq!(before["spec"], replaced["spec"]);
    // A changed manifest (a new annotation) is an UPDATE tiergate judges;
    // the fixes the user never wrote stay, nothing is patched again.
    let m2 = m.replace(
        "  name: shop\n",
        "  name: shop\n  annotations:\n    e2e.tiergate.io/rev: \"2\"\n",
    );
    let r = s.apply(&KUBECTL_ADMIN, &m2, &[]);
    assert!(r.ok && r.stdout.contains("configured"), "{r:?}");
    let after = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .expect("stored");
    assert_eq!(before["spec"], after["spec"], "the spec changed");
    let updates = s.tiergate.counter(
        "tiergate_admission_requests_total",
        &[("webhook", "mutate"), ("operation", "UPDATE")],
    );
    assert_eq!(
        updates,
        updates_before + 1.0,
        "the no-op replace is not sent, the changed apply is"
    );
    assert_eq!(
        s.tiergate.counter(
            "tiergate_admission_requests_total",
            &[("webhook", "mutate"), ("decision", "patch")],
        ),
        patched_before,
        "tiergate patched an already fixed object"
    );
}

// 3 ---------------------------------------------------------------------------

/// Warn mode: `kubectl apply` shows tiergate's `Warning:` lines (each under
/// 120 characters) and the object is created, with the safe fixes applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_warn_mode_shows_warnings_and_creates() {
    let mut s = Scenario::new(
        "warn",
        2,
        "warn",
        &config(2, "warn", ""),
        false,
        Webhooks::default(),
    )
    .await;
    s.register().await;
    let r = s.apply(&KUBECTL_DEV, &manifest("deployment-root.yaml"), &[]);
    assert!(r.ok, "{r:?}");
    assert!(r.stdout.contains("deployment.apps/shop created"), "{r:?}");
    let warnings = r.warnings();
    assert!(
        warnings.iter().any(|w| w == RUN_AS_NON_ROOT),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("read-only root filesystem (container \"app\"")),
        "{warnings:#?}"
    );
    // The container may run as root: ALL is not dropped (it would need
    // CHOWN/SETUID/SETGID), and the warning says why.
    assert!(
        warnings.iter().any(
            |w| w.starts_with("unrestricted capabilities (container \"app\"")
                && w.contains("not fixed")
        ),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("tiergate resources fix:")),
        "{warnings:#?}"
    );
    for w in &warnings {
        assert!(w.len() < 120, "warning of {} characters: {w}", w.len());
    }
    let live = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .expect("created");
    let c = &live["spec"]["template"]["spec"]["containers"][0];
    assert!(c["securityContext"].get("capabilities").is_none(), "{c:#}");
    assert!(c["securityContext"].get("runAsNonRoot").is_none());
    assert_eq!(c["resources"]["requests"]["memory"], json!("128Mi"));
    assert!(c["resources"].get("limits").is_none(), "{c:#}");
}

// 4 ---------------------------------------------------------------------------

/// Audit mode: the object is created untouched and without warnings, and the
/// apiserver's audit log holds tiergate's annotations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_audit_mode_creates_and_annotates_the_audit_log() {
    let mut s = Scenario::new(
        "audit",
        2,
        "audit",
        &config(2, "audit", ""),
        false,
        Webhooks::default(),
    )
    .await;
    s.register().await;
    let r = s.apply(&KUBECTL_ADMIN, &manifest("deployment-root.yaml"), &[]);
    assert!(r.ok, "{r:?}");
    assert!(r.warnings().is_empty(), "{r:?}");
    let live = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .expect("created");
    assert!(
        live["spec"]["template"]["spec"]["containers"][0]
            .get("securityContext")
            .is_none(),
        "audit mode patched the object"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let event = loop {
        let found = s.audit_events().into_iter().find(|e| {
            e["verb"] == json!("create")
                && e["objectRef"]["resource"] == json!("deployments")
                && e["objectRef"]["name"] == json!("shop")
                && e["stage"] == json!("ResponseComplete")
        });
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no audit event for the create of deployments/shop"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let ann = &event["annotations"];
    let get = |k: &str| {
        ann.get(format!("{VALIDATE}/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("audit annotation {VALIDATE}/{k} missing: {ann:#}"))
            .to_string()
    };
    assert_eq!(get("mode"), "audit");
    assert_eq!(get("tier"), "2 (production)");
    assert_eq!(get("decision"), "audit");
    let findings = get("findings");
    assert!(
        findings.starts_with("audit: ")
            && findings.contains("run-as-non-root")
            && findings.contains("capabilities-restricted"),
        "{ann:#}"
    );
    assert_eq!(event["responseStatus"]["code"], json!(201));
}

// 5 ---------------------------------------------------------------------------

/// `tiergate serve --dry-run`: nothing denied, nothing patched, the
/// would-be decisions counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_server_dry_run_denies_and_patches_nothing() {
    let mut s = Scenario::new(
        "dryrun",
        2,
        "enforce",
        &config(2, "enforce", FIXES_ON),
        true,
        Webhooks::default(),
    )
    .await;
    s.register().await;
    let r = s.apply(&KUBECTL_ADMIN, &manifest("deployment-root.yaml"), &[]);
    assert!(r.ok, "{r:?}");
    // What would have been denied is shown as warnings.
    assert!(r.warnings().iter().any(|w| w == RUN_AS_NON_ROOT), "{r:?}");
    let live = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .expect("created");
    assert!(
        live["spec"]["template"]["spec"]["containers"][0]
            .get("securityContext")
            .is_none()
            && live["spec"]["template"]["spec"]
                .get("securityContext")
                .is_none_or(|v| v == &json!({})),
        "dry-run patched the object: {live:#}"
    );
    let metric = |webhook: &str, decision: &str| {
        s.tiergate.counter(
            "tiergate_admission_requests_total",
            &[
                ("webhook", webhook),
                ("kind", "Deployment"),
                ("operation", "CREATE"),
                ("decision", decision),
            ],
        )
    };
    assert_eq!(
        metric("validate", "would_deny"),
        1.0,
        "{}",
        s.tiergate.metrics()
    );
    assert_eq!(metric("mutate", "would_patch"), 1.0);
    assert_eq!(metric("validate", "deny"), 0.0);
    assert_eq!(metric("mutate", "patch"), 0.0);
    // Findings are counted as what they would be.
    assert!(
        s.tiergate.counter(
            "tiergate_rule_findings_total",
            &[("rule", "run-as-non-root"), ("action", "deny")]
        ) >= 1.0,
        "{}",
        s.tiergate.metrics()
    );
}

// 6 ---------------------------------------------------------------------------

/// `kubectl apply --dry-run=server` gives the verdict a real apply gives,
/// patch included, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06_kubectl_server_dry_run_matches_a_real_apply() {
    let mut s = Scenario::new(
        "kubectl-dry",
        2,
        "enforce",
        &config(2, "enforce", FIXES_ON),
        false,
        Webhooks::default(),
    )
    .await;
    s.register().await;

    // Denied: same message both ways, nothing stored.
    let bad = manifest("deployment-privileged.yaml");
    let dry = s.apply(&KUBECTL_ADMIN, &bad, &["--dry-run=server"]);
    assert!(!dry.ok && denied_by_tiergate(&dry.stderr), "{dry:?}");
    assert!(
        dry.stderr.contains("privileged (container \"app\""),
        "{dry:?}"
    );
    assert!(KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "rooted")
        .is_none());
    let real = s.apply(&KUBECTL_ADMIN, &bad, &[]);
    assert!(!real.ok, "{real:?}");
    assert_eq!(dry.stderr.trim(), real.stderr.trim());
    assert!(KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "rooted")
        .is_none());

    // Admitted with a patch: the dry-run answer shows the patched object,
    // nothing is stored, and the real apply stores exactly that.
    let good = manifest("deployment-root.yaml");
    let dry = s.apply(&KUBECTL_ADMIN, &good, &["--dry-run=server", "-o", "json"]);
    assert!(dry.ok, "{dry:?}");
    let dry_obj: Value = serde_json::from_str(&dry.stdout).expect("dry-run -o json");
    assert_eq!(
        dry_obj["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        json!(true)
    );
    assert!(KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .is_none());
    let real = s.apply(&KUBECTL_ADMIN, &good, &[]);
    assert!(real.ok, "{real:?}");
    let stored = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "shop")
        .expect("stored");
    assert_eq!(dry_obj["spec"], stored["spec"]);
    // Both dry runs were judged like real requests.
    assert_eq!(
        s.tiergate.counter(
            "tiergate_admission_requests_total",
            &[
                ("webhook", "validate"),
                ("kind", "Deployment"),
                ("decision", "deny")
            ]
        ),
        2.0
    );
}

// 7 ---------------------------------------------------------------------------

/// An ephemeral container added the way `kubectl debug` adds it (an update
/// of pods/ephemeralcontainers) is judged: a privileged debug container is
/// denied, a restricted one is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_ephemeral_containers_from_kubectl_debug_are_judged() {
    let mut s = Scenario::new(
        "debug",
        1,
        "enforce",
        &config(1, "enforce", ""),
        false,
        Webhooks::default(),
    )
    .await;
    s.register().await;
    let r = s.apply(&KUBECTL_ADMIN, &manifest("pod-tier1.yaml"), &[]);
    assert!(r.ok, "{r:?}");
    let image = "registry.example/debug:1.0";
    let r = KUBECTL_DEV.run(
        &[
            "debug",
            "web",
            "-n",
            &s.ns,
            "--image",
            image,
            "--profile=sysadmin",
            "-c",
            "dbg",
        ],
        None,
    );
    assert!(!r.ok, "a privileged debug container was admitted: {r:?}");
    assert!(denied_by_tiergate(&r.stderr), "{r:?}");
    assert!(
        r.stderr.contains(
            "privileged (container \"dbg\" must not set securityContext.privileged=true)"
        ),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("/spec/ephemeralContainers/0/securityContext/privileged"),
        "{r:?}"
    );
    let pod = KUBECTL_ADMIN.get_json(&s.ns, "pod", "web").expect("pod");
    assert!(pod["spec"].get("ephemeralContainers").is_none());
    assert_eq!(
        s.tiergate.counter(
            "tiergate_admission_requests_total",
            &[
                ("webhook", "validate"),
                ("operation", "UPDATE"),
                ("kind", "Pod"),
                ("decision", "deny")
            ]
        ),
        1.0,
        "{}",
        s.tiergate.metrics()
    );

    let r = KUBECTL_DEV.run(
        &[
            "debug",
            "web",
            "-n",
            &s.ns,
            "--image",
            image,
            "--profile=restricted",
            "-c",
            "dbg2",
        ],
        None,
    );
    assert!(r.ok, "a restricted debug container was denied: {r:?}");
    let pod = KUBECTL_ADMIN.get_json(&s.ns, "pod", "web").expect("pod");
    assert_eq!(pod["spec"]["ephemeralContainers"][0]["name"], json!("dbg2"));
}

// 8 ---------------------------------------------------------------------------

/// DELETE of an object tiergate would deny passes untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08_delete_of_a_judged_object_passes() {
    let mut s = Scenario::new(
        "delete",
        2,
        "enforce",
        &config(2, "enforce", ""),
        false,
        Webhooks {
            delete: true,
            ..Webhooks::default()
        },
    )
    .await;
    // Stored before tiergate watches the namespace.
    let m = manifest("deployment-privileged.yaml");
    assert!(s.apply(&KUBECTL_ADMIN, &m, &[]).ok);
    s.register().await;
    // It is judged now: an update is denied...
    let r = KUBECTL_ADMIN.run(
        &[
            "annotate",
            "-n",
            &s.ns,
            "deployment",
            "rooted",
            "e2e.tiergate.io/touched=yes",
        ],
        None,
    );
    assert!(!r.ok && denied_by_tiergate(&r.stderr), "{r:?}");
    // ...and the delete passes.
    let r = KUBECTL_DEV.run(&["delete", "-n", &s.ns, "deployment", "rooted"], None);
    assert!(r.ok, "{r:?}");
    assert!(KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "rooted")
        .is_none());
    for webhook in ["validate", "mutate"] {
        assert_eq!(
            s.tiergate.counter(
                "tiergate_admission_requests_total",
                &[
                    ("webhook", webhook),
                    ("operation", "DELETE"),
                    ("decision", "skip")
                ]
            ),
            1.0,
            "{webhook}: {}",
            s.tiergate.metrics()
        );
    }
}

/// An update that leaves what the rules read alone (a finalizer) is not
/// sent to tiergate at all (the webhooks' `not-unchanged-update`
/// matchCondition, as in deploy/), so a controller's bookkeeping on an
/// object stored before tiergate is not denied; a label change is judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08b_unchanged_updates_are_not_sent() {
    let mut s = Scenario::new(
        "unchanged",
        2,
        "enforce",
        &config(2, "enforce", ""),
        false,
        Webhooks::default(),
    )
    .await;
    let m = manifest("deployment-privileged.yaml");
    assert!(s.apply(&KUBECTL_ADMIN, &m, &[]).ok);
    s.register().await;
    let updates = |webhook: &str| {
        s.tiergate.counter(
            "tiergate_admission_requests_total",
            &[("webhook", webhook), ("operation", "UPDATE")],
        )
    };
    let before = (updates("validate"), updates("mutate"));
    let r = KUBECTL_ADMIN.run(
        &[
            "patch",
            "-n",
            &s.ns,
            "deployment",
            "rooted",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["e2e.tiergate.io/keep"]}}"#,
        ],
        None,
    );
    assert!(r.ok, "{r:?}");
    let stored = KUBECTL_ADMIN
        .get_json(&s.ns, "deployment", "rooted")
        .expect("the Deployment");
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!(["e2e.tiergate.io/keep"])
    );
    assert_eq!(
        (updates("validate"), updates("mutate")),
        before,
        "tiergate was called for an unchanged update:\n{}",
        s.tiergate.metrics()
    );
    // A label is read by the rules: judged, and denied at tier 2.
    let r = KUBECTL_ADMIN.run(
        &[
            "label",
            "-n",
            &s.ns,
            "deployment",
            "rooted",
            "e2e.tiergate.io/x=y",
        ],
        None,
    );
    assert!(!r.ok && denied_by_tiergate(&r.stderr), "{r:?}");
    assert_eq!(updates("validate"), before.0 + 1.0);
}

// 9 ---------------------------------------------------------------------------

/// A webhook that is down. With `failurePolicy: Fail` every matched write
/// is rejected: at once when the port refuses connections, after
/// `timeoutSeconds` (5) when it hangs. With `Ignore` the write is admitted
/// unjudged (after the timeout, per webhook, when it hangs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_webhook_down_fail_and_ignore() {
    for policy in ["Fail", "Ignore"] {
        let name = format!("down-{}", policy.to_ascii_lowercase());
        let mut s = Scenario::new(
            &name,
            1,
            "enforce",
            &config(1, "enforce", ""),
            false,
            Webhooks {
                failure_policy: policy,
                ..Webhooks::default()
            },
        )
        .await;
        s.register().await;
        s.tiergate.kill();
        let pod = manifest("pod-tier1.yaml");

        // Refused: nothing listens on the port.
        let t = Instant::now();
        let r = s.apply(&KUBECTL_ADMIN, &pod, &[]);
        let refused = t.elapsed();
        // Hung: the port accepts and never answers.
        let hung = HungPort::bind(s.tiergate.port);
        let t = Instant::now();
        let r2 = s.apply(&KUBECTL_ADMIN, &pod.replace("name: web", "name: web2"), &[]);
        let timed_out = t.elapsed();
        eprintln!(
            "e2e: failurePolicy {policy}: refused answered in {:.2}s, hung in {:.2}s\n  refused: {}\n  hung: {}",
            refused.as_secs_f64(),
            timed_out.as_secs_f64(),
            if r.ok { r.stdout.trim() } else { r.stderr.trim() },
            if r2.ok { r2.stdout.trim() } else { r2.stderr.trim() },
        );
        drop(hung);
        match policy {
            "Fail" => {
                assert!(!r.ok, "{r:?}");
                assert!(
                    r.stderr
                        .contains(&format!("failed calling webhook \"{MUTATE}\"")),
                    "{r:?}"
                );
                assert!(r.stderr.contains("connection refused"), "{r:?}");
                assert!(refused < Duration::from_secs(4), "{refused:?}");
                assert!(!r2.ok, "{r2:?}");
                assert!(
                    r2.stderr
                        .contains(&format!("failed calling webhook \"{MUTATE}\"")),
                    "{r2:?}"
                );
                assert!(
                    r2.stderr.contains("deadline exceeded")
                        || r2.stderr.contains("handshake timeout"),
                    "{r2:?}"
                );
                assert!(timed_out >= Duration::from_secs(5), "{timed_out:?}");
                assert!(KUBECTL_ADMIN.get_json(&s.ns, "pod", "web").is_none());
            }
            _ => {
                assert!(r.ok, "{r:?}");
                assert!(r2.ok, "{r2:?}");
                // Mutating then validating webhook, each waits its 5s.
                assert!(timed_out >= Duration::from_secs(10), "{timed_out:?}");
                assert!(KUBECTL_ADMIN.get_json(&s.ns, "pod", "web2").is_some());
            }
        }
    }
}

/// A port that accepts connections and never answers, until dropped.
struct HungPort {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HungPort {
    fn bind(port: u16) -> HungPort {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("binding the webhook port");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => held.push(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HungPort {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HungPort {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// 10 --------------------------------------------------------------------------

/// The restricted v1.37 fixtures, expanded from the repository's compact
/// copy (`tests/data/pss`) into `<dir>/pass` and `<dir>/fail`.
fn pss_fixtures(dir: &Path) -> PathBuf {
    let root = dir.join("restricted-v1.37");
    for (path, _, text) in crate::common::pss_fixtures() {
        let Some(rest) = path.strip_prefix("restricted/v1.37/") else {
            continue;
        };
        let file = root.join(rest);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("fixture dir");
        }
        std::fs::write(&file, text).expect("write fixture");
    }
    root
}

/// Offline verdicts: file -> denied.
fn offline_pss_verdicts(dirs: &[PathBuf]) -> BTreeMap<PathBuf, bool> {
    let out = Command::new(TIERGATE)
        .args(["check", "--pss", "restricted:v1.37", "-o", "json"])
        .args(dirs)
        .output()
        .expect("tiergate check");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tiergate check -o json: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let file = PathBuf::from(r["file"].as_str().expect("file"));
            let denied = r["findings"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["action"] == json!("deny")));
            (file, denied)
        })
        .collect()
}

/// The Pod Security Standards v1.37 fixtures, created through the apiserver
/// in a namespace whose rule set is exactly restricted (tier 2, enforce,
/// every non-PSS rule off, PSS v1.37), get the verdicts offline
/// `tiergate check --pss restricted:v1.37` gives, and those of the fixtures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_pss_fixtures_through_the_apiserver_match_offline_verdicts() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = pss_fixtures(tmp.path());
    assert!(
        root.join("pass").is_dir() && root.join("fail").is_dir(),
        "no restricted v1.37 fixtures in tests/data/pss"
    );
    let mut cfg = String::from("pssVersion: v1.37\nrules:\n");
    for rule in tiergate::policy::rules::ALL {
        if rule.pss.is_none() {
            cfg.push_str(&format!("  {}: {{action: off}}\n", rule.id));
        } else if rule.fix.exists() {
            cfg.push_str(&format!("  {}: {{fix: off}}\n", rule.id));
        }
    }
    let mut s = Scenario::new(
        "pss",
        2,
        "enforce",
        &config(2, "enforce", &cfg),
        false,
        Webhooks {
            mutate: false,
            ..Webhooks::default()
        },
    )
    .await;
    s.register().await;

    let dirs = [root.join("pass"), root.join("fail")];
    let offline = offline_pss_verdicts(&dirs);
    let pods: Api<DynamicObject> =
        Api::namespaced_with(admin().await, &s.ns, &ApiResource::erase::<Pod>(&()));
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect("fixture dir"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() > 50, "only {} fixtures", files.len());

    let mut mismatches = Vec::new();
    let mut other_errors = Vec::new();
    let mut invalid = Vec::new();
    let (mut admitted, mut denied) = (0, 0);
    for f in &files {
        let expect_denied = f.parent().and_then(Path::file_name) == Some("fail".as_ref());
        let text = std::fs::read_to_string(f).expect("fixture");
        let src = tiergate::manifest::parse_source(&f.display().to_string(), Some(f), &text)
            .expect("fixture parses");
        let mut obj = src
            .documents
            .into_iter()
            .find_map(|d| d.value)
            .expect("one Pod");
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("pod");
        let dir = if expect_denied { "fail" } else { "pass" };
        obj["metadata"]["name"] = json!(format!("{dir}-{}", stem.replace('_', "-")));
        obj["metadata"]["namespace"] = json!(s.ns);
        let dynobj: DynamicObject = serde_json::from_value(obj).expect("dynamic object");
        let live_denied = match pods.create(&PostParams::default(), &dynobj).await {
            Ok(_) => {
                admitted += 1;
                false
            }
            Err(kube::Error::Api(e)) if e.message.contains("violates tiergate") => {
                denied += 1;
                true
            }
            // The apiserver's own validation runs before validating
            // webhooks: an object it finds invalid never reaches tiergate.
            // That is a denial too, but not tiergate's: allowed only for
            // fixtures that must be denied and that tiergate denies offline.
            Err(kube::Error::Api(e)) if e.code == 422 => {
                let offline_denied = offline.get(f).copied() == Some(true);
                if !(expect_denied && offline_denied) {
                    other_errors.push(format!("{}: {}", f.display(), e.message));
                }
                invalid.push(format!(
                    "{}: {}",
                    f.file_name().and_then(|n| n.to_str()).unwrap_or(""),
                    e.message
                ));
                continue;
            }
            Err(e) => {
                other_errors.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        let off = offline.get(f).copied();
        if off != Some(live_denied) || live_denied != expect_denied {
            mismatches.push(format!(
                "{}: apiserver {}, offline {}, fixture expects {}",
                f.display(),
                if live_denied { "denied" } else { "admitted" },
                match off {
                    Some(true) => "denied",
                    Some(false) => "admitted",
                    None => "no verdict",
                },
                if expect_denied { "denied" } else { "admitted" },
            ));
        }
    }
    eprintln!(
        "e2e: PSS v1.37 fixtures through the apiserver: {admitted} admitted and {denied} denied by tiergate, {} refused as invalid by the apiserver before admission{}",
        invalid.len(),
        invalid.iter().map(|l| format!("\n  {l}")).collect::<String>()
    );
    assert!(admitted + denied + invalid.len() == files.len());
    assert!(
        other_errors.is_empty(),
        "the apiserver refused fixtures tiergate should have judged:\n{}",
        other_errors.join("\n")
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
