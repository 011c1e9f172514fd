//! What the caches keep of each object: a name, a namespace and the one thing
//! tiergate needs from it, never the whole object. A [`Summary`] implements
//! kube's [`Lookup`], so it lives in an ordinary reflector store.
use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Lookup;
use kube::runtime::watcher::Event;

use crate::policy::exception;
use crate::policy::facts::{denies_ingress_by_default, grants_everything};

/// What a summary carries, and which resource it summarises.
pub trait Payload: Clone + Send + Sync + 'static {
    const KIND: &'static str;
    const GROUP: &'static str;
    const VERSION: &'static str;
    const PLURAL: &'static str;
    /// The `resource` label of the cache metrics.
    const RESOURCE: &'static str;
    const NAMESPACED: bool;
    /// Served by a CRD that may not be installed: a list that finds no
    /// such resource (404) means no such object exists, and the cache is
    /// synced empty until a relist finds the resource.
    const OPTIONAL: bool;
}

/// One cached object.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary<P> {
    pub name: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub payload: P,
}

impl<P: Payload> Lookup for Summary<P> {
    type DynamicType = ();
    fn kind(_: &()) -> Cow<'_, str> {
        P::KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        P::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        P::VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        P::PLURAL.into()
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }
    fn namespace(&self) -> Option<Cow<'_, str>> {
        self.namespace.as_deref().map(Cow::Borrowed)
    }
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

/// A Namespace: its labels (tier, mode, and what business-labels copies).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NsLabels(pub BTreeMap<String, String>);

/// A NetworkPolicy: whether it denies all ingress by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultDeny(pub bool);

/// A ResourceQuota: its name is all that counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota;

/// A LimitRange: its name is all that counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits;

/// A PodDisruptionBudget: its selector (`None`: selects no pods).
#[derive(Debug, Clone, PartialEq)]
pub struct PdbSelector(
    pub Option<LabelSelector>,
    /// `spec.minAvailable`.
    pub Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
);

/// A HorizontalPodAutoscaler: what it scales and its `minReplicas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpaTarget {
    pub kind: String,
    pub name: String,
    pub min_replicas: i64,
}

/// A ServiceAccount: its `automountServiceAccountToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaAutomount(pub Option<bool>);

/// A `TierException` as the watch reads it: its metadata and spec, read by
/// [`crate::policy::exception::parse`] (the CRD is tiergate's own; it has no
/// k8s-openapi type).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct TierException {
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default)]
    pub spec: serde_json::Value,
}

impl kube::Resource for TierException {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;
    fn kind(_: &()) -> Cow<'_, str> {
        exception::KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        exception::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        exception::VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        exception::PLURAL.into()
    }
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}

/// A `TierException`: what it excepts, `None` when it does not read (the
/// webhook refuses such writes; one from before tiergate excepts nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Excepts(pub Option<exception::ExceptionFact>);

/// A ClusterRole: whether it is cluster-admin in all but name
/// ([`grants_everything`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminRole(pub bool);

macro_rules! payload {
    ($t:ty, $kind:literal, $group:literal, $version:literal, $plural:literal, $res:literal, $nsd:literal) => {
        payload!(@impl $t, $kind, $group, $version, $plural, $res, $nsd, false);
    };
    ($t:ty, $kind:literal, $group:literal, $version:literal, $plural:literal, $res:literal, $nsd:literal, optional) => {
        payload!(@impl $t, $kind, $group, $version, $plural, $res, $nsd, true);
    };
    (@impl $t:ty, $kind:literal, $group:literal, $version:literal, $plural:literal, $res:literal, $nsd:literal, $opt:literal) => {
        impl Payload for $t {
            const KIND: &'static str = $kind;
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const PLURAL: &'static str = $plural;
            const RESOURCE: &'static str = $res;
            const NAMESPACED: bool = $nsd;
            const OPTIONAL: bool = $opt;
        }
    };
}
payload!(
    NsLabels,
    "Namespace",
    "",
    "v1",
    "namespaces",
    "namespaces",
    false
);
payload!(
    DefaultDeny,
    "NetworkPolicy",
    "networking.k8s.io",
    "v1",
    "networkpolicies",
    "networkpolicies",
    true
);
payload!(
    Quota,
    "ResourceQuota",
    "",
    "v1",
    "resourcequotas",
    "resourcequotas",
    true
);
payload!(
    Limits,
    "LimitRange",
    "",
    "v1",
    "limitranges",
    "limitranges",
    true
);
payload!(
    PdbSelector,
    "PodDisruptionBudget",
    "policy",
    "v1",
    "poddisruptionbudgets",
    "poddisruptionbudgets",
    true
);
payload!(
    HpaTarget,
    "HorizontalPodAutoscaler",
    "autoscaling",
    "v2",
    "horizontalpodautoscalers",
    "horizontalpodautoscalers",
    true
);
payload!(
    SaAutomount,
    "ServiceAccount",
    "",
    "v1",
    "serviceaccounts",
    "serviceaccounts",
    true
);

