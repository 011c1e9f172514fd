//! `probes`: long-running containers have liveness and readiness probes.
//!
//! Also home of the "long-running" scope `startup-probe` and
//! `graceful-shutdown` share, and of the tcpSocket probe fix.
use super::prelude::*;
use serde_json::{json, Value};

use crate::policy::fixutil;
use crate::policy::target::{ContainerKind, ContainerView};

pub static RULE: Rule = Rule {
    id: "probes",
    tier: Tier::Production,
    pss: None,
    summary: "long-running containers have liveness and readiness probes",
    doc: "Without a readiness probe a Service sends traffic to a pod the moment its \
process starts, before it can answer, and keeps sending it while the app is wedged; \
without a liveness probe a deadlocked process is never restarted. Set `livenessProbe` \
and `readinessProbe` (HTTP endpoints that check the app itself are best) on every \
long-running container: regular containers and sidecars (init containers with \
`restartPolicy: Always`) of every workload except Jobs and CronJobs and pods whose \
`restartPolicy` is `Never` or `OnFailure`; ordinary init containers and ephemeral \
containers are out of scope. Fix and its safety: it adds a `tcpSocket` readiness \
probe on the container's first declared TCP `containerPort` (by number): a readiness \
probe only gates traffic, so at worst a pod is kept out of its Service until the port \
answers, never restarted. It adds a liveness probe only when the config opts in \
(`fixes.livenessProbe: on`; then `tcpSocket` with `initialDelaySeconds: 30`): a guessed \
liveness probe that fires before a slow server is up kills healthy pods in a loop, so \
by default the liveness finding stays and says so. A container without a TCP port gets \
no fix and keeps its finding.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "add a tcpSocket readiness probe (and liveness, if opted in) on the first TCP containerPort",
        apply: FixFn::Pod(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

/// The containers of a long-running workload that should be probed and shut
/// down gracefully: none for Jobs, CronJobs and pods that do not restart
/// (`restartPolicy` `Never`/`OnFailure`); otherwise regular containers and
/// sidecars (init containers with `restartPolicy: Always`), never ephemeral
/// containers or ordinary init containers.
pub fn long_running(pod: &PodTemplate) -> Vec<ContainerView<'_>> {
    if !is_long_running(pod) {
        return Vec::new();
    }
    pod.containers()
        .into_iter()
        .filter(|c| c.kind == ContainerKind::Regular || c.is_sidecar())
        .collect()
}

/// CEL: the long-running containers ([`long_running`]): none in a Job, a
/// CronJob or a pod that does not restart; otherwise sidecars and regular
/// containers.
pub fn long_running_cel() -> String {
    format!(
        "({} ? variables.pod.?initContainers.orValue([]).filter(c, \
         c.?restartPolicy.orValue('') == 'Always') + variables.pod.?containers.orValue([]) : [])",
        is_long_running_cel("variables.pod")
    )
}

/// CEL: [`is_long_running`] for the pod spec `spec` (a CEL value) of the
/// object in `request`.
pub fn is_long_running_cel(spec: &str) -> String {
    format!(
        "(request.kind.group != 'batch' && !({spec}.?restartPolicy.orValue('') in ['Never', \
         'OnFailure']))"
    )
}

/// Whether the workload's pods are meant to run until stopped: not a Job's or a
/// CronJob's (the `batch` group), nor pods that do not restart.
pub fn is_long_running(pod: &PodTemplate) -> bool {
    if pod.workload.gk.group == "batch" {
        return false;
    }
    !matches!(
        pod.spec.restart_policy.as_deref(),
        Some("Never" | "OnFailure")
    )
}

/// The first declared TCP `containerPort` of a container.
pub fn first_tcp_port(c: &ContainerView<'_>) -> Option<i32> {
    c.ports
        .unwrap_or_default()
        .iter()
        .find(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        .map(|p| p.container_port)
}

/// Why the fix leaves a missing liveness probe alone.
const NO_GUESSED_LIVENESS: &str = "a guessed liveness probe can restart a slow-starting \
server in a loop; add one, or opt in with fixes.livenessProbe";

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let liveness_fixed = r.config.fixes.liveness_probe.0;
    for c in long_running(pod) {
        for (field, probe) in [
            ("livenessProbe", c.liveness_probe),
            ("readinessProbe", c.readiness_probe),
        ] {
            if probe.is_none() {
                let v = Violation::new(
                    format!("{}/{field}", c.path),
                    format!("probes (container {:?} must set {field})", c.name),
                )
                .in_container(c.name);
                out.push(if field == "livenessProbe" && !liveness_fixed {
                    v.declined(NO_GUESSED_LIVENESS)
                } else {
                    v
                });
            }
        }
    }
    Ok(())
}

fn fix(pod: &PodTemplate, r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    let mut changed = false;
    for c in long_running(pod) {
        let Some(port) = first_tcp_port(&c) else {
            continue;
        };
        if c.liveness_probe.is_none() && r.config.fixes.liveness_probe.0 {
            changed |= fixutil::set_default(
                obj,
                &c.path.to_string(),
                "livenessProbe",
                json!({"tcpSocket": {"port": port}, "initialDelaySeconds": 30}),
            );
        }
        if c.readiness_probe.is_none() {
            changed |= fixutil::set_default(
                obj,
                &c.path.to_string(),
                "readinessProbe",
                json!({"tcpSocket": {"port": port}}),
            );
        }
    }
    changed
}

/// CEL: the container `c` has a TCP port (as [`first_tcp_port`]).
const HAS_TCP_PORT: &str = "c.?ports.orValue([]).exists(p, p.?protocol.orValue('TCP') == 'TCP')";

/// CEL: the first TCP containerPort of `c` (given [`HAS_TCP_PORT`]).
const TCP_PORT: &str =
    "int(c.ports.filter(p, p.?protocol.orValue('TCP') == 'TCP')[0].containerPort)";

/// The fix as CEL: the same tcpSocket readiness probe (and liveness probe
/// when opted in) on the first TCP port, where a long-running container
/// has none.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let liveness = p.config.fixes.liveness_probe.0;
    let missing = |field: &str| format!("{HAS_TCP_PORT} && !c.?{field}.hasValue()");
    let add = |field: &str, extra: &'static str| {
        p.per_long_running(&missing(field), false, move |at, ty| {
            cel::patch_add(
                &format!("{at} + '/{field}'"),
                &format!(
                    "{ty}.{field}{{tcpSocket: {ty}.{field}.tcpSocket{{port: {TCP_PORT}}}{extra}}}"
                ),
            )
        })
    };
    let mut when = vec![p.some_long_running(&missing("readinessProbe"))];
    let mut patch = Vec::new();
    let mut writes = Vec::new();
    if liveness {
        when.push(p.some_long_running(&missing("livenessProbe")));
        patch.push(add("livenessProbe", ", initialDelaySeconds: 30"));
        writes.push(cel::Field::ContainerLivenessProbe);
    }
    patch.push(add("readinessProbe", ""));
    cel::CelPatch {
        when: when.join(" || "),
        patch: patch.join(" + "),
        writes,
        ..Default::default()
    }
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let lr = long_running_cel();
    let missing = |field: &str| {
        format!(
            "{lr}.filter(c, !c.?{field}.hasValue()).map(c, 'probes (' + {WHO} + ' must set \
             {field})')"
        )
    };
    format!(
        "{} + {}",
        missing("livenessProbe"),
        missing("readinessProbe")
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    #[test]
    fn probed_containers_pass_and_jobs_are_out_of_scope() {
        let mut d = testutil::web_deployment();
        for (ptr, port) in [
            ("/spec/template/spec/containers/0", 8080),
            ("/spec/template/spec/initContainers/1", 15000),
        ] {
            let c = d.pointer_mut(ptr).unwrap();
            c["livenessProbe"] = json!({"httpGet": {"path": "/healthz", "port": port}});
            c["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": port}});
        }
        assert!(run_rule("probes", &d, Tier::Production).findings.is_empty());
        assert!(run_rule("probes", &testutil::cronjob(), Tier::Production)
            .findings
            .is_empty());
        let mut pod = testutil::bare_pod();
        pod["spec"]["restartPolicy"] = json!("Never");
        assert!(run_rule("probes", &pod, Tier::Production)
            .findings
            .is_empty());
    }

    #[test]
    fn missing_probes_are_named_for_containers_and_sidecars() {
        let e = run_rule("probes", &testutil::web_deployment(), Tier::Production);
        // Messages without the fix's "not fixed: ..." note on liveness.
        let got: Vec<_> = e
            .findings
            .iter()
            .map(|f| {
                let m = f.message.split("; not fixed: ").next().unwrap_or("");
                (f.path.as_str(), f.container.as_deref(), m)
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/spec/template/spec/initContainers/1/livenessProbe",
                    Some("proxy"),
                    "probes (container \"proxy\" must set livenessProbe)"
                ),
                (
                    "/spec/template/spec/initContainers/1/readinessProbe",
                    Some("proxy"),
                    "probes (container \"proxy\" must set readinessProbe)"
                ),
                (
                    "/spec/template/spec/containers/0/livenessProbe",
                    Some("app"),
                    "probes (container \"app\" must set livenessProbe)"
                ),
                (
                    "/spec/template/spec/containers/0/readinessProbe",
                    Some("app"),
                    "probes (container \"app\" must set readinessProbe)"
                ),
            ]
        );
    }

    #[test]
    fn fix_probes_the_first_tcp_port() {
        let fixed = assert_fix_sound("probes", &testutil::web_deployment(), Tier::Production);
        let app = &fixed["spec"]["template"]["spec"]["containers"][0];
        // The first port is UDP statsd; the first TCP one is http 8080.
        assert_eq!(app["readinessProbe"], json!({"tcpSocket": {"port": 8080}}));
        // No guessed liveness probe by default; the finding says why.
        assert!(app.get("livenessProbe").is_none());
        let after = run_rule("probes", &fixed, Tier::Production);
        assert!(after
            .findings
            .iter()
            .any(|f| !f.fixable && f.message.contains("not fixed: a guessed liveness probe")));
        // Opted in: liveness too, with a delay for slow starts.
        let ctx = crate::policy::Context::new(Tier::Production, crate::policy::Mode::Enforce);
        let fixed = testutil::assert_fix_sound_with(
            "probes",
            &testutil::web_deployment(),
            &ctx,
            "fixes: {livenessProbe: on}\n",
        );
        let app = &fixed["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            app["livenessProbe"],
            json!({"tcpSocket": {"port": 8080}, "initialDelaySeconds": 30})
        );
        let proxy = &fixed["spec"]["template"]["spec"]["initContainers"][1];
        assert_eq!(
            proxy["readinessProbe"],
            json!({"tcpSocket": {"port": 15000}})
        );
        // The migration init container is not probed.
        assert!(fixed["spec"]["template"]["spec"]["initContainers"][0]
            .get("livenessProbe")
            .is_none());
        for obj in [
            testutil::statefulset_db(),
            testutil::daemonset_agent(),
            testutil::bare_pod(),
        ] {
            assert_fix_sound("probes", &obj, Tier::Production);
        }
    }

    #[test]
    fn ephemeral_and_plain_init_containers_are_out_of_scope() {
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["livenessProbe"] = json!({"tcpSocket": {"port": 6379}});
        pod["spec"]["containers"][0]["readinessProbe"] = json!({"tcpSocket": {"port": 6379}});
        pod["spec"]["initContainers"] = json!([{"name": "wait", "image": "busybox:1.36"}]);
        pod["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox:1.36",
            "ports": [{"containerPort": 8080}]}]);
        assert!(run_rule("probes", &pod, Tier::Production)
            .findings
            .is_empty());
        // Other pod kinds carry their template elsewhere.
        let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "legacy"},
            "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "app", "image": "legacy:3.1",
                    "ports": [{"containerPort": 80}]}]}}}});
        let fixed = assert_fix_sound("probes", &rc, Tier::Production);
        assert_eq!(
            fixed["spec"]["template"]["spec"]["containers"][0]["readinessProbe"],
            json!({"tcpSocket": {"port": 80}})
        );
    }

    #[test]
    fn no_tcp_port_means_no_fix_and_the_finding_stays() {
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["ports"] =
            json!([{"name": "dns", "containerPort": 53, "protocol": "UDP"}]);
        let e = run_rule("probes", &pod, Tier::Production);
        assert!(e.patch.0.is_empty());
        assert_eq!(e.findings.len(), 2);
        // A user's probe is kept; only the missing one is added.
        let mut pod = testutil::bare_pod();
        pod["spec"]["containers"][0]["readinessProbe"] =
            json!({"exec": {"command": ["redis-cli", "ping"]}});
        let fixed = assert_fix_sound("probes", &pod, Tier::Production);
        assert_eq!(
            fixed["spec"]["containers"][0]["readinessProbe"],
            json!({"exec": {"command": ["redis-cli", "ping"]}})
        );
    }
}
