//! The CLI contract: `tiergate check | fix | rules`, driven as a user would.
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn tiergate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tiergate"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn tiergate");
    if let Some(mut s) = child.stdin.take() {
        if let Some(text) = stdin {
            s.write_all(text.as_bytes()).expect("stdin");
        }
    }
    child.wait_with_output().expect("wait")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const PRIVILEGED: &str = "apiVersion: v1
kind: Pod
metadata:
  name: bad
spec:
  containers:
  - name: app
    image: nginx:1.27
    securityContext:
      privileged: true
";

const CLEAN_CM: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  LOG_LEVEL: info
";

#[test]
fn exit_codes_follow_denials_and_input_errors() {
    let deny = tiergate(&["check", "-", "--only", "privileged"], Some(PRIVILEGED));
    assert_eq!(deny.status.code(), Some(1), "{}", stderr(&deny));
    assert!(stdout(&deny).contains("privileged (container \"app\""));

    let clean = tiergate(&["check", "-"], Some(CLEAN_CM));
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}{}",
        stdout(&clean),
        stderr(&clean)
    );

    let warn = tiergate(
        &["check", "-", "--mode", "warn", "--only", "privileged"],
        Some(PRIVILEGED),
    );
    assert_eq!(warn.status.code(), Some(0));
    assert!(stdout(&warn).contains("WARN"));

    let bad = tiergate(&["check", "-"], Some("a: 1\n---\nkind: [unclosed\n"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("<stdin>:3:"), "{}", stderr(&bad));

    // Not a Kubernetes object: skipped with a note; --strict makes it an error.
    let no_kind = tiergate(&["check", "-"], Some("metadata:\n  name: x\n"));
    assert_eq!(no_kind.status.code(), Some(0), "{}", stderr(&no_kind));
    assert!(
        stderr(&no_kind).contains(
            "note: <stdin>:1: document 0: not a Kubernetes object, skipped: no apiVersion and no kind"
        ),
        "{}",
        stderr(&no_kind)
    );
    let strict = tiergate(&["check", "-", "--strict"], Some("metadata:\n  name: x\n"));
    assert_eq!(strict.status.code(), Some(2));

    let bad_tier = tiergate(&["check", "-", "--tier", "gold"], Some(CLEAN_CM));
    assert_eq!(bad_tier.status.code(), Some(2));
    assert!(
        stderr(&bad_tier).contains("foundation, production, enterprise, multi-cluster, hyperscale")
    );

    let missing = tiergate(&["check", "/nonexistent/x.yaml"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/x.yaml"));

    let bad_rule = tiergate(&["check", "-", "--only", "nope"], Some(CLEAN_CM));
    assert_eq!(bad_rule.status.code(), Some(2));
}

#[test]
fn json_output_has_the_contract_shape() {
    let o = tiergate(
        &["check", "-", "-o", "json", "--only", "privileged"],
        Some(&format!("{PRIVILEGED}---\n{CLEAN_CM}")),
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    let r = &results[0];
    for key in ["file", "document", "kind", "namespace", "name", "findings"] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
    let f = &r["findings"][0];
    for key in ["rule", "tier", "action", "message", "path", "fixable"] {
        assert!(f.get(key).is_some(), "missing finding.{key}");
    }
    assert_eq!(f["rule"], "privileged");
    assert_eq!(f["action"], "deny");
    assert_eq!(f["path"], "/spec/containers/0/securityContext/privileged");
    assert_eq!(results[1]["document"], 1);
    // Objects and findings are counted apart, so both sides add up.
    assert_eq!(
        v["summary"],
        serde_json::json!({"objects": 2, "clean": 1, "denied": 1, "warned": 0,
            "deny": 1, "warn": 0, "exempted": 0,
            "byRule": {"privileged": {"deny": 1, "warn": 0}},
            "byNamespace": {"": {"objects": 2, "denied": 1, "deny": 1, "warn": 0}}})
    );
}

#[test]
fn sarif_is_valid_2_1_0() {
    let o = tiergate(
        &["check", "-", "-o", "sarif", "--only", "privileged"],
        Some(PRIVILEGED),
    );
    let v: Value = serde_json::from_str(&stdout(&o)).expect("sarif json");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "tiergate");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let res = &run["results"][0];
    assert_eq!(res["ruleId"], "privileged");
    assert_eq!(res["level"], "error");
    let idx = res["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[idx]["id"], "privileged");
    assert!(res["message"]["text"]
        .as_str()
        .unwrap()
        .contains("privileged"));
    assert!(
        res["locations"][0]["physicalLocation"]["region"]["startLine"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn junit_is_well_formed_xml_with_failures() {
    let o = tiergate(
        &["check", "-", "-o", "junit", "--only", "privileged"],
        Some(&format!("{PRIVILEGED}---\n{CLEAN_CM}")),
    );
    let text = stdout(&o);
    let doc = roxmltree::Document::parse(&text).expect("well-formed junit");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("testsuite");
    assert_eq!(suite.attribute("tests"), Some("2"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 1);
    assert!(failures[0]
        .text()
        .unwrap_or("")
        .contains("container \"app\""));
}

#[test]
fn table_is_plain_when_piped() {
    let o = tiergate(&["check", "-", "--only", "privileged"], Some(PRIVILEGED));
    let s = stdout(&o);
    assert!(!s.contains('\u{1b}'), "colour codes when piped");
    assert!(s.contains("Pod/bad"));
    assert!(s.contains("1 objects checked"));
}

#[test]
fn pss_flag_evaluates_only_that_standard() {
    // Missing resources is no Pod Security Standard: --pss must ignore it.
    let o = tiergate(
        &["check", "-", "--pss", "baseline:v1.30", "-o", "json"],
        Some(PRIVILEGED),
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rules: Vec<&str> = v["results"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"privileged"));
    assert!(!rules.contains(&"resources"));
    let bad = tiergate(&["check", "-", "--pss", "strict"], Some(PRIVILEGED));
    assert_eq!(bad.status.code(), Some(2));
}

/// Namespace `shop` labelled with `tier`, and a Pod in it.
fn namespace_and_pod(tier: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    tiergate.io/tier: {tier}
---
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: shop
spec:
  containers:
  - name: app
    image: nginx:1.27
"
    )
}

#[test]
fn namespace_label_sets_the_tier_and_flag_overrides_it() {
    let input = namespace_and_pod("enterprise");
    let o = tiergate(&["check", "-"], Some(&input));
    assert!(stdout(&o).contains("tier 3 enterprise"), "{}", stdout(&o));
    let o = tiergate(&["check", "-", "--tier", "1"], Some(&input));
    assert!(stdout(&o).contains("tier 1 foundation"), "{}", stdout(&o));
}

/// An invalid tier label is what the webhook makes of it: the default tier,
/// with a note in every output format, never an input error.
#[test]
fn an_invalid_tier_label_keeps_the_default_and_says_so() {
    let input = namespace_and_pod("gold");
    let note = "namespace \"shop\": tiergate.io/tier=\"gold\" is not a tier; using foundation";
    let o = tiergate(&["check", "-", "-o", "json"], Some(&input));
    assert_ne!(o.status.code(), Some(2), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    let results = v["results"].as_array().unwrap();
    for kind in ["Namespace", "Pod"] {
        let r = results.iter().find(|r| r["kind"] == kind).unwrap();
        let notes = r["notes"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind}: no notes: {r}"));
        assert!(notes[0].as_str().unwrap().starts_with(note), "{notes:?}");
    }
    let table = tiergate(&["check", "-"], Some(&input));
    assert!(
        stdout(&table).contains("tier 1 foundation"),
        "{}",
        stdout(&table)
    );
    assert!(
        stdout(&table).contains(&format!("NOTE  {note}")),
        "{}",
        stdout(&table)
    );
    let sarif = tiergate(&["check", "-", "-o", "sarif"], Some(&input));
    let v: Value = serde_json::from_slice(&sarif.stdout).expect("sarif json");
    let n = &v["runs"][0]["invocations"][0]["toolExecutionNotifications"];
    assert!(
        n.as_array()
            .is_some_and(|n| n.iter().any(|x| x["message"]["text"]
                .as_str()
                .is_some_and(|t| t.contains(note)))),
        "{n}"
    );
    let junit = tiergate(&["check", "-", "-o", "junit"], Some(&input));
    assert!(stdout(&junit).contains(&format!("note: {}", note.replace('"', "&quot;"))));
    // A clean input keeps the JSON shape it always had: no `notes` key.
    let clean = tiergate(&["check", "-", "-o", "json"], Some(CLEAN_CM));
    let v: Value = serde_json::from_slice(&clean.stdout).expect("json");
    assert!(v["results"][0].get("notes").is_none());
}

#[test]
fn fix_output_rechecks_clean_for_what_fixes_cover() {
    let dir = common::data_dir().join("realistic");
    let fixed = tiergate(&["fix", dir.to_str().unwrap(), "--tier", "2"], None);
    assert_eq!(fixed.status.code(), Some(0), "{}", stderr(&fixed));
    let text = stdout(&fixed);
    let check = tiergate(&["check", "-", "--tier", "2", "-o", "json"], Some(&text));
    let v: Value = serde_json::from_str(&stdout(&check)).expect("json");
    for r in v["results"].as_array().unwrap() {
        for f in r["findings"].as_array().unwrap() {
            assert_eq!(f["fixable"], false, "a fixable finding survived fix: {f}");
        }
    }
    // And the unfixed input did have fixable findings.
    let before = tiergate(
        &["check", dir.to_str().unwrap(), "--tier", "2", "-o", "json"],
        None,
    );
    assert!(stdout(&before).contains("\"fixable\": true"));
}

#[test]
fn fix_keeps_untouched_documents_byte_for_byte_and_rewrites_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("app.yaml");
    let original = format!("# keep me\n{CLEAN_CM}---\n# the pod\n{PRIVILEGED}");
    std::fs::write(&path, &original).unwrap();
    let o = tiergate(&["fix", path.to_str().unwrap()], None);
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("# keep me\n{CLEAN_CM}---\n")),
        "{out}"
    );
    assert!(out.contains("resources:"), "{out}");
    // stdout mode leaves the file alone
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);

    let o = tiergate(&["fix", "--in-place", path.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rewritten = std::fs::read_to_string(&path).unwrap();
    assert_eq!(rewritten, out);
    // A second fix changes nothing.
    let again = tiergate(&["fix", path.to_str().unwrap()], None);
    assert_eq!(stdout(&again), rewritten);

    let o = tiergate(&["fix", "--in-place", "-"], Some(PRIVILEGED));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn lists_json_and_directories_are_read() {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        serde_json::from_str::<Value>(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"x:1","securityContext":{"privileged":true}}]}}"#).unwrap(),
        serde_json::from_str::<Value>(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}"#).unwrap(),
    ]});
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::write(tmp.path().join("sub/list.json"), list.to_string()).unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "not a manifest").unwrap();
    let o = tiergate(
        &[
            "check",
            tmp.path().to_str().unwrap(),
            "-o",
            "json",
            "--only",
            "privileged",
        ],
        None,
    );
    let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["summary"]["objects"], 2);
    assert_eq!(v["summary"]["deny"], 1);

    let fixed = tiergate(
        &["fix", tmp.path().join("sub/list.json").to_str().unwrap()],
        None,
    );
    let fv: Value = serde_json::from_str(&stdout(&fixed)).expect("fixed json list");
    assert_eq!(fv["kind"], "List");
    assert!(fv["items"][0]["spec"]["containers"][0]["resources"].is_object());
}

