//! PSS `windowsHostProcess` (baseline, v1.0+): no Windows HostProcess
//! containers.
use super::prelude::*;
use super::pss_common::{in_container, msg, pod_sc_path, sc_path, who};

pub static RULE: Rule = Rule {
    id: "windows-host-process",
    tier: Tier::Foundation,
    pss: Some(PssCheck {
        check_id: "windowsHostProcess",
        level: PssLevel::Baseline,
        min_minor: 0,
        overrides: &[],
    }),
    summary: "Windows pods must not run HostProcess containers",
    doc: "A Windows HostProcess container runs directly on the host, as a host \
process with the host's network and file system: the Windows equivalent of a \
privileged container. Pod Security Standards baseline forbids \
`securityContext.windowsOptions.hostProcess: true` at pod and container level. \
Remove it; node agents that need it belong in an exempted system namespace.",
    check: Check::Pod(check),
    fix: Fix::None,
    cel: Cel::Findings(cel),
};

const DETAIL: &str = "must not set securityContext.windowsOptions.hostProcess=true";

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let pod_hp = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process);
    if pod_hp == Some(true) {
        out.push(Violation::new(
            format!("{}/windowsOptions/hostProcess", pod_sc_path(pod)),
            msg("hostProcess", format!("pod {DETAIL}")),
        ));
    }
    for c in pod.containers() {
        let hp = c
            .security_context
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process);
        if hp == Some(true) {
            out.push(in_container(
                &c,
                format!("{}/windowsOptions/hostProcess", sc_path(&c)),
                msg("hostProcess", format!("{} {DETAIL}", who(&c))),
            ));
        }
    }
    Ok(())
}

fn cel(_cx: &CelCtx<'_>) -> String {
    format!(
        "(variables.pod.?securityContext.?windowsOptions.?hostProcess.orValue(false) == true ? \
         ['hostProcess (pod {DETAIL})'] : []) + {}",
        containers_where(
            "c.?securityContext.?windowsOptions.?hostProcess.orValue(false) == true",
            &format!("'hostProcess (' + {WHO} + ' {DETAIL})'"),
        )
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::pss_common::test::pod;
    use crate::policy::rules::testutil::run_rule;
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn plain_windows_pod_passes() {
        let p = pod(
            json!({"windowsOptions": {"runAsUserName": "ContainerUser"}}),
            json!({"os": {"name": "windows"}}),
        );
        assert!(run_rule("windows-host-process", &p, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn host_process_is_a_finding() {
        let p = pod(
            json!({"windowsOptions": {"hostProcess": true}}),
            json!({"os": {"name": "windows"}, "hostNetwork": true,
                   "securityContext": {"windowsOptions": {"hostProcess": true}}}),
        );
        let e = run_rule("windows-host-process", &p, Tier::Foundation);
        assert_eq!(e.findings.len(), 2);
        assert_eq!(
            e.findings[0].path,
            "/spec/securityContext/windowsOptions/hostProcess"
        );
        assert_eq!(
            e.findings[0].message,
            "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)"
        );
        assert_eq!(
            e.findings[1].path,
            "/spec/containers/0/securityContext/windowsOptions/hostProcess"
        );
        assert_eq!(e.findings[1].container.as_deref(), Some("app"));
        assert_eq!(
            e.findings[1].message,
            "hostProcess (container \"app\" must not set securityContext.windowsOptions.hostProcess=true)"
        );
    }
}
