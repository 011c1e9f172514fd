//! Writing a fix into the user's text: the keys and items a fix adds are
//! inserted where they belong, at the indentation of their siblings, and
//! every other byte (comments, quoting, key order, blank lines, flow lists)
//! stays as the user wrote it. The diff of `fix` is then the fix.
//!
//! How: the document is parsed into a tree of nodes with their byte spans
//! (the YAML parser's events; JSON is YAML's flow style), the original and
//! the fixed values are compared, and each difference becomes one edit:
//! new keys of a mapping, new items at the end of a sequence, or (no safe
//! fix does this today) a scalar replaced. A difference of any other shape
//! (a key removed, a sequence shortened) is not written. The edited text is
//! parsed again and must give exactly the fixed value; otherwise the
//! document is left as it was and the caller says why.
use granit_parser::{Event, Parser, ScalarStyle, StructureStyle};
use serde_json::{Map, Value};

/// Why a fix could not be written into the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWritten(pub String);

/// `text` with the edits that turn `old` (its parsed value) into `new`.
/// `reparse` reads a text back the way the input was read.
pub fn write_fix(
    text: &str,
    old: &Value,
    new: &Value,
    reparse: impl Fn(&str) -> Option<Value>,
) -> Result<String, NotWritten> {
    let root = parse_tree(text)?;
    let mut edits = Vec::new();
    diff(&root, old, new, text, Place::default(), &mut edits)?;
    let mut out = apply(text, edits);
    if text.contains("\r\n") {
        out = normalise_crlf(&out);
    }
    match reparse(&out) {
        Some(v) if v == *new => Ok(out),
        _ => Err(NotWritten(
            "inserting the fix into the text would not give the fixed object (anchors, \
             merge keys or an unusual layout)"
                .to_string(),
        )),
    }
}

/// A node of the document with where it is in the text (byte offsets).
#[derive(Debug)]
enum Node {
    Map {
        flow: bool,
        start: usize,
        /// Offset of the closing `}` of a flow mapping.
        close: usize,
        entries: Vec<Entry>,
    },
    Seq {
        flow: bool,
        start: usize,
        close: usize,
        items: Vec<Node>,
    },
    Scalar {
        start: usize,
        end: usize,
        block: bool,
    },
    Alias {
        start: usize,
        end: usize,
    },
}

#[derive(Debug)]
struct Entry {
    key: String,
    key_start: usize,
    /// Column (characters) of the key.
    key_col: usize,
    value: Node,
}

impl Node {
    fn start(&self) -> usize {
        match self {
            Node::Map { start, .. } | Node::Seq { start, .. } => *start,
            Node::Scalar { start, .. } | Node::Alias { start, .. } => *start,
        }
    }

    /// The offset just after the node's last character of content.
    fn end(&self) -> usize {
        match self {
            Node::Map {
                flow: true, close, ..
            }
            | Node::Seq {
                flow: true, close, ..
            } => close + 1,
            Node::Map { entries, start, .. } => entries.last().map_or(*start, |e| e.value.end()),
            Node::Seq { items, start, .. } => items.last().map_or(*start, Node::end),
            Node::Scalar { end, .. } | Node::Alias { end, .. } => *end,
        }
    }
}

type Events<'a> = std::iter::Peekable<std::vec::IntoIter<(Event<'a>, granit_parser::Span)>>;

