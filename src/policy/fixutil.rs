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
                Value::Object(m) => match m.get(&tok) {
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
            Value::Object(m) => m.entry(tok).or_insert(Value::Null),
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
pub fn tokens(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
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
