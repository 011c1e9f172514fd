//! Deciding one request: skip what is not judged, resolve the context, let
//! the tier guard refuse a weakened Namespace, run the engine, and answer as
//! the validating or the mutating webhook.
use kube::core::admission::Operation;

use super::context::{Lookup, ResolvedContext};
use super::limits::Annotations;
use super::message::{deny_message, rules_by_action};
use super::record::{Decision, DecisionRecord, ErrorKind, Webhook};
use super::request::AdmissionRequest;
use super::response::{AdmissionResponse, AdmissionReview, Refusal};
use super::{scope, AdmissionSettings, Evaluate, OnError};
use crate::policy::cel;
use crate::policy::exception;
use crate::policy::guard::{self, NamespaceChange, Verdict};
use crate::policy::namespace::{is_namespace_kind, labels_of};
use crate::policy::{Action, Context, Evaluation, Finding, Mode, Options, PolicyConfig, Tier};

/// How far a decision got, for the answer to a panic: the namespace's tier
/// and mode, once resolved (copied, not the whole context: this is on every
/// request's path).
#[derive(Debug, Default)]
pub struct Progress {
    pub judged_at: Option<(Tier, Mode)>,
}

/// An answer and its record.
pub type Decided = (AdmissionReview, DecisionRecord);

/// Decide one request; `resolve` looks up its context (called at most once,
/// only for requests that are judged). `None` when the lookup would block.
pub fn decide_in(
    req: &AdmissionRequest,
    engine: &dyn Evaluate,
    settings: AdmissionSettings,
    progress: &mut Progress,
    resolve: impl FnOnce(&PolicyConfig) -> Lookup,
) -> Option<Decided> {
    if scope::skipped(req) {
        return Some(skip(req, settings));
    }
    let cfg = engine.config();
    let Lookup::Ready(resolved) = resolve(cfg) else {
        return None;
    };
    progress.judged_at = Some((resolved.ctx.tier, resolved.ctx.mode));
    let ctx = &resolved.ctx;
    let obj = match scope::object_to_judge(req) {
        Ok(o) => o,
        Err(msg) => {
            return Some(error_answer(
                req,
                settings,
                ErrorKind::InvalidObject,
                Some(msg),
                Some((ctx.tier, ctx.mode)),
            ))
        }
    };
    // Labels are the policy: weakening them is for tier admins only.
    if let Some(Verdict::Deny(msg)) = guard_verdict(req, ctx, cfg, settings) {
        return Some(guard_deny(req, ctx, settings, &msg));
    }
    // So are exceptions: valid, bounded, and granted by an approver.
    if let Some(Verdict::Deny(msg)) = exception_verdict(req, &obj, ctx, cfg, settings) {
        return Some(guard_deny(req, ctx, settings, &msg));
    }
    let opts = Options {
        pss: None,
        only: None,
        fix: settings.webhook == Webhook::Mutate,
        exact_fixable: false,
        // Hybrid: the apiserver's policies judge what they cover (after
        // the fixes, so the mutating webhook still runs every rule).
        skip_covered: settings.webhook == Webhook::Validate
            && cfg.admission_policies.hybrid()
            && !cel::webhook_only(&ctx.namespace_labels),
    };
    let eval = match engine.evaluate(&obj, ctx, &opts) {
        Ok(e) => e,
        Err(e) => {
            return Some(error_answer(
                req,
                settings,
                ErrorKind::InvalidObject,
                Some(e.to_string()),
                Some((ctx.tier, ctx.mode)),
            ))
        }
    };
    Some(judged(req, settings, &resolved, eval))
}

/// The answer to a request the engine judged.
fn judged(
    req: &AdmissionRequest,
    settings: AdmissionSettings,
    resolved: &ResolvedContext,
    eval: Evaluation,
) -> Decided {
    let ctx = &resolved.ctx;
    let mut rec = DecisionRecord::new(req, settings);
    rec.tier = Some(ctx.tier);
    rec.mode = Some(ctx.mode);
    for e in &eval.exempted {
        match &e.exception {
            None => rec.exempted.push((e.rule, e.reason.clone())),
            Some(id) => rec.exceptions.push((e.rule, id.clone())),
        }
    }
    let mut ann = Annotations::default();
    ann.set("tier", format!("{} ({})", ctx.tier.number(), ctx.tier));
    ann.set("mode", ctx.mode.name());
    for (k, v) in &resolved.annotations {
        ann.set(k, v);
    }
    for (rule, reason) in &rec.exempted {
        ann.append("exempted", &format!("{rule} ({reason})"));
    }
    for (rule, id) in &rec.exceptions {
        ann.append("exception", &format!("{id} ({rule})"));
    }
    let resp = match settings.webhook {
        Webhook::Validate => validate(req, resolved, &eval, settings, &mut rec, &mut ann),
        Webhook::Mutate => mutate(req, ctx, &eval, settings, &mut rec, &mut ann),
    };
    rec.findings = eval.findings;
    rec.allowed = resp.allowed;
    ann.set("decision", rec.decision.name());
    (resp.annotate(ann).into_review(req), rec)
}

