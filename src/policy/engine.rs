//! The engine: selects the rules that apply, runs their checks and fixes.
use serde::Serialize;
use serde_json::Value;

use super::config::{ContainerScope, Exemption, PolicyConfig, Subject};
use super::exception::ExceptionFact;
use super::pss::{PssLevel, PssVersion};
use super::rule::RuleCtx;
use super::rule::Violation;
use super::{rules, Action, Context, EngineError, Mode, Rule, Target, Tier};

/// How to select rules for one evaluation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Evaluate exactly this Pod Security Standard and nothing else.
    pub pss: Option<(PssLevel, PssVersion)>,
    /// Evaluate just these rule ids, whatever their tier.
    pub only: Option<Vec<String>>,
    /// Compute fixes (the patch).
    pub fix: bool,
    /// Make `fixable` on findings exact: run the fixes and check again, so a
    /// finding is fixable only when the fixes really make it go away (what
    /// `tiergate check` reports). Without it, `fixable` means "the rule's fix
    /// is on" and, unless `fix` is set, no fix runs at all (the validating
    /// webhook's fast path).
    pub exact_fixable: bool,
    /// Leave out the rules the apiserver's policies judge
    /// ([`crate::policy::cel::covered`]): the validating webhook in
    /// `admissionPolicies: hybrid`.
    pub skip_covered: bool,
}

/// One finding: a rule, where, what, and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    /// The tier the rule is required from.
    pub tier: u8,
    pub action: Action,
    pub message: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub fixable: bool,
}

/// A fix that changed the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedFix {
    pub rule: &'static str,
    pub summary: &'static str,
}

/// A rule an exemption covers that would have found something: what it
/// would have said, suppressed, and the exemption's reason. A covered rule
/// that finds nothing is not listed (nothing was suppressed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exempted {
    pub rule: &'static str,
    pub reason: String,
    /// The findings suppressed (what the rule would have reported).
    pub findings: Vec<Finding>,
    /// The `TierException` (`namespace/name`); `None`: the config's
    /// `exemptions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// When the exception ends (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// The result of judging one object.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Most severe first, then in rule and field order.
    pub findings: Vec<Finding>,
    /// The fixed object, when fixes were asked for and changed something.
    pub fixed: Option<Value>,
    /// RFC 6902 patch from the input to `fixed` (empty when nothing changed).
    pub patch: json_patch::Patch,
    pub fixes: Vec<AppliedFix>,
    pub exempted: Vec<Exempted>,
    /// What the requester should know that is not a finding: an exception
    /// that applied and ends soon (`exceptions.warnBefore`).
    pub notices: Vec<String>,
}

impl Evaluation {
    pub fn denies(&self) -> bool {
        self.findings.iter().any(|f| f.action == Action::Deny)
    }
    pub fn worst(&self) -> Action {
        self.findings
            .iter()
            .map(|f| f.action)
            .max()
            .unwrap_or(Action::Off)
    }
}

/// The policy engine. Cheap to share: it holds only the config.
#[derive(Debug, Clone)]
pub struct Engine {
    config: std::sync::Arc<PolicyConfig>,
    /// Per rule of [`rules::ALL`]: whether the apiserver's policies judge
    /// it under this config ([`super::cel::covered`]), computed once here
    /// rather than on every hybrid request.
    covered: std::sync::Arc<[bool]>,
}

struct Selected {
    rule: &'static Rule,
    action: Action,
    fix: bool,
}

