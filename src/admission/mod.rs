//! Admission decisions: an AdmissionReview in, an AdmissionReview answer and a
//! [`DecisionRecord`] out. Pure: no I/O, no clock, no HTTP. The server calls
//! [`handle`] with the request body; everything else (metrics, logs) reads the
//! record.
//!
//! What the apiserver expects (see GUIDE section 3) is enforced here: the uid
//! is echoed, a validating answer never carries a patch, DELETE, CONNECT and
//! subresources without a pod spec pass untouched, warnings and audit
//! annotations stay within their limits, and a panic in the engine never
//! admits what the policy would deny.
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use base64::Engine as _;
use kube::core::admission::Operation;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, OnError};
use crate::policy::guard::{self, NamespaceChange, Verdict};
use crate::policy::{
    Action, Context, Engine, EngineError, Evaluation, Finding, Mode, Options, Requester, Tier,
};

pub mod render;
mod request;

use render::{cap_warnings, truncate, Annotations, MESSAGE_MAX};
pub use request::{operation_name, sniff_uid, AdmissionRequest, BadRequest, REVIEW_API_VERSION};

pub use crate::policy::guard::{MODE_LABEL, TIER_LABEL};

/// Which webhook is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    pub fn name(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

/// What was decided, as recorded in metrics (`decision` label) and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Judged, nothing found.
    Allow,
    /// Denied (validate, enforce).
    Deny,
    /// Allowed with warnings.
    Warn,
    /// Allowed, findings only recorded.
    Audit,
    /// Allowed with a patch (mutate).
    Patch,
    /// `--dry-run`: would have been denied.
    WouldDeny,
    /// `--dry-run`: would have been patched.
    WouldPatch,
    /// Not judged: DELETE, CONNECT, a subresource without a pod spec, an
    /// unchanged pod.
    Skip,
    /// tiergate could not judge: invalid object or internal error.
    Error,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Warn => "warn",
            Decision::Audit => "audit",
            Decision::Patch => "patch",
            Decision::WouldDeny => "would_deny",
            Decision::WouldPatch => "would_patch",
            Decision::Skip => "skip",
            Decision::Error => "error",
        }
    }
}

/// Why tiergate could not judge (`tiergate_errors_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The engine panicked.
    Panic,
    /// The object is not one the engine can read.
    InvalidObject,
    /// The answer could not be built.
    Internal,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Panic => "panic",
            ErrorKind::InvalidObject => "invalid_object",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Everything worth recording about one decision.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    pub uid: String,
    pub webhook: &'static str,
    pub operation: &'static str,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub decision: Decision,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    pub findings: Vec<Finding>,
    /// Rules whose fix is in the patch (or would be, in dry-run).
    pub fixes: Vec<&'static str>,
    /// (rule, reason) of every exemption applied.
    pub exempted: Vec<(&'static str, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// The request had `dryRun: true`.
    pub request_dry_run: bool,
    /// The server runs with `--dry-run`.
    pub server_dry_run: bool,
}

/// What judges an object. [`Engine`] in production; tests plug in others
/// (one that panics, one that returns a given evaluation).
pub trait Evaluate {
    fn evaluate(
        &self,
        obj: &Value,
        ctx: &Context,
        opts: &Options,
    ) -> Result<Evaluation, EngineError>;
    fn config(&self) -> &Config;
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
    fn config(&self) -> &Config {
        Engine::config(self)
    }
}

