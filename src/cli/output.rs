//! Report formats: a table for people, JSON for scripts, SARIF for code
//! scanning, JUnit for CI test reports; and the rule catalog listings.
use std::fmt::Write as _;
use std::io::IsTerminal;

use serde_json::{json, Value};

use super::{Judged, Problem, Report};
use crate::policy::{rules, Action};

/// Colour only on a terminal and when NO_COLOR is unset.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn counts(judged: &[Judged]) -> (usize, usize) {
    let all = judged.iter().flat_map(|j| j.eval.findings.iter());
    let (mut deny, mut warn) = (0, 0);
    for f in all {
        match f.action {
            Action::Deny => deny += 1,
            Action::Warn => warn += 1,
            _ => {}
        }
    }
    (deny, warn)
}

/// Text from a manifest, safe to print on a terminal: control characters
/// (which could move the cursor, recolour or retitle the terminal) are
/// shown escaped, as `\u{1b}`.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

fn object_label(j: &Judged) -> String {
    match &j.namespace {
        Some(ns) => format!("{}/{}/{}", j.kind, ns, j.name),
        None => format!("{}/{}", j.kind, j.name),
    }
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    results: Vec<JsonResult<'a>>,
    /// Inputs that could not be judged (unreadable, invalid).
    errors: Vec<JsonProblem<'a>>,
    /// Documents that are not Kubernetes objects, skipped.
    skipped: Vec<JsonProblem<'a>>,
    summary: JsonSummary,
}

#[derive(serde::Serialize)]
struct JsonProblem<'a> {
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    message: &'a str,
}

fn json_problems(report: &Report, skipped: bool) -> Vec<JsonProblem<'_>> {
    report
        .problems
        .iter()
        .filter(|p| p.skipped == skipped)
        .map(|p| JsonProblem {
            file: &p.file,
            document: p.document,
            line: p.line,
            message: &p.message,
        })
        .collect()
}

#[derive(serde::Serialize)]
struct JsonResult<'a> {
    file: &'a str,
    document: usize,
    kind: &'a str,
    namespace: &'a Option<String>,
    name: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    findings: Vec<JsonFinding<'a>>,
}

#[derive(serde::Serialize)]
struct JsonFinding<'a> {
    rule: &'a str,
    tier: u8,
    action: Action,
    message: &'a str,
    path: &'a str,
    fixable: bool,
}

#[derive(serde::Serialize)]
struct JsonSummary {
    objects: usize,
    deny: usize,
    warn: usize,
}

/// `-o json`, streamed to `out` (reports over many objects can be large).
pub fn json(report: &Report, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let judged = &report.judged;
    let (deny, warn) = counts(judged);
    let report = JsonReport {
        results: judged
            .iter()
            .map(|j| JsonResult {
                file: &j.file,
                document: j.document,
                kind: &j.kind,
                namespace: &j.namespace,
                name: &j.name,
                notes: &j.notes,
                findings: j
                    .eval
                    .findings
                    .iter()
                    .map(|f| JsonFinding {
                        rule: f.rule,
                        tier: f.tier,
                        action: f.action,
                        message: &f.message,
                        path: &f.path,
                        fixable: f.fixable,
                    })
                    .collect(),
            })
            .collect(),
        errors: json_problems(report, false),
        skipped: json_problems(report, true),
        summary: JsonSummary {
            objects: judged.len(),
            deny,
            warn,
        },
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    out.write_all(b"\n")
}

fn sarif_level(a: Action) -> &'static str {
    match a {
        Action::Deny => "error",
        Action::Warn => "warning",
        _ => "note",
    }
}

