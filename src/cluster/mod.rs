//! Cluster facts from watch caches: namespace tiers, modes and labels, and the
//! NetworkPolicies, ResourceQuotas, LimitRanges, PodDisruptionBudgets,
//! HorizontalPodAutoscalers and ServiceAccounts of
//! each namespace, and the ClusterRoles (whether each is cluster-admin in all
//! but name), kept by kube-rs watchers and read in O(1) per request with
//! no API call on the request path: a slow API lookup inside admission
//! would stall every write of the cluster.
//!
//! - [`summary`]: what is kept of each object (a name and one small fact,
//!   never the whole object), as kube [`Lookup`](kube::runtime::reflector::Lookup)
//!   types in ordinary reflector stores.
//! - [`store`]: a reflector store plus an index by namespace.
//! - [`watch`]: the watchers (Namespaces, ResourceQuotas and LimitRanges as
//!   metadata only), their backoff, and the cache metrics.
//! - [`ClusterSource`]: the admission [`ContextSource`] that reads them.
//!
//! Readiness: not ready until every cache has listed once. After that a watch
//! error keeps the last state serving (the watcher backs off and relists; a
//! relist replaces the cache whole when it completes), and readiness stays
//! true: turning every replica unready during an apiserver restart would
//! only make the webhook fail closed for no gain.
use std::sync::Arc;
use std::time::Duration;

use crate::admission::context::resolve_request;
use crate::admission::{AdmissionRequest, ContextSource, Lookup, ResolvedContext};
use crate::policy::context::{HpaFact, PdbFact, SaFact};
use crate::policy::namespace::{is_namespace_kind, subject_namespace};
use crate::policy::{Fact, NamespaceFacts, PolicyConfig};

pub mod store;
pub mod summary;
pub mod watch;

use store::{cache, Cache, CacheWriter};
use summary::{
    AdminRole, DefaultDeny, Excepts, HpaTarget, Limits, NsLabels, PdbSelector, Quota, SaAutomount,
};

pub use watch::{spawn, CacheMetrics, ExceptionMetrics, Watches};

/// The audit annotation that says where the context came from when the
/// namespace was not in the cache.
pub const CONTEXT_ANNOTATION: &str = "context";

/// Every cache tiergate keeps.
pub struct Caches {
    pub namespaces: Arc<Cache<NsLabels>>,
    pub network_policies: Arc<Cache<DefaultDeny>>,
    pub resource_quotas: Arc<Cache<Quota>>,
    pub limit_ranges: Arc<Cache<Limits>>,
    pub pdbs: Arc<Cache<PdbSelector>>,
    pub hpas: Arc<Cache<HpaTarget>>,
    pub service_accounts: Arc<Cache<SaAutomount>>,
    pub cluster_roles: Arc<Cache<AdminRole>>,
    pub exceptions: Arc<Cache<Excepts>>,
    /// The admin-equivalent ClusterRoles' names at a cache generation: the
    /// fact is cluster-wide and read by every request, the scan only when
    /// the ClusterRoles change.
    admin_roles: std::sync::Mutex<(u64, Vec<String>)>,
}

/// The write sides, one per watch task.
pub struct Writers {
    pub namespaces: CacheWriter<NsLabels>,
    pub network_policies: CacheWriter<DefaultDeny>,
    pub resource_quotas: CacheWriter<Quota>,
    pub limit_ranges: CacheWriter<Limits>,
    pub pdbs: CacheWriter<PdbSelector>,
    pub hpas: CacheWriter<HpaTarget>,
    pub service_accounts: CacheWriter<SaAutomount>,
    pub cluster_roles: CacheWriter<AdminRole>,
    pub exceptions: CacheWriter<Excepts>,
}

impl Caches {
    /// Empty, unsynced caches and their writers.
    pub fn new() -> (Arc<Caches>, Writers) {
        let (namespaces, ns_w) = cache();
        let (network_policies, np_w) = cache();
        let (resource_quotas, rq_w) = cache();
        let (limit_ranges, lr_w) = cache();
        let (pdbs, pdb_w) = cache();
        let (hpas, hpa_w) = cache();
        let (service_accounts, sa_w) = cache();
        let (cluster_roles, cr_w) = cache();
        let (exceptions, ex_w) = cache();
        (
            Arc::new(Caches {
                namespaces,
                network_policies,
                resource_quotas,
                limit_ranges,
                pdbs,
                hpas,
                service_accounts,
                cluster_roles,
                exceptions,
                admin_roles: std::sync::Mutex::new((u64::MAX, Vec::new())),
            }),
            Writers {
                namespaces: ns_w,
                network_policies: np_w,
                resource_quotas: rq_w,
                limit_ranges: lr_w,
                pdbs: pdb_w,
                hpas: hpa_w,
                service_accounts: sa_w,
                cluster_roles: cr_w,
                exceptions: ex_w,
            },
        )
    }