#[test]
fn rules_lists_every_rule() {
    let o = tiergate(&["rules", "-o", "json"], None);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), tiergate::policy::rules::ALL.len());
    for r in arr {
        for key in ["id", "tier", "pss", "fixable", "summary"] {
            assert!(r.get(key).is_some(), "rule missing {key}: {r}");
        }
    }
    let md = tiergate(&["rules", "-o", "markdown"], None);
    assert!(stdout(&md).contains("## `privileged`"));
    assert!(stdout(&md).contains("tierAdmins"));
    let table = tiergate(&["rules"], None);
    assert!(stdout(&table).contains("resources"));
}

#[test]
fn config_errors_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.yaml");
    std::fs::write(&cfg, "defaults:\n  tier: 2\n  colour: red\n").unwrap();
    let o = tiergate(
        &["check", "-", "--config", cfg.to_str().unwrap()],
        Some(CLEAN_CM),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("colour"), "{}", stderr(&o));
}

#[test]
fn docs_rules_md_is_current() {
    let o = tiergate(&["rules", "-o", "markdown"], None);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/RULES.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == stdout(&o),
        "docs/RULES.md is stale: run `cargo run -- rules -o markdown > docs/RULES.md`"
    );
}

/// Run tiergate and fail (instead of hanging) if it takes over 30 s.
fn tiergate_within(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tiergate"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tiergate");
    let start = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("tiergate {args:?} did not finish in 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[cfg(unix)]
#[test]
fn symlink_cycles_end_and_each_file_is_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sub = tmp.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("pod.yaml"), PRIVILEGED).unwrap();
    std::os::unix::fs::symlink("..", sub.join("up")).unwrap();
    std::os::unix::fs::symlink(".", sub.join("self")).unwrap();
    std::os::unix::fs::symlink("pod.yaml", sub.join("again.yaml")).unwrap();
    let root = tmp.path().to_str().unwrap();
    let o = tiergate_within(&["check", root, "-o", "json", "--only", "privileged"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["objects"], 1, "{v}");
    // Named twice on the command line: still once.
    let o = tiergate_within(&["check", root, root, "-o", "json", "--only", "privileged"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["objects"], 1, "{v}");
}

#[cfg(unix)]
#[test]
fn fix_in_place_never_writes_through_a_planted_link_and_keeps_modes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("app.yaml");
    std::fs::write(&path, PRIVILEGED).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    // An attacker's link at the old, predictable temporary name.
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, tmp.path().join(".app.yaml.tiergate-tmp")).unwrap();
    let o = tiergate(&["fix", "--in-place", path.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("resources:"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // No temporary file is left behind.
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tiergate-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A symlinked manifest: its target is fixed, the link stays a link.
    let real = tmp.path().join("real.yaml");
    std::fs::write(&real, PRIVILEGED).unwrap();
    let link = tmp.path().join("link.yaml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let o = tiergate(&["fix", "--in-place", link.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains("resources:"));

    // A read-only manifest is not rewritten: an error names it.
    let ro = tmp.path().join("ro.yaml");
    std::fs::write(&ro, PRIVILEGED).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let o = tiergate(&["fix", "--in-place", ro.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("ro.yaml is read-only"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&ro).unwrap(), PRIVILEGED);
}

#[cfg(unix)]
#[test]
fn endless_input_is_cut_at_the_limit_with_a_clear_error() {
    let o = tiergate_within(&["check", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("/dev/zero: larger than the input limit of 67108864 bytes")
            && err.contains("--max-input-bytes"),
        "{err}"
    );
    let o = tiergate(&["check", "-", "--max-input-bytes", "10"], Some(PRIVILEGED));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("<stdin>: larger than the input limit of 10 bytes"));
}

#[test]
fn the_table_escapes_control_characters_from_manifests() {
    let hostile = PRIVILEGED.replace("name: bad", "name: \"bad\\e]0;pwned\\a\\e[2J\"");
    let o = tiergate(&["check", "-", "--only", "privileged"], Some(&hostile));
    let out = stdout(&o);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains("\\u{1b}"), "{out}");
}

/// One bad file never hides the others: every file that parses is judged,
/// every one that does not is reported in every format, and the exit code is
/// 2 after the results.
#[test]
fn bad_files_are_reported_and_the_rest_is_judged() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a-pod.yaml"), PRIVILEGED).unwrap();
    std::fs::write(tmp.path().join("b-broken.yaml"), "kind: [unclosed\n").unwrap();
    std::fs::write(
        tmp.path().join("c-values.yaml"),
        "replicaCount: 2\nimage:\n  repository: nginx\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("d-cm.yaml"), CLEAN_CM).unwrap();
    let dir = tmp.path().to_str().unwrap();
    let o = tiergate(&["check", dir, "-o", "json", "--only", "privileged"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json after the error");
    assert_eq!(v["summary"]["objects"], 2, "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert!(errors[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("b-broken.yaml"));
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert!(skipped[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("c-values.yaml"));
    assert!(stderr(&o).contains("error: ") && stderr(&o).contains("b-broken.yaml"));

    let table = tiergate(&["check", dir, "--only", "privileged"], None);
    assert_eq!(table.status.code(), Some(2));
    let out = stdout(&table);
    assert!(out.contains("ERROR ") && out.contains("SKIP "), "{out}");
    assert!(
        out.contains("2 objects checked") && out.contains("(1 errors, 1 skipped)"),
        "{out}"
    );

    let sarif = tiergate(&["check", dir, "-o", "sarif", "--only", "privileged"], None);
    let v: Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let inv = &v["runs"][0]["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    assert!(inv["toolExecutionNotifications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["level"] == "error"));

    let junit = tiergate(&["check", dir, "-o", "junit", "--only", "privileged"], None);
    let xml = stdout(&junit);
    roxmltree::Document::parse(&xml).expect("well-formed JUnit");
    assert!(
        xml.contains("<error message=") && xml.contains("errors=\"1\""),
        "{xml}"
    );

    // fix: the good files are fixed, the bad one reported, exit 2.
    let o = tiergate(&["fix", dir], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("resources:"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("replicaCount: 2"),
        "a skipped document is kept as it was"
    );
}

/// Items of a List nested in a List are judged, and fixed in place.
#[test]
fn nested_lists_are_judged_and_fixed_where_they_are() {
    let pod: Value = serde_json::from_str(
        &serde_json::to_string(&serde_saphyr::from_str::<Value>(PRIVILEGED).unwrap()).unwrap(),
    )
    .unwrap();
    let cm: Value = serde_saphyr::from_str(CLEAN_CM).unwrap();
    let nested = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        cm,
        {"apiVersion": "v1", "kind": "List", "items": [pod]}
    ]});
    let text = serde_json::to_string(&nested).unwrap();
    let o = tiergate(
        &["check", "-", "-o", "json", "--only", "privileged"],
        Some(&text),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["objects"], 2, "{v}");
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["kind"] == "Pod" && !r["findings"].as_array().unwrap().is_empty()));
    // fix: the nested Pod gets its resources, the List shape stays.
    let o = tiergate(&["fix", "-"], Some(&text));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let fixed: Value = serde_saphyr::from_str(&stdout(&o)).unwrap();
    assert_eq!(fixed["items"][0]["kind"], "ConfigMap");
    assert_eq!(fixed["items"][1]["kind"], "List");
    assert!(
        fixed["items"][1]["items"][0]["spec"]["containers"][0]["resources"]["requests"].is_object(),
        "{fixed}"
    );
}

/// A kustomize tree: its patch files are not judged as whole objects; `-k`
/// judges the rendering; without kubectl or kustomize on PATH, `-k` says so.
#[test]
fn kustomize_trees_are_rendered_and_their_patches_not_judged_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: shop\n\
         resources:\n  - deployment.yaml\npatches:\n  - path: replicas.yaml\n",
    )
    .unwrap();
    std::fs::write(
        d.join("deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n\
         \x20 selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n\
         \x20   spec:\n      containers:\n        - name: app\n          image: nginx:1.27\n\
         \x20         securityContext: {privileged: true}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("replicas.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    )
    .unwrap();
    let dir = d.to_str().unwrap();
    let o = tiergate(&["check", dir, "-o", "json", "--only", "privileged"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let skipped = v["skipped"].as_array().unwrap();
    assert!(
        skipped.iter().any(|s| s["message"]
            .as_str()
            .unwrap()
            .contains("a kustomize patch listed in")),
        "{v}"
    );
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["file"].as_str().unwrap().ends_with("replicas.yaml")));

    // Rendering needs kubectl or kustomize, which `make test` does not
    // require: checked where one is on PATH (CI has kubectl).
    let renders = ["kubectl", "kustomize"].iter().any(|t| {
        Command::new(t)
            .arg("version")
            .arg("--client")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if renders {
        let o = tiergate(
            &["check", "-k", dir, "-o", "json", "--only", "privileged"],
            None,
        );
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let r = &v["results"][0];
        assert!(r["file"].as_str().unwrap().ends_with("(kustomize)"), "{v}");
        assert_eq!(
            r["namespace"], "shop",
            "the rendering, with the kustomization applied"
        );
    } else {
        eprintln!("no kubectl or kustomize on PATH: the -k rendering is not checked here");
    }

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tiergate"));
    let out = cmd
        .args(["check", "-k", dir])
        .env("PATH", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-k needs kubectl (kubectl kustomize) or kustomize on PATH"),
        "{err}"
    );
}

/// Copy a test-data folder into a writable temporary one.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(e.path()).unwrap()).unwrap();
        }
    }
}

