//! `resources`: every container has cpu and memory requests and limits.
use super::prelude::*;
use serde_json::{json, Value};

use crate::policy::fixutil;
use crate::policy::target::ContainerKind;

pub static RULE: Rule = Rule {
    id: "resources",
    tier: Tier::Foundation,
    pss: None,
    summary: "every container has cpu and memory requests and limits",
    doc: "Requests let the scheduler place a pod where it fits; limits stop one \
container from starving its neighbours or the node (a missing memory limit is how \
one leak takes a node down). Set `resources.requests` and `resources.limits` for \
both `cpu` and `memory` on every container and init container, or set them once for \
the whole pod (`spec.resources`, pod-level resources, Kubernetes 1.32+), which meets \
the standard for every container. Fix and its safety: it fills in a missing request \
from the tier's defaults (`tiers.<tier>.resources.requests`), or from the container's \
own limit when it has one (as Kubernetes itself defaults it): a request only guides \
the scheduler, so it cannot stop a running workload. It fills in limits only for a \
tier whose config gives `tiers.<tier>.resources.limits` (opt-in: a guessed limit can \
OOM-kill a model server or a node agent), and then never below the container's \
request. It never touches a resource the pod sets at pod level (a container value \
above the pod's would be rejected), nor ephemeral containers. Where it declines, the \
finding stays and says so.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "set missing cpu/memory requests (and limits, where the tier opts in)",
        apply: FixFn::Pod(fix),
        cel: Some(fix_cel),
    },
    cel: Cel::Findings(cel),
};

const RESOURCES: [&str; 2] = ["cpu", "memory"];

/// Why the fix leaves missing limits alone.
const NO_DEFAULT_LIMITS: &str = "limits are not guessed (a wrong one OOM-kills); set them, \
or give tiers.<tier>.resources.limits in the config";

/// Whether the pod sets `resource` at pod level (`spec.resources`), for
/// requests or limits.
fn pod_level(pod: &PodTemplate, field: &str, resource: &str) -> bool {
    pod.spec.resources.as_ref().is_some_and(|r| {
        let map = match field {
            "requests" => r.requests.as_ref(),
            _ => r.limits.as_ref(),
        };
        map.is_some_and(|m| m.contains_key(resource))
    })
}

fn check(pod: &PodTemplate, r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    let limits_filled = r
        .config
        .resources(r.ctx.tier)
        .is_some_and(|d| d.limits.is_some());
    for c in pod.containers() {
        // Ephemeral containers may not set resources at all.
        if c.kind == ContainerKind::Ephemeral {
            continue;
        }
        let mut missing = Vec::new();
        let mut limits_missing = false;
        for (field, map) in [
            ("requests", c.resources.and_then(|r| r.requests.as_ref())),
            ("limits", c.resources.and_then(|r| r.limits.as_ref())),
        ] {
            for res in RESOURCES {
                if !map.is_some_and(|m| m.contains_key(res)) && !pod_level(pod, field, res) {
                    missing.push(format!("{field}.{res}"));
                    limits_missing |= field == "limits";
                }
            }
        }
        if !missing.is_empty() {
            let v = Violation::new(
                format!("{}/resources", c.path),
                format!(
                    "resources (container {:?} must set resources.{})",
                    c.name,
                    missing.join(", resources.")
                ),
            )
            .in_container(c.name);
            out.push(if limits_missing && !limits_filled {
                v.declined(NO_DEFAULT_LIMITS)
            } else {
                v
            });
        }
    }
    Ok(())
}