fn skip(req: &AdmissionRequest, settings: AdmissionSettings) -> Decided {
    let mut rec = DecisionRecord::new(req, settings);
    rec.decision = Decision::Skip;
    (AdmissionResponse::allow(req).into_review(req), rec)
}

/// The validating answer: deny findings deny (enforce) or would deny
/// (dry-run); warn findings, the context's notes and, in dry-run, the would-be
/// denials are warnings; every finding is an audit annotation.
fn validate(
    req: &AdmissionRequest,
    resolved: &ResolvedContext,
    eval: &Evaluation,
    settings: AdmissionSettings,
    rec: &mut DecisionRecord,
    ann: &mut Annotations,
) -> AdmissionResponse {
    let denies: Vec<&Finding> = eval
        .findings
        .iter()
        .filter(|f| f.action == Action::Deny)
        .collect();
    // What was found, in one key: the rules by action. Every message is in
    // the answer (denial, warnings), the background audit's reports and
    // `tiergate check`; the apiserver stores this key with every write.
    if !eval.findings.is_empty() {
        ann.set("findings", rules_by_action(&eval.findings));
    }
    // Deny findings too in dry-run (so people see what would be denied),
    // then warn findings, most severe first.
    let warnings = resolved
        .notes
        .iter()
        .cloned()
        .chain(eval.notices.iter().cloned())
        .chain(
            eval.findings
                .iter()
                .filter(|f| {
                    f.action == Action::Warn || (settings.dry_run && f.action == Action::Deny)
                })
                .map(|f| f.message.clone()),
        );
    let mut resp = AdmissionResponse::allow(req).warn(warnings);
    rec.decision = if !denies.is_empty() {
        let msg = deny_message(req, &resolved.ctx, &denies);
        if settings.dry_run {
            ann.set("would-deny", &msg);
            Decision::WouldDeny
        } else {
            resp = resp.deny(Refusal::Forbidden, &msg);
            Decision::Deny
        }
    } else if eval.findings.iter().any(|f| f.action == Action::Warn) {
        Decision::Warn
    } else if !eval.findings.is_empty() {
        Decision::Audit
    } else {
        Decision::Allow
    };
    resp
}

/// The mutating answer: the engine's patch, where a patch may go (not in
/// audit mode, not on subresources, not on UPDATEs of immutable templates),
/// with a warning per fix.
fn mutate(
    req: &AdmissionRequest,
    ctx: &Context,
    eval: &Evaluation,
    settings: AdmissionSettings,
    rec: &mut DecisionRecord,
    ann: &mut Annotations,
) -> AdmissionResponse {
    let resp = AdmissionResponse::allow(req);
    rec.decision = Decision::Allow;
    if ctx.mode == Mode::Audit || !scope::may_patch(req) || eval.patch.0.is_empty() {
        return resp;
    }
    let rules: Vec<&'static str> = eval.fixes.iter().map(|f| f.rule).collect();
    if settings.dry_run {
        rec.fixes = rules.clone();
        rec.decision = Decision::WouldPatch;
        ann.set("would-patch", rules.join(", "));
        return resp;
    }
    let Ok(resp) = resp.with_patch(&eval.patch) else {
        rec.decision = Decision::Error;
        rec.error = Some(ErrorKind::Internal);
        return AdmissionResponse::allow(req);
    };
    ann.set("patched", rules.join(", "));
    rec.fixes = rules;
    rec.decision = Decision::Patch;
    resp.warn(
        eval.fixes
            .iter()
            .map(|f| format!("tiergate {} fix: {}", f.rule, f.summary)),
    )
}