fn parse_tree(text: &str) -> Result<Node, NotWritten> {
    let unreadable = || NotWritten("the document could not be read for editing".to_string());
    let mut events: Vec<(Event<'_>, granit_parser::Span)> = Vec::new();
    for ev in Parser::new_from_str(text) {
        let ev = ev.map_err(|_| unreadable())?;
        match ev.0 {
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(..)
            | Event::DocumentEnd
            | Event::Anchor(..)
            | Event::Comment(..) => {}
            _ => events.push(ev),
        }
    }
    let mut it: Events<'_> = events.into_iter().peekable();
    let root = node(&mut it, text)?.ok_or_else(unreadable)?;
    Ok(root)
}

fn offset(m: &granit_parser::Marker, text: &str) -> usize {
    m.byte_offset().unwrap_or(text.len()).min(text.len())
}

fn node(it: &mut Events<'_>, text: &str) -> Result<Option<Node>, NotWritten> {
    let Some((ev, span)) = it.next() else {
        return Ok(None);
    };
    let start = offset(&span.start, text);
    Ok(Some(match ev {
        Event::Scalar(_, style, ..) => Node::Scalar {
            start,
            end: offset(&span.end, text),
            block: matches!(style, ScalarStyle::Literal | ScalarStyle::Folded),
        },
        Event::Alias(_) | Event::UnresolvedAlias(_) => Node::Alias {
            start,
            end: offset(&span.end, text),
        },
        Event::MappingStart(style, ..) => {
            let mut entries = Vec::new();
            loop {
                if matches!(it.peek(), Some((Event::MappingEnd, _))) {
                    let (_, end) = it.next().ok_or_else(shape)?;
                    return Ok(Some(Node::Map {
                        flow: style == StructureStyle::Flow,
                        start,
                        close: offset(&end.start, text),
                        entries,
                    }));
                }
                let (key_ev, key_span) = it.next().ok_or_else(shape)?;
                let key = match key_ev {
                    Event::Scalar(k, ..) => k.into_owned(),
                    _ => return Err(NotWritten("a mapping key is not a scalar".to_string())),
                };
                let value = node(it, text)?.ok_or_else(shape)?;
                entries.push(Entry {
                    key,
                    key_start: offset(&key_span.start, text),
                    key_col: key_span.start.col(),
                    value,
                });
            }
        }
        Event::SequenceStart(style, ..) => {
            let mut items = Vec::new();
            loop {
                if matches!(it.peek(), Some((Event::SequenceEnd, _))) {
                    let (_, end) = it.next().ok_or_else(shape)?;
                    return Ok(Some(Node::Seq {
                        flow: style == StructureStyle::Flow,
                        start,
                        close: offset(&end.start, text),
                        items,
                    }));
                }
                items.push(node(it, text)?.ok_or_else(shape)?);
            }
        }
        _ => return Err(shape()),
    }))
}

fn shape() -> NotWritten {
    NotWritten("the document's structure could not be followed".to_string())
}

/// One insertion (or replacement of `start..end`) in the text. At the same
/// offset, deeper nodes' text comes first (a container's new keys before
/// its pod's).
#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    depth: usize,
    text: String,
}

/// `key_col`: the column of the key whose value `node` is, when that key is
/// in a block mapping (an empty `{}` or `[]` there is filled in block style).
fn diff(
    node: &Node,
    old: &Value,
    new: &Value,
    text: &str,
    at: Place,
    edits: &mut Vec<Edit>,
) -> Result<(), NotWritten> {
    let depth = at.depth;
    if old == new {
        return Ok(());
    }
    match (node, old, new) {
        (Node::Map { entries, .. }, Value::Object(o), Value::Object(n)) => {
            if let Some(k) = o.keys().find(|k| !n.contains_key(*k)) {
                return Err(NotWritten(format!("the fix removes the key {k:?}")));
            }
            let mut added = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        let entry = entries.iter().find(|e| e.key == *k).ok_or_else(|| {
                            NotWritten(format!("the key {k:?} comes from a merge or an alias"))
                        })?;
                        let key_col =
                            matches!(node, Node::Map { flow: false, .. }).then_some(entry.key_col);
                        let place = Place {
                            depth: depth + 1,
                            key_col,
                        };
                        diff(&entry.value, ov, nv, text, place, edits)?;
                    }
                    None => {
                        added.insert(k.clone(), nv.clone());
                    }
                }
            }
            if !added.is_empty() {
                if let Some(fill) = fill_empty(node, &Value::Object(added.clone()), text, at)? {
                    edits.extend(fill);
                } else {
                    edits.push(add_to_map(node, &added, text, depth)?);
                }
            }
            Ok(())
        }
        (Node::Seq { items, .. }, Value::Array(o), Value::Array(n)) => {
            if n.len() < o.len() || items.len() != o.len() {
                return Err(NotWritten("the fix shortens a list".to_string()));
            }
            for ((item, ov), nv) in items.iter().zip(o).zip(n) {
                let place = Place {
                    depth: depth + 1,
                    key_col: None,
                };
                diff(item, ov, nv, text, place, edits)?;
            }
            if n.len() > o.len() {
                let added = Value::Array(n[o.len()..].to_vec());
                if let Some(fill) = fill_empty(node, &added, text, at)? {
                    edits.extend(fill);
                } else {
                    edits.push(append_to_seq(node, &n[o.len()..], text, depth)?);
                }
            }
            Ok(())
        }
        (Node::Scalar { block: false, .. }, Value::Null, Value::Object(_) | Value::Array(_))
            if fill_empty(node, new, text, at)?.is_some() =>
        {
            edits.extend(fill_empty(node, new, text, at)?.unwrap_or_default());
            Ok(())
        }
        (
            Node::Scalar {
                start,
                end,
                block: false,
            },
            _,
            _,
        ) => {
            edits.push(Edit {
                start: *start,
                end: *end,
                depth,
                text: compact_json(new),
            });
            Ok(())
        }
        _ => Err(NotWritten(
            "the fix changes a value's shape, or a block scalar or alias".to_string(),
        )),
    }
}