impl Engine {
    pub fn new(config: PolicyConfig) -> Self {
        let covered = rules::ALL
            .iter()
            .map(|r| super::cel::covered(r, &config))
            .collect();
        Engine {
            config: std::sync::Arc::new(config),
            covered,
        }
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The rules that judge objects of `group`/`kind` in a namespace of
    /// this tier and mode, each with its action and whether its fix is on:
    /// exactly what [`Engine::evaluate`] selects (config overrides, the PSS
    /// version, checks that replace others), for the policy export.
    pub fn plan(
        &self,
        group: &str,
        kind: &str,
        tier: Tier,
        mode: Mode,
    ) -> Vec<(&'static Rule, Action, bool)> {
        let ctx = Context::new(tier, mode);
        self.select(group, kind, &ctx, &Options::default())
            .0
            .into_iter()
            .map(|s| (s.rule, s.action, s.fix))
            .collect()
    }

    fn select(
        &self,
        group: &str,
        kind: &str,
        ctx: &Context,
        opts: &Options,
    ) -> (Vec<Selected>, u32) {
        let cfg = &self.config;
        let mut minor = cfg.pss_version.minor;
        let mut out: Vec<Selected> = Vec::new();
        for (index, rule) in rules::ALL.iter().copied().enumerate() {
            if !rule.applies_to(group, kind) {
                continue;
            }
            let (action, fix) = if let Some((level, version)) = opts.pss {
                minor = version.minor;
                match rule.pss {
                    Some(p) if p.level <= level && p.applies_at(minor) => (Action::Deny, false),
                    _ => continue,
                }
            } else if let Some(only) = &opts.only {
                if !only.iter().any(|id| id == rule.id) {
                    continue;
                }
                if let Some(p) = rule.pss {
                    if !p.applies_at(minor) {
                        continue;
                    }
                }
                (
                    cfg.rule_action(ctx.tier.max(rule.tier), rule),
                    cfg.fix_enabled(ctx.tier.max(rule.tier), rule),
                )
            } else {
                if rule.tier > ctx.tier {
                    continue;
                }
                if let Some(p) = rule.pss {
                    if !p.applies_at(minor) {
                        continue;
                    }
                }
                (
                    cfg.rule_action(ctx.tier, rule),
                    cfg.fix_enabled(ctx.tier, rule),
                )
            };
            if action == Action::Off {
                continue;
            }
            if opts.skip_covered && self.covered.get(index).copied().unwrap_or(false) {
                continue;
            }
            out.push(Selected {
                rule,
                action: action.min(ctx.mode.cap()),
                fix,
            });
        }
        // A check that replaces another (PSS OverrideCheckIDs) reports once.
        let overridden: Vec<&str> = out
            .iter()
            .filter_map(|s| s.rule.pss)
            .flat_map(|p| p.overrides.iter().copied())
            .collect();
        out.retain(|s| !overridden.contains(&s.rule.id));
        (out, minor)
    }

    /// Judge one object in its context.
    pub fn evaluate(
        &self,
        obj: &Value,
        ctx: &Context,
        opts: &Options,
    ) -> Result<Evaluation, EngineError> {
        let target = Target::parse(obj)?;
        let (mut selected, minor) = self.select(target.group, target.kind, ctx, opts);
        let mut eval = Evaluation::default();

        let exceptions = self.exceptions_for(&target, ctx);
        let (whole, partial) = if opts.pss.is_none() {
            take_excepted(&exceptions, &mut selected)
        } else {
            (Vec::new(), Vec::new())
        };

        let rctx = RuleCtx {
            ctx,
            config: &self.config,
            pss_minor: minor,
        };
        // What the excepted rules would have found (for reports that show
        // suppressions). A check that fails on this object suppresses nothing
        // and never fails the object: the rule is excepted.
        let mut violations = Vec::new();
        for (s, by) in whole {
            violations.clear();
            if s.rule.run_check(&target, &rctx, &mut violations).is_err() || violations.is_empty() {
                continue;
            }
            let findings = violations.drain(..).map(|v| excepted(&s, v)).collect();
            eval.exempted.push(by.exempted(s.rule.id, findings));
        }
        // Rules whose fix runs: a fix that declines some findings may still
        // do the safe part (a resources fix fills requests, not limits).
        let mut fix_candidates: Vec<&'static str> = Vec::new();
        for s in &mut selected {
            violations.clear();
            s.rule.run_check(&target, &rctx, &mut violations)?;
            // Findings in containers a container-scoped exception covers are
            // excepted; the rule's fix then does not run at all (it would
            // change the excepted container too).
            let scoped: Vec<&By<'_>> = partial
                .iter()
                .filter(|(id, _)| *id == s.rule.id)
                .map(|(_, b)| b)
                .collect();
            if !scoped.is_empty() {
                let mut taken: Vec<(usize, Finding)> = Vec::new();
                let mut kept = Vec::new();
                for v in violations.drain(..) {
                    let by = v.container.as_deref().and_then(|c| {
                        let image = container_image(&target, c);
                        scoped.iter().position(|b| b.scope().covers(c, image))
                    });
                    match by {
                        Some(i) => taken.push((i, excepted(s, v))),
                        None => kept.push(v),
                    }
                }
                violations = kept;
                if !taken.is_empty() {
                    s.fix = false;
                }
                for (i, b) in scoped.iter().enumerate() {
                    let mine: Vec<Finding> = taken
                        .iter()
                        .filter(|(j, _)| *j == i)
                        .map(|(_, f)| f.clone())
                        .collect();
                    if !mine.is_empty() {
                        eval.exempted.push(b.exempted(s.rule.id, mine));
                    }
                }
            }
            if s.fix && violations.iter().any(|v| !v.unknown) {
                fix_candidates.push(s.rule.id);
            }
            for v in violations.drain(..) {
                let action = if v.unknown {
                    s.action.min(Action::Warn)
                } else {
                    s.action
                };
                // A fix that declines says why, where its fix is on.
                let message = match v.declined {
                    Some(why) if s.fix => format!("{}; not fixed: {why}", v.message),
                    _ => v.message,
                };
                eval.findings.push(Finding {
                    rule: s.rule.id,
                    tier: s.rule.tier.number(),
                    action,
                    message,
                    path: v.path,
                    container: v.container,
                    fixable: s.fix && !v.unknown && v.declined.is_none(),
                });
            }
        }
        // Fixes run only for rules that found something they may fix: a fix
        // changes nothing its rule does not flag, so the others are skipped
        // (and with no candidate at all, so is the copy of the object).
        if !fix_candidates.is_empty() && (opts.fix || opts.exact_fixable) {
            let first: Vec<&Selected> = selected
                .iter()
                .filter(|s| fix_candidates.contains(&s.rule.id))
                .collect();
            let (working, fixes) = self.fix_to_fixed_point(obj, &target, &rctx, &selected, first);
            if opts.exact_fixable {
                self.settle_fixable(
                    &mut eval.findings,
                    &selected,
                    &rctx,
                    &working,
                    !fixes.is_empty(),
                );
            }
            if opts.fix && !fixes.is_empty() {
                eval.patch = super::fixutil::diff(obj, &working);
                eval.fixed = Some(working);
                eval.fixes = fixes;
            }
        }
        // Most severe first; stable, so rule and field order hold within an action.
        eval.findings.sort_by_key(|f| std::cmp::Reverse(f.action));
        eval.notices = self.ending_soon(&exceptions, &eval.exempted, ctx.now);
        Ok(eval)
    }

    /// Apply the fixes of `first` (the rules with fixable findings), then,
    /// while a fix made another fix-enabled rule find something new (labels
    /// added by one fix that a topology-spread fix keys on, say), the fixes of
    /// those rules on the fixed object: one pass of `fix` reaches the fixed
    /// point, so fixing fixed output, or a second mutate, changes nothing.
    fn fix_to_fixed_point(
        &self,
        obj: &Value,
        target: &Target<'_>,
        rctx: &RuleCtx<'_>,
        selected: &[Selected],
        first: Vec<&Selected>,
    ) -> (Value, Vec<AppliedFix>) {
        const MAX_PASSES: usize = 4;
        let mut working = obj.clone();
        let mut fixes: Vec<AppliedFix> = Vec::new();
        let mut apply = |rules: &[&Selected], t: &Target<'_>, working: &mut Value| {
            let mut changed = false;
            for s in rules {
                if s.rule.run_fix(t, rctx, working) {
                    changed = true;
                    if !fixes.iter().any(|f| f.rule == s.rule.id) {
                        fixes.push(AppliedFix {
                            rule: s.rule.id,
                            summary: s.rule.fix.summary(),
                        });
                    }
                }
            }
            changed
        };
        if !apply(&first, target, &mut working) {
            return (working, fixes);
        }
        // Later passes: every fix-enabled rule that still finds something on
        // the fixed object (one fix may enable another: a container made
        // non-root may now drop its capabilities), until nothing changes.
        for _ in 1..MAX_PASSES {
            // Which fixes still have work, judged on the fixed object itself;
            // it is copied (the fixes need it mutable while they read the
            // parsed target) only when one has, which is rare.
            let next: Vec<&Selected> = {
                let Ok(now) = Target::parse(&working) else {
                    break;
                };
                let mut vs = Vec::new();
                selected
                    .iter()
                    .filter(|s| s.fix)
                    .filter(|s| {
                        // Only what a fix may still do: a declined finding (a
                        // container that may run as root) stays declined until
                        // another fix changes that, and then it is not declined.
                        vs.clear();
                        s.rule.run_check(&now, rctx, &mut vs).is_ok()
                            && vs.iter().any(|v| !v.unknown && v.declined.is_none())
                    })
                    .collect()
            };
            if next.is_empty() {
                break;
            }
            let snapshot = working.clone();
            let Ok(now) = Target::parse(&snapshot) else {
                break;
            };
            if !apply(&next, &now, &mut working) {
                break;
            }
        }
        (working, fixes)
    }

