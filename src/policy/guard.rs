//! Guarding the tiers themselves: a Namespace's `tiergate.io/tier` and
//! `tiergate.io/mode` labels are the policy, so whoever may edit a Namespace
//! could otherwise weaken it. Pure: judged from the AdmissionReview alone (old
//! and new labels, the requester), no cache needed.
//!
//! - A tier or mode value that does not parse is denied when it is new or
//!   changed (a value that was already there before the update only warns, so
//!   that unrelated updates of an old namespace keep working).
//! - On UPDATE, lowering the effective tier, removing the tier label, or
//!   relaxing the effective mode (enforce → warn → audit) is reserved for the
//!   config's `tierAdmins` (users and groups; system identities such as
//!   `system:masters` or a GitOps controller's service account are listed
//!   there too). Anyone else is denied with a message naming who may do it.
//! - CREATE sets the first values; raising a tier or tightening a mode is
//!   always allowed.
use std::collections::BTreeMap;

use super::config::{PolicyConfig, TierAdmins};
use super::context::Requester;
pub use super::namespace::{MODE_LABEL, TIER_LABEL};
use super::tier::{Mode, Tier, MODE_VALUES, TIER_VALUES};

/// A Namespace write as the guard needs it.
#[derive(Debug, Clone, Copy)]
pub struct NamespaceChange<'a> {
    /// The namespace's name.
    pub name: &'a str,
    /// The labels before (`None` on CREATE).
    pub old: Option<&'a BTreeMap<String, String>>,
    /// The labels after.
    pub new: &'a BTreeMap<String, String>,
}

/// The guard's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed. (An invalid value that was already there is allowed too:
    /// the namespace resolver's note tells the requester which value applies.)
    Allow,
    /// Denied, with a message a person can act on.
    Deny(String),
}

/// Whether the requester is a tier admin.
pub fn is_tier_admin(who: Option<&Requester>, admins: &TierAdmins) -> bool {
    let Some(who) = who else { return false };
    admins.users.contains(&who.username) || who.groups.iter().any(|g| admins.groups.contains(g))
}

/// "tier admins only (users a, b; groups c)" (or that nobody is configured).
fn who_may(admins: &TierAdmins) -> String {
    match listed(admins) {
        None => "nobody: the tiergate config lists no tierAdmins".to_string(),
        Some(l) => format!("tier admins only ({l})"),
    }
}

