//! PSS `hostProbesAndHostLifecycle` (baseline, v1.34+): probes and lifecycle
//! handlers must not name a host.
use super::prelude::*;
use k8s_openapi::api::core::v1::{HTTPGetAction, TCPSocketAction};

use super::pss_common::{in_container, msg, q, who};

pub static RULE: Rule = Rule {
    id: "host-probes-and-lifecycle",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "hostProbesAndHostLifecycle",
        level: PssLevel::Baseline,
        min_minor: 34,
        overrides: &[],
    }),
    summary: "probes and lifecycle hooks must not set a host",
    doc: "An httpGet or tcpSocket probe or lifecycle hook with `host` set makes the \
kubelet, from the node, connect to any address the pod names: a way to reach \
services that trust the node's network position (server-side request forgery). \
Pod Security Standards baseline forbids a non-empty `host` on liveness, readiness \
and startup probes and on postStart/preStop hooks from v1.34. Remove `host`: the \
kubelet then targets the pod's own IP, which is what a probe should check.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        let mut handlers: Vec<(String, Option<&HTTPGetAction>, Option<&TCPSocketAction>)> =
            Vec::new();
        for (field, probe) in [
            ("livenessProbe", c.liveness_probe),
            ("readinessProbe", c.readiness_probe),
            ("startupProbe", c.startup_probe),
        ] {
            if let Some(p) = probe {
                handlers.push((
                    format!("{}/{field}", c.path),
                    p.http_get.as_ref(),
                    p.tcp_socket.as_ref(),
                ));
            }
        }
        if let Some(l) = c.lifecycle {
            for (field, h) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
                if let Some(h) = h {
                    handlers.push((
                        format!("{}/lifecycle/{field}", c.path),
                        h.http_get.as_ref(),
                        h.tcp_socket.as_ref(),
                    ));
                }
            }
        }
        for (base, http, tcp) in handlers {
            for (kind, host) in [
                ("httpGet", http.and_then(|h| h.host.as_deref())),
                ("tcpSocket", tcp.and_then(|h| h.host.as_deref())),
            ] {
                if let Some(host) = host.filter(|h| !h.is_empty()) {
                    out.push(in_container(
                        &c,
                        format!("{base}/{kind}/host"),
                        msg(
                            "probe or lifecycle host",
                            format!("{} uses probe or lifecycle host {}", who(&c), q(host)),
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let mut hosts = Vec::new();
    for h in [
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle.?postStart",
        "lifecycle.?preStop",
    ] {
        for kind in ["httpGet", "tcpSocket"] {
            hosts.push(format!("c.?{h}.?{kind}.?host.orValue('') != ''"));
        }
    }
    containers_where(
        &hosts.join(" || "),
        &format!("'probe or lifecycle host (' + {WHO} + ' uses probe or lifecycle host)'"),
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::deployment;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn probes_without_host_pass() {
        let d = deployment(json!({"containers": [{"name": "app", "image": "nginx:1.27",
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            "readinessProbe": {"tcpSocket": {"port": 8080, "host": ""}}}]}));
        assert!(run_rule("host-probes-and-lifecycle", &d, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn probe_and_hook_hosts_are_findings() {
        let d = deployment(json!({"containers": [{"name": "app", "image": "nginx:1.27",
            "livenessProbe": {"httpGet": {"path": "/", "port": 80, "host": "10.0.0.1"}},
            "lifecycle": {"preStop": {"httpGet": {"path": "/stop", "port": 80, "host": "metadata"}}}}]}));
        let e = run_rule("host-probes-and-lifecycle", &d, Tier::Foundation);
        assert_eq!(e.findings.len(), 2);
        assert_eq!(
            e.findings[0].path,
            "/spec/template/spec/containers/0/livenessProbe/httpGet/host"
        );
        assert_eq!(
            e.findings[0].message,
            "probe or lifecycle host (container \"app\" uses probe or lifecycle host \"10.0.0.1\")"
        );
        assert_eq!(e.findings[0].container.as_deref(), Some("app"));
        assert_eq!(
            e.findings[1].path,
            "/spec/template/spec/containers/0/lifecycle/preStop/httpGet/host"
        );
    }
}