    /// Whether every cache has listed once.
    pub fn synced(&self) -> bool {
        self.namespaces.synced()
            && self.network_policies.synced()
            && self.resource_quotas.synced()
            && self.limit_ranges.synced()
            && self.pdbs.synced()
            && self.hpas.synced()
            && self.service_accounts.synced()
            && self.cluster_roles.synced()
            && self.exceptions.synced()
    }

    /// The facts of a cluster-scoped object: only the cluster-wide ones are
    /// known (it is in no namespace).
    pub fn cluster_facts(&self) -> NamespaceFacts {
        NamespaceFacts {
            admin_cluster_roles: self.admin_cluster_roles(),
            ..NamespaceFacts::default()
        }
    }

    /// The names of the ClusterRoles that are cluster-admin in all but
    /// name; unknown until their cache has synced.
    fn admin_cluster_roles(&self) -> Fact<Vec<String>> {
        let c = &self.cluster_roles;
        if !c.synced() {
            return Fact::Unknown;
        }
        // The generation is read before the scan: a change during it leaves
        // a stale generation in the memo, so the next call scans again.
        let generation = c.generation();
        let mut memo = match self.admin_roles.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if memo.0 != generation {
            *memo = (generation, c.names_where(|r: &AdminRole| r.0));
        }
        Fact::Known(memo.1.clone())
    }

    /// The namespace facts the caches know: each fact is known (possibly
    /// empty) once its cache has synced, unknown before.
    pub fn facts(&self, ns: &str) -> NamespaceFacts {
        /// What a synced cache holds for `ns`, made into facts (`make` may
        /// drop an object) and sorted by name; unknown before it syncs.
        fn listed<P: summary::Payload, T>(
            c: &Cache<P>,
            ns: &str,
            make: impl Fn(&summary::Summary<P>) -> Option<T>,
            name: impl Fn(&T) -> &str,
        ) -> Fact<Vec<T>> {
            if !c.synced() {
                return Fact::Unknown;
            }
            let mut v: Vec<T> = c.with_namespace(ns, |it| it.filter_map(&make).collect());
            v.sort_by(|a, b| name(a).cmp(name(b)));
            Fact::Known(v)
        }
        fn names<P: summary::Payload>(
            c: &Cache<P>,
            ns: &str,
            keep: impl Fn(&P) -> bool,
        ) -> Fact<Vec<String>> {
            listed(
                c,
                ns,
                |s| keep(&s.payload).then(|| s.name.clone()),
                String::as_str,
            )
        }
        let pdbs = listed(
            &self.pdbs,
            ns,
            |s| {
                s.payload.0.as_ref().map(|sel| {
                    PdbFact::new(s.name.clone(), sel.clone())
                        .with_min_available(s.payload.1.as_ref())
                })
            },
            |p| p.name.as_str(),
        );
        let hpas = listed(
            &self.hpas,
            ns,
            |s| {
                Some(HpaFact {
                    name: s.name.clone(),
                    target_kind: s.payload.kind.clone(),
                    target_name: s.payload.name.clone(),
                    min_replicas: s.payload.min_replicas,
                })
            },
            |h| h.name.as_str(),
        );
        let service_accounts = listed(
            &self.service_accounts,
            ns,
            |s| {
                Some(SaFact {
                    name: s.name.clone(),
                    automount: s.payload.0,
                })
            },
            |a| a.name.as_str(),
        );
        NamespaceFacts {
            default_deny_policies: names(&self.network_policies, ns, |d: &DefaultDeny| d.0),
            resource_quotas: names(&self.resource_quotas, ns, |_| true),
            limit_ranges: names(&self.limit_ranges, ns, |_| true),
            pdbs,
            hpas,
            service_accounts,
            admin_cluster_roles: self.admin_cluster_roles(),
            exceptions: listed(
                &self.exceptions,
                ns,
                |s| s.payload.0.clone(),
                |e| e.name.as_str(),
            ),
        }
    }
}

