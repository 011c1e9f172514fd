//! Report formats: a table for people, JSON for scripts, SARIF for code
//! scanning, JUnit for CI test reports; and the rule catalog listings.
use std::fmt::Write as _;
use std::io::IsTerminal;

use serde_json::{json, Value};

use super::{Judged, Problem, Report};
use crate::policy::{rules, Action, Tier};

/// Colour only on a terminal and when NO_COLOR is unset.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// What a run found, counted the same way in every format: objects by
/// their worst finding, and findings by rule and by namespace.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    /// Objects judged.
    objects: usize,
    /// Objects with no finding at all.
    clean: usize,
    /// Objects with a denying finding.
    denied: usize,
    /// Objects whose worst finding warns.
    warned: usize,
    /// Denying findings.
    deny: usize,
    /// Warning findings.
    warn: usize,
    /// Findings an exemption suppressed.
    exempted: usize,
    /// Per rule: its denying and warning findings.
    by_rule: std::collections::BTreeMap<&'static str, Counts>,
    /// Per namespace (`""`: objects that name none): objects and findings.
    by_namespace: std::collections::BTreeMap<String, Counts>,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
struct Counts {
    #[serde(skip_serializing_if = "is_zero")]
    objects: usize,
    #[serde(skip_serializing_if = "is_zero")]
    denied: usize,
    deny: usize,
    warn: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn summarize(judged: &[Judged]) -> Summary {
    let mut s = Summary {
        objects: judged.len(),
        ..Summary::default()
    };
    for j in judged {
        let ns = s
            .by_namespace
            .entry(j.namespace.clone().unwrap_or_default())
            .or_default();
        ns.objects += 1;
        match j.eval.worst() {
            Action::Deny => {
                s.denied += 1;
                ns.denied += 1;
            }
            Action::Warn => s.warned += 1,
            _ if j.eval.findings.is_empty() => s.clean += 1,
            _ => {}
        }
        s.exempted += j
            .eval
            .exempted
            .iter()
            .map(|e| e.findings.len())
            .sum::<usize>();
        for f in &j.eval.findings {
            let rule = s.by_rule.entry(f.rule).or_default();
            match f.action {
                Action::Deny => {
                    s.deny += 1;
                    rule.deny += 1;
                    ns.deny += 1;
                }
                Action::Warn => {
                    s.warn += 1;
                    rule.warn += 1;
                    ns.warn += 1;
                }
                _ => {}
            }
        }
    }
    s
}

/// Findings of one rule about one part of an object, as one table line:
/// `standard labels (metadata.labels must set app.kubernetes.io/name,
/// version, component)`. Each finding keeps its own line in JSON and SARIF.
#[derive(Debug, PartialEq)]
pub struct Group<'a> {
    pub rule: &'static str,
    pub action: Action,
    pub message: String,
    /// The common parent of the findings' paths (the path of a single one).
    pub path: String,
    /// How many of the findings a fix covers, of how many.
    pub fixable: (usize, usize),
    pub findings: Vec<&'a crate::policy::Finding>,
}

/// Group findings that differ only in their message's last word (the field
/// or label they name): same rule, same action, same text before it.
pub fn group_findings(findings: &[crate::policy::Finding]) -> Vec<Group<'_>> {
    // "head (… must set X)" → ("head (… must set", "X", ")")
    fn split(m: &str) -> Option<(&str, &str, &str)> {
        let (body, close) = match m.strip_suffix(')') {
            Some(b) if !b.contains(';') => (b, ")"),
            _ => return None,
        };
        let cut = body.rfind(' ')?;
        let (head, last) = (&body[..cut], &body[cut + 1..]);
        (head.contains('(') && !last.is_empty()).then_some((head, last, close))
    }
    let mut groups: Vec<(Option<&str>, Group<'_>)> = Vec::new();
    for f in findings {
        let key = split(&f.message).map(|(head, _, _)| head);
        if let Some((k, g)) = groups.last_mut() {
            if key.is_some() && *k == key && g.rule == f.rule && g.action == f.action {
                g.findings.push(f);
                continue;
            }
        }
        groups.push((
            key,
            Group {
                rule: f.rule,
                action: f.action,
                message: f.message.clone(),
                path: f.path.clone(),
                fixable: (0, 0),
                findings: vec![f],
            },
        ));
    }
    groups
        .into_iter()
        .map(|(key, mut g)| {
            g.fixable = (
                g.findings.iter().filter(|f| f.fixable).count(),
                g.findings.len(),
            );
            if let (Some(head), true) = (key, g.findings.len() > 1) {
                let lasts: Vec<&str> = g
                    .findings
                    .iter()
                    .filter_map(|f| split(&f.message).map(|(_, last, _)| last))
                    .collect();
                // Shorten the later ones by the prefix they share with the
                // first, up to a `/` or `.`: `app.kubernetes.io/name, version`.
                let first = lasts[0];
                let shared = lasts[1..].iter().fold(first.len(), |n, l| {
                    n.min(
                        first
                            .bytes()
                            .zip(l.bytes())
                            .take_while(|(a, b)| a == b)
                            .count(),
                    )
                });
                let cut = first[..shared].rfind(['/', '.']).map_or(0, |i| i + 1);
                let mut names = vec![first.to_string()];
                names.extend(lasts[1..].iter().map(|l| l[cut..].to_string()));
                g.message = format!("{head} {})", names.join(", "));
                g.path = common_parent(g.findings.iter().map(|f| f.path.as_str()));
            }
            g
        })
        .collect()
}