/// `-o sarif`: SARIF 2.1.0.
pub fn sarif(report: &Report) -> String {
    let judged = &report.judged;
    let rule_list: Vec<Value> = rules::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.doc},
                "help": {"text": r.doc},
                "properties": {"tier": r.tier.number(), "pss": r.pss.map(|p| p.check_id)},
            })
        })
        .collect();
    let mut results = Vec::new();
    for j in judged {
        for f in &j.eval.findings {
            let rule_index = rules::ALL.iter().position(|r| r.id == f.rule);
            results.push(json!({
                "ruleId": f.rule,
                "ruleIndex": rule_index,
                "level": sarif_level(f.action),
                "message": {"text": format!("{}: {}", object_label(j), f.message)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": sarif_uri(&j.file)},
                        "region": {"startLine": j.line.max(1)},
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": format!("{}{}", object_label(j), f.path),
                        "kind": "object",
                    }],
                }],
                "properties": {"tier": f.tier, "action": f.action, "path": f.path, "fixable": f.fixable},
            }));
        }
    }
    // The context resolver's notes (an invalid tier label) are tool
    // notifications, not results: no rule failed.
    let mut notifications: Vec<Value> = judged
        .iter()
        .flat_map(|j| j.notes.iter().map(move |n| (j, n)))
        .map(|(j, n)| {
            json!({
                "level": "warning",
                "message": {"text": format!("{}: {n}", object_label(j))},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": sarif_uri(&j.file)},
                    "region": {"startLine": j.line.max(1)},
                }}],
            })
        })
        .collect();
    // Inputs not judged: errors, and notes for what is not a Kubernetes object.
    notifications.extend(report.problems.iter().map(|p: &Problem| {
        json!({
            "level": if p.skipped { "note" } else { "error" },
            "message": {"text": p.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": sarif_uri(&p.file)},
                "region": {"startLine": p.line.unwrap_or(1).max(1)},
            }}],
        })
    }));
    let mut run = json!({
        "tool": {"driver": {
            "name": "tiergate",
            "version": env!("CARGO_PKG_VERSION"),
            "informationUri": "https://github.com/tiergate/tiergate",
            "rules": rule_list,
        }},
        "results": results,
    });
    if !notifications.is_empty() {
        run["invocations"] = json!([{
            "executionSuccessful": !report.has_errors(),
            "toolExecutionNotifications": notifications,
        }]);
    }
    let v = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    });
    format!("{v:#}\n")
}

fn sarif_uri(file: &str) -> String {
    if file == "<stdin>" {
        "stdin".to_string()
    } else {
        file.trim_start_matches("./").replace(' ', "%20")
    }
}

/// Escape text for XML attributes and content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `-o junit`: one testcase per object, a failure per denying finding.
pub fn junit(report: &Report) -> String {
    let judged = &report.judged;
    let failures = judged.iter().filter(|j| j.eval.denies()).count();
    let errors: Vec<&Problem> = report.problems.iter().filter(|p| !p.skipped).collect();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"tiergate\" tests=\"{}\" failures=\"{failures}\" errors=\"{}\">",
        judged.len() + errors.len(),
        errors.len()
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"tiergate check\" tests=\"{}\" failures=\"{failures}\" errors=\"{}\" skipped=\"0\">",
        judged.len() + errors.len(),
        errors.len()
    );
    for p in &errors {
        let _ = writeln!(
            s,
            "    <testcase classname=\"{}\" name=\"input\">\n      <error message=\"{}\" type=\"input\"/>\n    </testcase>",
            xml_escape(&p.file),
            xml_escape(&p.message)
        );
    }
    for j in judged {
        let _ = write!(
            s,
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml_escape(&format!("{}#{}", j.file, j.document)),
            xml_escape(&object_label(j))
        );
        let denies: Vec<_> = j
            .eval
            .findings
            .iter()
            .filter(|f| f.action == Action::Deny)
            .collect();
        let others: Vec<_> = j
            .eval
            .findings
            .iter()
            .filter(|f| f.action != Action::Deny)
            .collect();
        if denies.is_empty() && others.is_empty() && j.notes.is_empty() {
            s.push_str("/>\n");
            continue;
        }
        s.push_str(">\n");
        if !denies.is_empty() {
            let body: Vec<String> = denies
                .iter()
                .map(|f| format!("[{}] {} at {}", f.rule, f.message, f.path))
                .collect();
            let _ = writeln!(
                s,
                "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                xml_escape(&format!("{} rule(s) deny", denies.len())),
                xml_escape(denies[0].rule),
                xml_escape(&body.join("\n"))
            );
        }
        if !others.is_empty() || !j.notes.is_empty() {
            let body: Vec<String> = j
                .notes
                .iter()
                .map(|n| format!("note: {n}"))
                .chain(
                    others
                        .iter()
                        .map(|f| format!("{} [{}] {} at {}", f.action, f.rule, f.message, f.path)),
                )
                .collect();
            let _ = writeln!(
                s,
                "      <system-out>{}</system-out>",
                xml_escape(&body.join("\n"))
            );
        }
        s.push_str("    </testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

struct Paint(bool);
impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The table for people, grouped by object.
pub fn table(report: &Report, colour: bool) -> String {
    let judged = &report.judged;
    let p = Paint(colour);
    let mut s = String::new();
    for j in judged
        .iter()
        .filter(|j| !j.eval.findings.is_empty() || !j.notes.is_empty())
    {
        let _ = writeln!(
            s,
            "{} {}  {}",
            p.wrap("1", &printable(&object_label(j))),
            p.wrap(
                "2",
                &format!("({}#{}, line {})", printable(&j.file), j.document, j.line)
            ),
            p.wrap("2", &format!("tier {} {}", j.tier.number(), j.tier.name()))
        );
        for f in &j.eval.findings {
            let (code, word) = match f.action {
                Action::Deny => ("31;1", "DENY "),
                Action::Warn => ("33", "WARN "),
                Action::Audit => ("36", "AUDIT"),
                Action::Off => ("2", "OFF  "),
            };
            let fixable = if f.fixable { " [fixable]" } else { "" };
            let _ = writeln!(
                s,
                "  {} {:<28} {}{}",
                p.wrap(code, word),
                f.rule,
                printable(&f.message),
                p.wrap("32", fixable)
            );
            let _ = writeln!(s, "        {:<28} {}", "", p.wrap("2", &printable(&f.path)));
        }
        for e in &j.eval.exempted {
            let _ = writeln!(s, "  EXEMPT {:<27} {}", e.rule, printable(&e.reason));
        }
        for n in &j.notes {
            let _ = writeln!(s, "  {} {}", p.wrap("33", "NOTE "), printable(n));
        }
        s.push('\n');
    }
    for pr in &report.problems {
        let (code, word) = if pr.skipped {
            ("2", "SKIP ")
        } else {
            ("31;1", "ERROR")
        };
        let _ = writeln!(s, "{} {}", p.wrap(code, word), printable(&pr.message));
    }
    if !report.problems.is_empty() {
        s.push('\n');
    }
    let (deny, warn) = counts(judged);
    let clean = judged.iter().filter(|j| j.eval.findings.is_empty()).count();
    let errors = report.problems.iter().filter(|p| !p.skipped).count();
    let skipped = report.problems.len() - errors;
    let _ = writeln!(
        s,
        "{} objects checked: {} clean, {} deny, {} warn; {} inputs not judged ({} errors, {} skipped)",
        judged.len(),
        clean,
        p.wrap(if deny > 0 { "31;1" } else { "0" }, &deny.to_string()),
        warn,
        report.problems.len(),
        errors,
        skipped
    );
    s
}

/// `rules -o json`
pub fn rules_json() -> String {
    let v: Vec<Value> = rules::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "tier": r.tier.number(),
                "pss": r.pss.map(|p| p.check_id),
                "fixable": r.fix.exists(),
                "fix": r.fix.label(),
                "kinds": r.kinds().names(),
                "summary": r.summary,
                "doc": r.doc,
            })
        })
        .collect();
    format!("{:#}\n", Value::Array(v))
}

