//! PSS `hostPorts` (baseline, v1.0+): no host ports.
use super::prelude::*;
use super::pss_common::{in_container, msg, who};

pub static RULE: Rule = Rule {
    id: "host-ports",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "hostPorts",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "containers must not bind host ports",
    doc: "A `hostPort` binds the port on the node's own address: it bypasses \
NetworkPolicies aimed at pods, limits the workload to one replica per node and \
exposes it wherever the node is reachable. Pod Security Standards baseline forbids \
host ports (0 or unset is fine). Remove `ports[].hostPort` and publish the port \
through a Service (NodePort or LoadBalancer if it must be reachable from outside).",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        for (j, p) in c.ports.into_iter().flatten().enumerate() {
            if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
                out.push(in_container(
                    &c,
                    format!("{}/ports/{j}/hostPort", c.path),
                    msg("hostPort", format!("{} uses hostPort {hp}", who(&c))),
                ));
            }
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    containers_where(
        "c.?ports.orValue([]).exists(p, p.?hostPort.orValue(0) != 0)",
        &format!(
            "'hostPort (' + {WHO} + ' uses hostPort ' + c.ports.filter(p, p.?hostPort.orValue(0) \
             != 0).map(p, string(p.hostPort)).join(', ') + ')'"
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::deployment;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn container_ports_pass() {
        let d = deployment(json!({"containers": [{"name": "app", "image": "nginx:1.27",
            "ports": [{"containerPort": 8080}, {"containerPort": 9090, "hostPort": 0}]}]}));
        assert!(run_rule("host-ports", &d, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn host_port_is_a_finding() {
        let d = deployment(json!({
            "initContainers": [{"name": "init", "image": "busybox:1.36"}],
            "containers": [{"name": "app", "image": "nginx:1.27",
                "ports": [{"containerPort": 8080}, {"containerPort": 443, "hostPort": 443}]}]}));
        let e = run_rule("host-ports", &d, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.path, "/spec/template/spec/containers/0/ports/1/hostPort");
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(f.message, "hostPort (container \"app\" uses hostPort 443)");
    }
}
