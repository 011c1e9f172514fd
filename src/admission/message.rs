//! The words of an answer: the denial message in the style of Pod Security
//! Admission, and how one finding reads.
use super::limits::{truncate, MESSAGE_MAX};
use super::request::AdmissionRequest;
use crate::policy::{Context, Finding};

/// One finding: what and where.
pub fn finding_line(f: &Finding) -> String {
    format!("{} at {}", f.message, f.path)
}

/// The rules of `findings` by action, most severe first, each rule once:
/// `deny: run-as-non-root, probes; warn: pdb`.
pub fn rules_by_action(findings: &[Finding]) -> String {
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut last = None;
    // The engine sorts findings most severe first, so each action's rules
    // are together; an unsorted list still names every rule once.
    for f in findings {
        if seen.contains(&f.rule) {
            continue;
        }
        seen.push(f.rule);
        if last == Some(f.action) {
            out.push_str(", ");
        } else {
            if last.is_some() {
                out.push_str("; ");
            }
            out.push_str(f.action.name());
            out.push_str(": ");
            last = Some(f.action);
        }
        out.push_str(f.rule);
    }
    out
}

/// The denial message: the object, its namespace and tier, every denied
/// finding that fits, and the rules to look up.
pub fn deny_message(req: &AdmissionRequest, ctx: &Context, denies: &[&Finding]) -> String {
    let mut rules: Vec<&str> = Vec::new();
    for f in denies {
        if !rules.contains(&f.rule) {
            rules.push(f.rule);
        }
    }
    let ns = match &ctx.namespace {
        Some(n) if req.kind != "Namespace" => format!(" in namespace {n:?}"),
        _ => String::new(),
    };
    // An object a controller made is fixed at its owner.
    let owner = match req.object.as_ref().and_then(super::scope::controller_of) {
        Some(o) => format!(" (created by {o}: fix the template of its owner)"),
        None => String::new(),
    };
    let head = format!(
        "{}{ns}{owner} violates tiergate tier {} ({}): ",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Finding};

    fn f(rule: &'static str, action: Action) -> Finding {
        Finding {
            rule,
            tier: 1,
            action,
            message: String::new(),
            path: String::new(),
            container: None,
            fixable: false,
        }
    }

    #[test]
    fn rules_are_named_once_under_their_action() {
        let fs = [
            f("privileged", Action::Deny),
            f("privileged", Action::Deny),
            f("probes", Action::Deny),
            f("pdb", Action::Warn),
            f("probes", Action::Warn),
            f("labels", Action::Audit),
        ];
        assert_eq!(
            rules_by_action(&fs),
            "deny: privileged, probes; warn: pdb; audit: labels"
        );
        assert_eq!(rules_by_action(&[]), "");
    }
}
