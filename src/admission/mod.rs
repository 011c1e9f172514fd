//! The admission layer: an AdmissionReview's bytes in, the answer's HTTP
//! status and bytes and a [`DecisionRecord`] out. It is the webhook's whole
//! protocol, minus the network: it parses the review, decides what is judged
//! and what passes untouched, asks a [`ContextSource`] for the namespace's
//! context (which may wait, boundedly, on a cluster cache), runs the tier
//! guard and the engine, and builds the typed answer. It holds no state and
//! does no I/O of its own; the server calls [`handle`] and counts and logs
//! the record.
//!
//! What the apiserver expects (the GUIDE's protocol facts) is enforced here:
//! the uid is echoed, a validating answer never carries a patch, DELETE,
//! CONNECT and subresources without a pod spec pass untouched, warnings and
//! audit annotations stay within their limits, and a panic never admits what
//! the policy would deny (one `catch_unwind`, in [`handle`]).
//!
//! - [`request`]: the review as parsed;
//! - [`context`]: where the namespace's context comes from;
//! - [`scope`]: what is judged, what may be patched;
//! - [`decide`]: validate, mutate, the tier guard, error answers;
//! - [`message`]: the denial message;
//! - [`response`]: the typed answer; [`limits`]: what it must stay within;
//! - [`record`]: what was decided, for metrics and logs.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::policy::{Context, Engine, EngineError, Evaluation, Options, PolicyConfig};

pub mod context;
pub mod decide;
pub mod limits;
pub mod message;
pub mod record;
pub mod request;
pub mod response;
pub mod scope;

pub use context::{
    cache_wait_budget, ContextSource, DefaultsSource, Lookup, ResolvedContext, DEFAULT_CACHE_WAIT,
};
pub use message::deny_message;
pub use record::{Decision, DecisionRecord, ErrorKind, Webhook};
pub use request::{
    operation_name, AdmissionRequest, BadRequest, ReviewBuilder, REVIEW_API_VERSION,
};
pub use response::{AdmissionResponse, AdmissionReview, Refusal};

pub use crate::policy::namespace::{MODE_LABEL, TIER_LABEL};

/// What the validating webhook answers when tiergate itself fails (config
/// `onError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Deny,
    Allow,
}

/// How the server answers, for every request: which webhook, and the
/// server-wide settings that shape an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionSettings {
    pub webhook: Webhook,
    /// `--dry-run` (or `dryRun: true` in the config): deny and patch nothing.
    pub dry_run: bool,
    pub on_error: OnError,
}

impl AdmissionSettings {
    /// This webhook, no dry-run, deny on error.
    pub fn new(webhook: Webhook) -> Self {
        AdmissionSettings {
            webhook,
            dry_run: false,
            on_error: OnError::Deny,
        }
    }
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }
}

/// What judges an object: the [`Engine`] in production. The seam lets tests
/// plug in others (one that panics, one that returns a given evaluation).
pub trait Evaluate {
    fn evaluate(
        &self,
        obj: &Value,
        ctx: &Context,
        opts: &Options,
    ) -> Result<Evaluation, EngineError>;
    fn config(&self) -> &PolicyConfig;
}

impl Evaluate for Engine {
    fn evaluate(
        &self,
        obj: &Value,
        ctx: &Context,
        opts: &Options,
    ) -> Result<Evaluation, EngineError> {
        Engine::evaluate(self, obj, ctx, opts)
    }
    fn config(&self) -> &PolicyConfig {
        Engine::config(self)
    }
}

/// The HTTP answer from [`handle`].
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Set when a review was decided.
    pub record: Option<DecisionRecord>,
    /// Set for HTTP 400.
    pub bad_request: Option<BadRequest>,
}

impl Answer {
    fn review(review: &AdmissionReview, record: DecisionRecord) -> Self {
        // A typed review always serializes; should it ever not, the answer
        // is still a well-formed review (an internal error).
        let body = serde_json::to_vec(review).unwrap_or_else(|_| {
            format!(
                r#"{{"apiVersion":{:?},"kind":"AdmissionReview","response":{{"uid":{:?},"allowed":false}}}}"#,
                review.api_version, review.response.uid
            )
            .into_bytes()
        });
        Answer {
            status: 200,
            content_type: "application/json",
            body,
            record: Some(record),
            bad_request: None,
        }
    }
}

/// The whole handler, minus HTTP: bytes in, status and bytes out, waiting up
/// to [`DEFAULT_CACHE_WAIT`] for a cluster cache. Never panics.
pub fn handle(
    body: &[u8],
    engine: &dyn Evaluate,
    source: &dyn ContextSource,
    settings: AdmissionSettings,
) -> Answer {
    handle_within(body, engine, source, settings, DEFAULT_CACHE_WAIT)
}

/// [`handle`], with the time the context source may wait for its cache
/// (see [`cache_wait_budget`]).
pub fn handle_within(
    body: &[u8],
    engine: &dyn Evaluate,
    source: &dyn ContextSource,
    settings: AdmissionSettings,
    wait: Duration,
) -> Answer {
    match AdmissionRequest::from_body(body) {
        Ok(req) => answer_within(&req, engine, source, settings, wait),
        Err(e) => bad_request(e),
    }
}

