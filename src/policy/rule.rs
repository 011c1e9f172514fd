//! What a rule is. Each rule is one `static RULE: Rule` in its own file under
//! `rules/`, with its doc and its tests, and one line in `rules/mod.rs`.
//!
//! The types say what a rule reads and whether it fixes:
//! - [`Check::Pod`]: the rule reads a pod template, and is given one for
//!   every kind that carries one ([`crate::policy::kinds::WORKLOADS`]);
//! - [`Check::Object`]: the rule reads whole objects of the [`Kinds`] it names;
//! - [`Fix`]: none, on by default, or opt-in, each fix with its summary and
//!   its function.
use serde_json::Value;

use super::cel::Cel;
use super::kinds::{GroupKind, WORKLOADS};
use super::pss::{PssChange, PssCheck};
use super::target::PodTemplate;
use super::{Context, EngineError, PolicyConfig, Target, Tier};

/// Which kinds an object rule applies to.
#[derive(Debug, Clone, Copy)]
pub enum Kinds {
    /// Every kind with a pod template.
    Workloads,
    /// Exactly these kinds.
    Only(&'static [GroupKind]),
    /// Every kind with a pod template, and these.
    WorkloadsAnd(&'static [GroupKind]),
    /// Every object, whatever its kind.
    All,
}

impl Kinds {
    pub fn matches(&self, group: &str, kind: &str) -> bool {
        let workload = || WORKLOADS.iter().any(|w| w.gk.is(group, kind));
        match self {
            Kinds::Workloads => workload(),
            Kinds::Only(ks) => ks.iter().any(|k| k.is(group, kind)),
            Kinds::WorkloadsAnd(ks) => workload() || ks.iter().any(|k| k.is(group, kind)),
            Kinds::All => true,
        }
    }
    /// Every group and kind, for listings.
    pub fn list(&self) -> Vec<GroupKind> {
        let workloads = WORKLOADS.iter().map(|w| w.gk);
        match self {
            Kinds::Workloads => workloads.collect(),
            Kinds::Only(ks) => ks.to_vec(),
            Kinds::WorkloadsAnd(ks) => workloads.chain(ks.iter().copied()).collect(),
            Kinds::All => Vec::new(),
        }
    }
    /// The kind names, without repeats, for docs (`Deployment`, not one per
    /// group it was ever served in).
    pub fn names(&self) -> Vec<&'static str> {
        if matches!(self, Kinds::All) {
            return vec!["every kind"];
        }
        let mut out: Vec<&'static str> = Vec::new();
        for gk in self.list() {
            if !out.contains(&gk.kind) {
                out.push(gk.kind);
            }
        }
        out
    }
}

/// One thing a rule found wrong, at one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the object (`/spec/template/spec/containers/0/...`).
    pub path: String,
    /// The container concerned, if any.
    pub container: Option<String>,
    /// What is wrong, in the style of Pod Security Admission.
    pub message: String,
    /// True when the rule could not decide because a namespace fact is unknown:
    /// such a finding never denies.
    pub unknown: bool,
    /// Why the rule's fix will not fix this one (it could break the
    /// workload): the finding is then not fixable, and, where the fix is on,
    /// its message says why.
    pub declined: Option<&'static str>,
}

impl Violation {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            path: path.into(),
            container: None,
            message: message.into(),
            unknown: false,
            declined: None,
        }
    }
    pub fn in_container(mut self, name: &str) -> Self {
        self.container = Some(name.to_string());
        self
    }
    /// For a rule that needs the namespace's labels when they are not known:
    /// `<what> unknown (the namespace's labels are not known, so <question>
    /// cannot be checked)`, a warning at most.
    pub fn namespace_labels_unknown(what: &str, question: &str) -> Self {
        Violation::new(
            "/metadata/namespace",
            format!(
                "{what} unknown (the namespace's labels are not known, so {question} cannot be \
                 checked)"
            ),
        )
        .unknown()
    }
    pub fn unknown(mut self) -> Self {
        self.unknown = true;
        self
    }
    /// The fix declines this one, for this reason.
    pub fn declined(mut self, why: &'static str) -> Self {
        self.declined = Some(why);
        self
    }
}

/// What a rule's check and fix can see besides the object.
pub struct RuleCtx<'a> {
    pub ctx: &'a Context,
    pub config: &'a PolicyConfig,
    /// The Pod Security Standards minor version checks follow (`37` = v1.37).
    pub pss_minor: u32,
}

impl RuleCtx<'_> {
    /// Whether the PSS version being followed includes an upstream change.
    pub fn pss_has(&self, change: PssChange) -> bool {
        change.in_effect_at(self.pss_minor)
    }
}