fn fix(pod: &PodTemplate, r: &RuleCtx<'_>, obj: &mut Value) -> bool {
    let Some(defaults) = r.config.resources(r.ctx.tier) else {
        return false;
    };
    let mut changed = false;
    for c in pod.containers() {
        if c.kind == ContainerKind::Ephemeral {
            continue;
        }
        let base = format!("{}/resources", c.path);
        let Some(res) = fixutil::object_at(obj, &base) else {
            continue;
        };
        for name in RESOURCES {
            let def_req = match name {
                "cpu" => &defaults.requests.cpu,
                _ => &defaults.requests.memory,
            };
            let def_lim = defaults.limits.as_ref().map(|l| match name {
                "cpu" => &l.cpu,
                _ => &l.memory,
            });
            let req = res.get("requests").and_then(|m| m.get(name)).cloned();
            let lim = res.get("limits").and_then(|m| m.get(name)).cloned();
            let new_req = match (&req, &lim) {
                _ if pod_level(pod, "requests", name) => None,
                (Some(_), _) => None,
                (None, Some(l)) => Some(l.clone()),
                (None, None) => Some(json!(def_req)),
            };
            let new_lim = match (def_lim, &lim) {
                _ if pod_level(pod, "limits", name) => None,
                (None, _) | (_, Some(_)) => None,
                (Some(d), None) => {
                    // Never below the request (given or just filled in).
                    let request = req.as_ref().or(new_req.as_ref());
                    match (
                        request.and_then(Value::as_str).and_then(parse_quantity),
                        parse_quantity(d),
                    ) {
                        (Some(a), Some(b)) if a > b => request.cloned(),
                        _ => Some(json!(d)),
                    }
                }
            };
            for (field, v) in [("requests", new_req), ("limits", new_lim)] {
                if let Some(v) = v {
                    let slot = res.entry(field).or_insert(Value::Null);
                    if slot.is_null() {
                        *slot = json!({});
                    }
                    if let Some(m) = slot.as_object_mut() {
                        m.insert(name.to_string(), v);
                        changed = true;
                    }
                }
            }
        }
    }
    changed
}

/// CEL: `q` (a CEL value) is a quantity [`parse_quantity`] reads: a
/// string of digits, dots and signs with at most one of its suffixes, that
/// the apiserver's `quantity()` also takes.
fn cel_parses(q: &str) -> String {
    format!(
        "(type({q}) == string && {q}.matches('^[0-9.+-]+(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$') \
         && isQuantity({q}))"
    )
}

/// CEL: the tier's default for one resource as an optional string
/// (`{1: '100m', ...}[?variables.tier]`), none where the tier has none.
fn cel_tier_default(
    p: &PatchCtx<'_>,
    pick: impl Fn(&super::super::config::ResourceDefaults) -> Option<&str>,
) -> String {
    let entries: Vec<String> = Tier::ALL
        .iter()
        .filter_map(|t| {
            let v = p.config.resources(*t).and_then(&pick)?;
            Some(format!("{}: {}", t.number(), lit(v)))
        })
        .collect();
    if entries.is_empty() {
        "optional.none()".to_string()
    } else {
        format!("{{{}}}[?variables.tier]", entries.join(", "))
    }
}

