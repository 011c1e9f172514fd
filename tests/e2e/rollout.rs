//! Objects a controller makes, through a real kube-controller-manager
//! (deployment and replicaset controllers): a Deployment tiergate patched
//! rolls out once, its ReplicaSet and Pods are judged but never patched (so
//! the ReplicaSet's template stays the Deployment's: no new-ReplicaSet loop),
//! and when a controller's object is denied the owner's status says why
//! (`kubectl describe deployment`: condition Progressing, ReplicaSetCreateError).
//! Runs in the `--ignored` pass: the controller-manager reconciles every
//! Deployment of the shared cluster.
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

use crate::harness::{cluster, config, manifest, Scenario, Webhooks, KUBECTL_ADMIN};

/// Every finding of deployment-root.yaml at tier 2 fixable; `legacy` exempt
/// from `privileged` by its name (its ReplicaSets, named `legacy-<hash>`, are
/// not).
const CONFIG: &str = "rules:\n  run-as-non-root: {fix: on}\n  read-only-root-filesystem: {fix: on}\n\
tiers:\n  production:\n    resources:\n      requests: {cpu: 100m, memory: 128Mi}\n      limits: {cpu: '1', memory: 512Mi}\n\
exemptions:\n  - reason: legacy app, migrating\n    names: [legacy]\n    rules: [privileged, allow-privilege-escalation]\n";

async fn wait<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The pod template without the label the controller adds.
fn template_of(v: &Value) -> Value {
    let mut t = v["spec"]["template"].clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts kube-controller-manager, which reconciles every Deployment; run with --ignored --test-threads=1"]
async fn a_patched_deployment_rolls_out_once_and_owned_objects_are_not_patched() {
    let c = cluster();
    c.controller_manager().expect("kube-controller-manager");
    let mut s = Scenario::new(
        "rollout",
        2,
        "enforce",
        &config(2, "enforce", CONFIG),
        false,
        Webhooks::default(),
    )
    .await;
    s.register().await;
    let r = s.apply(&KUBECTL_ADMIN, &manifest("deployment-root.yaml"), &[]);
    assert!(r.ok, "{r:?}");
    let client = crate::harness::admin().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &s.ns);
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), &s.ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &s.ns);

    // The controller creates the ReplicaSet and its two Pods; tiergate
    // admits them unpatched (their template is the patched Deployment's).
    let rs = wait("one ReplicaSet with 2 Pods", 60, async || {
        let list = replicasets.list(&ListParams::default()).await.ok()?;
        let rs = list.items.first()?.clone();
        let n = pods.list(&ListParams::default()).await.ok()?.items.len();
        (n == 2).then_some(rs)
    })
    .await;
    let d = serde_json::to_value(deployments.get("shop").await.expect("deployment")).unwrap();
    let rs = serde_json::to_value(rs).unwrap();
    assert_eq!(
        template_of(&rs),
        template_of(&d),
        "ReplicaSet template differs from its Deployment's"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        json!(true),
        "the Deployment itself was patched"
    );
    // No loop: after a while there is still one ReplicaSet, and the
    // Deployment's generation has not moved.
    let generation = d["metadata"]["generation"].clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let n = replicasets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(n, 1, "the deployment controller created {n} ReplicaSets");
    let d = serde_json::to_value(deployments.get("shop").await.unwrap()).unwrap();
    assert_eq!(d["metadata"]["generation"], generation);
    // The audit judges the Deployment once: its ReplicaSet and Pods, made
    // by the controllers, are judged at their owner.
    let out = std::process::Command::new(crate::harness::TIERGATE)
        .args(crate::harness::audit_args(&s.ns))
        .output()
        .expect("tiergate audit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_slice(&out.stdout).expect("audit json");
    let kinds: Vec<&str> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"Deployment"), "{kinds:?}");
    assert!(
        !kinds.contains(&"ReplicaSet") && !kinds.contains(&"Pod"),
        "owned objects judged on their own: {kinds:?}"
    );
    assert!(
        stderr.contains("3 objects judged at their owner"),
        "{stderr}"
    );
    // tiergate patched the Deployment once and nothing it made.
    let patched = s.tiergate.counter("tiergate_patches_total", &[]);
    assert!(patched >= 1.0, "{patched}");
    let owned_patch = s
        .tiergate
        .log()
        .lines()
        .any(|l| l.contains("\"owner\":\"") && l.contains("\"decision\":\"patch\""));
    assert!(
        !owned_patch,
        "an owned object was patched:\n{}",
        s.tiergate.log()
    );

    // A Deployment admitted by an exemption for its name: its ReplicaSet is
    // denied, and the Deployment's condition tells the user why and where to
    // fix it.
    let legacy = manifest("deployment-privileged.yaml").replace("rooted", "legacy");
    let r = s.apply(&KUBECTL_ADMIN, &legacy, &[]);
    assert!(r.ok, "{r:?}");
    // (The deployment controller reports a failed ReplicaSet create as the
    // Progressing condition, reason ReplicaSetCreateError.)
    let message = wait(
        "the denial in the legacy Deployment's conditions",
        60,
        async || {
            let d = deployments.get("legacy").await.ok()?;
            let conds = d.status?.conditions?;
            conds
                .into_iter()
                .filter_map(|c| c.message)
                .find(|m| m.contains("violates tiergate"))
        },
    )
    .await;
    assert!(
        message.contains("violates tiergate tier 2")
            && message
                .contains("(created by Deployment \"legacy\": fix the template of its owner)")
            && message.contains("privileged"),
        "{message}"
    );
    eprintln!("e2e: what the owner of a denied ReplicaSet shows: {message}");
}