impl Caches {
    /// A number that changes whenever a cache [`Caches::facts_objects`]
    /// reads changes (the sum of their generations), so its caller can skip
    /// the work while it stays the same.
    pub fn facts_generation(&self) -> u64 {
        [
            self.namespaces.generation(),
            self.network_policies.generation(),
            self.resource_quotas.generation(),
            self.limit_ranges.generation(),
            self.pdbs.generation(),
            self.hpas.generation(),
            self.service_accounts.generation(),
        ]
        .into_iter()
        .fold(0u64, u64::wrapping_add)
    }

    /// The `NamespaceFacts` object ([`crate::export::facts`]) of every
    /// namespace the caches know but those in `skip`, by name; empty until
    /// every cache has synced (a fact not yet known is never written as
    /// known-empty).
    pub fn facts_objects(&self, skip: &[&str]) -> Vec<(String, serde_json::Value)> {
        if !self.synced() {
            return Vec::new();
        }
        let mut names: Vec<String> = self
            .namespaces
            .all()
            .iter()
            .map(|s| s.name.clone())
            .filter(|n| !skip.contains(&n.as_str()))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| {
                let obj = crate::export::facts::object(&n, &self.facts(&n))?;
                Some((n, obj))
            })
            .collect()
    }
}

/// Context from the watch caches: the namespace's tier, mode and labels from
/// its cached labels, and its facts from the cached objects. Namespace
/// objects themselves are judged by their own (new) labels, as
/// [`DefaultsSource`](crate::admission::DefaultsSource) does.
pub struct ClusterSource {
    caches: Arc<Caches>,
}

impl ClusterSource {
    pub fn new(caches: Arc<Caches>) -> Self {
        ClusterSource { caches }
    }

    /// The namespace a request's object lands in: its own for a Namespace.
    fn namespace_of(req: &AdmissionRequest) -> (bool, Option<String>) {
        let own = is_namespace_kind(&req.group, &req.kind);
        let ns = if own {
            subject_namespace(req.object.as_ref(), &req.name).0
        } else {
            req.namespace.clone()
        };
        (own, ns.filter(|n| !n.is_empty()))
    }

    /// The context once the namespace's labels are known (or known to be
    /// missing: `labels` is `None`, and `missing` says why).
    fn resolved(
        &self,
        req: &AdmissionRequest,
        cfg: &PolicyConfig,
        ns: &str,
        labels: Option<&std::collections::BTreeMap<String, String>>,
        missing: Option<String>,
    ) -> ResolvedContext {
        let mut r = resolve_request(req, cfg, labels, self.caches.facts(ns));
        if let Some(why) = missing {
            r.annotations.push((CONTEXT_ANNOTATION.to_string(), why));
        }
        r
    }
}

impl ContextSource for ClusterSource {
    fn context_within(
        &self,
        req: &AdmissionRequest,
        cfg: &PolicyConfig,
        wait: Duration,
    ) -> ResolvedContext {
        let (own, ns) = Self::namespace_of(req);
        let Some(ns) = ns else {
            return resolve_request(req, cfg, None, self.caches.cluster_facts());
        };
        if own {
            return self.resolved(req, cfg, &ns, None, None);
        }
        match self.caches.namespaces.wait_for(wait, |c| c.get(&ns)) {
            Some(s) => self.resolved(req, cfg, &ns, Some(&s.payload.0), None),
            None => {
                let why = if self.caches.namespaces.synced() {
                    "is not in the cluster cache"
                } else {
                    "is unknown: the cluster cache has not synced yet"
                };
                let note = format!(
                    "namespace {ns:?} {why} (waited {} ms); decided on the config \
                     defaults: tier {} ({}), mode {}",
                    wait.as_millis(),
                    cfg.defaults.tier.number(),
                    cfg.defaults.tier,
                    cfg.defaults.mode
                );
                self.resolved(req, cfg, &ns, None, Some(note))
            }
        }
    }

    /// Without waiting: ready when the request needs no namespace labels or
    /// the cache has them; else the caller hands off to a thread that may
    /// wait.
    fn try_context(&self, req: &AdmissionRequest, cfg: &PolicyConfig) -> Lookup {
        let (own, ns) = Self::namespace_of(req);
        match ns {
            Some(ns) if !own => match self.caches.namespaces.get(&ns) {
                Some(s) => Lookup::Ready(self.resolved(req, cfg, &ns, Some(&s.payload.0), None)),
                None => Lookup::WouldBlock,
            },
            _ => Lookup::Ready(self.context_within(req, cfg, Duration::ZERO)),
        }
    }

    fn ready(&self) -> bool {
        self.caches.synced()
    }
}

#[cfg(test)]
mod tests;