/// The fix as CEL: for every init and regular container, each missing
/// request from its limit or the tier's default, each missing limit from
/// the tier's default (never below the request) where the tier gives one;
/// nothing the pod sets at pod level. Missing parents are added whole.
fn fix_cel(p: &PatchCtx<'_>) -> cel::CelPatch {
    let spec = p.spec_value();
    let any_limits = Tier::ALL
        .iter()
        .any(|t| p.config.resources(*t).is_some_and(|d| d.limits.is_some()));
    let pod_has = |field: &str, n: &str| format!("{spec}.?resources.?{field}[?'{n}'].hasValue()");
    let has = |field: &str, n: &str| format!("c.?resources.?{field}[?'{n}'].hasValue()");
    let req_def = |n: &str| {
        cel_tier_default(p, |d| {
            Some(match n {
                "cpu" => d.requests.cpu.as_str(),
                _ => d.requests.memory.as_str(),
            })
        })
    };
    let lim_def = |n: &str| {
        cel_tier_default(p, |d| {
            d.limits.as_ref().map(|l| match n {
                "cpu" => l.cpu.as_str(),
                _ => l.memory.as_str(),
            })
        })
    };
    // The request to add for resource n of container c (an optional
    // string): its limit, or the tier's default.
    let new_req = |n: &str| {
        let def = req_def(n);
        format!(
            "(!{def}.hasValue() || {} || {} ? optional.none() : c.?resources.?limits[?'{n}'].or({def}))",
            pod_has("requests", n),
            has("requests", n)
        )
    };
    let mut variables = Vec::new();
    let mut patch = Vec::new();
    for list in ["initContainers", "containers"] {
        let items = format!("{spec}.?{list}.orValue([])");
        // Per container, what to add: `{cpu?, memory?}` for requests, then
        // for limits (which read the request, the container's or the one
        // added), each computed once.
        let (rv, lv) = (
            format!("resources_requests_{list}"),
            format!("resources_limits_{list}"),
        );
        let (r, l) = (format!("variables.{rv}[i]"), format!("variables.{lv}[i]"));
        variables.push((
            rv.clone(),
            format!(
                "{items}.map(c, {{?'cpu': {}, ?'memory': {}}})",
                new_req("cpu"),
                new_req("memory")
            ),
        ));
        let new_lim = |n: &str| {
            let def = lim_def(n);
            let req = format!("c.?resources.?requests[?'{n}'].or({r}[?'{n}'])");
            format!(
                "(!{def}.hasValue() || {} || {} ? optional.none() : optional.of({req}.hasValue() && \
                 {} && {} && quantity({req}.value()).isGreaterThan(quantity({def}.value())) ? \
                 {req}.value() : {def}.value()))",
                pod_has("limits", n),
                has("limits", n),
                cel_parses(&format!("{req}.value()")),
                cel_parses(&format!("{def}.value()")),
            )
        };
        variables.push((
            lv,
            format!(
                "{items}.transformList(i, c, {{?'cpu': {}, ?'memory': {}}})",
                new_lim("cpu"),
                new_lim("memory")
            ),
        ));
        let at = format!("'{}/{list}/' + string(i)", p.spec);
        let per_field: Vec<String> = [("requests", &r), ("limits", &l)]
            .iter()
            .map(|(field, m)| {
                let keys: Vec<String> = RESOURCES
                    .iter()
                    .map(|n| {
                        format!(
                            "({m}[?'{n}'].hasValue() ? [{}] : [])",
                            cel::patch_add(
                                &format!("{at} + '/resources/{field}/{n}'"),
                                &format!("{m}['{n}']")
                            )
                        )
                    })
                    .collect();
                format!(
                    "(c.?resources.?{field}.hasValue() ? {} : size({m}) > 0 ? [{}] : [])",
                    keys.join(" + "),
                    cel::patch_add(&format!("{at} + '/resources/{field}'"), m)
                )
            })
            .collect();
        let whole = format!(
            "{{?'requests': size({r}) > 0 ? optional.of({r}) : optional.none(), ?'limits': \
             size({l}) > 0 ? optional.of({l}) : optional.none()}}"
        );
        patch.push(format!(
            "{items}.transformList(i, c, c.?resources.hasValue() ? {} : size({r}) > 0 || \
             size({l}) > 0 ? [{}] : []).flatten()",
            per_field.join(" + "),
            cel::patch_add(&format!("{at} + '/resources'"), &whole)
        ));
    }
    // When: a container lacks a request (or, where some tier gives
    // limits, a limit) the pod does not set; the mutation decides per tier.
    let missing: Vec<String> = RESOURCES
        .iter()
        .flat_map(|n| {
            let mut v = vec![format!(
                "(!{} && !{})",
                pod_has("requests", n),
                has("requests", n)
            )];
            if any_limits {
                v.push(format!(
                    "(!{} && !{})",
                    pod_has("limits", n),
                    has("limits", n)
                ));
            }
            v
        })
        .collect();
    cel::CelPatch {
        when: format!(
            "({spec}.?initContainers.orValue([]) + {spec}.?containers.orValue([])).exists(c, {})",
            missing.join(" || ")
        ),
        patch: patch.join(" + "),
        variables,
        writes: vec![cel::Field::ContainerResources],
        ..Default::default()
    }
}

