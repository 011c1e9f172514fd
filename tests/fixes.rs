//! For every fixable rule and every tier: the patch applies with json-patch,
//! the result still parses as its k8s-openapi type, fixing again gives an empty
//! patch, and the fix never leaves a finding it did not already have.
mod common;

use tiergate::config::Config;
use tiergate::policy::{
    kinds, rules, Context, Engine, Fact, ImageFacts, ImageVerdict, Mode, Options, Tier,
};

fn engine_with_all_fixes_on() -> Engine {
    let mut yaml = String::from("rules:\n");
    for r in rules::ALL.iter().filter(|r| r.fix.exists()) {
        yaml.push_str(&format!("  {}: {{fix: on}}\n", r.id));
    }
    // The opt-ins that are not rule fixes: liveness probes and limits.
    yaml.push_str("fixes: {livenessProbe: on}\ntiers:\n  foundation:\n    resources:\n      requests: {cpu: 100m, memory: 128Mi}\n      limits: {cpu: '1', memory: 512Mi}\n");
    // Every image verified at every tier (ctx_for says each was), so the
    // image-digest fix pins.
    yaml.push_str(&format!(
        "images:\n  verify:\n    - images: ['*']\n      tiers: [1, 2, 3, 4, 5]\n      keys:\n        - |\n{}\n",
        KEY.lines()
            .map(|l| format!("          {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    Engine::new(Config::from_yaml(&yaml, "test").expect("config").policy)
}

/// A P-256 public key (its private half was thrown away).
const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgQxLcFMCKvjuBkfTj8qJb7azHBuh
0SN9O1l60AI7KsO/2i+HE8+GGz5HMDk2GPgFnHqgQXyJI7Vmm0DAAw+IiQ==
-----END PUBLIC KEY-----";

/// [`ctx`], with every image of `obj` verified (at a made-up digest), as
/// the webhook's verifier would say of signed images.
fn ctx_for(tier: Tier, obj: &serde_json::Value) -> Context {
    let mut c = ctx(tier);
    let mut facts = ImageFacts::default();
    for i in tiergate::supply::images_of(obj) {
        facts.verdicts.insert(
            i,
            ImageVerdict::Verified {
                digest: format!("sha256:{}", "ab".repeat(32)),
            },
        );
    }
    c.images = Fact::Known(std::sync::Arc::new(facts));
    c
}

fn ctx(tier: Tier) -> Context {
    let mut c = Context::new(tier, Mode::Enforce);
    c.namespace_labels = [
        ("team", "payments"),
        ("environment", "prod"),
        ("cost-center", "cc-42"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    c
}

#[test]
fn every_fixable_rule_at_every_tier_is_sound() {
    let engine = engine_with_all_fixes_on();
    let objects = common::realistic();
    let mut checked = 0;
    for rule in rules::ALL.iter().filter(|r| r.fix.exists()) {
        let mut effective_somewhere = false;
        for tier in Tier::ALL.into_iter().filter(|t| *t >= rule.tier) {
            for (file, obj) in &objects {
                let group = kinds::group_of(obj["apiVersion"].as_str().unwrap_or(""));
                if !rule.applies_to(group, obj["kind"].as_str().unwrap_or("")) {
                    continue;
                }
                let opts = Options {
                    only: Some(vec![rule.id.to_string()]),
                    fix: true,
                    ..Options::default()
                };
                let c = ctx_for(tier, obj);
                let first = engine.evaluate(obj, &c, &opts).expect("evaluate");
                let mut fixed = obj.clone();
                json_patch::patch(&mut fixed, &first.patch)
                    .unwrap_or_else(|e| panic!("{} on {file}: patch fails: {e}", rule.id));
                common::assert_parses_typed(&fixed);
                let second = engine.evaluate(&fixed, &c, &opts).expect("evaluate");
                assert!(
                    second.patch.0.is_empty(),
                    "{} on {file} at tier {tier}: second pass not empty: {:?}",
                    rule.id,
                    second.patch
                );
                for f in &second.findings {
                    assert!(
                        first
                            .findings
                            .iter()
                            // The same place; a partial fix may narrow the message.
                            .any(|b| b.path == f.path && b.rule == f.rule),
                        "{} on {file}: the fix left a new finding {f:?}",
                        rule.id
                    );
                }
                if !first.findings.is_empty() && second.findings.len() < first.findings.len() {
                    effective_somewhere = true;
                }
                checked += 1;
            }
        }
        assert!(
            effective_somewhere,
            "the fix of {} removed no finding on any realistic manifest",
            rule.id
        );
    }
    println!("fix soundness: {checked} (rule, tier, object) cases");
    assert!(checked > 0);
}

#[test]
fn all_fixes_together_at_every_tier_converge() {
    let engine = engine_with_all_fixes_on();
    for tier in Tier::ALL {
        for (file, obj) in common::realistic() {
            let c = ctx_for(tier, &obj);
            let opts = Options {
                fix: true,
                ..Options::default()
            };
            let first = engine.evaluate(&obj, &c, &opts).expect("evaluate");
            let mut fixed = obj.clone();
            json_patch::patch(&mut fixed, &first.patch).expect("patch applies");
            common::assert_parses_typed(&fixed);
            let second = engine.evaluate(&fixed, &c, &opts).expect("evaluate");
            assert!(
                second.patch.0.is_empty(),
                "{file} at tier {tier}: not idempotent: {:?}",
                second.patch
            );
            // Nothing the user wrote is lost: every original leaf is still there.
            assert_superset(&obj, &fixed, "", &file);
        }
    }
}

fn assert_superset(orig: &serde_json::Value, fixed: &serde_json::Value, path: &str, file: &str) {
    use serde_json::Value;
    match (orig, fixed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let sub = format!("{path}/{k}");
                match b.get(k) {
                    Some(w) => assert_superset(v, w, &sub, file),
                    None => panic!("{file}: fix dropped {sub}"),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert!(b.len() >= a.len(), "{file}: fix shortened {path}");
            for (i, v) in a.iter().enumerate() {
                assert_superset(v, &b[i], &format!("{path}/{i}"), file);
            }
        }
        (Value::Null, _) => {}
        // The one documented change to a user's value: image-digest appends
        // the digest it verified and keeps the image as written.
        (Value::String(a), Value::String(b))
            if path.ends_with("/image")
                && b.strip_prefix(a.as_str())
                    .is_some_and(|rest| rest.starts_with("@sha256:")) => {}
        (a, b) => assert_eq!(a, b, "{file}: fix changed {path}"),
    }
}

/// A pod template with no labels: one fix adds them, another keys on them.
/// One pass must reach the fixed point, or every UPDATE gets a new patch (and a
/// needless rollout).
#[test]
fn one_fix_pass_reaches_the_fixed_point_when_fixes_depend_on_each_other() {
    let engine = engine_with_all_fixes_on();
    let deploy = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"run": "web"}},
            "template": {"spec": {"containers": [{"name": "app", "image": "ghcr.io/acme/web:1.0",
                "ports": [{"containerPort": 8080}]}]}}}});
    for tier in Tier::ALL {
        let c = ctx_for(tier, &deploy);
        let opts = Options {
            fix: true,
            ..Options::default()
        };
        let first = engine.evaluate(&deploy, &c, &opts).expect("evaluate");
        let mut fixed = deploy.clone();
        json_patch::patch(&mut fixed, &first.patch).expect("patch applies");
        let second = engine.evaluate(&fixed, &c, &opts).expect("evaluate");
        assert!(
            second.patch.0.is_empty(),
            "tier {tier}: a second pass patches again: {:?}",
            second.patch
        );
    }
}