/// Every line of `old`, in order, is a line of `new`: `new` only adds.
fn only_adds(old: &str, new: &str) -> bool {
    let mut rest = new.lines();
    old.lines().all(|l| rest.any(|n| n == l))
}

/// `fix` writes only what it fixes: on real, comment-heavy manifests and the
/// realistic ones, the diff is added lines only, every comment and every
/// other byte stays, and the fixed files have nothing fixable left.
#[test]
fn fix_only_adds_lines_and_keeps_every_comment() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&data.join("corpus"), &tmp.path().join("corpus"));
    copy_tree(&data.join("realistic"), &tmp.path().join("realistic"));
    let dir = tmp.path().to_str().unwrap();

    let diff = tiergate(&["fix", "--diff", "--tier", "3", dir], None);
    assert_eq!(diff.status.code(), Some(0), "{}", stderr(&diff));
    let text = stdout(&diff);
    let files = text.lines().filter(|l| l.starts_with("+++ b/")).count();
    assert!(files >= 8, "{files} files in the diff:\n{text}");
    let added = text
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .count();
    assert!(added > 100, "{added} added lines");
    let removed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("--- a/"))
        .collect();
    assert!(removed.is_empty(), "fix changed lines: {removed:?}");
    // Nothing was written by --diff.
    let webhook = tmp
        .path()
        .join("corpus/tektoncd+pipeline/config/webhook.yaml");
    let before = std::fs::read_to_string(&webhook).unwrap();
    assert_eq!(
        before,
        std::fs::read_to_string(data.join("corpus/tektoncd+pipeline/config/webhook.yaml")).unwrap()
    );

    let o = tiergate(&["fix", "--in-place", "--tier", "3", dir], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut comments = 0;
    for sub in [
        "corpus/tektoncd+pipeline/config/webhook.yaml",
        "corpus/kubernetes+examples/_archived/cockroachdb/cockroachdb-statefulset.yaml",
        "realistic/web-deployment.yaml",
    ] {
        let old = std::fs::read_to_string(data.join(sub)).unwrap();
        let new = std::fs::read_to_string(tmp.path().join(sub)).unwrap();
        assert_ne!(old, new, "{sub} was not fixed");
        assert!(
            only_adds(&old, &new),
            "{sub}: fix changed or dropped lines:\n{new}"
        );
        comments += old
            .lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count();
    }
    assert!(comments > 40, "{comments} comment lines kept");

    // The text fix parses to what the engine fixed: nothing fixable is left.
    let again = tiergate(&["check", "-o", "json", "--tier", "3", dir], None);
    let v: Value = serde_json::from_str(&stdout(&again)).expect("json");
    let fixable: Vec<&Value> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o["findings"].as_array().unwrap())
        .filter(|f| f["fixable"] == true)
        .collect();
    assert!(fixable.is_empty(), "{fixable:?}");
    // And a second fix has nothing to add.
    let twice = tiergate(&["fix", "--diff", "--tier", "3", dir], None);
    assert_eq!(stdout(&twice), "");
}