/// Where the namespace's tier and mode come from.
pub struct ResolvedContext {
    pub ctx: Context,
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

/// The source of the namespace facts for a request. Today: the config
/// defaults, and a Namespace object's own labels ([`ConfigContext`]); the
/// cluster issue plugs in a watch cache behind the same trait.
pub trait ContextSource: Send + Sync {
    fn context(&self, req: &AdmissionRequest, cfg: &Config) -> ResolvedContext;
    /// [`ContextSource::context`], allowed to block up to `wait` for a cache
    /// that does not know the request's namespace yet. Called on a blocking
    /// thread. Default: no waiting.
    fn context_within(
        &self,
        req: &AdmissionRequest,
        cfg: &Config,
        wait: Duration,
    ) -> ResolvedContext {
        let _ = wait;
        self.context(req, cfg)
    }
    /// Whether the source is ready (caches synced). Default: always.
    fn ready(&self) -> bool {
        true
    }
    /// Whether [`ContextSource::context_within`] may block (a cache wait), so
    /// the server must not call it on an async worker. Default: no.
    fn may_block(&self) -> bool {
        false
    }
}

/// Context from the config defaults, and for Namespace objects from their own
/// `tiergate.io/tier` and `tiergate.io/mode` labels.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigContext;

impl ContextSource for ConfigContext {
    fn context(&self, req: &AdmissionRequest, cfg: &Config) -> ResolvedContext {
        let mut ctx = Context::new(cfg.defaults.tier, cfg.defaults.mode);
        let mut notes = Vec::new();
        ctx.namespace = req.namespace.clone();
        if req.kind == "Namespace" && req.group.is_empty() {
            let labels = labels_of(req.object.as_ref());
            apply_namespace_labels(&mut ctx, &labels, &mut notes);
            let own_name = req
                .object
                .as_ref()
                .and_then(|o| o.pointer("/metadata/name"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| Some(req.name.clone()).filter(|n| !n.is_empty()));
            ctx.namespace = own_name;
            ctx.namespace_labels = labels;
        }
        if req.username.is_some() || !req.groups.is_empty() {
            ctx.requester = Some(Requester {
                username: req.username.clone().unwrap_or_default(),
                groups: req.groups.clone(),
            });
        }
        ResolvedContext {
            ctx,
            notes,
            annotations: Vec::new(),
        }
    }
}

/// Set the context's tier and mode from a namespace's `tiergate.io/tier` and
/// `tiergate.io/mode` labels; a value that does not parse keeps the current
/// one and adds a note saying so.
pub fn apply_namespace_labels(
    ctx: &mut Context,
    labels: &BTreeMap<String, String>,
    notes: &mut Vec<String>,
) {
    if let Some(t) = labels.get(TIER_LABEL) {
        match t.parse::<Tier>() {
            Ok(t) => ctx.tier = t,
            Err(e) => notes.push(format!("{TIER_LABEL}: {e}; using {}", ctx.tier)),
        }
    }
    if let Some(m) = labels.get(MODE_LABEL) {
        match m.parse::<Mode>() {
            Ok(m) => ctx.mode = m,
            Err(e) => notes.push(format!("{MODE_LABEL}: {e}; using {}", ctx.mode)),
        }
    }
}

/// An HTTP answer from [`handle`].
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

/// Options of one decision that come from the server, not the request.
#[derive(Debug, Clone, Copy)]
pub struct Switches {
    pub webhook: Webhook,
    /// `--dry-run` (or `dryRun: true` in the config): deny and patch nothing.
    pub dry_run: bool,
}

/// The whole handler, minus HTTP: bytes in, status and bytes out. Never
/// panics: a panic while deciding answers per the config's `onError`.
pub fn handle(
    body: &[u8],
    engine: &dyn Evaluate,
    source: &dyn ContextSource,
    sw: Switches,
) -> Answer {
    handle_within(body, engine, source, sw, DEFAULT_CACHE_WAIT)
}

/// [`handle`], with the time the context source may wait for its cache
/// (see [`cache_wait_budget`]).
pub fn handle_within(
    body: &[u8],
    engine: &dyn Evaluate,
    source: &dyn ContextSource,
    sw: Switches,
    wait: Duration,
) -> Answer {
    let req = match AdmissionRequest::from_body(body) {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                status: 400,
                content_type: "text/plain; charset=utf-8",
                body: format!("{e}\n").into_bytes(),
                record: None,
                bad_request: Some(e),
            }
        }
    };
    let (review, record) = match catch_unwind(AssertUnwindSafe(|| {
        decide_within(&req, engine, source, sw, wait)
    })) {
        Ok(x) => x,
        Err(_) => error_answer(&req, engine.config(), sw, ErrorKind::Internal, None, None),
    };
    match serde_json::to_vec(&review) {
        Ok(body) => Answer {
            status: 200,
            content_type: "application/json",
            body,
            record: Some(record),
            bad_request: None,
        },
        Err(_) => {
            let (review, record) =
                error_answer(&req, engine.config(), sw, ErrorKind::Internal, None, None);
            Answer {
                status: 200,
                content_type: "application/json",
                body: review.to_string().into_bytes(),
                record: Some(record),
                bad_request: None,
            }
        }
    }
}

