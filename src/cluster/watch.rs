//! The watch tasks that keep the caches, and their metrics. Namespaces,
//! ResourceQuotas and LimitRanges are watched as metadata only
//! (`PartialObjectMeta`, kube's metadata watch).
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Client;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::store::CacheWriter;
use super::summary::{summarize_event, Payload, Summarize, Summary, TierException};
use super::{Caches, Writers};

/// `tiergate_cluster_cache_synced{resource}` and
/// `tiergate_cluster_watch_errors_total{resource}`.
#[derive(Clone)]
pub struct CacheMetrics {
    pub synced: IntGaugeVec,
    pub watch_errors: IntCounterVec,
}

/// The `resource` label values.
pub const RESOURCES: [&str; 9] = [
    "namespaces",
    "networkpolicies",
    "resourcequotas",
    "limitranges",
    "poddisruptionbudgets",
    "horizontalpodautoscalers",
    "serviceaccounts",
    "clusterroles",
    "tierexceptions",
];

impl CacheMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let synced = IntGaugeVec::new(
            Opts::new(
                "tiergate_cluster_cache_synced",
                "1 once the cluster cache of a resource has listed (it keeps serving through watch errors).",
            ),
            &["resource"],
        )?;
        let watch_errors = IntCounterVec::new(
            Opts::new(
                "tiergate_cluster_watch_errors_total",
                "Watch errors of the cluster caches, by resource (each is retried with backoff).",
            ),
            &["resource"],
        )?;
        for r in RESOURCES {
            synced.with_label_values(&[r]).set(0);
            watch_errors.with_label_values(&[r]);
        }
        Ok(CacheMetrics {
            synced,
            watch_errors,
        })
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.synced.clone()))?;
        registry.register(Box::new(self.watch_errors.clone()))
    }
}

/// `tiergate_exceptions` (TierExceptions that apply now, by namespace) and
/// `tiergate_exception_expiry_timestamp_seconds{namespace,name}` (when each
/// valid one ends; exceptions are few, so this cardinality is fine), read
/// from the cache at every scrape: "live" depends on the time of the scrape.
pub struct ExceptionMetrics {
    caches: Arc<Caches>,
    live: IntGaugeVec,
    expiry: IntGaugeVec,
}

impl ExceptionMetrics {
    pub fn new(caches: Arc<Caches>) -> Result<Self, prometheus::Error> {
        Ok(ExceptionMetrics {
            caches,
            live: IntGaugeVec::new(
                Opts::new(
                    "tiergate_exceptions",
                    "TierExceptions that apply now (valid and not expired), by namespace.",
                ),
                &["namespace"],
            )?,
            expiry: IntGaugeVec::new(
                Opts::new(
                    "tiergate_exception_expiry_timestamp_seconds",
                    "When each valid TierException ends (Unix time).",
                ),
                &["namespace", "name"],
            )?,
        })
    }

    /// Refill the gauges from the cache at `now`.
    fn refresh(&self, now: i64) {
        self.live.reset();
        self.expiry.reset();
        for s in self.caches.exceptions.all() {
            let Some(e) = &s.payload.0 else { continue };
            let ns = s.namespace.as_deref().unwrap_or("");
            self.expiry.with_label_values(&[ns, &s.name]).set(e.expires);
            if now < e.expires {
                self.live.with_label_values(&[ns]).inc();
            }
        }
    }
}

impl prometheus::core::Collector for ExceptionMetrics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        let mut d = self.live.desc();
        d.extend(self.expiry.desc());
        d
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let now = crate::clock::now().unwrap_or_default();
        self.refresh(now);
        let mut m = self.live.collect();
        m.extend(self.expiry.collect());
        m
    }
}

/// The running watch tasks; dropping this stops them.
pub struct Watches {
    pub caches: Arc<Caches>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watches {
    /// Stop the watch tasks.
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start one watch task per resource in the current tokio runtime.
pub fn spawn(client: Client, metrics: CacheMetrics) -> Watches {
    let (caches, w) = Caches::new();
    let Writers {
        namespaces,
        network_policies,
        resource_quotas,
        limit_ranges,
        pdbs,
        hpas,
        service_accounts,
        cluster_roles,
        exceptions,
    } = w;
    let cfg = watcher::Config::default();
    let tasks = vec![
        tokio::spawn(run(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                cfg.clone(),
            ),
            namespaces,
            metrics.clone(),
        )),
        tokio::spawn(run(
            watcher(Api::<NetworkPolicy>::all(client.clone()), cfg.clone()),
            network_policies,
            metrics.clone(),
        )),
        tokio::spawn(run(
            watcher(
                Api::<PartialObjectMeta<ResourceQuota>>::all(client.clone()),
                cfg.clone(),
            ),
            resource_quotas,
            metrics.clone(),
        )),
        tokio::spawn(run(
            watcher(
                Api::<PartialObjectMeta<LimitRange>>::all(client.clone()),
                cfg.clone(),
            ),
            limit_ranges,
            metrics.clone(),
        )),
        tokio::spawn(run(
            watcher(Api::<PodDisruptionBudget>::all(client.clone()), cfg.clone()),
            pdbs,
            metrics.clone(),
        )),
        tokio::spawn(run(
            watcher(
                Api::<HorizontalPodAutoscaler>::all(client.clone()),
                cfg.clone(),
            ),
            hpas,
            metrics.clone(),
        )),
        tokio::spawn(run(
            watcher(Api::<ServiceAccount>::all(client.clone()), cfg.clone()),
            service_accounts,
            metrics.clone(),
        )),
        tokio::spawn(run(
            watcher(Api::<ClusterRole>::all(client.clone()), cfg.clone()),
            cluster_roles,
            metrics.clone(),
        )),
        tokio::spawn(run(
            watcher(Api::<TierException>::all(client), cfg),
            exceptions,
            metrics,
        )),
    ];
    Watches { caches, tasks }
}

/// Feed one watch stream into its cache until the task is aborted. The
/// watcher's default backoff spaces out the retries after errors.
async fn run<K, S>(stream: S, mut writer: CacheWriter<K::Kept>, metrics: CacheMetrics)
where
    K: Summarize + Clone + Debug + DeserializeOwned + Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let resource = <K::Kept as Payload>::RESOURCE;
    let stream = stream.default_backoff();
    futures::pin_mut!(stream);
    let mut first = true;
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                let ev: watcher::Event<Summary<K::Kept>> = summarize_event(ev);
                if writer.apply(&ev) {
                    metrics.synced.with_label_values(&[resource]).set(1);
                    if first {
                        info!(resource, "cluster cache synced");
                        first = false;
                    }
                }
            }
            // A CRD that is not installed: no such object can exist, so
            // the cache is known empty (a relist fills it once it is).
            Err(watcher::Error::InitialListFailed(kube::Error::Api(s)))
                if s.code == 404 && <K::Kept as Payload>::OPTIONAL =>
            {
                if !writer.cache_synced() {
                    writer.apply(&watcher::Event::Init);
                    writer.apply(&watcher::Event::InitDone);
                    metrics.synced.with_label_values(&[resource]).set(1);
                    warn!(resource, "its CRD is not installed (deploy/ ships it): the cache is empty until it is");
                }
            }
            Err(e) => {
                metrics.watch_errors.with_label_values(&[resource]).inc();
                warn!(resource, error = %e, "cluster watch error; retrying with backoff, the cache keeps serving");
            }
        }
    }
    warn!(resource, "cluster watch stream ended");
}
