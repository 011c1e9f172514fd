//! What a rule is. Each rule is one `static RULE: Rule` in its own file under
//! `rules/`, with its doc and its tests, and one line in `rules/mod.rs`.
use serde_json::Value;

use super::pss::PssCheck;
use super::{Context, Target, Tier};
use crate::config::Config;

/// Whether and how a rule fixes what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixKind {
    /// No fix: a person must change the manifest.
    None,
    /// Fixed by default (config may turn it off).
    Safe,
    /// Fixed only when the config turns the fix on.
    OptIn,
}

/// The workload kinds that carry a pod template, and where.
pub const POD_KINDS: &[&str] = &[
    "Pod",
    "PodTemplate",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

/// Which kinds a rule applies to.
#[derive(Debug, Clone, Copy)]
pub enum Kinds {
    /// Every kind with a pod template ([`POD_KINDS`]).
    Pods,
    /// Exactly these kinds.
    Only(&'static [&'static str]),
}

impl Kinds {
    pub fn matches(&self, kind: &str) -> bool {
        match self {
            Kinds::Pods => POD_KINDS.contains(&kind),
            Kinds::Only(ks) => ks.contains(&kind),
        }
    }
    pub fn list(&self) -> &'static [&'static str] {
        match self {
            Kinds::Pods => POD_KINDS,
            Kinds::Only(ks) => ks,
        }
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
}

impl Violation {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            path: path.into(),
            container: None,
            message: message.into(),
            unknown: false,
        }
    }
    pub fn in_container(mut self, name: &str) -> Self {
        self.container = Some(name.to_string());
        self
    }
    pub fn unknown(mut self) -> Self {
        self.unknown = true;
        self
    }
}

/// What a rule's check and fix can see besides the object.
pub struct RuleCtx<'a> {
    pub ctx: &'a Context,
    pub config: &'a Config,
    /// The Pod Security Standards minor version checks follow (`37` = v1.37).
    pub pss_minor: u32,
}

pub type CheckFn =
    fn(&Target<'_>, &RuleCtx<'_>, &mut Vec<Violation>) -> Result<(), super::EngineError>;
/// A fix edits the working copy of the object in place and returns whether it
/// changed anything. It must be idempotent and must not drop or reorder what
/// the user wrote.
pub type FixFn = fn(&Target<'_>, &RuleCtx<'_>, &mut Value) -> bool;

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
    pub kinds: Kinds,
    pub fix: FixKind,
    /// One line: what the fix does (shown as a warning when applied).
    pub fix_summary: &'static str,
    pub check: CheckFn,
    pub apply_fix: Option<FixFn>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("id", &self.id).finish()
    }
}