/// Answer a parsed request, asking `source` for its context (waiting up to
/// `wait`).
pub fn answer_within(
    req: &AdmissionRequest,
    engine: &dyn Evaluate,
    source: &dyn ContextSource,
    settings: AdmissionSettings,
    wait: Duration,
) -> Answer {
    let answer = guarded(req, settings, |progress| {
        decide::decide_in(req, engine, settings, progress, |cfg| {
            Lookup::Ready(source.context_within(req, cfg, wait))
        })
    });
    answer.unwrap_or_else(|| {
        // Unreachable: the lookup above is always ready.
        let (review, record) = decide::error_answer(req, settings, ErrorKind::Internal, None, None);
        Answer::review(&review, record)
    })
}

/// Answer a parsed request if that needs no wait: `None` when the context
/// source would have to wait for its cache (then call [`answer_within`] on a
/// thread that may block).
pub fn answer_now(
    req: &AdmissionRequest,
    engine: &dyn Evaluate,
    source: &dyn ContextSource,
    settings: AdmissionSettings,
) -> Option<Answer> {
    guarded(req, settings, |progress| {
        decide::decide_in(req, engine, settings, progress, |cfg| {
            source.try_context(req, cfg)
        })
    })
}

/// Answer a parsed request in a context already resolved (by the server,
/// which added what image verification found).
pub fn answer_resolved(
    req: &AdmissionRequest,
    engine: &dyn Evaluate,
    settings: AdmissionSettings,
    resolved: ResolvedContext,
) -> Answer {
    let answer = guarded(req, settings, move |progress| {
        decide::decide_in(req, engine, settings, progress, move |_| {
            Lookup::Ready(resolved)
        })
    });
    answer.unwrap_or_else(|| {
        // Unreachable: the lookup above is always ready.
        let (review, record) = decide::error_answer(req, settings, ErrorKind::Internal, None, None);
        Answer::review(&review, record)
    })
}

/// The images of a request that image verification must look at, in its
/// resolved context, and those the old object already ran (an UPDATE's);
/// `None` when there are none: a request passed untouched, a validating
/// request where `image-signature` is off, a mutating one that may not be
/// patched or whose `image-digest` fix is off (then only the images not yet
/// pinned by digest are asked about: the fix pins nothing else).
pub fn images_to_verify(
    req: &AdmissionRequest,
    cfg: &PolicyConfig,
    settings: AdmissionSettings,
    ctx: &Context,
) -> Option<(Vec<String>, std::collections::BTreeSet<String>)> {
    use crate::policy::rules::{image_digest, image_signature, image_tag::ImageRef};
    if cfg.images.verify.is_empty() || scope::skipped(req) {
        return None;
    }
    let obj = scope::object_to_judge(req).ok()?;
    let mut images = crate::supply::images_of(&obj);
    match settings.webhook {
        Webhook::Validate => {
            if cfg.rule_action(ctx.tier, &image_signature::RULE) == crate::policy::Action::Off {
                return None;
            }
        }
        Webhook::Mutate => {
            if ctx.mode == crate::policy::Mode::Audit
                || !scope::may_patch(req)
                || ctx.tier < image_digest::RULE.tier
                || !cfg.fix_enabled(ctx.tier, &image_digest::RULE)
            {
                return None;
            }
            images.retain(|i| !ImageRef::parse(i).has_sha256_digest());
        }
    }
    let tier = ctx.tier.number();
    images.retain(|i| cfg.images.rule_for(i, tier).is_some());
    if images.is_empty() {
        return None;
    }
    let unchanged = match &req.old_object {
        Some(old) if req.operation == kube::core::admission::Operation::Update => {
            crate::supply::images_of(old).into_iter().collect()
        }
        _ => Default::default(),
    };
    Some((images, unchanged))
}

/// The HTTP 400 answer for a body that is not an AdmissionReview.
pub fn bad_request(e: BadRequest) -> Answer {
    Answer {
        status: 400,
        content_type: "text/plain; charset=utf-8",
        body: format!("{e}\n").into_bytes(),
        record: None,
        bad_request: Some(e),
    }
}

/// The one panic boundary: a panic while deciding answers per `onError`
/// (validate) or allows without a patch (mutate), recorded as
/// [`ErrorKind::Panic`] with whatever context was resolved by then.
fn guarded(
    req: &AdmissionRequest,
    settings: AdmissionSettings,
    decide: impl FnOnce(&mut decide::Progress) -> Option<decide::Decided>,
) -> Option<Answer> {
    let mut progress = decide::Progress::default();
    match catch_unwind(AssertUnwindSafe(|| decide(&mut progress))) {
        Ok(decided) => decided.map(|(review, record)| Answer::review(&review, record)),
        Err(_) => {
            let (review, record) =
                decide::error_answer(req, settings, ErrorKind::Panic, None, progress.judged_at);
            Some(Answer::review(&review, record))
        }
    }
}

#[cfg(test)]
mod tests;
