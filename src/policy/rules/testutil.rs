//! Helpers for rule unit tests.
use serde_json::Value;

use crate::config::Config;
use crate::policy::{Context, Engine, Evaluation, Mode, Options, Tier};

/// Evaluate `obj` with only `rule` selected, at `tier`, enforce mode, fixes on
/// when the rule has a fix (opt-in fixes turned on through the config).
pub fn run_rule(rule: &str, obj: &Value, tier: Tier) -> Evaluation {
    run_rule_with(rule, obj, &Context::new(tier, Mode::Enforce), "")
}

pub fn run_rule_with(rule: &str, obj: &Value, ctx: &Context, extra_config: &str) -> Evaluation {
    let mut yaml = format!("rules:\n  {rule}: {{}}\n");
    if let Some(r) = crate::policy::rules::by_id(rule) {
        if r.fix != crate::policy::FixKind::None {
            yaml = format!("rules:\n  {rule}: {{fix: on}}\n");
        }
    }
    yaml.push_str(extra_config);
    let mut cfg = Config::from_yaml(&yaml, "test").expect("test config");
    let def = Config::default();
    cfg.tiers = def.tiers;
    let engine = Engine::new(cfg);
    let opts = Options {
        pss: None,
        only: Some(vec![rule.to_string()]),
        fix: true,
    };
    engine.evaluate(obj, ctx, &opts).expect("evaluate")
}

/// Assert the rule's fix is sound: the patch applies, the result parses as the
/// kind's k8s-openapi type, a second pass changes nothing and the rule no
/// longer reports.
pub fn assert_fix_sound(rule: &str, obj: &Value, tier: Tier) -> Value {
    let first = run_rule(rule, obj, tier);
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &first.patch).expect("patch applies");
    assert_eq!(Some(&patched), first.fixed.as_ref().or(Some(obj)));
    crate::policy::target::assert_parses_typed(&patched);
    let second = run_rule(rule, &patched, tier);
    assert!(
        second.patch.0.is_empty(),
        "second fix pass not empty: {:?}",
        second.patch
    );
    assert!(
        second.findings.iter().all(|f| f.rule != rule),
        "rule {rule} still reports after fix: {:?}",
        second.findings
    );
    patched
}
