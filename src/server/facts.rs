//! `admissionPolicies: hybrid` and `managed`: the replica that holds the
//! `tiergate-namespace-facts` Lease keeps a `NamespaceFacts` object
//! ([`crate::export::facts`]) in every namespace, from the watch caches
//! the webhook judges by, so the admission policies of the rules that read
//! cluster facts (PDBs, HPAs, quotas, NetworkPolicies, ServiceAccounts)
//! judge the same facts in the apiserver. It writes a namespace's object
//! (server-side apply, field manager `tiergate`) once the caches have
//! synced and whenever its facts change (checked every second, and only
//! when a cache it reads has changed), again on becoming leader and every
//! 10 minutes (so a hand edit is put back). The namespaces the audit leaves out
//! ([`crate::audit::EXCLUDED`]) get none: no policy is bound there.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::Client;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde_json::Value;
use tracing::{info, warn};

use super::http::AppState;
use crate::cluster::Caches;
use crate::export::facts;
use crate::policy::config::AdmissionPolicies;

/// The Lease one replica holds to write the facts.
pub const LEASE: &str = "tiergate-namespace-facts";
/// How often every object is applied again with no change seen.
const REPAIR: Duration = Duration::from_secs(600);
/// How often the caches are compared with what was written.
const TICK: Duration = Duration::from_secs(1);
/// How long a namespace whose object could not be written waits before
/// the next try (one that is being deleted refuses new objects until it
/// is gone).
const RETRY: Duration = Duration::from_secs(30);

/// `tiergate_namespace_facts_*`.
#[derive(Clone)]
pub struct FactsMetrics {
    writes: IntCounterVec,
    objects: IntGauge,
}

impl FactsMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let writes = IntCounterVec::new(
            Opts::new(
                "tiergate_namespace_facts_writes_total",
                "NamespaceFacts objects applied by the leader, by result (ok or error).",
            ),
            &["result"],
        )?;
        let objects = IntGauge::new(
            "tiergate_namespace_facts_objects",
            "Namespaces whose NamespaceFacts object is in step with the caches.",
        )?;
        registry.register(Box::new(writes.clone()))?;
        registry.register(Box::new(objects.clone()))?;
        Ok(FactsMetrics { writes, objects })
    }
}

fn wanted(mode: AdmissionPolicies) -> bool {
    matches!(mode, AdmissionPolicies::Hybrid | AdmissionPolicies::Managed)
}

/// Start the loop (it waits for hybrid or managed mode and the Lease);
/// `None` without a namespace for the Lease.
pub fn spawn(
    client: Client,
    caches: Arc<Caches>,
    state: Arc<AppState>,
    metrics: FactsMetrics,
) -> Option<tokio::task::JoinHandle<()>> {
    let Some(ns) = super::audit::own_namespace() else {
        if wanted(state.active().engine.config().admission_policies) {
            warn!("admissionPolicies: hybrid and managed need TIERGATE_NAMESPACE (or POD_NAMESPACE) for the namespace facts' Lease: the facts are not written, and the policies of the rules that read them refuse writes");
        }
        return None;
    };
    Some(tokio::spawn(run_loop(client, caches, state, metrics, ns)))
}

async fn run_loop(
    client: Client,
    caches: Arc<Caches>,
    state: Arc<AppState>,
    metrics: FactsMetrics,
    ns: String,
) {
    while !wanted(state.active().engine.config().admission_policies) {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (mut leader, _lease_task, identity) = super::audit::lease(&client, &ns, LEASE).await;
    let ar = crate::audit::api_resource(facts::GROUP, facts::VERSION, facts::KIND, facts::PLURAL);
    let pp = PatchParams::apply("tiergate").force();
    // What each namespace's object was last applied as; when a write last
    // failed.
    let mut written: BTreeMap<String, Value> = BTreeMap::new();
    let mut failed_at: BTreeMap<String, Instant> = BTreeMap::new();
    let mut since = Instant::now();
    // The caches' generation when every object was last in step with them:
    // nothing to compute again until it changes.
    let mut in_step: Option<u64> = None;
    loop {
        let leading = *leader.borrow_and_update();
        let on = wanted(state.active().engine.config().admission_policies);
        if !leading || !on || since.elapsed() >= REPAIR {
            written.clear();
            in_step = None;
            since = Instant::now();
        }
        // Read before the objects are made: a change while they are leaves
        // a stale generation, so the next tick looks again.
        let generation = caches.facts_generation();
        let changed = in_step != Some(generation) || !failed_at.is_empty();
        if leading && on && caches.synced() && changed {
            let (ok, failed) =
                write_changed(&client, &ar, &pp, &caches, &mut written, &mut failed_at).await;
            if ok > 0 {
                info!(identity, namespaces = ok, "namespace facts written");
            }
            metrics.writes.with_label_values(&["ok"]).inc_by(ok as u64);
            if failed > 0 {
                metrics
                    .writes
                    .with_label_values(&["error"])
                    .inc_by(failed as u64);
            }
            metrics.objects.set(written.len() as i64);
            in_step = (failed == 0 && failed_at.is_empty()).then_some(generation);
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            r = leader.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

/// Apply the object of every namespace whose facts changed since `written`
/// (not again within [`RETRY`] of a failure); forget the namespaces that
/// are gone. (applied, failed).
async fn write_changed(
    client: &Client,
    ar: &kube::api::ApiResource,
    pp: &PatchParams,
    caches: &Caches,
    written: &mut BTreeMap<String, Value>,
    failed_at: &mut BTreeMap<String, Instant>,
) -> (usize, usize) {
    let wanted = caches.facts_objects(crate::audit::EXCLUDED);
    let names: std::collections::BTreeSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    written.retain(|n, _| names.contains(n.as_str()));
    failed_at.retain(|n, at| names.contains(n.as_str()) && at.elapsed() < RETRY);
    let (mut ok, mut failed) = (0, 0);
    for (name, obj) in wanted {
        if written.get(&name) == Some(&obj) || failed_at.contains_key(&name) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &name, ar);
        match api.patch(facts::NAME, pp, &Patch::Apply(&obj)).await {
            Ok(_) => {
                ok += 1;
                written.insert(name, obj);
            }
            Err(e) => {
                failed += 1;
                warn!(namespace = name, error = %e, "writing the namespace facts failed; retrying in 30 s (the NamespaceFacts CRD, deploy/base/crd-namespacefacts.yaml, and RBAC: namespacefacts get, create, patch)");
                failed_at.insert(name, Instant::now());
            }
        }
    }
    (ok, failed)
}
