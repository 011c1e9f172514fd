//! Pod Security Standards conformance: every fixture of upstream
//! pod-security-admission's `test/testdata` (kept in `tests/data/pss`, see
//! its README), at every level and version, must be allowed (`pass/`) or
//! denied for the right check (`fail/`).
mod common;

use std::fmt::Write as _;

use serde_json::Value;

use tiergate::policy::pss::{PssLevel, PssVersion, LATEST_MINOR};
use tiergate::policy::tier::Action;
use tiergate::policy::{Context, Engine, Finding, Mode, Options, PolicyConfig, Tier};

/// The substring a denial must carry, by the fixture's check prefix
/// (upstream's table in the README).
fn expected_substring(prefix: &str) -> Option<&'static str> {
    Some(match prefix {
        "allowprivilegeescalation" => "allowPrivilegeEscalation",
        "apparmorprofile" => "forbidden AppArmor profile",
        "capabilities_baseline" => "capabilities",
        "capabilities_restricted" => "unrestricted capabilities",
        "hostnamespaces" => "host namespaces",
        "hostpathvolumes" => "hostPath",
        "hostports" => "hostPort",
        "hostprobesandhostlifecycle" => "probe or lifecycle host",
        "privileged" => "privileged",
        "procmount" | "procmount_restricted" => "procMount",
        "restrictedvolumes" => "restricted volume types",
        "runasnonroot" => "runAsNonRoot",
        "runasuser" => "runAsUser",
        "selinuxoptions" => "seLinuxOptions",
        "seccompprofile_baseline" | "seccompprofile_restricted" => "seccompProfile",
        "sysctls" => "forbidden sysctl",
        "windowshostprocess" => "hostProcess",
        _ => return None,
    })
}

/// Under restricted, the restricted check that replaces a baseline one (and
/// may therefore be the one that catches a baseline fixture).
fn replacement(prefix: &str) -> Option<&'static str> {
    Some(match prefix {
        "hostpathvolumes" => "restrictedvolumes",
        "capabilities_baseline" => "capabilities_restricted",
        "seccompprofile_baseline" => "seccompprofile_restricted",
        "procmount" => "procmount_restricted",
        _ => return None,
    })
}

/// `restricted/v1.3/fail/capabilities_restricted0.yaml` → `capabilities_restricted`.
fn prefix_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.trim_end_matches(".yaml")
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_string()
}

fn describe(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = write!(
            s,
            "\n      [{:?}] {}: {} at {}",
            f.action, f.rule, f.message, f.path
        );
    }
    if s.is_empty() {
        s.push_str(" (no findings)");
    }
    s
}

/// Every level and version must have both pass and fail fixtures, and the
/// suite holds all 4,537 of them.
#[test]
fn pss_conformance_fixtures() {
    let fixtures = common::pss_fixtures();
    assert_eq!(
        fixtures.len(),
        4537,
        "tests/data/pss/index.tsv is incomplete"
    );
    let engine = Engine::new(PolicyConfig::default());
    let ctx = Context::new(Tier::Hyperscale, Mode::Enforce);

    let mut failures: Vec<String> = Vec::new();
    let mut per_dir: std::collections::BTreeMap<String, usize> = Default::default();
    for (name, _, text) in &fixtures {
        let parts: Vec<&str> = name.split('/').collect();
        let [level, version, outcome, _file] = parts[..] else {
            failures.push(format!("{name}: not <level>/v1.<N>/<pass|fail>/<file>"));
            continue;
        };
        *per_dir
            .entry(format!("{level}/{version}/{outcome}"))
            .or_default() += 1;
        let level = match level {
            "baseline" => PssLevel::Baseline,
            "restricted" => PssLevel::Restricted,
            _ => {
                failures.push(format!("{name}: unknown level"));
                continue;
            }
        };
        let Some(minor) = version
            .strip_prefix("v1.")
            .and_then(|m| m.parse::<u32>().ok())
        else {
            failures.push(format!("{name}: unknown version"));
            continue;
        };
        let opts = Options {
            pss: Some((level, PssVersion { minor })),
            only: None,
            fix: false,
            exact_fixable: true,
            skip_covered: false,
        };
        let obj: Value = match serde_saphyr::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: cannot parse: {e}"));
                continue;
            }
        };
        let eval = match engine.evaluate(&obj, &ctx, &opts) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{name}: evaluation failed: {e}"));
                continue;
            }
        };
        let denials: Vec<&Finding> = eval
            .findings
            .iter()
            .filter(|f| f.action == Action::Deny)
            .collect();
        if outcome == "pass" {
            if !denials.is_empty() {
                failures.push(format!(
                    "{name}: expected allowed, denied:{}",
                    describe(&eval.findings)
                ));
            }
            continue;
        }
        let prefix = prefix_of(name);
        let Some(want) = expected_substring(&prefix) else {
            failures.push(format!("{name}: unknown check prefix {prefix:?}"));
            continue;
        };
        let mut wants = vec![want];
        if level == PssLevel::Restricted {
            if let Some(r) = replacement(&prefix).and_then(expected_substring) {
                wants.push(r);
            }
        }
        let named = denials
            .iter()
            .any(|f| wants.iter().any(|w| f.message.contains(w)));
        if !named {
            failures.push(format!(
                "{name}: expected a denial containing {wants:?}, got:{}",
                describe(&eval.findings)
            ));
        }
    }
    for level in ["baseline", "restricted"] {
        for minor in 0..=LATEST_MINOR {
            for outcome in ["pass", "fail"] {
                let dir = format!("{level}/v1.{minor}/{outcome}");
                if per_dir.get(&dir).copied().unwrap_or(0) == 0 {
                    failures.push(format!("{dir}: no fixtures"));
                }
            }
        }
    }
    let passed = fixtures.len() - failures.len().min(fixtures.len());
    println!(
        "PSS conformance: {} fixtures, {passed} passed",
        fixtures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} PSS fixtures failed:\n  {}",
        failures.len(),
        fixtures.len(),
        failures.join("\n  ")
    );
}