    /// A finding is fixable when the fixes actually make it go away: re-check
    /// the fixed object with the rules that had candidate findings. So `check`
    /// on `fix` output shows exactly what no fix covers.
    fn settle_fixable(
        &self,
        findings: &mut [Finding],
        selected: &[Selected],
        rctx: &RuleCtx<'_>,
        fixed: &Value,
        changed: bool,
    ) {
        let after = if changed {
            Target::parse(fixed).ok()
        } else {
            None
        };
        let mut remaining: Vec<(&'static str, Violation)> = Vec::new();
        if let Some(after) = &after {
            let mut vs = Vec::new();
            for s in selected.iter().filter(|s| s.fix) {
                if !findings.iter().any(|f| f.fixable && f.rule == s.rule.id) {
                    continue;
                }
                vs.clear();
                if s.rule.run_check(after, rctx, &mut vs).is_err() {
                    // Cannot tell: call none of this rule's findings fixable.
                    for f in findings.iter_mut().filter(|f| f.rule == s.rule.id) {
                        f.fixable = false;
                    }
                    continue;
                }
                remaining.extend(vs.drain(..).map(|v| (s.rule.id, v)));
            }
        }
        for f in findings.iter_mut().filter(|f| f.fixable) {
            f.fixable = after.is_some()
                && !remaining
                    .iter()
                    .any(|(r, v)| *r == f.rule && v.path == f.path && v.message == f.message);
        }
    }

    /// The exceptions that cover this object: the config's exemptions that
    /// match it, and the live `TierException`s of its own namespace that
    /// match it (never another namespace's).
    fn exceptions_for<'a>(&'a self, target: &Target<'_>, ctx: &'a Context) -> Vec<By<'a>> {
        let mut out = Vec::new();
        if !self.config.exemptions.is_empty() {
            let namespace = ctx
                .namespace
                .as_deref()
                .or(target.meta.namespace.as_deref());
            let (username, groups): (Option<&str>, &[String]) = match &ctx.requester {
                Some(r) => (Some(r.username.as_str()), r.groups.as_slice()),
                None => (None, &[]),
            };
            let subject = Subject {
                namespace,
                name: target.name(),
                kind: target.kind,
                username,
                groups,
            };
            out.extend(
                self.config
                    .exemptions
                    .iter()
                    .filter(|e| e.matches(&subject))
                    .map(By::Config),
            );
        }
        // Objects without a namespace (offline) share one, as their facts do.
        let ns = ctx.namespace.as_deref().unwrap_or("");
        if let Some(list) = ctx.facts.exceptions.known() {
            out.extend(
                list.iter()
                    .filter(|e| {
                        e.namespace == ns
                            && e.live_at(ctx.now, &self.config)
                            && e.matches(target.kind, target.name())
                    })
                    .map(By::Object),
            );
        }
        out
    }

    /// A notice per `TierException` that excepted something and ends within
    /// `exceptions.warnBefore`.
    fn ending_soon(&self, by: &[By<'_>], exempted: &[Exempted], now: Option<i64>) -> Vec<String> {
        let Some(now) = now else { return Vec::new() };
        let window = self.config.exceptions.warn_before.0;
        let mut out = Vec::new();
        for b in by {
            let By::Object(e) = b else { continue };
            let id = e.id();
            let rules: Vec<&str> = exempted
                .iter()
                .filter(|x| x.exception.as_deref() == Some(id.as_str()))
                .map(|x| x.rule)
                .collect();
            let left = e.expires - now;
            if rules.is_empty() || left > window {
                continue;
            }
            // Short: a warning is cut at 119 characters (the end is in the
            // object and the audit annotations).
            out.push(format!(
                "tiergate exception {id} ({}) ends in {}, owner {}",
                rules.join(", "),
                super::exception::human(left),
                e.owner
            ));
        }
        out
    }
}

