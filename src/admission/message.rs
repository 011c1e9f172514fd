//! The words of an answer: the denial message in the style of Pod Security
//! Admission, and how one finding reads.
use super::limits::{truncate, MESSAGE_MAX};
use super::request::AdmissionRequest;
use crate::policy::{Context, Finding};

/// One finding: what and where.
pub fn finding_line(f: &Finding) -> String {
    format!("{} at {}", f.message, f.path)
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