payload!(
    AdminRole,
    "ClusterRole",
    "rbac.authorization.k8s.io",
    "v1",
    "clusterroles",
    "clusterroles",
    false
);

payload!(
    Excepts,
    "TierException",
    "tiergate.io",
    "v1alpha1",
    "tierexceptions",
    "tierexceptions",
    true,
    optional
);

fn name_ns(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (String, Option<String>) {
    (
        meta.name.clone().unwrap_or_default(),
        meta.namespace.clone().filter(|n| !n.is_empty()),
    )
}

/// Summarise a watched object.
pub trait Summarize {
    /// What is kept of the object.
    type Kept: Payload;
    fn summarize(&self) -> Summary<Self::Kept>;
}

/// A Namespace's summary: its name and labels (from full or metadata-only objects).
fn namespace_summary(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Summary<NsLabels> {
    Summary {
        name: meta.name.clone().unwrap_or_default(),
        namespace: None,
        payload: NsLabels(meta.labels.clone().unwrap_or_default()),
    }
}

impl Summarize for PartialObjectMeta<Namespace> {
    type Kept = NsLabels;
    fn summarize(&self) -> Summary<NsLabels> {
        namespace_summary(&self.metadata)
    }
}

impl Summarize for Namespace {
    type Kept = NsLabels;
    fn summarize(&self) -> Summary<NsLabels> {
        namespace_summary(&self.metadata)
    }
}

impl Summarize for NetworkPolicy {
    type Kept = DefaultDeny;
    fn summarize(&self) -> Summary<DefaultDeny> {
        let (name, namespace) = name_ns(&self.metadata);
        let deny = match &self.spec {
            Some(spec) => denies_ingress_by_default(spec),
            None => denies_ingress_by_default(&Default::default()),
        };
        Summary {
            name,
            namespace,
            payload: DefaultDeny(deny),
        }
    }
}

impl Summarize for PartialObjectMeta<ResourceQuota> {
    type Kept = Quota;
    fn summarize(&self) -> Summary<Quota> {
        let (name, namespace) = name_ns(&self.metadata);
        Summary {
            name,
            namespace,
            payload: Quota,
        }
    }
}

impl Summarize for PartialObjectMeta<LimitRange> {
    type Kept = Limits;
    fn summarize(&self) -> Summary<Limits> {
        let (name, namespace) = name_ns(&self.metadata);
        Summary {
            name,
            namespace,
            payload: Limits,
        }
    }
}

impl Summarize for PodDisruptionBudget {
    type Kept = PdbSelector;
    fn summarize(&self) -> Summary<PdbSelector> {
        let (name, namespace) = name_ns(&self.metadata);
        let selector = self.spec.as_ref().and_then(|s| s.selector.clone());
        Summary {
            name,
            namespace,
            payload: PdbSelector(
                selector,
                self.spec.as_ref().and_then(|s| s.min_available.clone()),
            ),
        }
    }
}

impl Summarize for HorizontalPodAutoscaler {
    type Kept = HpaTarget;
    fn summarize(&self) -> Summary<HpaTarget> {
        let (name, namespace) = name_ns(&self.metadata);
        let spec = &self.spec;
        Summary {
            name,
            namespace,
            payload: HpaTarget {
                kind: spec.scale_target_ref.kind.clone(),
                name: spec.scale_target_ref.name.clone(),
                min_replicas: i64::from(spec.min_replicas.unwrap_or(1)),
            },
        }
    }
}

impl Summarize for ServiceAccount {
    type Kept = SaAutomount;
    fn summarize(&self) -> Summary<SaAutomount> {
        let (name, namespace) = name_ns(&self.metadata);
        Summary {
            name,
            namespace,
            payload: SaAutomount(self.automount_service_account_token),
        }
    }
}

impl Summarize for ClusterRole {
    type Kept = AdminRole;
    fn summarize(&self) -> Summary<AdminRole> {
        Summary {
            name: self.metadata.name.clone().unwrap_or_default(),
            namespace: None,
            payload: AdminRole(grants_everything(self.rules.as_deref().unwrap_or_default())),
        }
    }
}

impl Summarize for TierException {
    type Kept = Excepts;
    fn summarize(&self) -> Summary<Excepts> {
        let (name, namespace) = name_ns(&self.metadata);
        let obj = serde_json::json!({
            "apiVersion": exception::API_VERSION,
            "kind": exception::KIND,
            "metadata": &self.metadata,
            "spec": &self.spec,
        });
        Summary {
            name,
            namespace,
            payload: Excepts(exception::parse(&obj).ok()),
        }
    }
}

/// A watcher event with its object summarised.
pub fn summarize_event<K: Summarize>(ev: Event<K>) -> Event<Summary<K::Kept>> {
    match ev {
        Event::Apply(o) => Event::Apply(o.summarize()),
        Event::Delete(o) => Event::Delete(o.summarize()),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(o.summarize()),
        Event::InitDone => Event::InitDone,
    }
}