/// Where a node is: its depth, and the column of its key in a block mapping.
#[derive(Debug, Clone, Copy, Default)]
struct Place {
    depth: usize,
    key_col: Option<usize>,
}

/// An empty `{}` or `[]` that is a block mapping's value, alone on its line,
/// filled in block style: the `{}` goes (that line then ends at its key) and
/// the content follows on new lines, as the file's other mappings are written.
fn fill_empty(
    node: &Node,
    added: &Value,
    text: &str,
    at: Place,
) -> Result<Option<Vec<Edit>>, NotWritten> {
    // The empty value's text: `{}`, `[]`, or a null written out (`null`, `~`).
    let (start, end, empty) = match node {
        Node::Map {
            flow: true,
            start,
            close,
            entries,
        } => (*start, close + 1, entries.is_empty()),
        Node::Seq {
            flow: true,
            start,
            close,
            items,
        } => (*start, close + 1, items.is_empty()),
        Node::Scalar {
            start,
            end,
            block: false,
        } => (
            *start,
            *end,
            matches!(&text[*start..*end], "null" | "~" | "Null" | "NULL"),
        ),
        _ => return Ok(None),
    };
    let Some(key_col) = at.key_col.filter(|_| empty) else {
        return Ok(None);
    };
    // Only `key: {}` with nothing but a comment after it on the line.
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let after = text[end..line_end].trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return Ok(None);
    }
    let before = text[..start].trim_end_matches(' ');
    if !before.ends_with(':') {
        return Ok(None);
    }
    let indent = if added.is_object() {
        key_col + 2
    } else {
        key_col
    };
    let mut t = block_yaml(added, indent)?;
    let (at_line, newline) = line_after(node, text);
    if newline {
        t.insert(0, '\n');
    }
    Ok(Some(vec![
        Edit {
            start: before.len(),
            end,
            depth: at.depth,
            text: String::new(),
        },
        Edit {
            start: at_line,
            end: at_line,
            depth: at.depth,
            text: t,
        },
    ]))
}

fn compact_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The block YAML of `v` (a mapping or a scalar), each line indented.
fn block_yaml(v: &Value, indent: usize) -> Result<String, NotWritten> {
    let yaml = serde_saphyr::to_string(v)
        .map_err(|e| NotWritten(format!("the fix could not be written as YAML: {e}")))?;
    Ok(indent_lines(
        &yaml,
        &" ".repeat(indent),
        &" ".repeat(indent),
    ))
}