/// `rules -o table`
pub fn rules_table() -> String {
    let mut s = format!(
        "{:<34} {:<5} {:<28} {:<7} {}\n",
        "ID", "TIER", "PSS", "FIX", "SUMMARY"
    );
    for r in rules::ALL {
        let _ = writeln!(
            s,
            "{:<34} {:<5} {:<28} {:<7} {}",
            r.id,
            r.tier.number(),
            r.pss.map(|p| p.check_id).unwrap_or("-"),
            match r.fix.label() {
                "" => "-",
                l => l,
            },
            r.summary
        );
    }
    s.push_str("\nDetails: tiergate rules -o markdown\n");
    s
}

/// `rules -o markdown`: the catalog with every rule's doc, and the config keys.
pub fn rules_markdown() -> String {
    let mut s = String::from(
        "# tiergate rules\n\n| id | tier | PSS check | fix | summary |\n|---|---|---|---|---|\n",
    );
    for r in rules::ALL {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} |",
            r.id,
            r.tier.number(),
            r.pss
                .map(|p| format!("`{}`", p.check_id))
                .unwrap_or_default(),
            r.fix.label(),
            r.summary
        );
    }
    for r in rules::ALL {
        let _ = write!(s, "\n## `{}`\n\n{}\n\n", r.id, r.doc);
        let _ = writeln!(
            s,
            "- tier: {} ({}) and up\n- kinds: {}",
            r.tier.number(),
            r.tier.name(),
            r.kinds().names().join(", ")
        );
        if let Some(p) = r.pss {
            let _ = writeln!(
                s,
                "- Pod Security Standards: `{}` ({}, from v1.{})",
                p.check_id,
                p.level.name(),
                p.min_minor
            );
        }
        if r.fix.exists() {
            let _ = writeln!(s, "- fix ({}): {}", r.fix.label(), r.fix.summary());
        }
    }
    s.push_str(
        "\n## Configuration\n\nThe embedded default configuration, with every key:\n\n```yaml\n",
    );
    s.push_str(crate::config::DEFAULT_YAML);
    s.push_str("```\n");
    s
}