/// The answer to one parsed request.
#[derive(Debug, Default)]
struct Out {
    allowed: bool,
    code: Option<(u16, &'static str)>,
    message: String,
    patch: Option<String>,
    warnings: Vec<String>,
    annotations: BTreeMap<String, String>,
}

fn review(req: &AdmissionRequest, out: Out) -> Value {
    let mut resp = json!({"uid": req.uid, "allowed": out.allowed});
    if let Some((code, reason)) = out.code {
        resp["status"] = json!({
            "status": "Failure", "code": code, "reason": reason, "message": out.message,
        });
    }
    if let Some(p) = out.patch {
        resp["patchType"] = json!("JSONPatch");
        resp["patch"] = json!(p);
    }
    if !out.warnings.is_empty() {
        resp["warnings"] = json!(out.warnings);
    }
    if !out.annotations.is_empty() {
        resp["auditAnnotations"] = json!(out.annotations);
    }
    json!({"apiVersion": req.api_version, "kind": "AdmissionReview", "response": resp})
}

fn base_record(req: &AdmissionRequest, sw: Switches) -> DecisionRecord {
    DecisionRecord {
        uid: req.uid.clone(),
        webhook: sw.webhook.name(),
        operation: req.operation_name(),
        kind: req.kind.clone(),
        namespace: req.namespace.clone(),
        name: if req.name.is_empty() {
            req.display()
        } else {
            req.name.clone()
        },
        decision: Decision::Allow,
        allowed: true,
        tier: None,
        mode: None,
        findings: Vec::new(),
        fixes: Vec::new(),
        exempted: Vec::new(),
        error: None,
        request_dry_run: req.dry_run,
        server_dry_run: sw.dry_run,
    }
}

/// Subresources that carry a pod spec to judge.
fn judged_subresource(sub: &str) -> bool {
    sub == "ephemeralcontainers"
}

/// Kinds whose pod template may be changed on UPDATE (a patch there applies).
fn template_mutable_on_update(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "CronJob"
            | "ReplicationController"
            | "PodTemplate"
    )
}

/// The object to judge: the request's own object, borrowed (a deep copy of a
/// Value tree cost about a tenth of a request in the profile). For an
/// `ephemeralcontainers` update of kind `EphemeralContainers` (clusters
/// before 1.22), the Pod is rebuilt from the old Pod (when given) with the
/// new ephemeral containers.
fn object_to_judge(req: &AdmissionRequest) -> Result<Cow<'_, Value>, String> {
    let obj = req.object.as_ref().ok_or_else(|| {
        format!(
            "the request has no object to judge for {}",
            req.operation_name()
        )
    })?;
    if req.kind != "EphemeralContainers" {
        return Ok(Cow::Borrowed(obj));
    }
    let ephemeral = obj
        .get("ephemeralContainers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut pod = match &req.old_object {
        Some(old) if old.get("kind").and_then(Value::as_str) == Some("Pod") => old.clone(),
        _ => {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": []}})
        }
    };
    match pod.get_mut("spec").and_then(Value::as_object_mut) {
        Some(spec) => {
            spec.insert("ephemeralContainers".into(), ephemeral);
        }
        None => pod["spec"] = json!({"containers": [], "ephemeralContainers": ephemeral}),
    }
    Ok(Cow::Owned(pod))
}

fn skip(req: &AdmissionRequest, sw: Switches) -> (Value, DecisionRecord) {
    let mut rec = base_record(req, sw);
    rec.decision = Decision::Skip;
    (
        review(
            req,
            Out {
                allowed: true,
                ..Out::default()
            },
        ),
        rec,
    )
}

