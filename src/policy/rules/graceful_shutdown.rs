//! `graceful-shutdown`: a preStop hook and a termination grace period.
use super::prelude::*;
use serde_json::{json, Value};

use super::probes::{is_long_running, long_running, long_running_cel};
use crate::policy::fixutil;

pub static RULE: Rule = Rule {
    id: "graceful-shutdown",
    tier: Tier::Production,
    pss: None,
    summary: "long-running containers set a preStop hook that the grace period outlasts",
    doc: "When a pod is deleted, the kubelet signals its containers while Services, \
Ingresses and load balancers are still removing its endpoint, so for a few seconds new \
requests keep arriving at a process that is already going away: every rollout drops \
connections. A `lifecycle.preStop` hook that waits a few seconds lets the endpoint \
removal win the race. Set one on every long-running container (same scope as `probes`: \
regular containers and sidecars; not Jobs, CronJobs or non-restarting pods). The \
default `terminationGracePeriodSeconds` (30 s) is fine and need not be spelled out; a \
grace period the pod sets is a finding only when it does not outlast the preStop \
sleep (the app would be killed before it drains). The fix adds \
`lifecycle.preStop.sleep.seconds: 5` (the kubelet's built-in sleep action, no shell \
needed in the image; Kubernetes 1.30 or later) where a container has no preStop hook, \
unless the pod's grace period is under 10 seconds: the sleep would eat the time the \
app has to drain after SIGTERM, so that finding stays for a person to weigh. \
Safety: the sleep runs only after the pod is already being deleted, and is shorter \
than the grace period; it changes nothing while the pod runs.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "add a 5s preStop sleep where a container has no preStop hook",
        apply: FixFn::Pod(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

/// The shortest pod grace period the fix adds its 5s preStop sleep under.
const MIN_GRACE_FOR_SLEEP: i64 = 10;

/// Kubernetes' default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE: i64 = 30;

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    if !is_long_running(pod) {
        return Ok(());
    }
    let mut longest_sleep = 0;
    for c in long_running(pod) {
        match c.lifecycle.and_then(|l| l.pre_stop.as_ref()) {
            None => out.push(
                Violation::new(
                    format!("{}/lifecycle/preStop", c.path),
                    format!(
                        "graceful shutdown (container {:?} must set lifecycle.preStop)",
                        c.name
                    ),
                )
                .in_container(c.name),
            ),
            Some(h) => {
                let sleep = h.sleep.as_ref().map_or(0, |s| s.seconds);
                longest_sleep = longest_sleep.max(sleep);
            }
        }
    }
    if let Some(grace) = pod.spec.termination_grace_period_seconds {
        if grace <= longest_sleep {
            out.push(Violation::new(
                format!("{}/terminationGracePeriodSeconds", pod.spec_path),
                format!(
                    "graceful shutdown (pod terminationGracePeriodSeconds={grace} must be longer \
                     than its {longest_sleep}s preStop sleep)"
                ),
            ));
        }
    }
    Ok(())
}

fn fix(pod: &PodTemplate, _r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    if !is_long_running(pod) {
        return false;
    }
    let mut changed = false;
    // A 5s sleep needs a grace period that leaves the app time after SIGTERM.
    let grace = pod
        .spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE);
    if grace < MIN_GRACE_FOR_SLEEP {
        return false;
    }
    for c in long_running(pod) {
        if c.lifecycle.and_then(|l| l.pre_stop.as_ref()).is_none() {
            changed |= fixutil::set_default(
                obj,
                &format!("{}/lifecycle", c.path),
                "preStop",
                json!({"sleep": {"seconds": 5}}),
            );
        }
    }
    changed
}

/// The fix as CEL: the same 5s sleep where a long-running container has
/// no preStop hook, unless the pod's grace period is under 10 seconds.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let cond = "!c.?lifecycle.?preStop.hasValue()";
    let grace = format!(
        "{}.?terminationGracePeriodSeconds.orValue({DEFAULT_GRACE}) >= {MIN_GRACE_FOR_SLEEP}",
        p.spec_value()
    );
    cel::CelPatch {
        when: format!("{grace} && {}", p.some_long_running(cond)),
        patch: format!(
            "({grace}) ? {} : []",
            p.per_long_running(cond, false, |at, ty| {
                p.add_under("c", at, ty, &["lifecycle", "preStop"], |t| {
                    format!("{t}{{sleep: {t}.sleep{{seconds: 5}}}}")
                })
            })
        ),
        writes: vec![cel::Field::ContainerLifecycle],
        ..Default::default()
    }
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let lr = long_running_cel();
    // The longest preStop sleep of the long-running containers (0: none).
    let longest = format!(
        "([0] + {lr}.filter(c, c.?lifecycle.?preStop.hasValue()).map(c, \
         c.lifecycle.preStop.?sleep.?seconds.orValue(0))).max()"
    );
    format!(
        "{lr}.filter(c, !c.?lifecycle.?preStop.hasValue()).map(c, 'graceful shutdown (' + {WHO} \
         + ' must set lifecycle.preStop)') + (size({lr}) > 0 && \
         variables.pod.?terminationGracePeriodSeconds.hasValue() && \
         variables.pod.terminationGracePeriodSeconds <= {longest} ? ['graceful shutdown (pod \
         terminationGracePeriodSeconds=' + string(variables.pod.terminationGracePeriodSeconds) + \
         ' must be longer than its ' + string({longest}) + 's preStop sleep)'] : [])"
    )
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
    fn a_missing_hook_fails_and_the_default_grace_period_is_fine() {
        let e = run_rule("graceful-shutdown", &testutil::bare_pod(), Tier::Production);
        let got: Vec<_> = e
            .findings
            .iter()
            .map(|f| (f.path.as_str(), f.container.as_deref(), f.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [(
                "/spec/containers/0/lifecycle/preStop",
                Some("redis"),
                "graceful shutdown (container \"redis\" must set lifecycle.preStop)"
            ),]
        );
        // A grace period that does not outlast the preStop sleep is a finding.
        let mut pod = testutil::bare_pod();
        pod["spec"]["terminationGracePeriodSeconds"] = json!(5);
        pod["spec"]["containers"][0]["lifecycle"] = json!({"preStop": {"sleep": {"seconds": 10}}});
        let e = run_rule("graceful-shutdown", &pod, Tier::Production);
        assert_eq!(e.findings.len(), 1);
        assert_eq!(
            e.findings[0].message,
            "graceful shutdown (pod terminationGracePeriodSeconds=5 must be longer than its 10s preStop sleep)"
        );
    }

    #[test]
    fn fix_adds_a_sleep_keeping_user_hooks_and_the_default_grace_period() {
        let fixed = assert_fix_sound(
            "graceful-shutdown",
            &testutil::web_deployment(),
            Tier::Production,
        );
        let spec = &fixed["spec"]["template"]["spec"];
        assert!(spec.get("terminationGracePeriodSeconds").is_none());
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