/// What excepts a rule: an entry of the config's `exemptions`, or a
/// `TierException`.
#[derive(Debug, Clone, Copy)]
enum By<'a> {
    Config(&'a Exemption),
    Object(&'a ExceptionFact),
}

impl By<'_> {
    fn covers_rule(&self, id: &str) -> bool {
        match self {
            By::Config(e) => e.covers_rule(id),
            By::Object(e) => e.covers_rule(id),
        }
    }

    fn scope(&self) -> ContainerScope<'_> {
        match self {
            By::Config(e) => e.scope(),
            By::Object(e) => e.scope(),
        }
    }

    fn exempted(&self, rule: &'static str, findings: Vec<Finding>) -> Exempted {
        match self {
            By::Config(e) => Exempted {
                rule,
                reason: e.reason.clone(),
                findings,
                exception: None,
                owner: None,
                expires: None,
            },
            By::Object(e) => Exempted {
                rule,
                reason: e.reason.clone(),
                findings,
                exception: Some(e.id()),
                owner: Some(e.owner.clone()),
                expires: Some(super::exception::rfc3339(e.expires)),
            },
        }
    }
}

/// What an excepted rule would have reported.
fn excepted(s: &Selected, v: Violation) -> Finding {
    Finding {
        rule: s.rule.id,
        tier: s.rule.tier.number(),
        action: if v.unknown {
            s.action.min(Action::Warn)
        } else {
            s.action
        },
        message: v.message,
        path: v.path,
        container: v.container,
        fixable: false,
    }
}

