//! `deploy/` against the real apiserver (issue 6): `kubectl apply
//! --dry-run=server` of both rendered overlays (and of the Helm chart when
//! `target/tools/helm` is there, as `make deploy-check` leaves it) succeeds
//! and stores nothing. The CRD kinds (cert-manager, prometheus-operator) are
//! left out: this apiserver has no such CRDs.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{KUBECTL_ADMIN, TIERGATE};

const CRD_KINDS: &[&str] = &["ServiceMonitor", "PrometheusRule", "Issuer", "Certificate"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copy `deploy/` to a temporary directory and make the dev certificates
/// there, so the source tree is left alone.
fn deploy_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&root().join("deploy"), &tmp.path().join("deploy"));
    let out = Command::new(TIERGATE)
        .args([
            "certs",
            "--service",
            "tiergate",
            "--namespace",
            "tiergate-system",
            "--out",
        ])
        .arg(tmp.path().join("deploy/overlays/dev/certs"))
        .output()
        .expect("tiergate certs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// Split rendered YAML into (Namespace objects, other objects without CRD kinds).
fn split(rendered: &str) -> (Vec<Value>, Vec<Value>) {
    let src = tiergate::manifest::parse_source("rendered.yaml", None, rendered).expect("parse");
    let mut namespaces = Vec::new();
    let mut rest = Vec::new();
    for v in src.documents.into_iter().filter_map(|d| d.value) {
        match v["kind"].as_str().unwrap_or("") {
            "Namespace" => namespaces.push(v),
            k if CRD_KINDS.contains(&k) => {}
            _ => rest.push(v),
        }
    }
    (namespaces, rest)
}

fn list(items: Vec<Value>) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

fn server_dry_run(rendered: &str, what: &str) {
    let (namespaces, rest) = split(rendered);
    assert!(
        rest.len() > 10,
        "{what}: too few objects rendered ({})",
        rest.len()
    );
    // A dry-run Namespace is not stored, so namespaced objects need it for real.
    if namespaces.is_empty() {
        // (The chart renders no Namespace by default.)
        let r = KUBECTL_ADMIN.run(&["create", "namespace", "tiergate-system"], None);
        assert!(
            r.ok || r.stderr.contains("AlreadyExists"),
            "{what}: creating the namespace: {}",
            r.stderr
        );
    } else {
        // The chart's test may create the namespace at the same moment
        // (`apply` reads, then creates): apply again after AlreadyExists.
        let body = list(namespaces);
        let mut r = KUBECTL_ADMIN.run(&["apply", "-f", "-"], Some(&body));
        for _ in 0..3 {
            if r.ok || !r.stderr.contains("AlreadyExists") {
                break;
            }
            r = KUBECTL_ADMIN.run(&["apply", "-f", "-"], Some(&body));
        }
        assert!(r.ok, "{what}: creating the namespace: {}", r.stderr);
    }
    let r = KUBECTL_ADMIN.run(&["apply", "--dry-run=server", "-f", "-"], Some(&list(rest)));
    assert!(r.ok, "{what}: server-side dry-run failed:\n{}", r.stderr);
    assert!(
        r.stdout.contains("(server dry run)"),
        "{what}: {}",
        r.stdout
    );
    // Nothing stored.
    let got = KUBECTL_ADMIN.run(
        &[
            "get",
            "deployments,services,configmaps",
            "-n",
            "tiergate-system",
            "-o",
            "name",
        ],
        None,
    );
    assert!(
        !got.stdout.contains("deployment.apps/tiergate"),
        "{what}: the dry run stored objects: {}",
        got.stdout
    );
    let hooks = KUBECTL_ADMIN.run(
        &["get", "validatingwebhookconfigurations", "-o", "name"],
        None,
    );
    assert!(
        !hooks.stdout.contains("/tiergate\n") && !hooks.stdout.ends_with("/tiergate"),
        "{what}: {}",
        hooks.stdout
    );
}

#[test]
fn rendered_overlays_pass_server_side_dry_run() {
    let tmp = deploy_copy();
    for overlay in ["dev", "production"] {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(tmp.path().join("deploy/overlays").join(overlay))
            .output()
            .expect("kubectl kustomize");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        server_dry_run(&String::from_utf8_lossy(&out.stdout), overlay);
    }
}

#[test]
fn helm_chart_passes_server_side_dry_run() {
    let helm = root().join("target/tools/helm");
    if !helm.is_file() {
        eprintln!("SKIPPED: {} missing (make helm builds it)", helm.display());
        return;
    }
    let out = Command::new(&helm)
        .args(["template", "tiergate"])
        .arg(root().join("deploy/helm/tiergate"))
        .args(["-n", "tiergate-system", "--kube-version", "1.37.2", "-f"])
        .arg(root().join("deploy/helm/tiergate/ci/production-values.yaml"))
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server_dry_run(&String::from_utf8_lossy(&out.stdout), "helm");
}