/// Decide one request. Catches panics in the engine.
pub fn decide(
    req: &AdmissionRequest,
    engine: &dyn Evaluate,
    source: &dyn ContextSource,
    sw: Switches,
) -> (Value, DecisionRecord) {
    decide_within(req, engine, source, sw, DEFAULT_CACHE_WAIT)
}

/// The labels at `/metadata/labels` of an object (string values only).
fn labels_of(obj: Option<&Value>) -> BTreeMap<String, String> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The tier guard's verdict on a Namespace CREATE or UPDATE (validating
/// webhook only); `None` for every other request.
fn guard_verdict(
    req: &AdmissionRequest,
    ctx: &Context,
    cfg: &Config,
    sw: Switches,
) -> Option<Verdict> {
    let applies = sw.webhook == Webhook::Validate
        && req.kind == "Namespace"
        && req.group.is_empty()
        && req.sub_resource.is_none()
        && matches!(req.operation, Operation::Create | Operation::Update);
    if !applies {
        return None;
    }
    let new = labels_of(req.object.as_ref());
    let old = (req.operation == Operation::Update).then(|| labels_of(req.old_object.as_ref()));
    let name = ctx.namespace.clone().unwrap_or_else(|| req.name.clone());
    Some(guard::guard_namespace(
        NamespaceChange {
            name: &name,
            old: old.as_ref(),
            new: &new,
        },
        ctx.requester.as_ref(),
        cfg,
    ))
}

/// The answer when the tier guard refuses a Namespace change.
fn guard_deny(
    req: &AdmissionRequest,
    ctx: &Context,
    sw: Switches,
    msg: String,
) -> (Value, DecisionRecord) {
    let mut rec = base_record(req, sw);
    rec.tier = Some(ctx.tier);
    rec.mode = Some(ctx.mode);
    let mut ann = Annotations::default();
    let msg = truncate(&msg, MESSAGE_MAX);
    let mut out = Out {
        allowed: true,
        ..Out::default()
    };
    if sw.dry_run {
        rec.decision = Decision::WouldDeny;
        ann.set("would-deny", &msg);
        out.warnings = cap_warnings([msg]);
    } else {
        rec.decision = Decision::Deny;
        out.allowed = false;
        out.code = Some((403, "Forbidden"));
        ann.set("tier-guard", &msg);
        out.message = msg;
    }
    rec.allowed = out.allowed;
    ann.set("decision", rec.decision.name());
    out.annotations = ann.finish();
    (review(req, out), rec)
}

/// [`decide`], with the time the context source may wait for its cache.
pub fn decide_within(
    req: &AdmissionRequest,
    engine: &dyn Evaluate,
    source: &dyn ContextSource,
    sw: Switches,
    wait: Duration,
) -> (Value, DecisionRecord) {
    let cfg = engine.config();
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return skip(req, sw);
    }
    if let Some(sub) = &req.sub_resource {
        if !judged_subresource(sub) {
            return skip(req, sw);
        }
    }
    // A Pod update that leaves the spec alone (labels, annotations, finalizers)
    // is not judged again, as Pod Security Admission does.
    if req.operation == Operation::Update
        && req.kind == "Pod"
        && req.sub_resource.is_none()
        && req.object.as_ref().and_then(|o| o.get("spec"))
            == req.old_object.as_ref().and_then(|o| o.get("spec"))
        && req.old_object.is_some()
    {
        return skip(req, sw);
    }
    let obj = match object_to_judge(req) {
        Ok(o) => o,
        Err(msg) => {
            return error_answer(req, cfg, sw, ErrorKind::InvalidObject, Some(msg), None);
        }
    };
    let resolved = source.context_within(req, cfg, wait);
    let ctx = resolved.ctx;
    // Labels are the policy: weakening them is for tier admins only. (The
    // guard's notes on invalid labels already there duplicate the context's.)
    if let Some(Verdict::Deny(msg)) = guard_verdict(req, &ctx, cfg, sw) {
        return guard_deny(req, &ctx, sw, msg);
    }
    let opts = Options {
        pss: None,
        only: None,
        fix: sw.webhook == Webhook::Mutate,
        exact_fixable: false,
    };
    let result = catch_unwind(AssertUnwindSafe(|| engine.evaluate(&obj, &ctx, &opts)));
    let eval = match result {
        Err(_) => return error_answer(req, cfg, sw, ErrorKind::Panic, None, Some(&ctx)),
        Ok(Err(e)) => {
            return error_answer(
                req,
                cfg,
                sw,
                ErrorKind::InvalidObject,
                Some(e.to_string()),
                Some(&ctx),
            )
        }
        Ok(Ok(e)) => e,
    };
    let mut rec = base_record(req, sw);
    rec.tier = Some(ctx.tier);
    rec.mode = Some(ctx.mode);
    rec.exempted = eval
        .exempted
        .iter()
        .map(|e| (e.rule, e.reason.clone()))
        .collect();
    let mut ann = Annotations::default();
    ann.set("tier", format!("{} ({})", ctx.tier.number(), ctx.tier));
    ann.set("mode", ctx.mode.name());
    for (k, v) in &resolved.annotations {
        ann.set(k, v);
    }
    for (rule, reason) in &rec.exempted {
        ann.append(&format!("exempted.{rule}"), reason);
    }
    let out = match sw.webhook {
        Webhook::Validate => validate(req, &ctx, &eval, sw, &mut rec, &mut ann, resolved.notes),
        Webhook::Mutate => mutate(req, &ctx, &eval, sw, &mut rec, &mut ann),
    };
    rec.findings = eval.findings;
    rec.allowed = out.allowed;
    let out = Out {
        annotations: {
            ann.set("decision", rec.decision.name());
            ann.finish()
        },
        ..out
    };
    (review(req, out), rec)
}

