//! Shared helpers for integration tests.
#![allow(dead_code)]
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every object of the realistic manifests, with its file name.
pub fn realistic() -> Vec<(String, Value)> {
    let dir = data_dir().join("realistic");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/realistic")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read manifest");
        let src = tiergate::manifest::parse_source(&f.display().to_string(), Some(&f), &text)
            .expect("parse manifest");
        for d in src.documents {
            if let Some(v) = d.value {
                out.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
            }
        }
    }
    out
}

/// The object parses as its kind's k8s-openapi type.
pub fn assert_parses_typed(v: &Value) {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let r = match kind {
        "Pod" => core::Pod::deserialize(v).map(drop),
        "Deployment" => apps::Deployment::deserialize(v).map(drop),
        "StatefulSet" => apps::StatefulSet::deserialize(v).map(drop),
        "DaemonSet" => apps::DaemonSet::deserialize(v).map(drop),
        "ReplicaSet" => apps::ReplicaSet::deserialize(v).map(drop),
        "Job" => batch::Job::deserialize(v).map(drop),
        "CronJob" => batch::CronJob::deserialize(v).map(drop),
        _ => Ok(()),
    };
    if let Err(e) = r {
        panic!("fixed {kind} no longer parses: {e}\n{v:#}");
    }
}
