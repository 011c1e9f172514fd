//! Resident memory of the cluster caches with 10,000 Namespaces and 10,000
//! NetworkPolicies (plus a ResourceQuota, a LimitRange and a PDB for every
//! tenth namespace), filled with synthetic watcher events through the same
//! summarise-and-apply path as the watch tasks. Reports VmRSS from
//! /proc/self/status before and after, and the cost of a request's lookup.
//!
//! `cargo run --release --example cluster_memory [namespaces] [netpols]`
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use serde_json::json;
use tiergate::admission::{AdmissionRequest, ContextSource, ReviewBuilder};
use tiergate::cluster::summary::summarize_event;
use tiergate::cluster::{Caches, ClusterSource};
use tiergate::policy::PolicyConfig;

/// mimalloc, as in the binary, counting the live heap bytes.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n_ns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let n_np: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let cfg = PolicyConfig::default();

    let (caches, mut w) = Caches::new();
    let src = ClusterSource::new(caches.clone());
    let baseline = rss_kib();
    let live0 = LIVE.load(Ordering::Relaxed);

    // Objects as the apiserver sends them (labels, annotations, managedFields),
    // summarised one by one as the watch task does.
    let t0 = Instant::now();
    w.namespaces.apply(&Event::Init);
    for i in 0..n_ns {
        let meta: PartialObjectMeta<Namespace> = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": format!("team-{i:05}"), "uid": format!("00000000-0000-0000-0000-{i:012}"),
                "resourceVersion": format!("{}", 1000 + i),
                "labels": {"tiergate.io/tier": format!("{}", 1 + i % 5), "tiergate.io/mode": "enforce",
                           "kubernetes.io/metadata.name": format!("team-{i:05}"),
                           "team": format!("team-{}", i % 97), "cost-center": "cc-1234"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\"}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {}}}}]}
        }))
        .expect("namespace");
        w.namespaces.apply(&summarize_event(Event::InitApply(meta)));
    }
    w.namespaces.apply(&Event::InitDone);
    w.network_policies.apply(&Event::Init);
    for i in 0..n_np {
        let ns = format!("team-{:05}", i % n_ns.max(1));
        let np: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": format!("default-deny-{i}"), "namespace": ns,
                "uid": format!("10000000-0000-0000-0000-{i:012}"), "resourceVersion": "1",
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "networking.k8s.io/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:podSelector": {}}}}]},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
        }))
        .expect("netpol");
        w.network_policies
            .apply(&summarize_event(Event::InitApply(np)));
    }
    w.network_policies.apply(&Event::InitDone);
    let (mut rq, mut lr, mut pdb) = (Vec::new(), Vec::new(), Vec::new());
    for i in (0..n_ns).step_by(10) {
        let ns = format!("team-{i:05}");
        rq.push(
            serde_json::from_value::<PartialObjectMeta<ResourceQuota>>(json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": "compute", "namespace": ns}}))
            .expect("quota"),
        );
        lr.push(
            serde_json::from_value::<PartialObjectMeta<LimitRange>>(json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": "defaults", "namespace": ns}}))
            .expect("limits"),
        );
        pdb.push(
            serde_json::from_value::<PodDisruptionBudget>(json!({
                "metadata": {"name": "web", "namespace": ns},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}))
            .expect("pdb"),
        );
    }
    w.resource_quotas.apply(&Event::Init);
    for o in rq {
        w.resource_quotas
            .apply(&summarize_event(Event::InitApply(o)));
    }
    w.resource_quotas.apply(&Event::InitDone);
    w.limit_ranges.apply(&Event::Init);
    for o in lr {
        w.limit_ranges.apply(&summarize_event(Event::InitApply(o)));
    }
    w.limit_ranges.apply(&Event::InitDone);
    w.pdbs.apply(&Event::Init);
    for o in pdb {
        w.pdbs.apply(&summarize_event(Event::InitApply(o)));
    }
    w.pdbs.apply(&Event::InitDone);
    let fill = t0.elapsed();
    let filled = rss_kib();
    let live1 = LIVE.load(Ordering::Relaxed);
    assert!(src.ready());

    // The request path: one lookup per request.
    let n_req = 100_000usize;
    let reqs: Vec<AdmissionRequest> = (0..100)
        .map(|i| {
            let ns = format!("team-{:05}", (i * 97) % n_ns.max(1));
            let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": ns}});
            AdmissionRequest::from_body(&ReviewBuilder::new("u", "CREATE", deploy).body())
                .expect("request")
        })
        .collect();
    let t1 = Instant::now();
    let mut known = 0usize;
    for i in 0..n_req {
        let r = src.context_within(&reqs[i % reqs.len()], &cfg, Duration::ZERO);
        known += usize::from(
            r.ctx
                .facts
                .default_deny_policies
                .known()
                .is_some_and(|v| !v.is_empty()),
        );
    }
    let per_req = t1.elapsed() / n_req as u32;
    let after_requests = rss_kib();

    let mb = |k: u64| k as f64 / 1024.0;
    println!(
        "namespaces={n_ns} networkpolicies={n_np} quotas/limitranges/pdbs={}",
        n_ns.div_ceil(10)
    );
    println!("rss baseline (empty caches): {:.1} MiB", mb(baseline));
    println!(
        "rss filled:                  {:.1} MiB (+{:.1} MiB, {:.2}x baseline)",
        mb(filled),
        mb(filled.saturating_sub(baseline)),
        filled as f64 / baseline.max(1) as f64
    );
    println!("rss after {n_req} lookups:  {:.1} MiB", mb(after_requests));
    let objs = (n_ns + n_np + 3 * n_ns.div_ceil(10)).max(1) as f64;
    println!(
        "rss per object: {:.0} bytes (includes allocator retention of the parse garbage)",
        (filled.saturating_sub(baseline) * 1024) as f64 / objs
    );
    println!(
        "live heap held by the caches: {:.1} MiB, {:.0} bytes per object",
        live1.saturating_sub(live0) as f64 / 1048576.0,
        live1.saturating_sub(live0) as f64 / objs
    );
    println!("fill time: {fill:?}; context per request: {per_req:?} ({known} with a default deny)");
}