fn finding_line(f: &Finding) -> String {
    format!("{} at {}", f.message, f.path)
}

/// The denial message, in the style of Pod Security Admission.
pub fn deny_message(req: &AdmissionRequest, ctx: &Context, denies: &[&Finding]) -> String {
    let mut rules: Vec<&str> = denies.iter().map(|f| f.rule).collect();
    rules.dedup();
    let mut seen = Vec::new();
    rules.retain(|r| {
        let new = !seen.contains(r);
        seen.push(r);
        new
    });
    let ns = match &ctx.namespace {
        Some(n) if req.kind != "Namespace" => format!(" in namespace {n:?}"),
        _ => String::new(),
    };
    let head = format!(
        "{}{ns} violates tiergate tier {} ({}): ",
        req.display(),
        ctx.tier.number(),
        ctx.tier
    );
    let tail = format!(
        " (see `tiergate rules` for how to fix: {})",
        rules.join(", ")
    );
    let budget = MESSAGE_MAX.saturating_sub(head.len() + tail.len() + 24);
    let mut body = String::new();
    let mut shown = 0;
    for f in denies {
        let line = finding_line(f);
        if !body.is_empty() && body.len() + line.len() + 2 > budget {
            break;
        }
        if !body.is_empty() {
            body.push_str("; ");
        }
        body.push_str(&line);
        shown += 1;
    }
    if shown < denies.len() {
        body.push_str(&format!("; and {} more", denies.len() - shown));
    }
    truncate(&format!("{head}{body}{tail}"), MESSAGE_MAX)
}

fn validate(
    req: &AdmissionRequest,
    ctx: &Context,
    eval: &Evaluation,
    sw: Switches,
    rec: &mut DecisionRecord,
    ann: &mut Annotations,
    notes: Vec<String>,
) -> Out {
    let denies: Vec<&Finding> = eval
        .findings
        .iter()
        .filter(|f| f.action == Action::Deny)
        .collect();
    for f in &eval.findings {
        ann.append(&format!("finding.{}", f.rule), &finding_line(f));
    }
    // Warnings: deny findings too in dry-run (so people see what would be
    // denied), then warn findings, most severe first.
    let mut warnings = notes;
    warnings.extend(
        eval.findings
            .iter()
            .filter(|f| f.action == Action::Warn || (sw.dry_run && f.action == Action::Deny))
            .map(|f| f.message.clone()),
    );
    let warnings = cap_warnings(warnings);
    let mut out = Out {
        allowed: true,
        warnings,
        ..Out::default()
    };
    if !denies.is_empty() {
        let msg = deny_message(req, ctx, &denies);
        if sw.dry_run {
            rec.decision = Decision::WouldDeny;
            ann.set("would-deny", &msg);
        } else {
            rec.decision = Decision::Deny;
            out.allowed = false;
            out.code = Some((403, "Forbidden"));
            out.message = msg;
        }
    } else if eval.findings.iter().any(|f| f.action == Action::Warn) {
        rec.decision = Decision::Warn;
    } else if !eval.findings.is_empty() {
        rec.decision = Decision::Audit;
    } else {
        rec.decision = Decision::Allow;
    }
    out
}

