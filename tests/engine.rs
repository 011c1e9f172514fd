//! Engine behaviour across rules: tiers include lower tiers, modes cap actions,
//! replaced PSS checks report once, exemptions, unknown facts, fixability.
use serde_json::{json, Value};
use tiergate::config::Config;
use tiergate::policy::{
    rules, Action, Context, Engine, Fact, Mode, NamespaceFacts, Options, PolicyConfig, Requester,
    Tier,
};

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "web", "namespace": "shop"},
      "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
          "spec": {"containers": [{"name": "app", "image": "nginx:latest",
            "securityContext": {"privileged": true}}],
            "volumes": [{"name": "h", "hostPath": {"path": "/etc"}}]}}}})
}

fn rules_found(e: &tiergate::policy::Evaluation) -> Vec<&'static str> {
    let mut v: Vec<_> = e.findings.iter().map(|f| f.rule).collect();
    v.dedup();
    v
}

#[test]
fn each_tier_includes_the_rules_below_it() {
    let engine = Engine::new(PolicyConfig::default());
    let mut previous: Vec<&str> = Vec::new();
    for tier in Tier::ALL {
        let e = engine
            .evaluate(
                &deployment(),
                &Context::new(tier, Mode::Enforce),
                &Options::default(),
            )
            .unwrap();
        let found = rules_found(&e);
        for r in &found {
            let rule = rules::by_id(r).unwrap();
            assert!(
                rule.tier <= tier,
                "{r} (tier {}) reported at tier {tier}",
                rule.tier
            );
        }
        for r in &previous {
            // A rule reported below stays reported above, unless a restricted
            // check replaced it (host-path-volumes → restricted-volumes).
            let replaced = *r == "host-path-volumes" && found.contains(&"restricted-volumes");
            assert!(found.contains(r) || replaced, "{r} vanished at tier {tier}");
        }
        previous = found;
    }
    assert!(previous.contains(&"image-tag"));
}

#[test]
fn replaced_baseline_check_reports_once() {
    let engine = Engine::new(PolicyConfig::default());
    let e = engine
        .evaluate(
            &deployment(),
            &Context::new(Tier::Production, Mode::Enforce),
            &Options::default(),
        )
        .unwrap();
    let found = rules_found(&e);
    assert!(found.contains(&"restricted-volumes"));
    assert!(!found.contains(&"host-path-volumes"));
    let e1 = engine
        .evaluate(
            &deployment(),
            &Context::new(Tier::Foundation, Mode::Enforce),
            &Options::default(),
        )
        .unwrap();
    assert!(rules_found(&e1).contains(&"host-path-volumes"));
}

#[test]
fn modes_cap_actions() {
    let engine = Engine::new(PolicyConfig::default());
    for (mode, cap) in [
        (Mode::Enforce, Action::Deny),
        (Mode::Warn, Action::Warn),
        (Mode::Audit, Action::Audit),
    ] {
        let e = engine
            .evaluate(
                &deployment(),
                &Context::new(Tier::Production, mode),
                &Options::default(),
            )
            .unwrap();
        assert!(!e.findings.is_empty());
        assert!(e.findings.iter().all(|f| f.action <= cap));
        assert_eq!(e.worst(), cap);
    }
}

#[test]
fn config_overrides_actions_per_tier() {
    let cfg = Config::from_yaml("tiers:\n  production:\n    rules:\n      privileged: {action: warn}\n      image-tag: {action: off}\n", "t").unwrap().policy;
    let engine = Engine::new(cfg);
    let e = engine
        .evaluate(
            &deployment(),
            &Context::new(Tier::Production, Mode::Enforce),
            &Options::default(),
        )
        .unwrap();
    let p = e.findings.iter().find(|f| f.rule == "privileged").unwrap();
    assert_eq!(p.action, Action::Warn);
    assert!(e.findings.iter().all(|f| f.rule != "image-tag"));
}

