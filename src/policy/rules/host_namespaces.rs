//! PSS `hostNamespaces` (baseline, v1.0+): no sharing of the host's network,
//! PID or IPC namespaces.
use super::prelude::*;
use super::pss_common::msg;

pub static RULE: Rule = Rule {
    id: "host-namespaces",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "hostNamespaces",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "pods must not share the host's network, PID or IPC namespace",
    doc: "A pod with `hostNetwork`, `hostPID` or `hostIPC` set shares that namespace \
with the node: it can sniff or bind the node's interfaces, see and signal every \
process on the node, or read other workloads' shared memory. Pod Security Standards \
baseline forbids all three. Remove the fields (or set them to false); expose a port \
through a Service instead of the host network.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let s = &pod.spec;
    for (field, value) in [
        ("hostNetwork", s.host_network),
        ("hostPID", s.host_pid),
        ("hostIPC", s.host_ipc),
    ] {
        if value == Some(true) {
            out.push(Violation::new(
                format!("{}/{field}", pod.spec_path),
                msg("host namespaces", format!("{field}=true")),
            ));
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    ["hostNetwork", "hostPID", "hostIPC"]
        .map(|f| {
            format!(
                "(variables.pod.?{f}.orValue(false) == true ? ['host namespaces ({f}=true)'] : [])"
            )
        })
        .join(" + ")
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::{deployment, pod};
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn pod_without_host_namespaces_passes() {
        let p = pod(json!({}), json!({"hostNetwork": false}));
        assert!(run_rule("host-namespaces", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn each_host_namespace_is_a_finding() {
        let d = deployment(json!({"hostNetwork": true, "hostPID": true,
            "containers": [{"name": "app", "image": "nginx:1.27"}]}));
        let e = run_rule("host-namespaces", &d, Tier::Foundation);
        assert_eq!(e.findings.len(), 2);
        assert_eq!(e.findings[0].path, "/spec/template/spec/hostNetwork");
        assert_eq!(e.findings[0].message, "host namespaces (hostNetwork=true)");
        assert_eq!(e.findings[0].container, None);
        assert_eq!(e.findings[1].path, "/spec/template/spec/hostPID");
        assert_eq!(e.findings[1].message, "host namespaces (hostPID=true)");
    }
}
