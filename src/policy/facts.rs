//! Namespace facts from a set of objects (placeholder; replaced by the facts work).
use std::collections::BTreeMap;

use serde_json::Value;

use super::NamespaceFacts;

pub fn facts_from_objects(_objs: &[Value]) -> BTreeMap<String, NamespaceFacts> {
    BTreeMap::new()
}

pub fn namespace_labels(objs: &[Value]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for o in objs {
        if o.get("kind").and_then(Value::as_str) == Some("Namespace") {
            if let Some(name) = o.pointer("/metadata/name").and_then(Value::as_str) {
                let labels = o
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(name.to_string(), labels);
            }
        }
    }
    out
}