/// Without --in-place, several files are one stream whose file boundaries
/// show (`# Source:` as `helm template` writes it); one file is printed as is.
#[test]
fn fix_stream_marks_each_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.yaml"), PRIVILEGED).unwrap();
    std::fs::write(tmp.path().join("b.yaml"), CLEAN_CM).unwrap();
    let o = tiergate(&["fix", tmp.path().to_str().unwrap()], None);
    let out = stdout(&o);
    let a = format!("# Source: {}", tmp.path().join("a.yaml").display());
    let b = format!(
        "---\n# Source: {}\n{CLEAN_CM}",
        tmp.path().join("b.yaml").display()
    );
    assert!(out.starts_with(&a), "{out}");
    assert!(out.ends_with(&b), "{out}");
    let one = tiergate(&["fix", tmp.path().join("b.yaml").to_str().unwrap()], None);
    assert_eq!(stdout(&one), CLEAN_CM);
}

fn deployment_and_pdb(with_pdb: bool) -> String {
    let mut text = String::from(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
",
    );
    if with_pdb {
        text.push_str(
            "---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: web}
",
        );
    }
    text
}

/// The namespace-fact rules' findings on `text`: (rule, says unknown).
fn namespace_findings(args: &[&str], text: &str) -> Vec<(String, bool)> {
    let mut all = vec!["check", "-o", "json", "--tier", "2", "-"];
    all.extend_from_slice(args);
    let o = tiergate(&all, Some(text));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
    let mut out = Vec::new();
    for obj in v["results"].as_array().unwrap() {
        for f in obj["findings"].as_array().unwrap() {
            let rule = f["rule"].as_str().unwrap();
            if ["pdb", "default-deny-network-policy", "namespace-quota"].contains(&rule) {
                let unknown = f["message"].as_str().unwrap().contains("unknown");
                out.push((rule.to_string(), unknown));
            }
        }
    }
    out.sort();
    out
}

