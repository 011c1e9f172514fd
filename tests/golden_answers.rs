//! The admission answers, byte for byte: every distinct Pod Security Standards
//! fixture and every realistic manifest (plus Namespace, UPDATE, DELETE and
//! subresource cases), through both webhooks, under several configs and the
//! server's dry-run switch, must give exactly the answer recorded in
//! `tests/data/golden/answers.tsv` (a 64-bit FNV-1a of status, content type
//! and body per case). A refactoring that changes no behaviour keeps it.
//!
//! - `GOLDEN_UPDATE=1 cargo test --test golden_answers` rewrites the file
//!   (only when a behaviour change is intended; say so in the commit).
//! - `GOLDEN_DUMP=DIR` also writes every answer body to `DIR/<case>.json`,
//!   to diff two revisions' answers.
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};
use tiergate::admission::{handle, AdmissionSettings, DefaultsSource, Webhook};
use tiergate::config::Config;
use tiergate::policy::Engine;

use tiergate::admission::ReviewBuilder;

/// The configs every case runs under: (name, YAML, server dry-run).
const CONFIGS: &[(&str, &str, bool)] = &[
    ("t5-enforce", "defaults: {tier: hyperscale, mode: enforce}\n", false),
    (
        "t2-warn-v1.24",
        "defaults: {tier: production, mode: warn}\npssVersion: v1.24\n",
        false,
    ),
    ("t1-audit", "defaults: {tier: foundation, mode: audit}\n", false),
    ("t3-enforce-dryrun", "defaults: {tier: enterprise, mode: enforce}\n", true),
    (
        "t3-enforce-optin",
        "defaults: {tier: enterprise, mode: enforce}\n\
         rules:\n  run-as-non-root: {fix: on}\n  read-only-root-filesystem: {fix: on}\n  \
         automount-service-account-token: {fix: on}\n  image-tag: {action: warn}\n\
         registries:\n  allowed: [registry.k8s.io, quay.io/]\n\
         exemptions:\n  - reason: agents need the host\n    kinds: [DaemonSet]\n    rules: [host-namespaces, host-path-volumes]\n\
         tierAdmins:\n  users: [root-admin]\n",
        false,
    ),
];

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// (case name, review body) for every input.
fn cases() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (_, id, text) in common::pss_fixtures() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let mut pod: Value = serde_saphyr::from_str(&text).expect("fixture parses");
        pod["metadata"]["namespace"] = json!("golden");
        out.push((
            format!("pss-{id}"),
            ReviewBuilder::new("u-pss", "CREATE", pod).build(),
        ));
    }
    for (i, (file, obj)) in common::realistic().into_iter().enumerate() {
        let name = format!("realistic-{i:02}-{}", file.trim_end_matches(".yaml"));
        out.push((
            format!("{name}-create"),
            ReviewBuilder::new("u-real", "CREATE", obj.clone()).build(),
        ));
        let mut old = obj.clone();
        old["metadata"]["labels"]["golden-old"] = json!("1");
        out.push((
            format!("{name}-update"),
            ReviewBuilder::new("u-real", "UPDATE", obj.clone())
                .old(old)
                .build(),
        ));
    }
    let pod = common::privileged_pod();
    out.push((
        "delete".into(),
        ReviewBuilder::new("u-del", "DELETE", Value::Null)
            .old(pod.clone())
            .build(),
    ));
    out.push((
        "status-subresource".into(),
        ReviewBuilder::new("u-sub", "UPDATE", pod.clone())
            .sub_resource("status")
            .old(pod.clone())
            .build(),
    ));
    out.push((
        "ephemeral".into(),
        ReviewBuilder::new("u-eph", "UPDATE", pod.clone())
            .sub_resource("ephemeralcontainers")
            .old(pod.clone())
            .build(),
    ));
    let ns = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "team-a", "labels": labels}})
    };
    for (name, labels) in [
        (
            "ns-valid",
            json!({"tiergate.io/tier": "enterprise", "tiergate.io/mode": "enforce"}),
        ),
        ("ns-invalid-tier", json!({"tiergate.io/tier": "gold"})),
        (
            "ns-invalid-mode",
            json!({"tiergate.io/tier": "2", "tiergate.io/mode": "loud"}),
        ),
        ("ns-unlabelled", json!({})),
    ] {
        out.push((
            name.into(),
            ReviewBuilder::new("u-ns", "CREATE", ns(labels))
                .namespace(None)
                .build(),
        ));
    }
    // Lowering a tier and relaxing a mode, by a non-admin and by an admin.
    for (name, user) in [
        ("ns-lowered-by-dev", "dev"),
        ("ns-lowered-by-admin", "root-admin"),
    ] {
        let review = ReviewBuilder::new(
            "u-ns",
            "UPDATE",
            ns(json!({"tiergate.io/tier": "1", "tiergate.io/mode": "warn"})),
        )
        .namespace(None)
        .old(ns(
            json!({"tiergate.io/tier": "3", "tiergate.io/mode": "enforce"}),
        ));
        let review = if user == "dev" {
            review
        } else {
            review.user(user, &["system:authenticated"])
        };
        out.push((name.into(), review.build()));
    }
    out.push((
        "garbage".into(),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
    ));
    out
}

