//! Namespace → [`Context`]: the one place a namespace's labels and facts and
//! the policy configuration become the context an object is judged in. The
//! webhook's config source, its cluster source and the CLI all call
//! [`resolve`], so the offline answer is the admission answer by
//! construction.
//!
//! - The tier and mode come from the namespace's `tiergate.io/tier` and
//!   `tiergate.io/mode` labels, else from the config's `defaults`.
//! - A label value that does not parse keeps the default and adds a note
//!   (the webhook shows it as a warning, `tiergate check` next to the
//!   object); it never makes the object unjudgeable.
//! - A Namespace object is judged in itself: by its own name and labels
//!   ([`subject_namespace`]).
use std::collections::BTreeMap;

use serde_json::Value;

use super::config::PolicyConfig;
use super::context::{Context, NamespaceFacts, Requester};
use super::tier::{Mode, Tier, MODE_VALUES, TIER_VALUES};

/// Namespace label that sets the tier.
pub const TIER_LABEL: &str = "tiergate.io/tier";
/// Namespace label that sets the mode.
pub const MODE_LABEL: &str = "tiergate.io/mode";

/// What is known of the namespace an object lands in.
#[derive(Debug, Clone, Default)]
pub struct NamespaceInput<'a> {
    /// The namespace's name (`None` for cluster-scoped objects).
    pub name: Option<&'a str>,
    /// Its labels, when known; `None` when the namespace is not known (then
    /// the config defaults apply).
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub facts: std::sync::Arc<NamespaceFacts>,
    pub requester: Option<Requester>,
    /// A tier that wins over the label (`tiergate check --tier`).
    pub tier: Option<Tier>,
    /// A mode that wins over the label (`tiergate check --mode`).
    pub mode: Option<Mode>,
    /// The time of judgement ([`Context::now`]).
    pub now: Option<i64>,
}

/// A context and what the requester should be told about how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub ctx: Context,
    /// E.g. an invalid tier label and the tier used instead.
    pub notes: Vec<String>,
}

/// The context an object is judged in.
pub fn resolve(input: NamespaceInput<'_>, cfg: &PolicyConfig) -> Resolved {
    let labels = input.labels;
    let label = |key: &str| labels.and_then(|l| l.get(key));
    let mut notes = Vec::new();
    let tier = match (input.tier, label(TIER_LABEL)) {
        (Some(t), _) => t,
        (None, None) => cfg.defaults.tier,
        (None, Some(v)) => v.parse::<Tier>().unwrap_or_else(|_| {
            notes.push(format!(
                "{TIER_LABEL}={v:?} is not a tier; using {} (accepted: {TIER_VALUES})",
                cfg.defaults.tier
            ));
            cfg.defaults.tier
        }),
    };
    let mode = match (input.mode, label(MODE_LABEL)) {
        (Some(m), _) => m,
        (None, None) => cfg.defaults.mode,
        (None, Some(v)) => v.parse::<Mode>().unwrap_or_else(|_| {
            notes.push(format!(
                "{MODE_LABEL}={v:?} is not a mode; using {} (accepted: {MODE_VALUES})",
                cfg.defaults.mode
            ));
            cfg.defaults.mode
        }),
    };
    if let Some(ns) = input.name {
        for n in &mut notes {
            *n = format!("namespace {ns:?}: {n}");
        }
    }
    let mut ctx = Context::new(tier, mode);
    ctx.namespace = input.name.map(str::to_string);
    ctx.namespace_labels = labels.cloned().unwrap_or_default();
    ctx.namespace_labels_known = labels.is_some();
    ctx.facts = input.facts;
    ctx.requester = input.requester;
    ctx.now = input.now;
    Resolved { ctx, notes }
}

/// Whether `group`/`kind` is the core Namespace kind.
pub fn is_namespace_kind(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Namespace"
}

/// The string labels at `/metadata/labels` of an object.
pub fn labels_of(obj: Option<&Value>) -> BTreeMap<String, String> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The namespace a Namespace object is judged in: itself, named by its
/// `metadata.name` (else `fallback_name`, the request's name), with its own
/// labels.
pub fn subject_namespace(
    obj: Option<&Value>,
    fallback_name: &str,
) -> (Option<String>, BTreeMap<String, String>) {
    let name = obj
        .and_then(|o| o.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| Some(fallback_name.to_string()).filter(|n| !n.is_empty()));
    (name, labels_of(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Namespace `shop` with these labels, on the embedded defaults.
    fn resolve_shop(l: &BTreeMap<String, String>) -> Resolved {
        let input = NamespaceInput {
            name: Some("shop"),
            labels: Some(l),
            ..Default::default()
        };
        resolve(input, &PolicyConfig::default())
    }

    #[test]
    fn labels_set_tier_and_mode_else_the_defaults_apply() {
        let cfg = PolicyConfig::default();
        let l = labels(&[(TIER_LABEL, "enterprise"), (MODE_LABEL, "enforce")]);
        let r = resolve_shop(&l);
        assert_eq!((r.ctx.tier, r.ctx.mode), (Tier::Enterprise, Mode::Enforce));
        assert_eq!(r.ctx.namespace.as_deref(), Some("shop"));
        assert_eq!(r.ctx.namespace_labels, l);
        assert!(r.notes.is_empty());
        let r = resolve(NamespaceInput::default(), &cfg);
        assert_eq!(
            (r.ctx.tier, r.ctx.mode),
            (cfg.defaults.tier, cfg.defaults.mode)
        );
    }

    #[test]
    fn invalid_labels_keep_the_defaults_and_say_so() {
        let l = labels(&[(TIER_LABEL, "gold"), (MODE_LABEL, "loud")]);
        let r = resolve_shop(&l);
        assert_eq!((r.ctx.tier, r.ctx.mode), (Tier::Foundation, Mode::Warn));
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        assert!(
            r.notes[0].starts_with(
                "namespace \"shop\": tiergate.io/tier=\"gold\" is not a tier; using foundation"
            ),
            "{:?}",
            r.notes
        );
        assert!(
            r.notes[1].starts_with(
                "namespace \"shop\": tiergate.io/mode=\"loud\" is not a mode; using warn"
            ),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn overrides_win_and_leave_the_label_unread() {
        let cfg = PolicyConfig::default();
        let l = labels(&[(TIER_LABEL, "gold"), (MODE_LABEL, "audit")]);
        let r = resolve(
            NamespaceInput {
                labels: Some(&l),
                tier: Some(Tier::Hyperscale),
                mode: Some(Mode::Enforce),
                ..Default::default()
            },
            &cfg,
        );
        assert_eq!((r.ctx.tier, r.ctx.mode), (Tier::Hyperscale, Mode::Enforce));
        assert!(r.notes.is_empty());
    }

    #[test]
    fn a_namespace_object_is_its_own_namespace() {
        let ns = serde_json::json!({"metadata": {"name": "team-a",
            "labels": {"tiergate.io/tier": "2", "n": 1}}});
        let (name, l) = subject_namespace(Some(&ns), "req");
        assert_eq!(name.as_deref(), Some("team-a"));
        assert_eq!(l, labels(&[(TIER_LABEL, "2")]));
        assert_eq!(subject_namespace(None, "req").0.as_deref(), Some("req"));
        assert_eq!(subject_namespace(None, "").0, None);
    }
}
