//! PSS `capabilities_baseline` (baseline, v1.0+): only the container
//! runtime's default capabilities may be added.
use super::prelude::*;
use super::pss_common::{in_container, msg, q, sc_path, who};

pub static RULE: Rule = Rule {
    id: "capabilities-baseline",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "capabilities_baseline",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "containers may only add the runtime's default capabilities",
    doc: "Linux capabilities split root's power into pieces; some (SYS_ADMIN, \
NET_ADMIN, SYS_PTRACE, NET_RAW...) are each enough to escape a container or attack \
the node's network. Pod Security Standards baseline allows `capabilities.add` to \
hold only the runtime's defaults: AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, \
KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID and SYS_CHROOT. \
Remove the others from `securityContext.capabilities.add`.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

/// The capabilities baseline lets a container add (upstream `capabilities_allowed_1_0`).
pub const ALLOWED: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        let adds = c
            .security_context
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.as_ref());
        for (k, cap) in adds.into_iter().flatten().enumerate() {
            if !ALLOWED.contains(&cap.as_str()) {
                out.push(in_container(
                    &c,
                    format!("{}/capabilities/add/{k}", sc_path(&c)),
                    msg(
                        "non-default capabilities",
                        format!(
                            "{} must not include {} in securityContext.capabilities.add",
                            who(&c),
                            q(cap)
                        ),
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let allowed = cel::list(ALLOWED);
    containers_where(
        &format!("c.?securityContext.?capabilities.?add.orValue([]).exists(x, !(x in {allowed}))"),
        &format!(
            "'non-default capabilities (' + {WHO} + ' must not include ' + \
             c.securityContext.capabilities.add.filter(x, !(x in {allowed})).join(', ') + \
             ' in securityContext.capabilities.add)'"
        ),
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::pod;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn default_capabilities_pass() {
        let p = pod(
            json!({"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL"]}}),
            json!({}),
        );
        assert!(run_rule("capabilities-baseline", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn extra_capability_is_named() {
        let p = pod(
            json!({"capabilities": {"add": ["CHOWN", "NET_ADMIN"]}}),
            json!({}),
        );
        let e = run_rule("capabilities-baseline", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(
            f.path,
            "/spec/containers/0/securityContext/capabilities/add/1"
        );
        assert_eq!(f.container.as_deref(), Some("app"));
        assert_eq!(
            f.message,
            "non-default capabilities (container \"app\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)"
        );
    }
}