fn mutate(
    req: &AdmissionRequest,
    ctx: &Context,
    eval: &Evaluation,
    sw: Switches,
    rec: &mut DecisionRecord,
    ann: &mut Annotations,
) -> Out {
    let mut out = Out {
        allowed: true,
        ..Out::default()
    };
    rec.decision = Decision::Allow;
    let may_patch = ctx.mode != Mode::Audit
        && req.sub_resource.is_none()
        && match req.operation {
            Operation::Create => true,
            Operation::Update => template_mutable_on_update(&req.kind),
            _ => false,
        };
    if !may_patch || eval.patch.0.is_empty() {
        return out;
    }
    let rules: Vec<&'static str> = eval.fixes.iter().map(|f| f.rule).collect();
    rec.fixes = rules.clone();
    if sw.dry_run {
        rec.decision = Decision::WouldPatch;
        ann.set("would-patch", rules.join(", "));
        return out;
    }
    let bytes = match serde_json::to_vec(&eval.patch) {
        Ok(b) => b,
        Err(_) => {
            rec.decision = Decision::Error;
            rec.error = Some(ErrorKind::Internal);
            rec.fixes.clear();
            return out;
        }
    };
    out.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
    out.warnings = cap_warnings(
        eval.fixes
            .iter()
            .map(|f| format!("tiergate {} fix: {}", f.rule, f.summary)),
    );
    ann.set("patched", rules.join(", "));
    rec.decision = Decision::Patch;
    out
}

/// The answer when tiergate cannot judge: validate denies (invalid object,
/// or `onError: deny`) or allows (`onError: allow`); mutate always allows
/// without a patch.
fn error_answer(
    req: &AdmissionRequest,
    cfg: &Config,
    sw: Switches,
    kind: ErrorKind,
    detail: Option<String>,
    ctx: Option<&Context>,
) -> (Value, DecisionRecord) {
    let mut rec = base_record(req, sw);
    rec.decision = Decision::Error;
    rec.error = Some(kind);
    rec.tier = ctx.map(|c| c.tier);
    rec.mode = ctx.map(|c| c.mode);
    let mut out = Out {
        allowed: true,
        ..Out::default()
    };
    let mut ann = Annotations::default();
    ann.set("error", kind.name());
    ann.set("decision", Decision::Error.name());
    if sw.webhook == Webhook::Validate {
        let (deny, msg) = match kind {
            ErrorKind::InvalidObject => (
                true,
                format!(
                    "tiergate cannot judge {}: {}",
                    req.display(),
                    detail.unwrap_or_else(|| "invalid object".into())
                ),
            ),
            ErrorKind::Panic | ErrorKind::Internal => (
                cfg.on_error == OnError::Deny,
                format!(
                    "tiergate internal error while judging {} (request uid {}); \
                     denied by the onError policy, see the tiergate logs",
                    req.display(),
                    req.uid
                ),
            ),
        };
        if deny && !sw.dry_run {
            out.allowed = false;
            out.code = Some(match kind {
                ErrorKind::InvalidObject => (400, "BadRequest"),
                _ => (500, "InternalError"),
            });
            out.message = truncate(&msg, MESSAGE_MAX);
        } else {
            ann.set("error-message", &msg);
        }
    }
    rec.allowed = out.allowed;
    out.annotations = ann.finish();
    (review(req, out), rec)
}

#[cfg(test)]
mod tests;
