//! `ingress-tls`: every host an Ingress serves is covered by its `spec.tls`.
use super::prelude::*;
use k8s_openapi::api::networking::v1::{Ingress, IngressTLS};

pub static RULE: Rule = Rule {
    id: "ingress-tls",
    tier: Tier::Production,
    pss: None,
    summary: "every Ingress host is served over TLS",
    doc: "An Ingress host without TLS serves its traffic, cookies and credentials in clear \
text. Every `spec.rules[].host` must be listed in a `spec.tls[].hosts` entry (compared \
case-insensitively; a wildcard `*.example.com` covers exactly one label, `shop.example.com` \
but neither `example.com` nor `a.shop.example.com`). A rule without a host, and an Ingress \
that only has a `defaultBackend`, serve the controller's catch-all host: the API says a \
`tls` entry without `hosts` covers it, so they need such an entry. Add the hosts to \
`spec.tls` with a `secretName`, typically issued by cert-manager through the \
`cert-manager.io/cluster-issuer` annotation.",
    check: Check::Object(Kinds::Only(kinds::INGRESSES), check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(t: &Target<'_>, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let ing: Ingress = t.typed()?;
    let Some(spec) = ing.spec else { return Ok(()) };
    let tls = spec.tls.as_deref().unwrap_or(&[]);
    let rules = spec.rules.as_deref().unwrap_or(&[]);
    let name = t.name();
    for (i, rule) in rules.iter().enumerate() {
        match rule.host.as_deref().filter(|h| !h.is_empty()) {
            Some(host) if !host_covered(tls, host) => out.push(Violation::new(
                format!("/spec/rules/{i}/host"),
                format!(
                    "ingress without TLS (Ingress {name:?} host {host:?} must be listed in \
                     spec.tls[].hosts)"
                ),
            )),
            Some(_) => {}
            None if !catch_all_covered(tls) => out.push(Violation::new(
                format!("/spec/rules/{i}"),
                format!(
                    "ingress without TLS (Ingress {name:?} rule {i} has no host and must be \
                     covered by a spec.tls entry without hosts)"
                ),
            )),
            None => {}
        }
    }
    if rules.is_empty() && spec.default_backend.is_some() && !catch_all_covered(tls) {
        out.push(Violation::new(
            "/spec/defaultBackend",
            format!(
                "ingress without TLS (Ingress {name:?} serves a defaultBackend and must have a \
                 spec.tls entry without hosts)"
            ),
        ));
    }
    Ok(())
}

/// A `tls` entry with no hosts covers the controller's default host.
fn catch_all_covered(tls: &[IngressTLS]) -> bool {
    tls.iter()
        .any(|e| e.hosts.as_deref().unwrap_or(&[]).is_empty())
}

fn host_covered(tls: &[IngressTLS], host: &str) -> bool {
    tls.iter()
        .flat_map(|e| e.hosts.iter().flatten())
        .any(|pattern| host_matches(pattern, host))
}

/// `pattern` (a TLS host, maybe `*.suffix`) covers `host`.
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    if p == h {
        return true;
    }
    match (p.strip_prefix("*."), h.split_once('.')) {
        (Some(suffix), Some((label, rest))) => !label.is_empty() && label != "*" && rest == suffix,
        _ => false,
    }
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let spec = "variables.obj.?spec";
    let tls = format!("{spec}.?tls.orValue([])");
    let rules = format!("{spec}.?rules.orValue([])");
    let catch_all = format!("{tls}.exists(e, e.?hosts.orValue([]).size() == 0)");
    // host_matches(p, r.host), pattern and host lowercased.
    let matches = "(p.lowerAscii() == r.host.lowerAscii() || (p.startsWith('*.') && \
                   r.host.indexOf('.') > 0 && r.host.substring(0, r.host.indexOf('.')) != '*' && \
                   r.host.lowerAscii().substring(r.host.indexOf('.') + 1) == \
                   p.lowerAscii().substring(2)))";
    let name = "' + variables.obj.metadata.?name.orValue(request.name) + '";
    format!(
        "{rules}.filter(r, r.?host.orValue('') != '' ? !{tls}.exists(e, \
         e.?hosts.orValue([]).exists(p, {matches})) : !{catch_all}).map(r, r.?host.orValue('') \
         != '' ? 'ingress without TLS (Ingress \"{name}\" host \"' + r.host + '\" must be listed \
         in spec.tls[].hosts)' : 'ingress without TLS (Ingress \"{name}\" has a rule without a \
         host that must be covered by a spec.tls entry without hosts)') + ({rules}.size() == 0 && \
         {spec}.?defaultBackend.hasValue() && !{catch_all} ? ['ingress without TLS (Ingress \
         \"{name}\" serves a defaultBackend and must have a spec.tls entry without hosts)'] : [])"
    )
}

#[cfg(test)]
mod tests {
    use super::host_matches;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::{json, Value};

    fn ingress(spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "shop", "namespace": "shop"}, "spec": spec})
    }

    fn backend() -> Value {
        json!({"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]})
    }

    fn findings(i: &Value) -> Vec<(String, String)> {
        run_rule("ingress-tls", i, Tier::Production)
            .findings
            .into_iter()
            .map(|f| (f.path, f.message))
            .collect()
    }

    #[test]
    fn covered_hosts_pass() {
        let i = ingress(json!({
            "tls": [{"hosts": ["shop.example.com"], "secretName": "a"},
                    {"hosts": ["*.api.example.com"], "secretName": "b"},
                    {"secretName": "default"}],
            "rules": [{"host": "Shop.Example.com", "http": backend()},
                      {"host": "v1.api.example.com", "http": backend()},
                      {"http": backend()}]}));
        assert_eq!(findings(&i), vec![]);
    }

    #[test]
    fn uncovered_hosts_are_findings() {
        let i = ingress(json!({
            "tls": [{"hosts": ["*.example.com"], "secretName": "a"}],
            "rules": [{"host": "shop.example.com", "http": backend()},
                      {"host": "a.b.example.com", "http": backend()},
                      {"http": backend()}]}));
        assert_eq!(
            findings(&i),
            vec![
                (
                    "/spec/rules/1/host".to_string(),
                    "ingress without TLS (Ingress \"shop\" host \"a.b.example.com\" must be \
                     listed in spec.tls[].hosts)"
                        .to_string()
                ),
                (
                    "/spec/rules/2".to_string(),
                    "ingress without TLS (Ingress \"shop\" rule 2 has no host and must be \
                     covered by a spec.tls entry without hosts)"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn default_backend_only_needs_catch_all_tls() {
        let i = ingress(
            json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
        );
        let f = findings(&i);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "/spec/defaultBackend");
        let i = ingress(json!({"tls": [{"secretName": "x", "hosts": []}],
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}));
        assert!(findings(&i).is_empty());
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(host_matches("*.example.com", "*.example.com"));
        assert!(!host_matches("a.example.com", "*.example.com"));
        assert!(!host_matches("example.com", "a.example.com"));
    }
}
