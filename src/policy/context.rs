//! What the engine knows about where an object lands.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{Mode, Tier};

/// A fact about the namespace that may be unknown (no cluster, object not in the
/// CLI's input). Rules that need an unknown fact say so instead of guessing.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Fact<T> {
    #[default]
    Unknown,
    Known(T),
}

impl<T> Fact<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Fact::Known(v) => Some(v),
            Fact::Unknown => None,
        }
    }
}

/// A PodDisruptionBudget as the `pdb` rule needs it: its selector, parsed
/// once (a namespace's PDBs are matched against every workload in it).
#[derive(Debug, Clone, PartialEq)]
pub struct PdbFact {
    pub name: String,
    pub selector: LabelSelector,
    /// `None`: the selector does not parse, and selects nothing.
    parsed: Option<kube::core::Selector>,
    /// `spec.minAvailable`, when it is a number (a percentage is not
    /// compared with a workload's replicas).
    pub min_available: Option<i64>,
}

impl PdbFact {
    pub fn new(name: String, selector: LabelSelector) -> Self {
        let parsed = kube::core::Selector::try_from(selector.clone()).ok();
        PdbFact {
            name,
            selector,
            parsed,
            min_available: None,
        }
    }

    /// With its `minAvailable`.
    pub fn with_min_available(
        mut self,
        min: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    ) -> Self {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        self.min_available = match min {
            Some(IntOrString::Int(n)) => Some(i64::from(*n)),
            _ => None,
        };
        self
    }

    /// Whether its selector parses (one that does not selects nothing).
    pub fn selector_parses(&self) -> bool {
        self.parsed.is_some()
    }

    /// Whether it selects pods with these labels, as the apiserver evaluates
    /// the selector (see [`crate::policy::facts::selects`]).
    pub fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        use kube::core::SelectorExt;
        self.parsed.as_ref().is_some_and(|s| s.matches(labels))
    }
}

/// A ServiceAccount: whether it turns the token automount off for its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaFact {
    pub name: String,
    /// `automountServiceAccountToken`.
    pub automount: Option<bool>,
}

/// A HorizontalPodAutoscaler: what it scales and its floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpaFact {
    pub name: String,
    /// `spec.scaleTargetRef.kind` and `.name`.
    pub target_kind: String,
    pub target_name: String,
    /// `spec.minReplicas` (1 when unset, as the apiserver defaults it).
    pub min_replicas: i64,
}

impl HpaFact {
    /// Read from an HPA object (`autoscaling/v1` or `v2`: the fields used
    /// are the same); `None` when it names no target.
    pub fn from_object(name: &str, obj: &serde_json::Value) -> Option<HpaFact> {
        let spec = obj.get("spec")?;
        let target = spec.get("scaleTargetRef")?;
        Some(HpaFact {
            name: name.to_string(),
            target_kind: target.get("kind")?.as_str()?.to_string(),
            target_name: target.get("name")?.as_str()?.to_string(),
            min_replicas: spec
                .get("minReplicas")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(1),
        })
    }
}

/// Facts about the namespace that the caller fills: the CLI from the other
/// objects of its input, the webhook from its cluster caches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamespaceFacts {
    /// Names of NetworkPolicies in the namespace that deny all ingress by default.
    pub default_deny_policies: Fact<Vec<String>>,
    /// Names of ResourceQuotas in the namespace.
    pub resource_quotas: Fact<Vec<String>>,
    /// Names of LimitRanges in the namespace.
    pub limit_ranges: Fact<Vec<String>>,
    /// PodDisruptionBudgets in the namespace.
    pub pdbs: Fact<Vec<PdbFact>>,
    /// HorizontalPodAutoscalers in the namespace.
    pub hpas: Fact<Vec<HpaFact>>,
    /// ServiceAccounts in the namespace.
    pub service_accounts: Fact<Vec<SaFact>>,
    /// Cluster-wide, the same for every namespace: the names of the
    /// ClusterRoles that are cluster-admin in all but name (see
    /// [`crate::policy::facts::grants_everything`]).
    pub admin_cluster_roles: Fact<Vec<String>>,
    /// `TierException`s in the namespace (only valid ones).
    pub exceptions: Fact<Vec<super::exception::ExceptionFact>>,
}

impl NamespaceFacts {
    /// Every fact known and empty: a namespace known to hold none of these.
    pub fn known_empty() -> Self {
        NamespaceFacts {
            default_deny_policies: Fact::Known(Vec::new()),
            resource_quotas: Fact::Known(Vec::new()),
            limit_ranges: Fact::Known(Vec::new()),
            pdbs: Fact::Known(Vec::new()),
            hpas: Fact::Known(Vec::new()),
            service_accounts: Fact::Known(Vec::new()),
            admin_cluster_roles: Fact::Known(Vec::new()),
            exceptions: Fact::Known(Vec::new()),
        }
    }
}

/// What image verification (`images.verify`, [`crate::supply`]) found for
/// one image of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageVerdict {
    /// Signed (and, where the rule asks, with provenance) at this digest.
    Verified { digest: String },
    /// Checked and refused (unsigned, another key, another digest, an
    /// unlisted builder).
    Refused { digest: String, reason: String },
    /// Not checked: the registry failed or the time budget ran out (the
    /// config's `images.onTimeout` decides).
    Unavailable { reason: String },
}

/// The verdicts for the images of the object judged, by the image string
/// as written; only images some `images.verify` rule names are in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFacts {
    pub verdicts: BTreeMap<String, ImageVerdict>,
    /// Images the object already ran before this UPDATE (in the old
    /// object): never pinned, which would roll out whatever build the tag
    /// names now.
    pub unchanged: std::collections::BTreeSet<String>,
}

impl ImageFacts {
    /// The digest `image` was verified at, when it was.
    pub fn verified_digest(&self, image: &str) -> Option<&str> {
        match self.verdicts.get(image) {
            Some(ImageVerdict::Verified { digest }) => Some(digest),
            _ => None,
        }
    }
}

/// Who is asking (webhook only; the CLI has no requester).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Requester {
    pub username: String,
    pub groups: Vec<String>,
}

/// The context one object is judged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub tier: Tier,
    pub mode: Mode,
    /// The namespace the object lands in, if namespaced.
    pub namespace: Option<String>,
    /// The namespace's labels (business-labels copies from them).
    pub namespace_labels: BTreeMap<String, String>,
    /// Whether those labels are known (the namespace is in the webhook's
    /// cache, or its Namespace object in the CLI's input).
    pub namespace_labels_known: bool,
    /// Shared: every object of a namespace is judged with the same facts,
    /// which grow with the namespace (one PDB per application), so they are
    /// never copied per object.
    pub facts: std::sync::Arc<NamespaceFacts>,
    pub requester: Option<Requester>,
    /// The time of judgement, Unix seconds (the engine has no clock: the
    /// webhook gives the request's, the CLI its own or `--now`). `None`:
    /// no `TierException` applies.
    pub now: Option<i64>,
    /// What image verification found (`Unknown`: it did not run, as in
    /// `tiergate check` without `--verify-images`).
    pub images: Fact<std::sync::Arc<ImageFacts>>,
}

impl Context {
    pub fn new(tier: Tier, mode: Mode) -> Self {
        Context {
            tier,
            mode,
            namespace: None,
            namespace_labels: BTreeMap::new(),
            namespace_labels_known: false,
            facts: std::sync::Arc::default(),
            requester: None,
            now: None,
            images: Fact::Unknown,
        }
    }
}
