//! Where a request's namespace facts come from: a [`ContextSource`]. Every
//! source gathers what it knows of the namespace (its labels, its facts) and
//! hands it to the one resolver, [`crate::policy::namespace::resolve`], so the
//! config source, the cluster source and the CLI make the same context from
//! the same facts.
use std::time::Duration;

use super::request::AdmissionRequest;
use crate::policy::namespace::{self, NamespaceInput};
use crate::policy::{NamespaceFacts, PolicyConfig, Requester};

/// A request's context and how it was made.
pub struct ResolvedContext {
    pub ctx: crate::policy::Context,
    /// Things the requester should know (an invalid tier label, say).
    pub notes: Vec<String>,
    /// Audit annotations about where the context came from (keys without
    /// the webhook prefix, e.g. `context`).
    pub annotations: Vec<(String, String)>,
}

/// How long a context source may wait for its cache when the request gives no
/// `?timeout=`: a quarter of the apiserver's default 10 s, capped at 1 s.
pub const DEFAULT_CACHE_WAIT: Duration = Duration::from_secs(1);

/// How long a context source may wait for its cache, given the request's
/// remaining deadline (`?timeout=`): min(1 s, timeout / 4).
pub fn cache_wait_budget(timeout: Option<Duration>) -> Duration {
    match timeout {
        Some(t) => (t / 4).min(DEFAULT_CACHE_WAIT),
        None => DEFAULT_CACHE_WAIT,
    }
}

/// What a source answers when asked without waiting. (Returned by value and
/// moved once: boxing the large variant would cost an allocation per request.)
#[allow(clippy::large_enum_variant)]
pub enum Lookup {
    /// The context, resolved.
    Ready(ResolvedContext),
    /// The source would have to wait for its cache: ask again with
    /// [`ContextSource::context_within`] on a thread that may block.
    WouldBlock,
}

/// The source of the namespace facts for a request: [`DefaultsSource`] (the
/// config defaults, and a Namespace object's own labels), or the cluster's
/// watch caches (`crate::cluster::ClusterSource`).
pub trait ContextSource: Send + Sync {
    /// The context, allowed to block up to `wait` for a cache that does not
    /// know the request's namespace yet. Called on a thread that may block
    /// when [`ContextSource::try_context`] said [`Lookup::WouldBlock`].
    fn context_within(
        &self,
        req: &AdmissionRequest,
        cfg: &PolicyConfig,
        wait: Duration,
    ) -> ResolvedContext;
    /// The context if it can be had without waiting. Default: always.
    fn try_context(&self, req: &AdmissionRequest, cfg: &PolicyConfig) -> Lookup {
        Lookup::Ready(self.context_within(req, cfg, Duration::ZERO))
    }
    /// Whether the source is ready (caches synced). Default: always.
    fn ready(&self) -> bool {
        true
    }
}

/// The requester of a request, if it names one.
pub fn requester_of(req: &AdmissionRequest) -> Option<Requester> {
    (req.username.is_some() || !req.groups.is_empty()).then(|| Requester {
        username: req.username.clone().unwrap_or_default(),
        groups: req.groups.clone(),
    })
}

/// Resolve a request's context from what a source knows of its namespace:
/// a Namespace object is judged by its own name and labels; any other object
/// by `labels` (`None`: the namespace is unknown, the defaults apply) and
/// `facts`.
pub fn resolve_request(
    req: &AdmissionRequest,
    cfg: &PolicyConfig,
    labels: Option<&std::collections::BTreeMap<String, String>>,
    facts: NamespaceFacts,
) -> ResolvedContext {
    let requester = requester_of(req);
    // The request's time: when a TierException ends is judged against it.
    let now = crate::clock::now();
    let resolved = if namespace::is_namespace_kind(&req.group, &req.kind) {
        let (name, own) = namespace::subject_namespace(req.object.as_ref(), &req.name);
        namespace::resolve(
            NamespaceInput {
                name: name.as_deref(),
                labels: Some(&own),
                facts: facts.into(),
                requester,
                now,
                ..Default::default()
            },
            cfg,
        )
    } else {
        namespace::resolve(
            NamespaceInput {
                name: req.namespace.as_deref(),
                labels,
                facts: facts.into(),
                requester,
                now,
                ..Default::default()
            },
            cfg,
        )
    };
    ResolvedContext {
        ctx: resolved.ctx,
        notes: resolved.notes,
        annotations: Vec::new(),
    }
}

/// Context from the config defaults, and for Namespace objects from their own
/// `tiergate.io/tier` and `tiergate.io/mode` labels. No namespace facts.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultsSource;

impl ContextSource for DefaultsSource {
    fn context_within(
        &self,
        req: &AdmissionRequest,
        cfg: &PolicyConfig,
        _wait: Duration,
    ) -> ResolvedContext {
        resolve_request(req, cfg, None, NamespaceFacts::default())
    }
}