#[test]
fn exemptions_skip_listed_rules_and_are_recorded() {
    let cfg = Config::from_yaml(
        "exemptions:\n  - reason: node agent needs the host\n    namespaces: [shop]\n    names: ['we*']\n    rules: [privileged, host-path-volumes]\n  - reason: break-glass\n    groups: [sre]\n",
        "t",
    )
    .unwrap().policy;
    let engine = Engine::new(cfg);
    let mut ctx = Context::new(Tier::Foundation, Mode::Enforce);
    ctx.namespace = Some("shop".into());
    let e = engine
        .evaluate(&deployment(), &ctx, &Options::default())
        .unwrap();
    assert!(e
        .findings
        .iter()
        .all(|f| f.rule != "privileged" && f.rule != "host-path-volumes"));
    assert!(e.findings.iter().any(|f| f.rule == "resources"));
    assert_eq!(e.exempted.len(), 2);
    assert_eq!(e.exempted[0].reason, "node agent needs the host");

    ctx.namespace = Some("other".into());
    ctx.requester = Some(Requester {
        username: "ann".into(),
        groups: vec!["sre".into()],
    });
    let e = engine
        .evaluate(&deployment(), &ctx, &Options::default())
        .unwrap();
    assert!(e.findings.is_empty(), "{:?}", e.findings);
}

#[test]
fn unknown_facts_never_deny_and_known_ones_do() {
    let engine = Engine::new(PolicyConfig::default());
    let mut ctx = Context::new(Tier::Production, Mode::Enforce);
    ctx.namespace = Some("shop".into());
    let only = Options {
        only: Some(vec!["default-deny-network-policy".into()]),
        ..Options::default()
    };
    let e = engine.evaluate(&deployment(), &ctx, &only).unwrap();
    assert_eq!(e.findings.len(), 1);
    assert!(e.findings[0].action <= Action::Warn, "{:?}", e.findings[0]);
    assert!(
        e.findings[0].message.contains("unknown"),
        "{}",
        e.findings[0].message
    );

    ctx.facts = NamespaceFacts::known_empty().into();
    let e = engine.evaluate(&deployment(), &ctx, &only).unwrap();
    assert_eq!(e.findings[0].action, Action::Deny);
    std::sync::Arc::make_mut(&mut ctx.facts).default_deny_policies =
        Fact::Known(vec!["deny-all".into()]);
    let e = engine.evaluate(&deployment(), &ctx, &only).unwrap();
    assert!(e.findings.is_empty());
}

#[test]
fn fixable_means_the_fix_really_removes_the_finding() {
    let engine = Engine::new(PolicyConfig::default());
    let exact = Options {
        exact_fixable: true,
        ..Options::default()
    };
    let e = engine
        .evaluate(
            &deployment(),
            &Context::new(Tier::Production, Mode::Enforce),
            &exact,
        )
        .unwrap();
    // Requests are filled, limits are not guessed: not fixable, and it says why.
    let res = e.findings.iter().find(|f| f.rule == "resources").unwrap();
    assert!(!res.fixable);
    assert!(
        res.message.contains("not fixed: limits are not guessed"),
        "{}",
        res.message
    );
    // No fix can pick a component label: reported, not fixable.
    let comp = e
        .findings
        .iter()
        .find(|f| f.rule == "standard-labels" && f.message.contains("component"))
        .unwrap();
    assert!(!comp.fixable);
    // A privileged container cannot be made non-privileged by a fix.
    assert!(e
        .findings
        .iter()
        .filter(|f| f.rule == "privileged")
        .all(|f| !f.fixable));
    // check computes no patch; fix does.
    assert!(e.patch.0.is_empty() && e.fixed.is_none());
    let f = engine
        .evaluate(
            &deployment(),
            &Context::new(Tier::Production, Mode::Enforce),
            &Options {
                fix: true,
                ..Options::default()
            },
        )
        .unwrap();
    assert!(!f.patch.0.is_empty());
    assert!(f.fixes.iter().any(|x| x.rule == "resources"));
}

#[test]
fn bad_objects_are_errors_not_panics() {
    let engine = Engine::new(PolicyConfig::default());
    let ctx = Context::new(Tier::Hyperscale, Mode::Enforce);
    for bad in [
        json!(null),
        json!([1, 2]),
        json!({"kind": "Pod"}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 5}, "spec": {"containers": []}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "x"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}}),
    ] {
        assert!(
            engine
                .evaluate(
                    &bad,
                    &ctx,
                    &Options {
                        fix: true,
                        ..Options::default()
                    }
                )
                .is_err(),
            "{bad}"
        );
    }
}
