//! `startup-probe`: long-running containers have a startup probe.
use super::prelude::*;
use serde_json::{json, Value};

use super::probes::{first_tcp_port, long_running};
use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "startup-probe",
    tier: Tier::Enterprise,
    pss: None,
    summary: "long-running containers have a startup probe",
    doc: "A liveness probe tuned for a running app kills one that is still starting \
(warming caches, running migrations, JIT-compiling), which then restarts forever; \
padding `initialDelaySeconds` instead slows every restart. A `startupProbe` holds off \
the liveness and readiness probes until the app has started, however long that takes, \
and then gets out of the way. Set one on every long-running container (the same scope \
as `probes`: regular containers and sidecars, not Jobs, CronJobs, non-restarting pods, \
ordinary init or ephemeral containers). The fix adds a `tcpSocket` startup probe on the \
container's first declared TCP `containerPort` with `periodSeconds: 10` and \
`failureThreshold: 30` (up to five minutes to start); a container without a TCP port \
gets no fix and keeps its finding.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "add a tcpSocket startupProbe on the first TCP containerPort",
        apply: FixFn::Pod(fix),
    },
};

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in long_running(pod) {
        if c.startup_probe.is_none() {
            out.push(
                Violation::new(
                    format!("{}/startupProbe", c.path),
                    format!(
                        "startup probe (container {:?} must set startupProbe)",
                        c.name
                    ),
                )
                .in_container(c.name),
            );
        }
    }
    Ok(())
}

fn fix(pod: &PodTemplate, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    let mut changed = false;
    for c in long_running(pod) {
        if c.startup_probe.is_some() {
            continue;
        }
        let Some(port) = first_tcp_port(&c) else {
            continue;
        };
        changed |= fixutil::set_default(
            obj,
            &c.path.to_string(),
            "startupProbe",
            json!({"tcpSocket": {"port": port}, "periodSeconds": 10, "failureThreshold": 30}),
        );
    }
    changed
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn startup_probes_pass_and_daemonsets_are_in_scope() {
        let mut ds = testutil::daemonset_agent();
        ds["spec"]["template"]["spec"]["containers"][0]["startupProbe"] =
            json!({"httpGet": {"path": "/api/v1/health", "port": 2020}});
        assert!(run_rule("startup-probe", &ds, Tier::Enterprise)
            .findings
            .is_empty());
        assert!(
            run_rule("startup-probe", &testutil::cronjob(), Tier::Enterprise)
                .findings
                .is_empty()
        );
    }

    #[test]
    fn missing_startup_probe_fails() {
        let e = run_rule(
            "startup-probe",
            &testutil::statefulset_db(),
            Tier::Enterprise,
        );
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.path, "/spec/template/spec/containers/0/startupProbe");
        assert_eq!(f.container.as_deref(), Some("postgres"));
        assert_eq!(
            f.message,
            "startup probe (container \"postgres\" must set startupProbe)"
        );
    }

    #[test]
    fn fix_adds_a_patient_tcp_startup_probe() {
        let fixed = assert_fix_sound(
            "startup-probe",
            &testutil::statefulset_db(),
            Tier::Enterprise,
        );
        assert_eq!(
            fixed["spec"]["template"]["spec"]["containers"][0]["startupProbe"],
            json!({"tcpSocket": {"port": 5432}, "periodSeconds": 10, "failureThreshold": 30})
        );
        for obj in [
            testutil::web_deployment(),
            testutil::daemonset_agent(),
            testutil::bare_pod(),
        ] {
            assert_fix_sound("startup-probe", &obj, Tier::Enterprise);
        }
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["ports"] = json!(null);
        let e = run_rule("startup-probe", &pod, Tier::Enterprise);
        assert!(e.patch.0.is_empty());
        assert_eq!(e.findings.len(), 1);
    }
}
