//! `startup-probe`: long-running containers have a startup probe.
use super::prelude::*;
use serde_json::{json, Value};

use super::probes::{long_running, long_running_cel};
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
ordinary init or ephemeral containers). Fix and its safety: a startup probe that \
fails restarts the container, so a guessed one (a port the app does not open, or opens \
late) is a kill switch. The fix therefore adds one only to a container that has a \
liveness probe, and makes it the same check (its `httpGet`, `tcpSocket`, `grpc` or \
`exec`) with `periodSeconds: 10` and `failureThreshold: 30`: the container already lives \
or dies by that check, and the startup probe only gives it up to five minutes before \
the liveness probe starts. Without a liveness probe it declines and the finding says so \
(with `fixes.livenessProbe: on` the `probes` fix adds one first, in the same pass).",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "add a startupProbe with the liveness probe's check, up to 5 minutes to start",
        apply: FixFn::Pod(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

/// Why the fix leaves a container without a liveness probe alone.
const NO_LIVENESS_TO_COPY: &str = "a guessed startup probe restarts an app that opens \
its port late; add one, or a liveness probe it can copy";

/// The handler fields of a probe (what it checks, not its timings).
const HANDLERS: [&str; 4] = ["httpGet", "tcpSocket", "grpc", "exec"];

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let liveness_added = r.config.fixes.liveness_probe.0;
    for c in long_running(pod) {
        if c.startup_probe.is_none() {
            let v = Violation::new(
                format!("{}/startupProbe", c.path),
                format!(
                    "startup probe (container {:?} must set startupProbe)",
                    c.name
                ),
            )
            .in_container(c.name);
            let copyable = c.liveness_probe.is_some() || liveness_added;
            out.push(if copyable {
                v
            } else {
                v.declined(NO_LIVENESS_TO_COPY)
            });
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
        let path = c.path.to_string();
        let Some(liveness) = obj
            .pointer(&format!("{path}/livenessProbe"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        let mut probe: serde_json::Map<String, Value> = liveness
            .iter()
            .filter(|(k, _)| HANDLERS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if probe.is_empty() {
            continue;
        }
        probe.insert("periodSeconds".into(), json!(10));
        probe.insert("failureThreshold".into(), json!(30));
        changed |= fixutil::set_default(obj, &path, "startupProbe", Value::Object(probe));
    }
    changed
}

/// The fields of each check the fix copies, and how (the apiserver hands
/// CEL typed values that a JSONPatch cannot carry whole: each field is
/// copied as a plain value).
const COPIED: [(&str, &[(&str, Copy)]); 4] = [
    (
        "httpGet",
        &[
            ("path", Copy::Text),
            ("port", Copy::IntOrText),
            ("host", Copy::Text),
            ("scheme", Copy::Text),
            ("httpHeaders", Copy::Headers),
            ("protocol", Copy::Text),
        ],
    ),
    (
        "tcpSocket",
        &[("port", Copy::IntOrText), ("host", Copy::Text)],
    ),
    (
        "grpc",
        &[
            ("port", Copy::Int),
            ("service", Copy::Text),
            ("mode", Copy::Text),
        ],
    ),
    ("exec", &[("command", Copy::TextList)]),
];

/// How one field of a check is copied.
#[derive(Clone, Copy)]
enum Copy {
    Text,
    Int,
    IntOrText,
    TextList,
    Headers,
}

/// The fix as CEL: where a long-running container has no startup probe
/// and a liveness probe with a check, a startup probe with that check
/// (the probe, then its check, then each field of the check, one add
/// each). After the `probes` fix, whose liveness probe it copies when that
/// is opted in.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let handlers: Vec<String> = HANDLERS
        .iter()
        .map(|h| format!("c.livenessProbe.?{h}.hasValue()"))
        .collect();
    let cond = format!(
        "!c.?startupProbe.hasValue() && c.?livenessProbe.hasValue() && ({})",
        handlers.join(" || ")
    );
    let patch = p.per_long_running(&cond, true, |at, ty| {
        let probe = format!("{ty}.startupProbe");
        let mut ops = vec![format!(
            "[{}]",
            cel::patch_add(
                &format!("{at} + '/startupProbe'"),
                &format!("{probe}{{periodSeconds: 10, failureThreshold: 30}}"),
            )
        )];
        for (h, fields) in COPIED {
            let from = format!("c.livenessProbe.{h}");
            let mut each = vec![format!(
                "[{}]",
                cel::patch_add(
                    &format!("{at} + '/startupProbe/{h}'"),
                    &format!("{probe}.{h}{{}}")
                )
            )];
            for (f, how) in fields {
                let v = format!("{from}.{f}");
                let value = match how {
                    Copy::Text => format!("string({v})"),
                    Copy::Int => format!("int({v})"),
                    Copy::IntOrText => {
                        format!("type({v}) == string ? dyn(string({v})) : dyn(int({v}))")
                    }
                    Copy::TextList => format!("{v}.map(x, string(x))"),
                    Copy::Headers => format!(
                        "{v}.map(x, {{'name': string(x.name), 'value': \
                         string(x.?value.orValue(''))}})"
                    ),
                };
                each.push(format!(
                    "({from}.?{f}.hasValue() ? [{}] : [])",
                    cel::patch_add(&format!("{at} + '/startupProbe/{h}/{f}'"), &value)
                ));
            }
            ops.push(format!(
                "(c.livenessProbe.?{h}.hasValue() ? {} : [])",
                each.join(" + ")
            ));
        }
        ops.join(" + ")
    });
    cel::CelPatch {
        when: p.some_long_running(&cond),
        patch,
        after: vec![cel::Field::ContainerLivenessProbe],
        ..Default::default()
    }
}

fn cel(_cx: &CelCtx<'_>) -> String {
    format!(
        "{}.filter(c, !c.?startupProbe.hasValue()).map(c, 'startup probe (' + {WHO} + ' must \
         set startupProbe)')",
        long_running_cel()
    )
}

#[cfg(test)]
mod tests {
    use crate::policy::rules::testutil::{self, assert_fix_sound, run_rule};
    use crate::policy::Tier;
    use serde_json::json;

    /// The fix's CEL copies a check field by field: it names every field
    /// of every check (a field k8s-openapi adds fails to compile here, as
    /// each check is built whole).
    #[test]
    fn the_fix_cel_copies_every_field_of_each_check() {
        use k8s_openapi::api::core::v1::{
            ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, TCPSocketAction,
        };
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let text = Some("x".to_string());
        let checks = [
            (
                "httpGet",
                serde_json::to_value(HTTPGetAction {
                    host: text.clone(),
                    http_headers: Some(vec![HTTPHeader {
                        name: "n".into(),
                        value: "v".into(),
                    }]),
                    path: text.clone(),
                    port: IntOrString::Int(8080),
                    protocol: text.clone(),
                    scheme: text.clone(),
                }),
            ),
            (
                "tcpSocket",
                serde_json::to_value(TCPSocketAction {
                    host: text.clone(),
                    port: IntOrString::Int(8080),
                }),
            ),
            (
                "grpc",
                serde_json::to_value(GRPCAction {
                    mode: text.clone(),
                    port: 8080,
                    service: text.clone(),
                }),
            ),
            (
                "exec",
                serde_json::to_value(ExecAction {
                    command: Some(vec!["true".into()]),
                }),
            ),
        ];
        assert_eq!(checks.len(), super::COPIED.len());
        for ((name, value), (copied, fields)) in checks.iter().zip(super::COPIED) {
            assert_eq!(name, &copied);
            let mut want: Vec<String> = value
                .as_ref()
                .expect("json")
                .as_object()
                .expect("an object")
                .keys()
                .cloned()
                .collect();
            let mut got: Vec<String> = fields.iter().map(|(f, _)| f.to_string()).collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{name}");
        }
    }

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
        assert!(
            f.message
                .starts_with("startup probe (container \"postgres\" must set startupProbe)"),
            "{}",
            f.message
        );
    }

    #[test]
    fn fix_copies_the_liveness_check_and_declines_without_one() {
        let mut db = testutil::statefulset_db();
        db["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] =
            json!({"exec": {"command": ["pg_isready"]}, "periodSeconds": 20});
        let fixed = assert_fix_sound("startup-probe", &db, Tier::Enterprise);
        assert_eq!(
            fixed["spec"]["template"]["spec"]["containers"][0]["startupProbe"],
            json!({"exec": {"command": ["pg_isready"]}, "periodSeconds": 10, "failureThreshold": 30})
        );
        for obj in [
            testutil::web_deployment(),
            testutil::daemonset_agent(),
            testutil::bare_pod(),
        ] {
            assert_fix_sound("startup-probe", &obj, Tier::Enterprise);
        }
        // No liveness probe to copy: no guessed startup probe.
        let e = run_rule(
            "startup-probe",
            &testutil::statefulset_db(),
            Tier::Enterprise,
        );
        assert!(e.patch.0.is_empty());
        assert!(e.findings[0]
            .message
            .contains("not fixed: a guessed startup probe"));
    }
}