/// A Kubernetes quantity as a number in base units (cores, bytes).
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * mult)
}

fn cel(_cx: &CelCtx<'_>) -> String {
    let mut parts = Vec::new();
    for field in ["requests", "limits"] {
        for res in RESOURCES {
            parts.push(format!(
                "(!('{res}' in c.?resources.?{field}.orValue({{}})) && !('{res}' in \
                 variables.pod.?resources.?{field}.orValue({{}})) ? ['{field}.{res}'] : [])"
            ));
        }
    }
    let missing = format!("({})", parts.join(" + "));
    // `[[name], missing]` per container: what is missing is computed once.
    format!(
        "(variables.pod.?initContainers.orValue([]) + variables.pod.containers).map(c, \
         [[string(c.name)], {missing}]).filter(t, size(t[1]) > 0).map(t, 'resources (container \"' + \
         t[0][0] + '\" must set resources.' + t[1].join(', resources.') + ')')"
    )
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;
    use crate::policy::rules::testutil::{
        assert_fix_sound, assert_fix_sound_with, run_rule, run_rule_with,
    };
    use crate::policy::{Context, Mode, Tier};
    use serde_json::json;

    fn deploy(resources: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
          "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "resources": resources}]}}}})
    }

    #[test]
    fn complete_resources_pass() {
        let d = deploy(json!({"requests": {"cpu": "1", "memory": "1Gi"},
                               "limits": {"cpu": "2", "memory": "2Gi"}}));
        assert!(run_rule("resources", &d, Tier::Foundation)
            .findings
            .is_empty());
    }

    #[test]
    fn missing_fields_are_named() {
        let d = deploy(json!({"requests": {"cpu": "1"}}));
        let e = run_rule("resources", &d, Tier::Foundation);
        assert_eq!(e.findings.len(), 1);
        let f = &e.findings[0];
        assert_eq!(f.path, "/spec/template/spec/containers/0/resources");
        assert_eq!(f.container.as_deref(), Some("app"));
        assert!(
            f.message.contains(
                "resources.requests.memory, resources.limits.cpu, resources.limits.memory"
            ),
            "{}",
            f.message
        );
    }

    #[test]
    fn fix_fills_requests_and_declines_limits_by_default() {
        let d = deploy(json!(null));
        let fixed = assert_fix_sound("resources", &d, Tier::Production);
        let r = fixed
            .pointer("/spec/template/spec/containers/0/resources")
            .unwrap();
        assert_eq!(r, &json!({"requests": {"cpu": "100m", "memory": "128Mi"}}));
        let after = run_rule("resources", &fixed, Tier::Production);
        let f = &after.findings[0];
        assert!(!f.fixable);
        assert!(
            f.message.contains("not fixed: limits are not guessed"),
            "{}",
            f.message
        );

        // A limit alone: the request copies it.
        let d = deploy(json!({"limits": {"memory": "64Mi"}}));
        let fixed = assert_fix_sound("resources", &d, Tier::Production);
        let r = fixed
            .pointer("/spec/template/spec/containers/0/resources")
            .unwrap();
        assert_eq!(r["requests"]["memory"], "64Mi");
        assert_eq!(r["requests"]["cpu"], "100m");
    }

    const LIMITS: &str = "tiers:\n  production:\n    resources:\n      requests: {cpu: 100m, memory: 128Mi}\n      limits: {cpu: '1', memory: 512Mi}\n";

    #[test]
    fn limits_are_filled_where_the_tier_opts_in_never_below_the_request() {
        let ctx = Context::new(Tier::Production, Mode::Enforce);
        let d = deploy(json!({"requests": {"cpu": "4", "memory": "2Gi"}}));
        let fixed = assert_fix_sound_with("resources", &d, &ctx, LIMITS);
        let r = fixed
            .pointer("/spec/template/spec/containers/0/resources")
            .unwrap();
        assert_eq!(r["limits"], json!({"cpu": "4", "memory": "2Gi"}));
        let fixed = assert_fix_sound_with("resources", &deploy(json!(null)), &ctx, LIMITS);
        assert_eq!(
            fixed.pointer("/spec/template/spec/containers/0/resources/limits"),
            Some(&json!({"cpu": "1", "memory": "512Mi"}))
        );
        // A tier below production does not inherit its limits.
        let e = run_rule_with(
            "resources",
            &deploy(json!(null)),
            &Context::new(Tier::Foundation, Mode::Enforce),
            LIMITS,
        );
        assert!(!e.findings[0].fixable, "foundation did not opt in");
    }

    #[test]
    fn pod_level_resources_meet_the_standard_and_are_never_exceeded() {
        let mut d = deploy(json!(null));
        d["spec"]["template"]["spec"]["resources"] = json!({"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}});
        assert!(run_rule("resources", &d, Tier::Production)
            .findings
            .is_empty());
        // Pod-level memory only: the fix adds cpu requests, never memory.
        d["spec"]["template"]["spec"]["resources"] =
            json!({"requests": {"memory": "256Mi"}, "limits": {"memory": "512Mi"}});
        let e = run_rule("resources", &d, Tier::Production);
        let fixed = e.fixed.expect("fixed");
        let r = fixed
            .pointer("/spec/template/spec/containers/0/resources")
            .unwrap();
        assert_eq!(r, &json!({"requests": {"cpu": "100m"}}));
    }

    #[test]
    fn fix_cel_reads_each_tiers_defaults_and_skips_ephemeral_containers() {
        let cfg = crate::policy::config::from_test_yaml(
            "tiers:\n  multi-cluster:\n    resources:\n      requests: {cpu: 200m, memory: 1Gi}\n      \
             limits: {cpu: \"1\", memory: 2Gi}\n",
        );
        let p = crate::policy::cel::PatchCtx {
            spec: "/spec/template/spec",
            meta: "/spec/template/metadata",
            config: &cfg,
            ensured: &[],
        };
        let fix = super::fix_cel(&p);
        // What the patch reads, computed once per container in variables.
        let all = format!(
            "{} {}",
            fix.patch,
            fix.variables
                .iter()
                .map(|(n, e)| format!("{n}={e}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(fix
            .patch
            .contains("variables.resources_requests_containers[i]"));
        assert!(fix
            .patch
            .contains("variables.resources_limits_initContainers[i]"));
        // Requests for every tier (the built-in ones and tier 4's), limits
        // only where a tier gives them.
        assert!(
            all.contains(r#"{1: "100m", 2: "100m", 3: "250m", 4: "200m", 5: "250m"}"#),
            "{all}"
        );
        assert!(all.contains(r#"{4: "1"}[?variables.tier]"#), "{all}");
        assert!(all.contains("isGreaterThan"), "never below the request");
        assert!(!all.contains("ephemeralContainers"), "{all}");
        assert!(fix.when.contains("limits"), "{}", fix.when);
        // Without limits anywhere, the condition asks only for requests.
        let plain = crate::policy::config::from_test_yaml("");
        let fix = super::fix_cel(&crate::policy::cel::PatchCtx {
            spec: "/spec",
            meta: "/metadata",
            config: &plain,
            ensured: &[],
        });
        assert!(!fix.when.contains("limits"), "{}", fix.when);
        assert!(
            fix.patch.contains("'/spec/containers/' + string(i)"),
            "{}",
            fix.patch
        );
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2Gi"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("bogus"), None);
    }
}
