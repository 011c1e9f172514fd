//! `tiergate scaffold` against the real apiserver (issue 16): every tier's
//! and kind's scaffold is accepted by `kubectl apply --dry-run=server -k`
//! (its kustomization, rendered by kubectl's kustomize) and stores nothing
//! but its Namespace, which namespaced objects need for real.
use std::process::Command;

use crate::harness::{KUBECTL_ADMIN, TIERGATE};

#[test]
fn every_scaffold_passes_server_side_dry_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for tier in 1..=5u8 {
        for kind in ["deployment", "statefulset", "cronjob"] {
            let name = format!("e2e-sc-{}-{tier}", &kind[..3]);
            let dir = tmp.path().join(&name);
            let t = tier.to_string();
            let mut cmd = Command::new(TIERGATE);
            cmd.args(["scaffold", &name, "--tier", &t, "--kind", kind, "--out"])
                .arg(&dir);
            if tier >= 4 {
                cmd.args(["--tenant", "acme"]);
            }
            let out = cmd.output().expect("tiergate scaffold");
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let ns = dir.join("namespace.yaml");
            let r = KUBECTL_ADMIN.run(&["apply", "-f", ns.to_str().expect("path")], None);
            assert!(r.ok, "{name}: creating the namespace: {}", r.stderr);
            let d = dir.to_str().expect("path");
            let r = KUBECTL_ADMIN.run(&["apply", "--dry-run=server", "-k", d], None);
            assert!(r.ok, "{name}: server-side dry-run failed:\n{}", r.stderr);
            let workload = match kind {
                "deployment" => "deployment.apps",
                "statefulset" => "statefulset.apps",
                _ => "cronjob.batch",
            };
            assert!(
                r.stdout
                    .contains(&format!("{workload}/{name} created (server dry run)")),
                "{name}: {}",
                r.stdout
            );
            // Nothing but the namespace was stored.
            let got = KUBECTL_ADMIN.run(
                &[
                    "get",
                    "all,configmaps,ingresses,hpa,pdb",
                    "-n",
                    &name,
                    "-o",
                    "name",
                ],
                None,
            );
            assert!(got.ok, "{name}: {}", got.stderr);
            assert!(
                !got.stdout.contains(&format!("/{name}\n"))
                    && !got.stdout.contains(&format!("/{name}-config")),
                "{name}: the dry run stored objects: {}",
                got.stdout
            );
        }
    }
}
