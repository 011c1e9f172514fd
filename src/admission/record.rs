//! What one decision was, as metrics, logs and tests read it: the webhook,
//! the decision, the error kind and the [`DecisionRecord`].
use serde::Serialize;

use super::request::AdmissionRequest;
use super::AdmissionSettings;
use crate::policy::{Finding, Mode, Tier};

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
    /// (rule, `namespace/name`) of every `TierException` applied.
    pub exceptions: Vec<(&'static str, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    /// The object's controller (`ReplicaSet "web-6d4cf56db6"`) when a
    /// controller made it: the verdict belongs to the owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The request had `dryRun: true`.
    pub request_dry_run: bool,
    /// The server runs with `--dry-run`.
    pub server_dry_run: bool,
}

impl DecisionRecord {
    /// The record of a request before anything is decided (allowed, nothing
    /// found).
    pub fn new(req: &AdmissionRequest, settings: AdmissionSettings) -> Self {
        DecisionRecord {
            uid: req.uid.clone(),
            webhook: settings.webhook.name(),
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
            exceptions: Vec::new(),
            error: None,
            owner: req.object.as_ref().and_then(super::scope::controller_of),
            request_dry_run: req.dry_run,
            server_dry_run: settings.dry_run,
        }
    }
}