/// `--complete` (or config `offline.complete`): the files are the whole
/// namespace, so a PDB, default-deny policy or quota not in them is a
/// finding; without it tiergate cannot know and says "unknown".
#[test]
fn complete_turns_namespace_unknowns_into_findings() {
    let rules = |unknown: bool| {
        ["default-deny-network-policy", "namespace-quota", "pdb"]
            .map(|r| (r.to_string(), unknown))
            .to_vec()
    };
    assert_eq!(
        namespace_findings(&[], &deployment_and_pdb(false)),
        rules(true)
    );
    assert_eq!(
        namespace_findings(&["--complete"], &deployment_and_pdb(false)),
        rules(false)
    );
    // The PDB in the files is found; the other two are still missing.
    assert_eq!(
        namespace_findings(&["--complete"], &deployment_and_pdb(true)),
        rules(false)[..2].to_vec()
    );
    // The same from the config, for CI.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.yaml");
    std::fs::write(&config, "offline:\n  complete: true\n").unwrap();
    let c = config.to_str().unwrap();
    assert_eq!(
        namespace_findings(&["--config", c], &deployment_and_pdb(false)),
        rules(false)
    );
}

/// `min-replicas` takes an autoscaler in the input into account.
#[test]
fn an_autoscaler_in_the_input_satisfies_min_replicas() {
    let deployment = deployment_and_pdb(false).replace("  replicas: 3\n", "");
    let hpa = |min: u32| {
        format!(
            "---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  minReplicas: {min}
  maxReplicas: 10
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
"
        )
    };
    let findings = |text: &str| {
        let o = tiergate(
            &["check", "-o", "json", "--only", "min-replicas", "-"],
            Some(text),
        );
        let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
        v["results"][0]["findings"].as_array().unwrap().clone()
    };
    assert_eq!(findings(&deployment).len(), 1);
    assert!(findings(&format!("{deployment}{}", hpa(2))).is_empty());
    let f = findings(&format!("{deployment}{}", hpa(1)));
    assert_eq!(f.len(), 1);
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap()
            .contains("HorizontalPodAutoscaler \"web\""),
        "{f:?}"
    );
}