/// Prefix the first line with `first` and the others with `rest` (empty
/// lines stay empty); the result ends with a line break.
fn indent_lines(s: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    for (i, line) in s.lines().enumerate() {
        if !line.is_empty() {
            out.push_str(if i == 0 { first } else { rest });
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The offset of the start of the line after the node's last content, and
/// whether a line break must be written first (content ends the text).
fn line_after(node: &Node, text: &str) -> (usize, bool) {
    let end = node.end().min(text.len());
    let content_end = text[..end].trim_end().len();
    match text[content_end..].find('\n') {
        Some(i) => (content_end + i + 1, false),
        None => (text.len(), true),
    }
}

fn add_to_map(
    node: &Node,
    added: &Map<String, Value>,
    text: &str,
    depth: usize,
) -> Result<Edit, NotWritten> {
    let Node::Map {
        flow,
        start,
        close,
        entries,
    } = node
    else {
        return Err(shape());
    };
    let added_value = Value::Object(added.clone());
    if !flow {
        let first = entries.first().ok_or_else(shape)?;
        let (at, newline) = line_after(node, text);
        let mut t = block_yaml(&added_value, first.key_col)?;
        if newline {
            t.insert(0, '\n');
        }
        return Ok(Edit {
            start: at,
            end: at,
            depth,
            text: t,
        });
    }
    let pairs: Vec<String> = added
        .iter()
        .map(|(k, v)| {
            format!(
                "{}: {}",
                compact_json(&Value::String(k.clone())),
                compact_json(v)
            )
        })
        .collect();
    match entries.last() {
        None => Ok(Edit {
            start: *close,
            end: *close,
            depth,
            text: pairs.join(", "),
        }),
        Some(last) => {
            let at = last.value.end();
            let first = &entries[0];
            let multiline = text[*start..first.key_start].contains('\n');
            let text = if multiline {
                let pad = " ".repeat(first.key_col);
                let pretty: Vec<String> = added
                    .iter()
                    .map(|(k, v)| {
                        let value = serde_json::to_string_pretty(v).unwrap_or_default();
                        format!(
                            ",\n{pad}{}: {}",
                            compact_json(&Value::String(k.clone())),
                            indent_lines(&value, "", &pad).trim_end()
                        )
                    })
                    .collect();
                pretty.concat()
            } else {
                format!(", {}", pairs.join(", "))
            };
            Ok(Edit {
                start: at,
                end: at,
                depth,
                text,
            })
        }
    }
}

fn append_to_seq(
    node: &Node,
    added: &[Value],
    text: &str,
    depth: usize,
) -> Result<Edit, NotWritten> {
    let Node::Seq {
        flow, close, items, ..
    } = node
    else {
        return Err(shape());
    };
    if *flow {
        let values: Vec<String> = added.iter().map(compact_json).collect();
        return Ok(match items.last() {
            None => Edit {
                start: *close,
                end: *close,
                depth,
                text: values.join(", "),
            },
            Some(last) => Edit {
                start: last.end(),
                end: last.end(),
                depth,
                text: format!(", {}", values.join(", ")),
            },
        });
    }
    // The column of the `-` before the first item.
    let first = items.first().ok_or_else(shape)?;
    let line_start = text[..first.start()].rfind('\n').map_or(0, |i| i + 1);
    let dash = text[line_start..first.start()]
        .rfind('-')
        .ok_or_else(shape)?;
    let dash_col = text[line_start..line_start + dash].chars().count();
    let pad = " ".repeat(dash_col);
    let mut t = String::new();
    for v in added {
        let yaml = block_yaml(v, 0)?;
        t.push_str(&indent_lines(
            &yaml,
            &format!("{pad}- "),
            &format!("{pad}  "),
        ));
    }
    let (at, newline) = line_after(node, text);
    if newline {
        t.insert(0, '\n');
    }
    Ok(Edit {
        start: at,
        end: at,
        depth,
        text: t,
    })
}

fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by(|a, b| a.start.cmp(&b.start).then(b.depth.cmp(&a.depth)));
    let mut out =
        String::with_capacity(text.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut at = 0;
    for e in edits {
        if e.start < at {
            continue;
        }
        out.push_str(&text[at..e.start]);
        out.push_str(&e.text);
        at = e.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Line breaks as the file writes them.
fn normalise_crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(t: &str) -> Value {
        crate::manifest::parse_document(t).unwrap().unwrap()
    }

    /// Write `new` into `text` and check the result parses to `new`.
    fn write(text: &str, new: &Value) -> Result<String, NotWritten> {
        let out = write_fix(text, &yaml(text), new, |t| {
            crate::manifest::parse_document(t).ok().flatten()
        })?;
        assert_eq!(yaml(&out), *new, "{out}");
        Ok(out)
    }

    /// The lines of `old` are the lines of `new` without the added ones.
    fn only_added(old: &str, new: &str) -> bool {
        let mut rest = new.lines();
        old.lines().all(|l| rest.any(|n| n == l))
    }

    #[test]
    fn keys_go_under_their_siblings_and_comments_stay() {
        let text = "# licence header\napiVersion: v1\nkind: Pod  # a pod\nmetadata:\n  name: \"p\"\n  # no labels yet\nspec:\n  containers:\n  - name: a\n    image: 'x:1'   # pinned later\n    args: [--a, \"--b\"]\n\n  # the sidecar\n  - name: b\n    image: y:2\n";
        let mut new = yaml(text);
        new["metadata"]["labels"] = json!({"app": "p"});
        new["spec"]["containers"][0]["securityContext"] = json!({"runAsNonRoot": true});
        new["spec"]["containers"][1]["resources"] = json!({"requests": {"cpu": "1"}});
        new["spec"]["securityContext"] = json!({"seccompProfile": {"type": "RuntimeDefault"}});
        let out = write(text, &new).unwrap();
        assert!(only_added(text, &out), "{out}");
        assert!(
            out.contains("  name: \"p\"\n  labels:\n    app: p\n  # no labels yet\n"),
            "{out}"
        );
        assert!(out.contains("    args: [--a, \"--b\"]\n    securityContext:\n      runAsNonRoot: true\n\n  # the sidecar\n"), "{out}");
        // The container's keys come before its pod spec's at the same place.
        assert!(out.ends_with("    image: y:2\n    resources:\n      requests:\n        cpu: \"1\"\n  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n"), "{out}");
    }

    #[test]
    fn an_empty_flow_value_is_filled_in_block_style() {
        let text = "c:\n  securityContext: {}  # empty\n  drop: []\n  flow: {a: {}}\n  r: null\n";
        let mut new = yaml(text);
        new["c"]["r"] = json!({"cpu": "1"});
        new["c"]["securityContext"] = json!({"runAsNonRoot": true});
        new["c"]["drop"] = json!(["ALL"]);
        new["c"]["flow"]["a"] = json!({"b": 1});
        let out = write(text, &new).unwrap();
        assert_eq!(
            out,
            "c:\n  securityContext:  # empty\n    runAsNonRoot: true\n  drop:\n  - ALL\n  flow: {a: {\"b\": 1}}\n  r:\n    cpu: \"1\"\n"
        );
    }

    #[test]
    fn items_are_appended_in_block_and_flow_lists() {
        let text = "drop:\n  - NET_RAW\nadd: [CHOWN]\nempty: []\nlast:\n- a: 1\n";
        let mut new = yaml(text);
        new["drop"] = json!(["NET_RAW", "ALL"]);
        new["add"] = json!(["CHOWN", "KILL"]);
        new["empty"] = json!(["x"]);
        new["last"] = json!([{"a": 1}, {"b": 2, "c": [3]}]);
        let out = write(text, &new).unwrap();
        assert_eq!(out, "drop:\n  - NET_RAW\n  - ALL\nadd: [CHOWN, \"KILL\"]\nempty:\n- x\nlast:\n- a: 1\n- b: 2\n  c:\n  - 3\n");
    }

    #[test]
    fn block_scalars_crlf_and_a_missing_final_line_break() {
        let text = "data:\n  script: |\n    echo hi\n\n    echo bye\n\nmetadata:\n  name: n";
        let mut new = yaml(text);
        new["data"]["other"] = json!("v");
        new["metadata"]["labels"] = json!({"a": "b"});
        let out = write(text, &new).unwrap();
        assert!(only_added(text, &out), "{out}");
        assert!(
            out.contains("    echo bye\n  other: v\n\nmetadata:"),
            "{out}"
        );
        assert!(out.ends_with("  name: n\n  labels:\n    a: b\n"), "{out}");

        let crlf = "metadata:\r\n  name: n\r\nspec: {}\r\n";
        let mut new = yaml(crlf);
        new["metadata"]["labels"] = json!({"a": "b"});
        let out = write(crlf, &new).unwrap();
        assert_eq!(
            out,
            "metadata:\r\n  name: n\r\n  labels:\r\n    a: b\r\nspec: {}\r\n"
        );
    }

    #[test]
    fn json_gets_json_in_its_own_layout() {
        let text = "{\n  \"kind\": \"Pod\",\n  \"spec\": {\"containers\": []}\n}\n";
        let v: Value = serde_json::from_str(text).unwrap();
        let mut new = v.clone();
        new["metadata"] = json!({"labels": {"a": "b"}});
        new["spec"]["securityContext"] = json!({});
        let out = write_fix(text, &v, &new, |t| serde_json::from_str(t).ok()).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), new);
        assert!(out.starts_with("{\n  \"kind\": \"Pod\",\n  \"spec\": {\"containers\": [], \"securityContext\": {}},\n  \"metadata\": {"), "{out}");
    }

    #[test]
    fn what_cannot_be_written_faithfully_is_declined() {
        // A removed key is not something a fix does.
        let text = "a: 1\nb: 2\n";
        let err = write(text, &json!({"a": 1})).unwrap_err();
        assert!(err.0.contains("removes the key"), "{err:?}");
        // Through an alias the edit would change both places: the check
        // that the text parses back to the fixed value catches it.
        let text = "x: &base\n  k: 1\ny: *base\n";
        let old = yaml(text);
        let mut new = old.clone();
        new["x"]["extra"] = json!(true);
        let r = write_fix(text, &old, &new, |t| {
            crate::manifest::parse_document(t).ok().flatten()
        });
        assert!(r.is_err(), "{r:?}");
    }
}