/// One answer: status, content type and body, as the server would send them.
fn answer(engine: &Engine, body: &[u8], settings: AdmissionSettings) -> Vec<u8> {
    let a = handle(body, engine, &DefaultsSource, settings);
    let mut bytes = format!("{} {}\n", a.status, a.content_type).into_bytes();
    bytes.extend_from_slice(&a.body);
    bytes
}

#[test]
fn admission_answers_are_byte_identical_to_the_recorded_ones() {
    let golden_path = common::data_dir().join("golden/answers.tsv");
    let dump = std::env::var_os("GOLDEN_DUMP").map(std::path::PathBuf::from);
    if let Some(d) = &dump {
        std::fs::create_dir_all(d).expect("GOLDEN_DUMP dir");
    }
    let cases = cases();
    let mut got: BTreeMap<String, String> = BTreeMap::new();
    for (cfg_name, yaml, dry_run) in CONFIGS {
        let cfg = Config::from_yaml(yaml, cfg_name).expect("config");
        let engine = Engine::new(cfg.policy);
        for (case, review) in &cases {
            let body = review.to_string().into_bytes();
            for webhook in [Webhook::Validate, Webhook::Mutate] {
                let key = format!("{cfg_name}/{}/{case}", webhook.name());
                let settings = AdmissionSettings::new(webhook)
                    .dry_run(*dry_run || cfg.server.dry_run)
                    .on_error(cfg.server.on_error);
                let bytes = answer(&engine, &body, settings);
                if let Some(d) = &dump {
                    let file = d.join(format!("{}.json", key.replace('/', "__")));
                    std::fs::write(file, &bytes).expect("dump");
                }
                got.insert(key, format!("{:016x}", fnv1a(&bytes)));
            }
        }
    }
    let mut text =
        String::from("# case<TAB>FNV-1a 64 of the answer; see tests/golden_answers.rs\n");
    for (k, v) in &got {
        let _ = writeln!(text, "{k}\t{v}");
    }
    if std::env::var_os("GOLDEN_UPDATE").is_some() {
        std::fs::create_dir_all(golden_path.parent().unwrap_or(Path::new("."))).expect("dir");
        std::fs::write(&golden_path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&golden_path).expect("tests/data/golden/answers.tsv");
    let want: BTreeMap<&str, &str> = want
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .collect();
    assert!(
        want.len() > 3000,
        "golden file has only {} cases",
        want.len()
    );
    let mut diffs = Vec::new();
    for (k, v) in &got {
        match want.get(k.as_str()) {
            Some(w) if *w == v => {}
            Some(_) => diffs.push(format!("changed: {k}")),
            None => diffs.push(format!("new: {k}")),
        }
    }
    for k in want.keys() {
        if !got.contains_key(*k) {
            diffs.push(format!("missing: {k}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} admission answers differ from tests/data/golden/answers.tsv \
         (GOLDEN_DUMP=DIR to see them):\n  {}",
        diffs.len(),
        got.len(),
        diffs
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}