/// An exemption's suppressions are recorded in every format, and only the
/// rules that would have fired are listed.
#[test]
fn exempted_findings_are_recorded_and_only_real_suppressions_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.yaml");
    std::fs::write(
        &config,
        "exemptions:\n  - reason: CNI agent needs the host\n    kinds: [Pod]\n    names: [bad]\n    rules: [privileged, host-path-volumes]\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let run = |format: &str| {
        let o = tiergate(
            &["check", "--config", c, "-o", format, "-"],
            Some(PRIVILEGED),
        );
        stdout(&o)
    };
    let v: Value = serde_json::from_str(&run("json")).expect("json");
    let exempted = v["results"][0]["exempted"].as_array().expect("exempted");
    assert_eq!(exempted.len(), 1, "{exempted:?}");
    assert_eq!(exempted[0]["rule"], "privileged");
    assert_eq!(exempted[0]["reason"], "CNI agent needs the host");
    assert_eq!(
        exempted[0]["path"],
        "/spec/containers/0/securityContext/privileged"
    );
    assert_eq!(v["summary"]["exempted"], 1);
    assert!(v["results"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["rule"] != "privileged"));

    let sarif: Value = serde_json::from_str(&run("sarif")).expect("sarif");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let suppressed: Vec<&Value> = results
        .iter()
        .filter(|r| r.get("suppressions").is_some())
        .collect();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["ruleId"], "privileged");
    assert_eq!(
        suppressed[0]["suppressions"][0]["justification"],
        "CNI agent needs the host"
    );

    let table = run("table");
    let exempt_lines: Vec<&str> = table.lines().filter(|l| l.contains("EXEMPT")).collect();
    assert_eq!(exempt_lines.len(), 1, "{table}");
    assert!(exempt_lines[0].contains("privileged") && exempt_lines[0].contains("CNI agent"));
    assert!(!table.contains("host-path-volumes"), "{table}");
    assert!(run("junit").contains("exempted [privileged]"));
}