pub type PodCheckFn =
    fn(&PodTemplate, &RuleCtx<'_>, &mut Vec<Violation>) -> Result<(), EngineError>;
pub type ObjectCheckFn =
    fn(&Target<'_>, &RuleCtx<'_>, &mut Vec<Violation>) -> Result<(), EngineError>;

/// What a rule reads, and its check.
#[derive(Clone, Copy)]
pub enum Check {
    /// The pod template of every kind that carries one.
    Pod(PodCheckFn),
    /// Whole objects of these kinds.
    Object(Kinds, ObjectCheckFn),
}

/// A fix edits the working copy of the object in place and returns whether it
/// changed anything. It must be idempotent and must not drop or reorder what
/// the user wrote.
#[derive(Clone, Copy)]
pub enum FixFn {
    /// Given the pod template the check read.
    Pod(fn(&PodTemplate, &RuleCtx<'_>, &mut Value) -> bool),
    /// Given the whole object.
    Object(fn(&Target<'_>, &RuleCtx<'_>, &mut Value) -> bool),
}

/// Whether and how a rule fixes what it finds.
#[derive(Clone, Copy)]
pub enum Fix {
    /// No fix: a person must change the manifest.
    None,
    /// Fixed by default (config may turn it off).
    Safe {
        /// One line: what the fix does (shown as a warning when applied).
        summary: &'static str,
        apply: FixFn,
        /// The same fix as CEL, for a MutatingAdmissionPolicy (see
        /// [`crate::policy::cel::CelFix`]); `None` keeps it in the webhook.
        cel: Option<crate::policy::cel::CelFix>,
    },
    /// Fixed only when the config turns the fix on.
    OptIn { summary: &'static str, apply: FixFn },
    /// Safe, and on by default where the config gives the fix what it
    /// needs (`configured`), off elsewhere: image pinning needs the digests
    /// `images.verify` checked.
    Configured {
        summary: &'static str,
        apply: FixFn,
        configured: fn(&PolicyConfig) -> bool,
    },
}

impl Fix {
    /// `safe`, `opt-in` or empty, for listings.
    pub fn label(&self) -> &'static str {
        match self {
            Fix::None => "",
            Fix::Safe { .. } | Fix::Configured { .. } => "safe",
            Fix::OptIn { .. } => "opt-in",
        }
    }
    pub fn exists(&self) -> bool {
        !matches!(self, Fix::None)
    }
    /// Whether the fix runs when the config says nothing.
    pub fn on_by_default(&self) -> bool {
        matches!(self, Fix::Safe { .. } | Fix::Configured { .. })
    }
    /// Whether the config gives the fix what it needs (always, but for
    /// [`Fix::Configured`]).
    pub fn configured(&self, cfg: &PolicyConfig) -> bool {
        match self {
            Fix::Configured { configured, .. } => configured(cfg),
            _ => true,
        }
    }
    /// The fix as CEL, when the apiserver can apply it.
    pub fn cel(&self) -> Option<crate::policy::cel::CelFix> {
        match self {
            Fix::Safe { cel, .. } => *cel,
            _ => None,
        }
    }
    pub fn summary(&self) -> &'static str {
        match self {
            Fix::None => "",
            Fix::Safe { summary, .. }
            | Fix::OptIn { summary, .. }
            | Fix::Configured { summary, .. } => summary,
        }
    }
    fn apply_fn(&self) -> Option<FixFn> {
        match self {
            Fix::None => None,
            Fix::Safe { apply, .. } | Fix::OptIn { apply, .. } | Fix::Configured { apply, .. } => {
                Some(*apply)
            }
        }
    }
}

/// A rule of the catalog.
pub struct Rule {
    /// Stable id, e.g. `allow-privilege-escalation`.
    pub id: &'static str,
    /// The tier it is required from.
    pub tier: Tier,
    /// Set when the rule is a Pod Security Standards check.
    pub pss: Option<PssCheck>,
    /// One line: what the rule requires.
    pub summary: &'static str,
    /// One paragraph: what, why, how to fix.
    pub doc: &'static str,
    pub check: Check,
    pub fix: Fix,
    /// How the apiserver runs it as a ValidatingAdmissionPolicy, or why it
    /// stays in the webhook ([`crate::policy::cel`]).
    pub cel: Cel,
}

impl Rule {
    /// Whether the rule judges objects of this group and kind.
    pub fn applies_to(&self, group: &str, kind: &str) -> bool {
        match self.check {
            Check::Pod(_) => Kinds::Workloads.matches(group, kind),
            Check::Object(kinds, _) => kinds.matches(group, kind),
        }
    }

    /// The kinds the rule judges.
    pub fn kinds(&self) -> Kinds {
        match self.check {
            Check::Pod(_) => Kinds::Workloads,
            Check::Object(kinds, _) => kinds,
        }
    }

    /// Run the check on an object (nothing for a pod rule on an object
    /// without a pod template).
    pub fn run_check(
        &self,
        t: &Target<'_>,
        r: &RuleCtx<'_>,
        out: &mut Vec<Violation>,
    ) -> Result<(), EngineError> {
        match self.check {
            Check::Pod(check) => match &t.pod {
                Some(pod) => check(pod, r, out),
                None => Ok(()),
            },
            Check::Object(_, check) => check(t, r, out),
        }
    }

    /// Run the fix on the working copy; whether it changed anything.
    pub fn run_fix(&self, t: &Target<'_>, r: &RuleCtx<'_>, working: &mut Value) -> bool {
        match self.fix.apply_fn() {
            None => false,
            Some(FixFn::Pod(fix)) => t.pod.as_ref().is_some_and(|pod| fix(pod, r, working)),
            Some(FixFn::Object(fix)) => fix(t, r, working),
        }
    }
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("id", &self.id).finish()
    }
}
