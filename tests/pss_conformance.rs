//! Pod Security Standards conformance: every fixture of upstream
//! pod-security-admission's `test/testdata` (see
//! `../shared/conformance/pss/README.md`), at every level and version, must be
//! allowed (`pass/`) or denied for the right check (`fail/`).
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tiergate::config::Config;
use tiergate::policy::pss::{PssLevel, PssVersion, LATEST_MINOR};
use tiergate::policy::tier::Action;
use tiergate::policy::{Context, Engine, Finding, Mode, Options, Tier};

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

/// `capabilities_restricted0.yaml` → `capabilities_restricted`.
fn prefix_of(file: &Path) -> String {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    stem.trim_end_matches(|c: char| c.is_ascii_digit())
        .to_string()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
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

#[test]
fn pss_conformance_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/pss");
    assert!(
        root.join("baseline").is_dir() && root.join("restricted").is_dir(),
        "PSS conformance fixtures not found at {}: check out the shared tree next to this \
         repository (CI has it)",
        root.display()
    );
    let engine = Engine::new(Config::default());
    let ctx = Context::new(Tier::Hyperscale, Mode::Enforce);

    let mut checked = 0usize;
    let mut failures: Vec<String> = Vec::new();
    for level in [PssLevel::Baseline, PssLevel::Restricted] {
        for minor in 0..=LATEST_MINOR {
            let vdir = root.join(level.name()).join(format!("v1.{minor}"));
            let opts = Options {
                pss: Some((level, PssVersion { minor })),
                only: None,
                fix: false,
                exact_fixable: true,
            };
            for outcome in ["pass", "fail"] {
                for file in yaml_files(&vdir.join(outcome)) {
                    checked += 1;
                    let name = file
                        .strip_prefix(&root)
                        .unwrap_or(&file)
                        .display()
                        .to_string();
                    let text = match std::fs::read_to_string(&file) {
                        Ok(t) => t,
                        Err(e) => {
                            failures.push(format!("{name}: cannot read: {e}"));
                            continue;
                        }
                    };
                    let obj: Value = match serde_saphyr::from_str(&text) {
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
                    let prefix = prefix_of(&file);
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
            }
        }
    }
    let passed = checked - failures.len();
    println!("PSS conformance: {checked} files, {passed} passed");
    assert!(checked > 0, "no fixtures found under {}", root.display());
    assert!(
        failures.is_empty(),
        "{} of {checked} PSS fixtures failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
