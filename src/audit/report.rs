//! What an audit leaves behind: the snapshot the admin port shows
//! (`/report`, `/report.json`), one `wgpolicyk8s.io/v1alpha2` PolicyReport
//! per namespace that has something to report (failures and skips only,
//! capped, the rest counted), and the audit gauges. Pure but for the
//! metrics handles: the server writes the reports.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};
use serde::Serialize;
use serde_json::{json, Value};

use super::{Audit, Readiness};

/// The PolicyReport API.
pub const REPORT_GROUP: &str = "wgpolicyk8s.io";
pub const REPORT_VERSION: &str = "v1alpha2";
pub const REPORT_KIND: &str = "PolicyReport";
pub const REPORT_PLURAL: &str = "policyreports";
/// The name of tiergate's report in each namespace.
pub const REPORT_NAME: &str = "tiergate";

/// One finding (or skip) of an audited object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub rule: String,
    pub tier: u8,
    /// What the namespace's mode does with it today (`skip` when excepted).
    pub action: String,
    pub message: String,
    pub path: String,
    pub fixable: bool,
    /// The TierException (`ns/name`) or `config` exemption that covers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excepted_by: Option<String>,
}

/// One namespace of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceReport {
    pub readiness: Readiness,
    pub verdict: String,
    /// Objects with no finding.
    pub passed: usize,
    /// Failing results and skips, most severe first, at most the cap.
    pub results: Vec<Row>,
    /// Results past the cap (counted, not listed).
    pub omitted: usize,
    /// Every result, listed or not: fail, warn, skip.
    pub counts: Counts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    pub fail: usize,
    pub warn: usize,
    pub skip: usize,
}

/// A result's PolicyReport `result`.
fn result_of(action: &str) -> &'static str {
    match action {
        "warn" => "warn",
        "skip" => "skip",
        _ => "fail",
    }
}

/// The last audit, as the admin port shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// When it finished (RFC 3339).
    pub finished: String,
    pub duration_seconds: f64,
    pub objects: usize,
    pub at_owner: usize,
    pub not_listed: Vec<String>,
    /// By namespace ("" for cluster-scoped objects).
    pub namespaces: BTreeMap<String, NamespaceReport>,
}

impl Snapshot {
    /// From an audit, each namespace's results capped at `max`.
    pub fn of(audit: &Audit, max: usize, finished: i64, duration_seconds: f64) -> Snapshot {
        let mut rows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for (j, (api_version, uid)) in audit.judged.iter().zip(&audit.refs) {
            let ns = j.namespace.clone().unwrap_or_default();
            let entry = rows.entry(ns).or_default();
            if j.eval.findings.is_empty() && j.eval.exempted.is_empty() {
                continue;
            }
            let row = |rule: &str,
                       tier: u8,
                       action: String,
                       message: &str,
                       path: &str,
                       fixable: bool,
                       by: Option<String>| Row {
                api_version: api_version.clone(),
                kind: j.kind.clone(),
                name: j.name.clone(),
                uid: uid.clone(),
                rule: rule.to_string(),
                tier,
                action,
                message: message.to_string(),
                path: path.to_string(),
                fixable,
                excepted_by: by,
            };
            for f in &j.eval.findings {
                entry.push(row(
                    f.rule,
                    f.tier,
                    f.action.name().to_string(),
                    &f.message,
                    &f.path,
                    f.fixable,
                    None,
                ));
            }
            for e in &j.eval.exempted {
                let by = e
                    .exception
                    .clone()
                    .unwrap_or_else(|| "config exemption".to_string());
                for f in &e.findings {
                    entry.push(row(
                        f.rule,
                        f.tier,
                        "skip".to_string(),
                        &f.message,
                        &f.path,
                        false,
                        Some(by.clone()),
                    ));
                }
            }
        }
        let severity = |a: &str| match a {
            "deny" => 0,
            "warn" => 1,
            "audit" => 2,
            _ => 3,
        };
        let namespaces = audit
            .readiness
            .iter()
            .map(|(ns, r)| {
                let mut results = rows.remove(ns).unwrap_or_default();
                results.sort_by_key(|r| severity(&r.action));
                let counts = audit.counts.get(ns).copied().unwrap_or_default();
                let passed = audit.passed.get(ns).copied().unwrap_or_default();
                let all = counts.fail + counts.warn + counts.skip;
                let omitted = all.saturating_sub(max.min(results.len()));
                results.truncate(max);
                (
                    ns.clone(),
                    NamespaceReport {
                        readiness: r.clone(),
                        verdict: r.verdict(),
                        passed,
                        results,
                        omitted,
                        counts,
                    },
                )
            })
            .collect();
        Snapshot {
            finished: crate::policy::exception::rfc3339(finished),
            duration_seconds,
            objects: audit.total,
            at_owner: audit.at_owner,
            not_listed: audit.not_listed.clone(),
            namespaces,
        }
    }