/// Exemption kinds are matched exactly, so a miscased one is refused with
/// its place in the file.
#[test]
fn a_miscased_exemption_kind_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.yaml");
    std::fs::write(
        &config,
        "exemptions:\n  - reason: cni\n    namespaces: [kube-system]\n    kinds: [daemonset]\n",
    )
    .unwrap();
    let o = tiergate(
        &["check", "--config", config.to_str().unwrap(), "-"],
        Some(PRIVILEGED),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("c.yaml:4:"), "{err}");
    assert!(err.contains("did you mean \"DaemonSet\""), "{err}");
}

/// A path with no manifest in it is an error, not a silent pass.
#[test]
fn an_empty_directory_says_nothing_was_found() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("README.md"), "not yaml").unwrap();
    let o = tiergate(&["check", tmp.path().to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no manifests found"), "{}", stderr(&o));
}

/// The shipped node-agent exemptions load, and exempt a CNI DaemonSet of the
/// rules it needs relaxed, with their reason, and nothing else.
#[test]
fn the_node_agent_exemption_set_loads_and_exempts_a_cni_agent() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/exemptions/node-agents.yaml");
    let agent = "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: calico-node, namespace: kube-system}
spec:
  selector: {matchLabels: {k8s-app: calico-node}}
  template:
    metadata: {labels: {k8s-app: calico-node}}
    spec:
      hostNetwork: true
      containers:
      - name: calico-node
        image: calico/node:v3.28.0
        securityContext: {privileged: true}
        volumeMounts: [{name: lib-modules, mountPath: /lib/modules}]
      volumes: [{name: lib-modules, hostPath: {path: /lib/modules}}]
";
    let check = |text: &str| {
        let o = tiergate(
            &[
                "check",
                "--config",
                config.to_str().unwrap(),
                "-o",
                "json",
                "-",
            ],
            Some(text),
        );
        assert_ne!(o.status.code(), Some(2), "{}", stderr(&o));
        serde_json::from_str::<Value>(&stdout(&o)).expect("json")
    };
    let v = check(agent);
    let rules = |key: &str| -> Vec<String> {
        let mut r: Vec<String> = v["results"][0][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["rule"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        r.sort();
        r.dedup();
        r
    };
    for rule in ["host-namespaces", "host-path-volumes", "privileged"] {
        assert!(rules("exempted").contains(&rule.to_string()), "{rule}: {v}");
        assert!(
            !rules("findings").contains(&rule.to_string()),
            "{rule}: {v}"
        );
    }
    // Resources are not something a node agent needs relaxed.
    assert!(rules("findings").contains(&"resources".to_string()), "{v}");
    // The same DaemonSet under another name is not exempted.
    let v = check(&agent.replace("name: calico-node, namespace", "name: my-app, namespace"));
    assert!(v["results"][0].get("exempted").is_none(), "{v}");
}

/// `automount-service-account-token` takes the pod's ServiceAccount in the
/// input into account.
#[test]
fn a_service_account_without_automount_in_the_input_is_enough() {
    let pod = "apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec:
  serviceAccountName: app
  containers: [{name: a, image: \"x:1\"}]
";
    let sa = |automount: bool| {
        format!(
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: app, namespace: shop}}\nautomountServiceAccountToken: {automount}\n"
        )
    };
    let findings = |text: &str| {
        let o = tiergate(
            &[
                "check",
                "-o",
                "json",
                "--only",
                "automount-service-account-token",
                "-",
            ],
            Some(text),
        );
        let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
        v["results"][0]["findings"].as_array().unwrap().len()
    };
    assert_eq!(findings(pod), 1);
    assert_eq!(findings(&format!("{pod}{}", sa(false))), 0);
    assert_eq!(findings(&format!("{pod}{}", sa(true))), 1);
}

/// `tiergate scaffold`: for every tier and kind, `check --tier N --complete`
/// on what it writes reports nothing, and a lower tier's scaffold does not
/// pass a higher tier (each tier adds something; tier 5's sandbox is for
/// tenants' namespaces, so the tier-4 scaffold checked against it is a
/// tenant's).
#[test]
fn every_scaffold_passes_its_own_tier_and_not_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    for tier in 1..=5 {
        for kind in ["deployment", "statefulset", "cronjob"] {
            let dir = tmp.path().join(format!("{kind}-{tier}"));
            let d = dir.to_str().unwrap();
            let t = tier.to_string();
            // From tier 4, a tenant's: tier 5 then asks for a sandbox.
            let mut args = vec!["scaffold", "shop", "--tier", &t, "--kind", kind, "--out", d];
            if tier >= 4 {
                args.extend(["--tenant", "acme"]);
            }
            let o = tiergate(&args, None);
            assert_eq!(o.status.code(), Some(0), "{kind} {tier}: {}", stderr(&o));
            let o = tiergate(
                &["check", "--tier", &t, "--complete", "-o", "json", d],
                None,
            );
            assert_eq!(o.status.code(), Some(0), "{kind} {tier}: {}", stdout(&o));
            let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
            let s = &v["summary"];
            assert_eq!(
                (&s["deny"], &s["warn"], &s["exempted"]),
                (&Value::from(0), &Value::from(0), &Value::from(0)),
                "{kind} at tier {tier}: {}",
                stdout(&o)
            );
            assert_eq!(s["objects"], s["clean"], "{kind} {tier}");
            assert!(s["objects"].as_u64().unwrap() >= 3, "{kind} {tier}");
            if tier < 5 {
                let next = (tier + 1).to_string();
                let o = tiergate(&["check", "--tier", &next, "--complete", d], None);
                assert_eq!(
                    o.status.code(),
                    Some(1),
                    "tier {next} asks more than the tier-{tier} {kind}: {}",
                    stdout(&o)
                );
            }
        }
    }
    // What is there is never overwritten.
    let d = tmp.path().join("deployment-1");
    let o = tiergate(
        &[
            "scaffold",
            "shop",
            "--tier",
            "1",
            "--out",
            d.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not overwriting"), "{}", stderr(&o));
    // A scaffold that cannot pass is refused, with the reason.
    let o = tiergate(
        &["scaffold", "shop", "--tier", "2", "--image", "nginx:1.27"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("image-digest"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

const EXCEPTED_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: bad
  namespace: shop
spec:
  containers:
  - name: app
    image: nginx:1.27
    securityContext:
      privileged: true
";

const BREAK_GLASS: &str = "apiVersion: tiergate.io/v1alpha1
kind: TierException
metadata:
  name: break-glass
  namespace: shop
spec:
  reason: incident 42 needs a debugger
  owner: team-web
  expires: \"2026-12-10T00:00:00Z\"
  rules: [privileged]
  match:
    kinds: [Pod]
";

/// TierExceptions offline: read from the input or from `--exceptions`,
/// applied until they end (`--now`), in their own namespace only; an
/// invalid one is an error that excepts nothing.
#[test]
fn tier_exceptions_apply_offline_until_they_end() {
    let tmp = tempfile::tempdir().unwrap();
    let ex = tmp.path().join("exceptions");
    std::fs::create_dir(&ex).unwrap();
    std::fs::write(ex.join("break-glass.yaml"), BREAK_GLASS).unwrap();
    let ex = ex.to_str().unwrap();
    let check = |now: &str, extra: &[&str], stdin: &str| {
        let mut args = vec![
            "check",
            "-",
            "--only",
            "privileged",
            "-o",
            "json",
            "--now",
            now,
        ];
        args.extend(extra);
        tiergate(&args, Some(stdin))
    };
    // In the input, and from --exceptions: the same answer.
    for (extra, stdin) in [
        (vec![], format!("{EXCEPTED_POD}---\n{BREAK_GLASS}")),
        (vec!["--exceptions", ex], EXCEPTED_POD.to_string()),
    ] {
        let o = check("2026-12-05T00:00:00Z", &extra, &stdin);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let pod = &v["results"][0];
        assert_eq!(pod["findings"], serde_json::json!([]));
        let x = &pod["exempted"][0];
        assert_eq!(x["exception"], "shop/break-glass");
        assert_eq!(x["owner"], "team-web");
        assert_eq!(x["expires"], "2026-12-10T00:00:00Z");
        assert_eq!(
            pod["notices"][0],
            "tiergate exception shop/break-glass (privileged) ends in 5 days, owner team-web"
        );
        // Once it has ended, the pod is denied again.
        let o = check("2026-12-10T00:00:00Z", &extra, &stdin);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    }
    // Another namespace's exception does not reach this one.
    let other = EXCEPTED_POD.replace("namespace: shop", "namespace: other");
    let o = check("2026-12-05T00:00:00Z", &["--exceptions", ex], &other);
    assert_eq!(o.status.code(), Some(1));
    // An invalid one is an error, and excepts nothing.
    let bad = BREAK_GLASS.replace("  owner: team-web\n", "");
    let o = check(
        "2026-12-05T00:00:00Z",
        &[],
        &format!("{EXCEPTED_POD}---\n{bad}"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "TierException \"break-glass\" is invalid and excepts nothing: spec.owner is required"
        ),
        "{}",
        stderr(&o)
    );
    // Too long-lived for the config: the same.
    let o = check(
        "2026-01-01T00:00:00Z",
        &[],
        &format!("{EXCEPTED_POD}---\n{BREAK_GLASS}"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("maxLifetime"), "{}", stderr(&o));
    let o = check("yesterday", &[], EXCEPTED_POD);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--now: \"yesterday\" is not an RFC 3339 time"),
        "{}",
        stderr(&o)
    );
}
