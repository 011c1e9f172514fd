//! PSS `sysctls` (baseline): only the namespaced, isolated "safe" sysctls;
//! the safe set grows at v1.27, v1.29, v1.32 and v1.37.
use super::prelude::*;
use super::pss_common::{msg, pod_sc_path};

pub static RULE: Rule = Rule {
    id: "sysctls",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "sysctls",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "pods may only set the safe sysctls",
    doc: "Sysctls tune the kernel; most are node-wide or leak between pods, so one \
pod could weaken every neighbour or the node itself. Pod Security Standards baseline \
allows only the safe, namespaced ones in `securityContext.sysctls`: \
kernel.shm_rmid_forced, net.ipv4.ip_local_port_range, net.ipv4.tcp_syncookies, \
net.ipv4.ping_group_range, net.ipv4.ip_unprivileged_port_start, then \
net.ipv4.ip_local_reserved_ports (v1.27), the tcp_keepalive_* and tcp_fin_timeout \
sysctls (v1.29), tcp_rmem/tcp_wmem (v1.32) and tcp_slow_start_after_idle/\
tcp_notsent_lowat (v1.37). Remove the others or tune them on the node.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

/// Each safe sysctl with the policy version it became safe at.
const SAFE: &[(&str, u32)] = &[
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
    ("net.ipv4.tcp_slow_start_after_idle", 37),
    ("net.ipv4.tcp_notsent_lowat", 37),
];

/// Whether `name` is a safe sysctl at policy version v1.`minor`.
pub fn safe(name: &str, minor: u32) -> bool {
    SAFE.iter().any(|(n, from)| *n == name && minor >= *from)
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let sysctls = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref());
    for (i, s) in sysctls.into_iter().flatten().enumerate() {
        if !safe(&s.name, r.pss_minor) {
            out.push(Violation::new(
                format!("{}/sysctls/{i}/name", pod_sc_path(pod)),
                msg("forbidden sysctls", &s.name),
            ));
        }
    }
    Ok(())
}

fn cel(cx: &CelCtx<'_>) -> String {
    let safe: Vec<&str> = SAFE
        .iter()
        .filter(|(_, from)| cx.pss_minor >= *from)
        .map(|(n, _)| *n)
        .collect();
    format!(
        "variables.pod.?securityContext.?sysctls.orValue([]).filter(s, !(s.name in {})).map(s, \
         'forbidden sysctls (' + s.name + ')')",
        cel::list(&safe)
    )
}

#[cfg(test)]
mod tests {
    use super::safe;
    use crate::policy::rules::pss_common::test::deployment;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn safe_sysctls_pass() {
        let d = deployment(
            json!({"containers": [{"name": "app", "image": "nginx:1.27"}],
            "securityContext": {"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]}}),
        );
        assert!(run_rule("sysctls", &d, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn unsafe_sysctl_is_a_finding() {
        let d = deployment(
            json!({"containers": [{"name": "app", "image": "nginx:1.27"}],
            "securityContext": {"sysctls": [
                {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                {"name": "kernel.msgmax", "value": "65536"}]}}),
        );
        let e = run_rule("sysctls", &d, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(
            e.findings[0].path,
            "/spec/template/spec/securityContext/sysctls/1/name"
        );
        assert_eq!(e.findings[0].message, "forbidden sysctls (kernel.msgmax)");
    }

    #[test]
    fn the_safe_set_grows_by_version() {
        assert!(!safe("net.ipv4.ip_local_reserved_ports", 26));
        assert!(safe("net.ipv4.ip_local_reserved_ports", 27));
        assert!(!safe("net.ipv4.tcp_rmem", 31));
        assert!(safe("net.ipv4.tcp_rmem", 32));
        assert!(!safe("net.ipv4.tcp_notsent_lowat", 36));
        assert!(safe("net.ipv4.tcp_notsent_lowat", 37));
    }
}
