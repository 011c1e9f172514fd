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
both `cpu` and `memory` on every container and init container. The fix fills in \
what is missing from the tier's defaults in the config (`tiers.<tier>.resources`); \
a missing request next to a limit is set to the limit, as Kubernetes itself does, \
and a default limit is raised to the request when the request is larger.",
    check: Check::Pod(check),
    fix: Fix::Safe {
        summary: "set missing cpu/memory requests and limits from the tier defaults",
        apply: FixFn::Pod(fix),
    },
};

const RESOURCES: [&str; 2] = ["cpu", "memory"];

fn check(pod: &PodTemplate, _r: &RuleCtx<'_>, out: &mut Vec<Violation>) -> Result<(), EngineError> {
    for c in pod.containers() {
        // Ephemeral containers may not set resources at all.
        if c.kind == ContainerKind::Ephemeral {
            continue;
        }
        let mut missing = Vec::new();
        for (field, map) in [
            ("requests", c.resources.and_then(|r| r.requests.as_ref())),
            ("limits", c.resources.and_then(|r| r.limits.as_ref())),
        ] {
            for res in RESOURCES {
                if !map.is_some_and(|m| m.contains_key(res)) {
                    missing.push(format!("{field}.{res}"));
                }
            }
        }
        if !missing.is_empty() {
            out.push(
                Violation::new(
                    format!("{}/resources", c.path),
                    format!(
                        "resources (container {:?} must set resources.{})",
                        c.name,
                        missing.join(", resources.")
                    ),
                )
                .in_container(c.name),
            );
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
            let (def_req, def_lim) = match name {
                "cpu" => (&defaults.requests.cpu, &defaults.limits.cpu),
                _ => (&defaults.requests.memory, &defaults.limits.memory),
            };
            let req = res.get("requests").and_then(|m| m.get(name)).cloned();
            let lim = res.get("limits").and_then(|m| m.get(name)).cloned();
            let (new_req, new_lim) = match (&req, &lim) {
                (Some(_), Some(_)) => continue,
                (None, Some(l)) => (Some(l.clone()), None),
                (Some(q), None) => {
                    let bigger =
                        match (q.as_str().and_then(parse_quantity), parse_quantity(def_lim)) {
                            (Some(a), Some(b)) if a > b => q.clone(),
                            _ => json!(def_lim),
                        };
                    (None, Some(bigger))
                }
                (None, None) => (Some(json!(def_req)), Some(json!(def_lim))),
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

#[cfg(test)]
mod tests {
    use super::parse_quantity;
    use crate::policy::rules::testutil::{assert_fix_sound, run_rule};
    use crate::policy::Tier;
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
    fn fix_fills_defaults_and_keeps_user_values() {
        let d = deploy(json!(null));
        let fixed = assert_fix_sound("resources", &d, Tier::Production);
        let r = fixed
            .pointer("/spec/template/spec/containers/0/resources")
            .unwrap();
        assert_eq!(
            r,
            &json!({"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "1", "memory": "512Mi"}})
        );

        // A limit alone: the request copies it. A big request: the limit follows it.
        let d = deploy(json!({"limits": {"memory": "64Mi"}, "requests": {"cpu": "4"}}));
        let fixed = assert_fix_sound("resources", &d, Tier::Production);
        let r = fixed
            .pointer("/spec/template/spec/containers/0/resources")
            .unwrap();
        assert_eq!(r["requests"]["memory"], "64Mi");
        assert_eq!(r["limits"]["cpu"], "4");
        assert_eq!(r["requests"]["cpu"], "4");
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2Gi"), Some(2.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("bogus"), None);
    }
}
