//! The background audit: once the caches sync, then every `audit.interval`
//! (or on `POST /audit`), the replica that holds the `tiergate-audit` Lease
//! audits the cluster ([`crate::audit`]) off the request path, records the
//! gauges, keeps the snapshot `/report` shows, and writes one PolicyReport
//! per namespace that has something to report (removing the others). The
//! Lease lives in tiergate's own namespace (`TIERGATE_NAMESPACE` or
//! `POD_NAMESPACE`, which `deploy/` sets); without one the audit is off.
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::http::AppState;
use crate::audit::report::{
    AuditMetrics, Snapshot, REPORT_GROUP, REPORT_KIND, REPORT_NAME, REPORT_PLURAL, REPORT_VERSION,
};
use crate::audit::{self, AuditOptions};
use crate::cluster::Caches;
use crate::config::AuditSettings;

/// The Lease one replica holds to audit.
pub const LEASE: &str = "tiergate-audit";

/// What the admin port reads of the audit.
#[derive(Default)]
pub struct AuditState {
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    pub trigger: Notify,
    /// Whether this replica audits at all (it may still not be the leader).
    pub running: std::sync::atomic::AtomicBool,
}

impl AuditState {
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        match self.snapshot.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, s: Snapshot) {
        let mut g = match self.snapshot.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Some(Arc::new(s));
    }
}

/// tiergate's own namespace, where the Lease is.
pub fn own_namespace() -> Option<String> {
    std::env::var("TIERGATE_NAMESPACE")
        .or_else(|_| std::env::var("POD_NAMESPACE"))
        .ok()
        .filter(|n| !n.is_empty())
}

/// Start the audit loop, when it is on and has a namespace for its Lease.
pub fn spawn(
    client: Client,
    caches: Arc<Caches>,
    state: Arc<AppState>,
    settings: AuditSettings,
    metrics: AuditMetrics,
) -> Option<tokio::task::JoinHandle<()>> {
    if !settings.enabled {
        info!("the background audit is off (config audit.enabled)");
        return None;
    }
    let Some(ns) = own_namespace() else {
        info!("the background audit is off: set TIERGATE_NAMESPACE (or POD_NAMESPACE) to the namespace of its Lease");
        return None;
    };
    state
        .audit
        .running
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Some(tokio::spawn(run_loop(
        client, caches, state, settings, metrics, ns,
    )))
}

/// Hold `name` (a Lease in `namespace`) when this replica can: whether it
/// does, as it changes; the task that keeps it; this replica's identity.
/// Retries until the Lease can be used (RBAC).
pub(super) async fn lease(
    client: &Client,
    namespace: &str,
    name: &str,
) -> (
    tokio::sync::watch::Receiver<bool>,
    tokio::task::JoinHandle<
        Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
    >,
    String,
) {
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("tiergate-{}", std::process::id()));
    let identity = format!("{identity}-{}", std::process::id());
    let manager = loop {
        match LeaseManagerBuilder::new(client.clone(), name)
            .with_namespace(namespace)
            .with_identity(&identity)
            .with_duration(15)
            .with_grace(5)
            .build()
            .await
        {
            Ok(m) => break m,
            Err(e) => {
                warn!(error = %e, namespace, lease = name, "cannot use the Lease; retrying in 10 s (RBAC: leases get/create/update/patch in this namespace)");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    let (leader, task) = manager.watch().await;
    (leader, task, identity)
}

async fn run_loop(
    client: Client,
    caches: Arc<Caches>,
    state: Arc<AppState>,
    settings: AuditSettings,
    metrics: AuditMetrics,
    namespace: String,
) {
    while !caches.synced() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut leader, _lease_task, identity) = lease(&client, &namespace, LEASE).await;
    let opts = AuditOptions {
        namespace: None,
        tier: None,
        exclude: audit::EXCLUDED.iter().map(|s| s.to_string()).collect(),
        page: 500,
        sync_timeout: Duration::from_secs(60),
        skip_kinds: vec!["Secret".to_string()],
        qps: settings.qps.max(1),
        // Bounded: at most the report's cap of failing objects per
        // namespace is kept (each has at least one result); all counted.
        keep_per_namespace: Some(settings.max_results),
    };
    let mut crd_missing_said = false;
    loop {
        if !*leader.borrow_and_update() {
            metrics.leader.set(0);
            if leader.changed().await.is_err() {
                return;
            }
            continue;
        }
        metrics.leader.set(1);
        info!(identity, "audit leader: auditing the cluster");
        let active = state.active();
        let engine = active.engine.clone();
        let t0 = Instant::now();
        let result =
            audit::run_with(&client, &caches, &engine, &opts, active.verifier.as_ref()).await;
        let finished = crate::clock::now().unwrap_or_default();
        let took = t0.elapsed().as_secs_f64();
        metrics.record(&result, finished, took);
        let snap = Snapshot::of(&result, settings.max_results, finished, took);
        let not_ready = snap
            .namespaces
            .values()
            .filter(|n| !n.readiness.ready())
            .count();
        if let Err(e) = write_reports(&client, &snap, finished).await {
            match e {
                ReportError::NoCrd if !crd_missing_said => {
                    crd_missing_said = true;
                    info!("the PolicyReport CRD (wgpolicyk8s.io) is not installed: audit results are in /report and the metrics only");
                }
                ReportError::NoCrd => {}
                ReportError::Api(e) => {
                    warn!(error = %e, "writing the PolicyReports failed; retried next audit")
                }
            }
        }
        info!(
            objects = snap.objects,
            namespaces = snap.namespaces.len(),
            not_ready,
            duration_seconds = took,
            "audit finished"
        );
        state.audit.set(snap);
        drop(result);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(settings.interval.0.max(1) as u64)) => {}
            _ = state.audit.trigger.notified() => {}
            r = leader.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

enum ReportError {
    NoCrd,
    Api(kube::Error),
}

/// Apply each namespace's report (server-side apply, field manager
/// `tiergate`), and delete tiergate's reports in namespaces with nothing to
/// report.
async fn write_reports(client: &Client, snap: &Snapshot, now: i64) -> Result<(), ReportError> {
    let ar = audit::api_resource(REPORT_GROUP, REPORT_VERSION, REPORT_KIND, REPORT_PLURAL);
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let existing = match all
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tiergate"))
        .await
    {
        Ok(l) => l,
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(ReportError::NoCrd),
        Err(e) => return Err(ReportError::Api(e)),
    };
    let reports = snap.policy_reports(now);
    let pp = PatchParams::apply("tiergate").force();
    for (ns, report) in &reports {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        api.patch(REPORT_NAME, &pp, &Patch::Apply(report))
            .await
            .map_err(ReportError::Api)?;
    }
    for old in existing.items {
        let Some(ns) = old.metadata.namespace.as_deref() else {
            continue;
        };
        if !reports.contains_key(ns) && old.metadata.name.as_deref() == Some(REPORT_NAME) {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            if let Err(e) = api.delete(REPORT_NAME, &DeleteParams::default()).await {
                warn!(namespace = ns, error = %e, "removing a PolicyReport that has nothing left to report");
            }
        }
    }
    Ok(())
}
