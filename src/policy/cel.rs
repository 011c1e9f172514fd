//! A rule as CEL, for the policies the apiserver runs itself
//! (ValidatingAdmissionPolicy; `tiergate export admission-policies`, see
//! [`crate::export`]). Every rule says, in its own file, either how CEL
//! judges it from the object alone ([`Cel::Findings`]) or why it stays in
//! the webhook ([`Cel::Webhook`]).
//!
//! A rule's expression has type `list(string)`: one message per finding, in
//! the words of its Rust check; empty when the object passes. It is only
//! evaluated on the kinds the rule judges (the generator adds the guard),
//! and may use:
//! - `variables.pod`: the pod spec (`spec`, `spec.template.spec`, ...) of
//!   any kind that carries one, as `dyn`;
//! - `variables.podMeta`: that pod template's metadata (as `dyn`, with
//!   `labels` and `annotations` possibly absent);
//! - `variables.containers`: every container of the pod (init, regular and
//!   ephemeral, in that order);
//! - `variables.obj`: the whole object, as `dyn`; `request`, as the
//!   apiserver gives it.
//!
//! Optional field selection (`c.?securityContext.?privileged.orValue(false)`)
//! keeps expressions short and cannot fail on an absent field.
use super::config::PolicyConfig;
use super::pss::PssChange;

/// What a rule's CEL may depend on: the config and the PSS version.
pub struct CelCtx<'a> {
    pub config: &'a PolicyConfig,
    /// The Pod Security Standards minor version the checks follow.
    pub pss_minor: u32,
}

impl CelCtx<'_> {
    /// Whether the PSS version being followed includes an upstream change.
    pub fn pss_has(&self, change: PssChange) -> bool {
        change.in_effect_at(self.pss_minor)
    }
}

/// How the apiserver can run a rule, or why it cannot.
#[derive(Clone, Copy)]
pub enum Cel {
    /// A CEL expression of type `list(string)` that judges the rule from
    /// the object alone.
    Findings(fn(&CelCtx<'_>) -> String),
    /// The rule stays in the webhook, for this reason.
    Webhook(&'static str),
}

/// A CEL string literal (double-quoted, escaped).
pub fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A CEL list of string literals.
pub fn list<S: AsRef<str>>(items: &[S]) -> String {
    let parts: Vec<String> = items.iter().map(|s| lit(s.as_ref())).collect();
    format!("[{}]", parts.join(", "))
}

/// `'"' + x + '"'`: a CEL string expression quoted as the messages quote
/// names.
pub fn quoted(expr: &str) -> String {
    format!("'\"' + {expr} + '\"'")
}

/// Messages for the containers a condition picks: `cond` and `message`
/// are CEL over the container `c`.
pub fn containers_where(cond: &str, message: &str) -> String {
    format!("variables.containers.filter(c, {cond}).map(c, {message})")
}

/// `'container "NAME"'` for the container `c`.
pub const WHO: &str = "'container \"' + c.name + '\"'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(lit(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(list(&["x", "y"]), r#"["x", "y"]"#);
    }
}