/// "users a, b; groups c", `None` when both are empty.
pub(crate) fn listed(admins: &TierAdmins) -> Option<String> {
    let mut parts = Vec::new();
    if !admins.users.is_empty() {
        parts.push(format!("users {}", admins.users.join(", ")));
    }
    if !admins.groups.is_empty() {
        parts.push(format!("groups {}", admins.groups.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn requester_name(who: Option<&Requester>) -> String {
    match who {
        Some(r) if !r.username.is_empty() => format!("user {:?}", r.username),
        _ => "an anonymous requester".to_string(),
    }
}

/// How strict a mode is (higher is stricter).
fn strictness(m: Mode) -> u8 {
    match m {
        Mode::Enforce => 2,
        Mode::Warn => 1,
        Mode::Audit => 0,
    }
}

fn tier_text(t: Tier) -> String {
    format!("{} ({t})", t.number())
}

/// Judge a Namespace CREATE or UPDATE.
pub fn guard_namespace(
    change: NamespaceChange<'_>,
    who: Option<&Requester>,
    cfg: &PolicyConfig,
) -> Verdict {
    let ns = change.name;
    let new = match parse_new_labels(&change) {
        Ok(new) => new,
        Err(invalid) => return Verdict::Deny(format!("namespace {ns:?}: {invalid}")),
    };
    let Some(old) = change.old else {
        return Verdict::Allow;
    };
    let weakening = weakening(old, change.new, new, cfg);
    if weakening.is_empty() || is_tier_admin(who, &cfg.tier_admins) {
        return Verdict::Allow;
    }
    Verdict::Deny(format!(
        "namespace {ns:?}: {} is reserved to {}; {} is not one (ask a tier admin, \
         or add the identity to tierAdmins in the tiergate config)",
        weakening.join(" and "),
        who_may(&cfg.tier_admins),
        requester_name(who)
    ))
}

/// The tier and mode the new labels set, if they parse.
#[derive(Debug, Clone, Copy)]
struct NewLabels {
    tier: Option<Tier>,
    mode: Option<Mode>,
}

/// The new labels, parsed; the values that do not parse and are new or
/// changed are an error (one already there before the update is let be, so
/// that unrelated updates of an old namespace keep working).
fn parse_new_labels(change: &NamespaceChange<'_>) -> Result<NewLabels, String> {
    fn parse<T: std::str::FromStr>(
        change: &NamespaceChange<'_>,
        key: &str,
        what: &str,
        accepted: &str,
        invalid: &mut Vec<String>,
    ) -> Option<T> {
        let raw = change.new.get(key)?;
        let parsed = raw.parse::<T>().ok();
        let unchanged = change.old.and_then(|o| o.get(key)) == Some(raw);
        if parsed.is_none() && !unchanged {
            invalid.push(format!(
                "{key}={raw:?} is not a {what} (accepted: {accepted})"
            ));
        }
        parsed
    }
    let mut invalid = Vec::new();
    let tier = parse(change, TIER_LABEL, "tier", TIER_VALUES, &mut invalid);
    let mode = parse(change, MODE_LABEL, "mode", MODE_VALUES, &mut invalid);
    if invalid.is_empty() {
        Ok(NewLabels { tier, mode })
    } else {
        Err(invalid.join("; "))
    }
}

/// How an UPDATE weakens the namespace: a tier lowered or removed, a mode
/// relaxed or removed (an absent or invalid value is the config default).
fn weakening(
    old: &BTreeMap<String, String>,
    new_labels: &BTreeMap<String, String>,
    new: NewLabels,
    cfg: &PolicyConfig,
) -> Vec<String> {
    let old_tier = old.get(TIER_LABEL).and_then(|v| v.parse::<Tier>().ok());
    let old_mode = old.get(MODE_LABEL).and_then(|v| v.parse::<Mode>().ok());
    let effective_tier = |t: Option<Tier>| t.unwrap_or(cfg.defaults.tier);
    let effective_mode = |m: Option<Mode>| m.unwrap_or(cfg.defaults.mode);
    let mut out = Vec::new();
    if let (Some(was), None) = (old.get(TIER_LABEL), new_labels.get(TIER_LABEL)) {
        out.push(format!("removing {TIER_LABEL} (was {was})"));
    } else if effective_tier(new.tier) < effective_tier(old_tier) {
        out.push(format!(
            "lowering {TIER_LABEL} from {} to {}",
            tier_text(effective_tier(old_tier)),
            tier_text(effective_tier(new.tier))
        ));
    }
    let (from, to) = (effective_mode(old_mode), effective_mode(new.mode));
    if strictness(to) < strictness(from) {
        out.push(if new_labels.contains_key(MODE_LABEL) {
            format!("relaxing {MODE_LABEL} from {from} to {to}")
        } else {
            format!("removing {MODE_LABEL} (mode {from} becomes the default {to})")
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PolicyConfig {
        crate::policy::config::from_test_yaml(
            "tierAdmins:\n  users: [alice, 'system:serviceaccount:argocd:argocd-application-controller']\n  groups: [system:masters, platform]\n",
        )
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn user(name: &str, groups: &[&str]) -> Requester {
        Requester {
            username: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn judge(old: Option<&[(&str, &str)]>, new: &[(&str, &str)], who: &Requester) -> Verdict {
        let old = old.map(labels);
        let new = labels(new);
        guard_namespace(
            NamespaceChange {
                name: "shop",
                old: old.as_ref(),
                new: &new,
            },
            Some(who),
            &cfg(),
        )
    }

    fn deny_text(v: Verdict) -> String {
        match v {
            Verdict::Deny(m) => m,
            Verdict::Allow => panic!("allowed"),
        }
    }

    const T: &str = TIER_LABEL;
    const M: &str = MODE_LABEL;

    #[test]
    fn create_with_valid_labels_is_allowed() {
        let bob = user("bob", &["dev"]);
        assert_eq!(judge(None, &[(T, "1"), (M, "audit")], &bob), Verdict::Allow);
        assert_eq!(judge(None, &[], &bob), Verdict::Allow);
        assert_eq!(
            judge(None, &[(T, "hyperscale"), (M, "enforce")], &bob),
            Verdict::Allow
        );
    }

    #[test]
    fn invalid_values_are_denied_with_the_accepted_values() {
        let admin = user("alice", &[]);
        let msg = deny_text(judge(None, &[(T, "gold")], &admin));
        assert_eq!(
            msg,
            "namespace \"shop\": tiergate.io/tier=\"gold\" is not a tier \
             (accepted: 1..5 or foundation, production, enterprise, multi-cluster, hyperscale)"
        );
        let msg = deny_text(judge(Some(&[(M, "warn")]), &[(M, "loud")], &admin));
        assert_eq!(
            msg,
            "namespace \"shop\": tiergate.io/mode=\"loud\" is not a mode (accepted: enforce, warn, audit)"
        );
        let msg = deny_text(judge(None, &[(T, "9"), (M, "")], &admin));
        assert!(
            msg.contains("tier=\"9\"") && msg.contains("mode=\"\""),
            "{msg}"
        );
    }

    #[test]
    fn an_invalid_value_already_there_only_warns() {
        let bob = user("bob", &[]);
        let v = judge(
            Some(&[(T, "gold"), ("team", "a")]),
            &[(T, "gold"), ("team", "b")],
            &bob,
        );
        assert_eq!(v, Verdict::Allow);
    }

    #[test]
    fn non_admin_cannot_lower_a_tier() {
        let bob = user("bob", &["dev"]);
        let msg = deny_text(judge(Some(&[(T, "3")]), &[(T, "production")], &bob));
        assert_eq!(
            msg,
            "namespace \"shop\": lowering tiergate.io/tier from 3 (enterprise) to 2 (production) \
             is reserved to tier admins only (users alice, \
             system:serviceaccount:argocd:argocd-application-controller; groups system:masters, \
             platform); user \"bob\" is not one (ask a tier admin, or add the identity to \
             tierAdmins in the tiergate config)"
        );
    }

    #[test]
    fn non_admin_cannot_remove_the_tier_label() {
        let bob = user("bob", &[]);
        let msg = deny_text(judge(Some(&[(T, "1")]), &[], &bob));
        assert!(msg.contains("removing tiergate.io/tier (was 1)"), "{msg}");
        // Even when the label held the default tier.
        let msg = deny_text(judge(
            Some(&[(T, "2"), (M, "enforce")]),
            &[(M, "enforce")],
            &bob,
        ));
        assert!(msg.contains("removing tiergate.io/tier (was 2)"), "{msg}");
    }

    #[test]
    fn non_admin_cannot_relax_a_mode() {
        let bob = user("bob", &[]);
        for to in ["warn", "audit"] {
            let msg = deny_text(judge(Some(&[(M, "enforce")]), &[(M, to)], &bob));
            assert!(
                msg.contains(&format!("relaxing tiergate.io/mode from enforce to {to}")),
                "{msg}"
            );
        }
        let msg = deny_text(judge(Some(&[(M, "warn")]), &[(M, "audit")], &bob));
        assert!(msg.contains("from warn to audit"), "{msg}");
        // Removing the label falls back to the default mode (warn).
        let msg = deny_text(judge(Some(&[(M, "enforce")]), &[], &bob));
        assert!(
            msg.contains("removing tiergate.io/mode (mode enforce becomes the default warn)"),
            "{msg}"
        );
        // Both at once are named together.
        let msg = deny_text(judge(
            Some(&[(T, "2"), (M, "enforce")]),
            &[(T, "1"), (M, "audit")],
            &bob,
        ));
        assert!(msg.contains(" and relaxing"), "{msg}");
    }

    #[test]
    fn admins_by_user_group_or_system_identity_may_weaken() {
        let old: &[(&str, &str)] = &[(T, "4"), (M, "enforce")];
        let new: &[(&str, &str)] = &[(M, "audit")];
        for who in [
            user("alice", &[]),
            user("carol", &["platform"]),
            user(
                "kubernetes-admin",
                &["system:masters", "system:authenticated"],
            ),
            user(
                "system:serviceaccount:argocd:argocd-application-controller",
                &[],
            ),
        ] {
            assert_eq!(judge(Some(old), new, &who), Verdict::Allow, "{who:?}");
        }
    }

    #[test]
    fn raising_tightening_and_unrelated_edits_are_for_everyone() {
        let bob = user("bob", &[]);
        let ok = |old: &[(&str, &str)], new: &[(&str, &str)]| {
            assert_eq!(
                judge(Some(old), new, &bob),
                Verdict::Allow,
                "{old:?} -> {new:?}"
            );
        };
        ok(&[(T, "1")], &[(T, "2")]);
        ok(&[(M, "audit")], &[(M, "enforce")]);
        ok(
            &[(T, "2"), (M, "enforce")],
            &[(T, "2"), (M, "enforce"), ("x", "y")],
        );
        ok(&[(T, "2")], &[(T, "production")]);
        // No label before: the default (1) is the floor; adding 1 is no change.
        ok(&[], &[(T, "1")]);
        ok(&[], &[(M, "warn")]);
        // The old value was invalid: its effective tier was the default.
        ok(&[(T, "gold")], &[(T, "1")]);
    }

    #[test]
    fn nobody_configured_says_so_and_anonymous_is_named() {
        let cfg = crate::policy::config::from_test_yaml("tierAdmins: {users: [], groups: []}\n");
        let old = labels(&[(T, "3")]);
        let new = labels(&[(T, "1")]);
        let change = NamespaceChange {
            name: "shop",
            old: Some(&old),
            new: &new,
        };
        let msg = deny_text(guard_namespace(change, None, &cfg));
        assert!(
            msg.contains("reserved to nobody: the tiergate config lists no tierAdmins"),
            "{msg}"
        );
        assert!(msg.contains("an anonymous requester is not one"), "{msg}");
    }
}