    /// The PolicyReport of each namespace that has results; a namespace
    /// with none gets none (an old one is removed).
    pub fn policy_reports(&self, now: i64) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (ns, n) in &self.namespaces {
            if ns.is_empty() || n.results.is_empty() {
                continue;
            }
            let results: Vec<Value> = n
                .results
                .iter()
                .map(|r| {
                    let result = result_of(&r.action);
                    let mut props = json!({"tier": r.tier.to_string(), "action": r.action,
                        "path": r.path, "fixable": r.fixable.to_string()});
                    if let Some(by) = &r.excepted_by {
                        props["exceptedBy"] = json!(by);
                    }
                    json!({
                        "source": "tiergate",
                        "policy": format!("tier-{}", r.tier),
                        "rule": r.rule,
                        "category": format!("tier {}", r.tier),
                        "result": result,
                        "severity": if r.action == "deny" { "high" } else { "medium" },
                        "message": r.message,
                        "scored": true,
                        "timestamp": {"seconds": now, "nanos": 0},
                        "resources": [{"apiVersion": r.api_version, "kind": r.kind,
                            "name": r.name, "namespace": ns, "uid": r.uid}],
                        "properties": props,
                    })
                })
                .collect();
            out.insert(
                ns.clone(),
                json!({
                    "apiVersion": format!("{REPORT_GROUP}/{REPORT_VERSION}"),
                    "kind": REPORT_KIND,
                    "metadata": {"name": REPORT_NAME, "namespace": ns, "labels": {
                        "app.kubernetes.io/managed-by": "tiergate",
                        "tiergate.io/verdict": if n.readiness.ready() { "ready" } else { "not-ready" }},
                        "annotations": {"tiergate.io/results-omitted": n.omitted.to_string(),
                            "tiergate.io/verdict": n.verdict}},
                    "summary": {"pass": n.passed, "fail": n.counts.fail,
                        "warn": n.counts.warn, "error": 0, "skip": n.counts.skip},
                    "results": results,
                }),
            );
        }
        out
    }

    /// `/report`: a table of namespaces, or one namespace's results; plain
    /// HTML, no external assets.
    pub fn html(&self, namespace: Option<&str>) -> String {
        let mut s = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>tiergate audit</title>\
             <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
             td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
             .ready{color:#060}.not-ready{color:#a00}</style></head><body>",
        );
        let _ = write!(
            s,
            "<h1>tiergate audit</h1><p id=\"summary\">{} objects judged ({} at their owner), finished {} in {:.1} s</p>",
            self.objects,
            self.at_owner,
            esc(&self.finished),
            self.duration_seconds
        );
        match namespace.and_then(|ns| self.namespaces.get(ns).map(|n| (ns, n))) {
            Some((ns, n)) => {
                let _ = write!(
                    s,
                    "<h2>{}</h2><p class=\"{}\" id=\"verdict\">{}</p><table id=\"results\"><tr><th>object</th><th>rule</th><th>action</th><th>message</th><th>fixable</th></tr>",
                    esc(if ns.is_empty() { "(cluster)" } else { ns }),
                    if n.readiness.ready() { "ready" } else { "not-ready" },
                    esc(&n.verdict)
                );
                for r in &n.results {
                    let _ = write!(
                        s,
                        "<tr><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&r.kind),
                        esc(&r.name),
                        esc(&r.rule),
                        esc(&match &r.excepted_by {
                            Some(b) => format!("skip ({b})"),
                            None => r.action.clone(),
                        }),
                        esc(&r.message),
                        if r.fixable { "yes" } else { "no" }
                    );
                }
                let _ = write!(s, "</table><p>{} more not listed</p><p><a href=\"/report\">all namespaces</a></p>", n.omitted);
            }
            None => {
                s.push_str("<table id=\"namespaces\"><tr><th>namespace</th><th>tier</th><th>mode</th><th>objects</th><th>denied in enforce</th><th>after fixes</th><th>verdict</th><th>top rules</th><th>next tier</th></tr>");
                for (ns, n) in &self.namespaces {
                    let r = &n.readiness;
                    let top: Vec<String> = r
                        .top_rules
                        .iter()
                        .take(3)
                        .map(|(rule, c)| format!("{rule} ({c})"))
                        .collect();
                    let _ = write!(
                        s,
                        "<tr><td><a href=\"/report?namespace={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&url_escape(ns)),
                        esc(if ns.is_empty() { "(cluster)" } else { ns }),
                        r.tier,
                        esc(&r.mode),
                        r.objects,
                        r.denied_in_enforce,
                        r.pass_after_fixes,
                        if r.ready() { "ready" } else { "not-ready" },
                        esc(&n.verdict),
                        esc(&top.join(", ")),
                        r.next_tier_blocking
                            .map_or("-".to_string(), |b| format!("tier {}: {b} blocking", r.tier + 1))
                    );
                }
                s.push_str("</table>");
            }
        }
        s.push_str("</body></html>\n");
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The audit gauges: bounded label sets (no namespace label).
#[derive(Clone)]
pub struct AuditMetrics {
    objects: IntGaugeVec,
    findings: IntGaugeVec,
    duration: Gauge,
    last_success: IntGauge,
    pub leader: IntGauge,
    /// `tiergate_audit_namespace_blocking{namespace}`, when turned on.
    per_namespace: Option<IntGaugeVec>,
}

impl AuditMetrics {
    pub fn new(registry: &Registry, per_namespace: bool) -> Result<Self, prometheus::Error> {
        let objects = IntGaugeVec::new(
            Opts::new(
                "tiergate_audit_objects",
                "Objects the last audit judged, by namespace tier, mode and result (pass or fail).",
            ),
            &["tier", "mode", "result"],
        )?;
        let findings = IntGaugeVec::new(
            Opts::new(
                "tiergate_audit_findings",
                "Findings of the last audit, by tier, rule and the action the namespace's mode takes.",
            ),
            &["tier", "rule", "action"],
        )?;
        let duration = Gauge::new(
            "tiergate_audit_duration_seconds",
            "How long the last audit took.",
        )?;
        let last_success = IntGauge::new(
            "tiergate_audit_last_success_timestamp_seconds",
            "When the last audit finished (Unix time).",
        )?;
        let leader = IntGauge::new(
            "tiergate_audit_leader",
            "1 on the replica that holds the audit Lease.",
        )?;
        registry.register(Box::new(objects.clone()))?;
        registry.register(Box::new(findings.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        let per_namespace = if per_namespace {
            let g = IntGaugeVec::new(
                Opts::new(
                    "tiergate_audit_namespace_blocking",
                    "Objects that would block enforcing the namespace's tier (0: ready), by namespace.",
                ),
                &["namespace"],
            )?;
            registry.register(Box::new(g.clone()))?;
            Some(g)
        } else {
            None
        };
        Ok(AuditMetrics {
            per_namespace,
            objects,
            findings,
            duration,
            last_success,
            leader,
        })
    }

    /// Replace the gauges with what this audit found.
    pub fn record(&self, audit: &Audit, finished: i64, duration_seconds: f64) {
        self.objects.reset();
        self.findings.reset();
        for ((tier, mode, result), n) in &audit.objects_by {
            self.objects
                .with_label_values(&[tier.to_string().as_str(), mode.as_str(), result])
                .set(*n);
        }
        for ((tier, rule, action), n) in &audit.findings_by {
            self.findings
                .with_label_values(&[tier.to_string().as_str(), rule, action])
                .set(*n);
        }
        if let Some(g) = &self.per_namespace {
            g.reset();
            for (ns, r) in &audit.readiness {
                let blocking = i64::try_from(r.blocking).unwrap_or(i64::MAX);
                g.with_label_values(&[ns]).set(blocking);
            }
        }
        self.duration.set(duration_seconds);
        self.last_success.set(finished);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::judge::Judged;
    use crate::policy::{Action, Evaluation, Finding, Tier};

    fn judged(ns: &str, name: &str, findings: usize) -> Judged {
        Judged {
            file: "cluster".into(),
            source: 0,
            document: 0,
            item: Vec::new(),
            line: 0,
            kind: "Deployment".into(),
            namespace: Some(ns.into()),
            name: name.into(),
            tier: Tier::Foundation,
            notes: Vec::new(),
            eval: Evaluation {
                findings: (0..findings)
                    .map(|_| Finding {
                        rule: "privileged",
                        tier: 1,
                        action: Action::Deny,
                        message: "privileged (container \"app\" must not set privileged: true)"
                            .into(),
                        path: "/spec/template/spec/containers/0/securityContext/privileged".into(),
                        container: Some("app".into()),
                        fixable: false,
                    })
                    .collect(),
                ..Evaluation::default()
            },
        }
    }

    #[test]
    fn ten_thousand_offenders_make_one_capped_report_and_a_clean_namespace_none() {
        let mut audit = Audit::default();
        // As the server keeps them: every object counted, at most the cap
        // of failing ones kept.
        for i in 0..10_000 {
            let j = judged("big", &format!("web-{i}"), 1);
            audit.count("big", Tier::Foundation, "enforce", &j.eval);
            if i < 1_000 {
                audit.judged.push(j);
                audit.refs.push(("apps/v1".into(), format!("uid-{i}")));
            }
        }
        for i in 0..5 {
            let j = judged("clean", &format!("ok-{i}"), 0);
            assert!(!audit.count("clean", Tier::Foundation, "enforce", &j.eval));
        }
        for ns in ["big", "clean"] {
            audit.readiness.insert(ns.into(), Readiness::default());
        }
        let snap = Snapshot::of(&audit, 1_000, 1_800_000_000, 1.5);
        let reports = snap.policy_reports(1_800_000_000);
        assert_eq!(reports.len(), 1, "a clean namespace gets no report");
        let r = &reports["big"];
        assert_eq!(r["results"].as_array().unwrap().len(), 1_000);
        assert_eq!(r["summary"]["fail"], 10_000, "every failure is counted");
        assert_eq!(
            r["metadata"]["annotations"]["tiergate.io/results-omitted"],
            "9000"
        );
        assert_eq!(r["results"][0]["resources"][0]["uid"], "uid-0");
        assert_eq!(snap.namespaces["clean"].passed, 5);
        // The page escapes what it shows.
        let mut a = Audit::default();
        let j = judged("x", "<script>", 1);
        a.count("x", Tier::Foundation, "enforce", &j.eval);
        a.judged.push(j);
        a.refs.push(("apps/v1".into(), "u".into()));
        a.readiness.insert("x".into(), Readiness::default());
        let html = Snapshot::of(&a, 10, 0, 0.0).html(Some("x"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    }
}
