//! `graceful-shutdown`: a preStop hook and a termination grace period.
use super::prelude::*;
use serde_json::{json, Value};

use super::probes::{is_long_running, long_running};
use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "graceful-shutdown",
    tier: Tier::Production,
    pss: None,
    summary: "long-running pods set a preStop hook and terminationGracePeriodSeconds",
    doc: "When a pod is deleted, the kubelet signals its containers while Services, \
Ingresses and load balancers are still removing its endpoint, so for a few seconds new \
requests keep arriving at a process that is already going away: every rollout drops \
connections. A `lifecycle.preStop` hook that waits a few seconds lets the endpoint \
removal win the race, and an explicit `terminationGracePeriodSeconds` says how long \
draining may take. Set both on long-running workloads (same scope as `probes`: regular \
containers and sidecars; not Jobs, CronJobs or non-restarting pods). The fix adds \
`lifecycle.preStop.sleep.seconds: 5` (the kubelet's built-in sleep action, no shell \
needed in the image; Kubernetes 1.30 or later) where a container has no preStop hook, \
and `terminationGracePeriodSeconds: 30` to the pod when unset. It adds no sleep when \
the pod sets a grace period under 10 seconds: the sleep would eat the time the app \
has to drain after SIGTERM, so that finding stays for a person to weigh. \
Safety: the sleep runs only after the pod is already being deleted and is shorter than the grace period it adds (30 s, or the pod's own); it changes nothing while the pod runs.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "add a 5s preStop sleep and terminationGracePeriodSeconds: 30",
        apply: FixFn::Pod(fix),
    },
};

/// The shortest pod grace period the fix adds its 5s preStop sleep under.
const MIN_GRACE_FOR_SLEEP: i64 = 10;

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if !is_long_running(pod) {
        return Ok(());
    }
    for c in long_running(pod) {
        if c.lifecycle.and_then(|l| l.pre_stop.as_ref()).is_none() {
            out.push(
                Violation::new(
                    format!("{}/lifecycle/preStop", c.path),
                    format!(
                        "graceful shutdown (container {:?} must set lifecycle.preStop)",
                        c.name
                    ),
                )
                .in_container(c.name),
            );
        }
    }
    if pod.spec.termination_grace_period_seconds.is_none() {
        out.push(Violation::new(
            format!("{}/terminationGracePeriodSeconds", pod.spec_path),
            "graceful shutdown (pod must set terminationGracePeriodSeconds)",
        ));
    }
    Ok(())
}

fn fix(pod: &PodTemplate, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    if !is_long_running(pod) {
        return false;
    }
    let mut changed = false;
    // A 5s sleep needs a grace period that leaves the app time after SIGTERM.
    let room_to_sleep = pod
        .spec
        .termination_grace_period_seconds
        .is_none_or(|g| g >= MIN_GRACE_FOR_SLEEP);
    for c in long_running(pod) {
        if room_to_sleep && c.lifecycle.and_then(|l| l.pre_stop.as_ref()).is_none() {
            changed |= fixutil::set_default(
                obj,
                &format!("{}/lifecycle", c.path),
                "preStop",
                json!({"sleep": {"seconds": 5}}),
            );
        }
    }
    if pod.spec.termination_grace_period_seconds.is_none() {
        changed |= fixutil::set_default(
            obj,
            pod.spec_path,
            "terminationGracePeriodSeconds",
            json!(30),
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
    fn configured_pods_pass_and_jobs_are_out_of_scope() {
        let mut pod = testutil::bare_pod();
        pod["spec"]["terminationGracePeriodSeconds"] = json!(60);
        pod["spec"]["containers"][0]["lifecycle"] =
            json!({"preStop": {"exec": {"command": ["redis-cli", "shutdown"]}}});
        assert!(run_rule("graceful-shutdown", &pod, Tier::Production)
            .findings
            .is_empty());
        assert!(
            run_rule("graceful-shutdown", &testutil::cronjob(), Tier::Production)
                .findings
                .is_empty()
        );
    }

    #[test]
    fn missing_hook_and_grace_period_fail() {
        let e = run_rule("graceful-shutdown", &testutil::bare_pod(), Tier::Production);
        let got: Vec<_> = e
            .findings
            .iter()
            .map(|f| (f.path.as_str(), f.container.as_deref(), f.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/spec/containers/0/lifecycle/preStop",
                    Some("redis"),
                    "graceful shutdown (container \"redis\" must set lifecycle.preStop)"
                ),
                (
                    "/spec/terminationGracePeriodSeconds",
                    None,
                    "graceful shutdown (pod must set terminationGracePeriodSeconds)"
                ),
            ]
        );
    }

    #[test]
    fn fix_adds_sleep_and_grace_period_keeping_user_hooks() {
        let fixed = assert_fix_sound(
            "graceful-shutdown",
            &testutil::web_deployment(),
            Tier::Production,
        );
        let spec = &fixed["spec"]["template"]["spec"];
        assert_eq!(spec["terminationGracePeriodSeconds"], json!(30));
        assert_eq!(
            spec["containers"][0]["lifecycle"],
            json!({"preStop": {"sleep": {"seconds": 5}}})
        );
        assert_eq!(
            spec["initContainers"][1]["lifecycle"],
            json!({"preStop": {"sleep": {"seconds": 5}}})
        );
        assert!(spec["initContainers"][0].get("lifecycle").is_none());

        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["lifecycle"] =
            json!({"postStart": {"exec": {"command": ["true"]}}});
        let fixed = assert_fix_sound("graceful-shutdown", &pod, Tier::Production);
        assert_eq!(
            fixed["spec"]["containers"][0]["lifecycle"],
            json!({"postStart": {"exec": {"command": ["true"]}},
                   "preStop": {"sleep": {"seconds": 5}}})
        );
        // A short grace period: no sleep, the finding stays.
        let mut pod = testutil::bare_pod();
        pod["spec"]["terminationGracePeriodSeconds"] = json!(3);
        let e = run_rule("graceful-shutdown", &pod, Tier::Production);
        assert!(e.patch.0.is_empty());
        assert_eq!(e.findings.len(), 1);
        for obj in [testutil::statefulset_db(), testutil::daemonset_agent()] {
            assert_fix_sound("graceful-shutdown", &obj, Tier::Production);
        }
    }
}
