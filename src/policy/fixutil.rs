//! Helpers for fixes: edit a working copy of the object without ever dropping,
//! reordering or clobbering what the user wrote.
use serde_json::{Map, Value};

/// The object at `pointer`, creating every missing (or `null`) parent as an
/// empty object. Returns `None`, changing nothing, when something on the way
/// exists but is not an object: a fix never overwrites user data of another
/// shape.
pub fn object_at<'v>(root: &'v mut Value, pointer: &str) -> Option<&'v mut Map<String, Value>> {
    // Check first that the path can be made without clobbering.
    {
        let mut cur: &Value = root;
        for tok in tokens(pointer) {
            match cur {
                Value::Object(m) => match m.get(tok.as_ref()) {
                    Some(Value::Null) | None => break,
                    Some(next) => cur = next,
                },
                Value::Array(a) => match tok.parse::<usize>().ok().and_then(|i| a.get(i)) {
                    Some(next) => cur = next,
                    None => return None,
                },
                _ => return None,
            }
        }
        if !(cur.is_object() || cur.is_null()) {
            return None;
        }
    }
    let mut cur = root;
    for tok in tokens(pointer) {
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        cur = match cur {
            Value::Object(m) => m.entry(tok.into_owned()).or_insert(Value::Null),
            Value::Array(a) => {
                let i: usize = tok.parse().ok()?;
                a.get_mut(i)?
            }
            _ => return None,
        };
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut()
}

/// Set `key` in the object at `pointer` when it is missing or `null`.
/// Returns whether it changed anything.
pub fn set_default(root: &mut Value, pointer: &str, key: &str, value: Value) -> bool {
    match object_at(root, pointer) {
        Some(m) => match m.get(key) {
            None | Some(Value::Null) => {
                m.insert(key.to_string(), value);
                true
            }
            Some(_) => false,
        },
        None => false,
    }
}

/// The unescaped tokens of a JSON pointer.
pub fn tokens(pointer: &str) -> impl Iterator<Item = std::borrow::Cow<'_, str>> + '_ {
    pointer.split('/').skip(1).map(|t| {
        if t.contains('~') {
            std::borrow::Cow::Owned(t.replace("~1", "/").replace("~0", "~"))
        } else {
            std::borrow::Cow::Borrowed(t)
        }
    })
}

/// An RFC 6902 patch from `from` to `to`, built only where they differ. Fixes
/// only add, so this walks equal subtrees with a cheap comparison instead of
/// building a pointer for every node as a general diff does.
pub fn diff(from: &Value, to: &Value) -> json_patch::Patch {
    let mut ops = Vec::new();
    let mut path = String::new();
    diff_into(from, to, &mut path, &mut ops);
    json_patch::Patch(ops)
}

fn pointer(path: &str) -> json_patch::jsonptr::PointerBuf {
    json_patch::jsonptr::PointerBuf::parse(path).unwrap_or_default()
}

fn diff_into(
    from: &Value,
    to: &Value,
    path: &mut String,
    ops: &mut Vec<json_patch::PatchOperation>,
) {
    use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
    let len = path.len();
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, old) in a {
                push_token(path, k);
                match b.get(k) {
                    Some(new) => diff_into(old, new, path, ops),
                    None => ops.push(PatchOperation::Remove(RemoveOperation {
                        path: pointer(path),
                    })),
                }
                path.truncate(len);
            }
            for (k, new) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                push_token(path, k);
                ops.push(PatchOperation::Add(AddOperation {
                    path: pointer(path),
                    value: new.clone(),
                }));
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) if b.len() >= a.len() => {
            for (i, (old, new)) in a.iter().zip(b.iter()).enumerate() {
                path.push('/');
                path.push_str(&i.to_string());
                diff_into(old, new, path, ops);
                path.truncate(len);
            }
            for (i, new) in b.iter().enumerate().skip(a.len()) {
                path.push('/');
                path.push_str(&i.to_string());
                ops.push(PatchOperation::Add(AddOperation {
                    path: pointer(path),
                    value: new.clone(),
                }));
                path.truncate(len);
            }
        }
        (a, b) if a == b => {}
        _ => ops.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(path),
            value: to.clone(),
        })),
    }
}

fn push_token(path: &mut String, token: &str) {
    path.push('/');
    if token.contains(['~', '/']) {
        path.push_str(&escape(token));
    } else {
        path.push_str(token);
    }
}

/// Escape one token for a JSON pointer (`/` → `~1`, `~` → `~0`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn creates_missing_and_null_parents() {
        let mut v = json!({"spec": {"a": null}});
        assert!(set_default(&mut v, "/spec/a/b", "c", json!(1)));
        assert_eq!(v, json!({"spec": {"a": {"b": {"c": 1}}}}));
        assert!(!set_default(&mut v, "/spec/a/b", "c", json!(2)));
    }

    #[test]
    fn never_clobbers_other_shapes() {
        let mut v = json!({"spec": {"a": "text"}});
        assert!(!set_default(&mut v, "/spec/a/b", "c", json!(1)));
        assert_eq!(v, json!({"spec": {"a": "text"}}));
    }

    #[test]
    fn diff_matches_a_general_diff_when_applied() {
        let from = json!({"a": {"b": [1, {"c": null}], "k/x": 1}, "z": [1]});
        let to = json!({"a": {"b": [1, {"c": {"d": 2}}, 3], "k/x": 1, "n~e/w": true}, "z": [1], "y": {}});
        let p = diff(&from, &to);
        let mut applied = from.clone();
        json_patch::patch(&mut applied, &p).unwrap();
        assert_eq!(applied, to);
        assert!(diff(&to, &to).0.is_empty());
        let s = serde_json::to_string(&p).unwrap();
        assert!(s.contains("/a/n~0e~1w"), "{s}");
    }

    #[test]
    fn escapes_label_keys() {
        assert_eq!(escape("app.kubernetes.io/name"), "app.kubernetes.io~1name");
        let mut v = json!({});
        set_default(
            &mut v,
            "/metadata/labels",
            "app.kubernetes.io/name",
            json!("x"),
        );
        assert_eq!(
            v.pointer("/metadata/labels/app.kubernetes.io~1name"),
            Some(&json!("x"))
        );
    }
}