/// The longest JSON-pointer prefix (whole segments) of every path.
fn common_parent<'a>(mut paths: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = paths.next() else {
        return String::new();
    };
    let mut parts: Vec<&str> = first.split('/').collect();
    for p in paths {
        let n = parts
            .iter()
            .zip(p.split('/'))
            .take_while(|(a, b)| *a == b)
            .count();
        parts.truncate(n);
    }
    parts.join("/")
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
    summary: Summary,
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
    /// Findings an exemption suppressed, with its reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exempted: Vec<JsonExempted<'a>>,
    /// An exception that applied and ends soon.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notices: &'a [String],
}

#[derive(serde::Serialize)]
struct JsonExempted<'a> {
    rule: &'a str,
    reason: &'a str,
    action: Action,
    message: &'a str,
    path: &'a str,
    /// The TierException (`namespace/name`), its owner and end.
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<&'a str>,
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

/// `-o json`, streamed to `out` (reports over many objects can be large).
pub fn json(report: &Report, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let judged = &report.judged;
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
                exempted: j
                    .eval
                    .exempted
                    .iter()
                    .flat_map(|e| {
                        e.findings.iter().map(move |f| JsonExempted {
                            rule: e.rule,
                            reason: &e.reason,
                            action: f.action,
                            message: &f.message,
                            path: &f.path,
                            exception: e.exception.as_deref(),
                            owner: e.owner.as_deref(),
                            expires: e.expires.as_deref(),
                        })
                    })
                    .collect(),
                notices: &j.eval.notices,
            })
            .collect(),
        errors: json_problems(report, false),
        skipped: json_problems(report, true),
        summary: summarize(judged),
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
        let suppressed = j
            .eval
            .exempted
            .iter()
            .flat_map(|e| e.findings.iter().map(move |f| (f, Some(e.reason.as_str()))));
        let findings = j.eval.findings.iter().map(|f| (f, None)).chain(suppressed);
        for (f, exempted) in findings {
            let rule_index = rules::ALL.iter().position(|r| r.id == f.rule);
            let mut result = json!({
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
            });
            // An exempted finding is a result with a suppression (code
            // scanning shows it as dismissed, with the reason).
            if let Some(reason) = exempted {
                result["suppressions"] = json!([{
                    "kind": "external",
                    "status": "accepted",
                    "justification": reason,
                }]);
            }
            results.push(result);
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
        if denies.is_empty()
            && others.is_empty()
            && j.notes.is_empty()
            && j.eval.exempted.is_empty()
        {
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
        if !others.is_empty() || !j.notes.is_empty() || !j.eval.exempted.is_empty() {
            let body: Vec<String> = j
                .notes
                .iter()
                .map(|n| format!("note: {n}"))
                .chain(j.eval.exempted.iter().flat_map(|e| {
                    e.findings.iter().map(move |f| {
                        format!(
                            "exempted [{}] {} at {} ({})",
                            f.rule, f.message, f.path, e.reason
                        )
                    })
                }))
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

/// The audit's readiness to enforce, a row per namespace.
pub fn readiness_table(
    r: &std::collections::BTreeMap<String, crate::audit::Readiness>,
    at_owner: usize,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{:<24} {:>4} {:<7} {:>7} {:>8} {:>11}  {:<30} {:<24} NEXT TIER",
        "NAMESPACE", "TIER", "MODE", "OBJECTS", "DENIED", "AFTER FIXES", "VERDICT", "TOP RULES"
    );
    for (ns, x) in r {
        let top: Vec<String> = x
            .top_rules
            .iter()
            .take(3)
            .map(|(rule, n)| format!("{rule}({n})"))
            .collect();
        let next = match x.next_tier_blocking {
            Some(n) => format!("tier {}: {n} blocking", x.tier + 1),
            None => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "{:<24} {:>4} {:<7} {:>7} {:>8} {:>11}  {:<30} {:<24} {}",
            printable(if ns.is_empty() { "(cluster)" } else { ns }),
            x.tier,
            x.mode,
            x.objects,
            x.denied_in_enforce,
            x.pass_after_fixes,
            x.verdict(),
            if top.is_empty() {
                "-".to_string()
            } else {
                top.join(", ")
            },
            next
        );
    }
    let _ = writeln!(
        s,
        "{} namespaces; {at_owner} objects judged at their owner; DENIED: denied in enforce at the \
         tier, AFTER FIXES: of those, passing once the mutating webhook fixes them",
        r.len()
    );
    s
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
                &if j.line == 0 {
                    format!("({})", printable(&j.file))
                } else {
                    format!("({}#{}, line {})", printable(&j.file), j.document, j.line)
                }
            ),
            p.wrap("2", &format!("tier {} {}", j.tier.number(), j.tier.name()))
        );
        for g in group_findings(&j.eval.findings) {
            let (code, word) = match g.action {
                Action::Deny => ("31;1", "DENY "),
                Action::Warn => ("33", "WARN "),
                Action::Audit => ("36", "AUDIT"),
                Action::Off => ("2", "OFF  "),
            };
            let fixable = match g.fixable {
                (0, _) => String::new(),
                (n, all) if n == all => " [fixable]".to_string(),
                (n, all) => format!(" [{n} of {all} fixable]"),
            };
            let _ = writeln!(
                s,
                "  {} {:<28} {}{}",
                p.wrap(code, word),
                g.rule,
                printable(&g.message),
                p.wrap("32", &fixable)
            );
            let _ = writeln!(s, "        {:<28} {}", "", p.wrap("2", &printable(&g.path)));
        }
        for e in &j.eval.exempted {
            let by = match (&e.exception, &e.owner, &e.expires) {
                (Some(x), Some(o), Some(t)) => format!("exception {x}, owner {o}, until {t}: "),
                _ => "exempted: ".to_string(),
            };
            for g in group_findings(&e.findings) {
                let _ = writeln!(
                    s,
                    "  {} {:<28} {} ({}{})",
                    p.wrap("2", "EXEMPT"),
                    e.rule,
                    printable(&g.message),
                    printable(&by),
                    printable(&e.reason)
                );
            }
        }
        for n in j.notes.iter().chain(&j.eval.notices) {
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
    let sum = summarize(judged);
    if sum.deny + sum.warn > 0 {
        let mut rules: Vec<(&&str, &Counts)> = sum.by_rule.iter().collect();
        rules.sort_by_key(|(id, c)| (std::cmp::Reverse(c.deny + c.warn), **id));
        let _ = writeln!(s, "Findings by rule:");
        for (id, c) in &rules {
            let _ = writeln!(s, "  {:<28} {:>6} deny {:>6} warn", id, c.deny, c.warn);
        }
        if sum.by_namespace.len() > 1 || sum.by_namespace.keys().any(|n| !n.is_empty()) {
            let _ = writeln!(s, "By namespace:");
            for (ns, c) in &sum.by_namespace {
                let name = if ns.is_empty() { "(none given)" } else { ns };
                let _ = writeln!(
                    s,
                    "  {:<28} {:>6} objects, {} denied; {} deny {} warn",
                    printable(name),
                    c.objects,
                    c.denied,
                    c.deny,
                    c.warn
                );
            }
        }
        if let Some((j, f)) = judged.iter().find_map(|j| {
            j.eval
                .findings
                .iter()
                .find(|f| f.action == Action::Deny)
                .map(|f| (j, f))
        }) {
            let namespaces = j
                .namespace
                .as_deref()
                .map(|n| format!("\n    namespaces: [{}]", printable(n)))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "Each rule's doc says how to fix it (`tiergate rules`). To exempt an object, \
                 add to the config, with a reason, e.g.:\n  exemptions:\n  - reason: \"<why {} \
                 needs this>\"{namespaces}\n    kinds: [{}]\n    names: [{}]\n    rules: [{}]",
                printable(&j.name),
                printable(&j.kind),
                printable(&j.name),
                f.rule
            );
        }
        s.push('\n');
    }
    let errors = report.problems.iter().filter(|p| !p.skipped).count();
    let skipped = report.problems.len() - errors;
    let _ = writeln!(
        s,
        "{} objects checked: {} clean, {} denied, {} warned; findings: {} deny, {} warn, {} exempted; {} inputs not judged ({} errors, {} skipped)",
        sum.objects,
        sum.clean,
        p.wrap(if sum.denied > 0 { "31;1" } else { "0" }, &sum.denied.to_string()),
        sum.warned,
        sum.deny,
        sum.warn,
        sum.exempted,
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
        let apiserver = match r.cel {
            crate::policy::cel::Cel::Findings(_) => {
                "a ValidatingAdmissionPolicy judges it (`tiergate export admission-policies`)"
                    .to_string()
            }
            crate::policy::cel::Cel::Facts(_) => {
                "a ValidatingAdmissionPolicy judges it, from the namespace's facts that \
                 `tiergate serve` keeps as a NamespaceFacts object (`tiergate export \
                 admission-policies`)"
                    .to_string()
            }
            crate::policy::cel::Cel::Apiserver(why) => format!("the apiserver itself: {why}"),
            crate::policy::cel::Cel::Webhook(why)
            | crate::policy::cel::Cel::WebhookWhen { why, .. } => {
                format!("stays in the webhook: {why}")
            }
        };
        let fix = match (r.fix.exists(), r.fix.cel().is_some()) {
            (true, true) => "; its fix, a MutatingAdmissionPolicy (Kubernetes 1.36+)",
            (true, false) => "; its fix stays in the mutating webhook",
            _ => "",
        };
        let _ = writeln!(s, "- in hybrid mode: {apiserver}{fix}");
        let _ = writeln!(
            s,
            "- exempt: in the config, `exemptions: [{{reason: \"<why>\", namespaces: [<ns>], \
             kinds: [<Kind>], names: [<name or glob>], rules: [{}]}}]`; `check` reports what \
             it suppressed, with the reason",
            r.id
        );
    }
    s.push_str("\n## Tiers\n\nEach tier includes every rule of the tiers below it.\n\n| tier | adds | what no admission webhook can check |\n|---|---|---|\n");
    for tier in [
        Tier::Foundation,
        Tier::Production,
        Tier::Enterprise,
        Tier::MultiCluster,
        Tier::Hyperscale,
    ] {
        let ids: Vec<String> = rules::ALL
            .iter()
            .filter(|r| r.tier == tier)
            .map(|r| format!("`{}`", r.id))
            .collect();
        let _ = writeln!(
            s,
            "| {} {} | {} | {} |",
            tier.number(),
            tier.name(),
            ids.join(", "),
            tier.beyond_admission()
        );
    }
    s.push_str(
        "\n## Configuration\n\nThe embedded default configuration, with every key:\n\n```yaml\n",
    );
    s.push_str(crate::config::DEFAULT_YAML);
    s.push_str("```\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Finding;

    fn finding(rule: &'static str, message: &str, path: &str, fixable: bool) -> Finding {
        Finding {
            rule,
            tier: 2,
            action: Action::Deny,
            message: message.to_string(),
            path: path.to_string(),
            container: None,
            fixable,
        }
    }

    #[test]
    fn findings_about_one_part_are_one_line() {
        let f = vec![
            finding(
                "standard-labels",
                "standard labels (metadata.labels must set app.kubernetes.io/name)",
                "/metadata/labels/app.kubernetes.io~1name",
                true,
            ),
            finding(
                "standard-labels",
                "standard labels (metadata.labels must set app.kubernetes.io/version)",
                "/metadata/labels/app.kubernetes.io~1version",
                true,
            ),
            finding(
                "standard-labels",
                "standard labels (metadata.labels must set app.kubernetes.io/component)",
                "/metadata/labels/app.kubernetes.io~1component",
                false,
            ),
            finding(
                "standard-labels",
                "standard labels (spec.template.metadata.labels must set app.kubernetes.io/name)",
                "/spec/template/metadata/labels/app.kubernetes.io~1name",
                true,
            ),
            finding(
                "run-as-non-root",
                "runAsNonRoot != true (container \"a\" must set securityContext.runAsNonRoot=true)",
                "/spec/containers/0/securityContext/runAsNonRoot",
                false,
            ),
            finding(
                "run-as-non-root",
                "runAsNonRoot != true (container \"b\" must set securityContext.runAsNonRoot=true)",
                "/spec/containers/1/securityContext/runAsNonRoot",
                false,
            ),
        ];
        let g = group_findings(&f);
        let lines: Vec<(&str, &str, (usize, usize))> = g
            .iter()
            .map(|g| (g.message.as_str(), g.path.as_str(), g.fixable))
            .collect();
        assert_eq!(
            lines,
            vec![
                (
                    "standard labels (metadata.labels must set app.kubernetes.io/name, version, component)",
                    "/metadata/labels",
                    (2, 3)
                ),
                (
                    "standard labels (spec.template.metadata.labels must set app.kubernetes.io/name)",
                    "/spec/template/metadata/labels/app.kubernetes.io~1name",
                    (1, 1)
                ),
                // Different containers are different parts: not grouped.
                (f[4].message.as_str(), f[4].path.as_str(), (0, 1)),
                (f[5].message.as_str(), f[5].path.as_str(), (0, 1)),
            ]
        );
        assert_eq!(g[0].findings.len(), 3);
    }
}