/// The tier guard's verdict on a Namespace CREATE or UPDATE (validating
/// webhook only); `None` for every other request.
fn guard_verdict(
    req: &AdmissionRequest,
    ctx: &Context,
    cfg: &PolicyConfig,
    settings: AdmissionSettings,
) -> Option<Verdict> {
    let applies = settings.webhook == Webhook::Validate
        && is_namespace_kind(&req.group, &req.kind)
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

/// The verdict on a `TierException` CREATE or UPDATE (validating webhook
/// only); `None` for every other request.
fn exception_verdict(
    req: &AdmissionRequest,
    obj: &serde_json::Value,
    ctx: &Context,
    cfg: &PolicyConfig,
    settings: AdmissionSettings,
) -> Option<Verdict> {
    let applies = settings.webhook == Webhook::Validate
        && req.group == exception::GROUP
        && req.kind == exception::KIND
        && req.sub_resource.is_none()
        && matches!(req.operation, Operation::Create | Operation::Update);
    if !applies {
        return None;
    }
    // No clock is no exception: refuse rather than guess.
    let Some(now) = ctx.now else {
        return Some(Verdict::Deny(
            "tiergate: TierException refused: the time is unknown".to_string(),
        ));
    };
    Some(exception::guard_write(
        obj,
        ctx.requester.as_ref(),
        now,
        cfg,
    ))
}

/// The answer when the tier guard refuses a Namespace change (a warning in
/// dry-run).
fn guard_deny(
    req: &AdmissionRequest,
    ctx: &Context,
    settings: AdmissionSettings,
    msg: &str,
) -> Decided {
    let mut rec = DecisionRecord::new(req, settings);
    rec.tier = Some(ctx.tier);
    rec.mode = Some(ctx.mode);
    let mut ann = Annotations::default();
    let mut resp = AdmissionResponse::allow(req);
    let msg = super::limits::truncate(msg, super::limits::MESSAGE_MAX);
    if settings.dry_run {
        rec.decision = Decision::WouldDeny;
        ann.set("would-deny", &msg);
        resp = resp.warn([msg]);
    } else {
        rec.decision = Decision::Deny;
        ann.set("tier-guard", &msg);
        resp = resp.deny(Refusal::Forbidden, &msg);
    }
    rec.allowed = resp.allowed;
    ann.set("decision", rec.decision.name());
    (resp.annotate(ann).into_review(req), rec)
}

/// The answer when tiergate cannot judge. The validating webhook, in an
/// `enforce` namespace (or when the namespace is not known yet), denies an
/// invalid object, and any other failure under `onError: deny`; in a `warn` or
/// `audit` namespace it admits with a warning, as the namespace's mode says
/// not to block; in dry-run it denies nothing. The mutating webhook always
/// allows, without a patch.
pub fn error_answer(
    req: &AdmissionRequest,
    settings: AdmissionSettings,
    kind: ErrorKind,
    detail: Option<String>,
    judged_at: Option<(Tier, Mode)>,
) -> Decided {
    let mut rec = DecisionRecord::new(req, settings);
    rec.decision = Decision::Error;
    rec.error = Some(kind);
    rec.tier = judged_at.map(|(t, _)| t);
    rec.mode = judged_at.map(|(_, m)| m);
    let mut resp = AdmissionResponse::allow(req);
    let mut ann = Annotations::default();
    ann.set("error", kind.name());
    ann.set("decision", Decision::Error.name());
    if settings.webhook == Webhook::Validate {
        let (deny, why, msg) = match kind {
            ErrorKind::InvalidObject => (
                true,
                Refusal::BadRequest,
                format!(
                    "tiergate cannot judge {}: {}",
                    req.display(),
                    detail.unwrap_or_else(|| "invalid object".into())
                ),
            ),
            ErrorKind::Panic | ErrorKind::Internal => (
                settings.on_error == OnError::Deny,
                Refusal::InternalError,
                format!(
                    "tiergate internal error while judging {} (request uid {}); \
                     denied by the onError policy, see the tiergate logs",
                    req.display(),
                    req.uid
                ),
            ),
        };
        let blocking = judged_at.is_none_or(|(_, m)| m == Mode::Enforce);
        if deny && blocking && !settings.dry_run {
            resp = resp.deny(why, &msg);
        } else {
            ann.set("error-message", &msg);
            if !blocking {
                resp = resp.warn([msg]);
            }
        }
    }
    rec.allowed = resp.allowed;
    (resp.annotate(ann).into_review(req), rec)
}