/// A rule a container-scoped exception covers, and that exception.
type Scoped<'a> = (&'static str, By<'a>);

/// Take the rules an exception covers whole out of `selected` (with what
/// covers them); the rules a container-scoped one covers stay selected and
/// are listed with it.
fn take_excepted<'a>(
    by: &[By<'a>],
    selected: &mut Vec<Selected>,
) -> (Vec<(Selected, By<'a>)>, Vec<Scoped<'a>>) {
    let mut whole = Vec::new();
    let mut partial = Vec::new();
    if by.is_empty() {
        return (whole, partial);
    }
    for s in std::mem::take(selected) {
        let covering = by.iter().filter(|b| b.covers_rule(s.rule.id));
        let mut whole_by = None;
        for b in covering {
            if b.scope().whole_object() {
                whole_by = Some(*b);
                break;
            }
            partial.push((s.rule.id, *b));
        }
        match whole_by {
            Some(b) => {
                partial.retain(|(id, _)| *id != s.rule.id);
                whole.push((s, b));
            }
            None => selected.push(s),
        }
    }
    (whole, partial)
}

/// The image of the pod's container of this name.
fn container_image<'t>(target: &'t Target<'_>, name: &str) -> Option<&'t str> {
    let pod = target.pod.as_ref()?;
    let all = pod
        .spec
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.image.as_deref()))
        .chain(
            pod.spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| (c.name.as_str(), c.image.as_deref())),
        )
        .chain(
            pod.spec
                .ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (c.name.as_str(), c.image.as_deref())),
        );
    all.into_iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, i)| i)
}
