//! Reading manifests: files, directories and stdin; multi-document YAML, JSON
//! and `kind: List`. Keeps each document's original text so that output can
//! reproduce untouched documents byte for byte.
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// `message` is `file:line:column: what` (file lines, not document lines).
    #[error("{message}")]
    Parse {
        file: String,
        document: usize,
        line: usize,
        message: String,
    },
    #[error("{0}: no such file or directory")]
    Missing(String),
    #[error(
        "{file}: larger than the input limit of {limit} bytes (raise it with --max-input-bytes)"
    )]
    TooLarge { file: String, limit: u64 },
}

/// The largest input file read by default: far above any real manifest, far
/// below what would exhaust memory (`check /dev/zero` must end with an error).
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// The format a file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// One document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// Index of the document in its file (0-based).
    pub index: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    /// The text before the document: its `---` line and any comment preamble.
    pub separator: String,
    /// The document's original text (YAML without its separator).
    pub text: String,
    /// Parsed value; `None` for an empty document.
    pub value: Option<Value>,
}

/// One input file (or stdin) with its documents.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name used in messages (`-` shows as `<stdin>`).
    pub name: String,
    pub path: Option<PathBuf>,
    pub format: Format,
    pub documents: Vec<Document>,
}

/// Expand PATH arguments: files as given, directories recursively
/// (`*.yaml`, `*.yml`, `*.json`, sorted), `-` for stdin. Each file is listed
/// once, however many paths or symlinks lead to it, and a directory is
/// walked once, so symlink cycles end.
pub fn expand_paths(args: &[String]) -> Result<Vec<Option<PathBuf>>, ManifestError> {
    let mut out = Vec::new();
    let mut seen_files = std::collections::HashSet::new();
    let mut seen_dirs = std::collections::HashSet::new();
    for a in args {
        if a == "-" {
            out.push(None);
            continue;
        }
        let p = PathBuf::from(a);
        if p.is_dir() {
            let mut found = Vec::new();
            walk(&p, &mut found, &mut seen_dirs)?;
            found.sort();
            for f in found {
                if seen_files.insert(identity(&f)) {
                    out.push(Some(f));
                }
            }
        } else if p.exists() {
            if seen_files.insert(identity(&p)) {
                out.push(Some(p));
            }
        } else {
            return Err(ManifestError::Missing(a.clone()));
        }
    }
    Ok(out)
}

/// What makes two paths the same file: their canonical path (links
/// resolved), else the path as given.
fn identity(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), ManifestError> {
    if !seen.insert(identity(dir)) {
        return Ok(());
    }
    let io = |source| ManifestError::Io {
        file: dir.display().to_string(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            walk(&path, out, seen)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Read at most `limit` bytes of UTF-8 text; more is an error naming the file.
fn read_limited(r: impl Read, name: &str, limit: u64) -> Result<String, ManifestError> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|source| ManifestError::Io {
            file: name.to_string(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(ManifestError::TooLarge {
            file: name.to_string(),
            limit,
        });
    }
    String::from_utf8(buf).map_err(|e| ManifestError::Io {
        file: name.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
    })
}

/// Read and parse one input, of at most [`DEFAULT_MAX_INPUT_BYTES`].
pub fn read_source(path: Option<&Path>) -> Result<SourceFile, ManifestError> {
    read_source_limited(path, DEFAULT_MAX_INPUT_BYTES)
}

/// Read and parse one input of at most `limit` bytes.
pub fn read_source_limited(path: Option<&Path>, limit: u64) -> Result<SourceFile, ManifestError> {
    let (name, text) = match path {
        None => {
            let name = "<stdin>".to_string();
            let text = read_limited(std::io::stdin().lock(), &name, limit)?;
            (name, text)
        }
        Some(p) => {
            let name = p.display().to_string();
            let file = fs::File::open(p).map_err(|source| ManifestError::Io {
                file: name.clone(),
                source,
            })?;
            let text = read_limited(file, &name, limit)?;
            (name, text)
        }
    };
    parse_source(&name, path, &text)
}

/// Parse text that is JSON (one value) or YAML (one or more documents).
pub fn parse_source(
    name: &str,
    path: Option<&Path>,
    text: &str,
) -> Result<SourceFile, ManifestError> {
    let is_json = path.and_then(|p| p.extension()).and_then(|e| e.to_str()) == Some("json")
        || text.trim_start().starts_with('{')
        || text.trim_start().starts_with('[');
    if is_json {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            return Ok(SourceFile {
                name: name.to_string(),
                path: path.map(Path::to_path_buf),
                format: Format::Json,
                documents: vec![Document {
                    index: 0,
                    line: 1,
                    separator: String::new(),
                    text: text.to_string(),
                    value: Some(value),
                }],
            });
        }
        // Not valid JSON: YAML is a superset, let the YAML parser explain.
    }
    // Documents are independent: parse them in parallel, keep input order,
    // report the first bad document first.
    let parsed: Vec<Result<Document, ManifestError>> = split_yaml(text)
        .into_par_iter()
        .enumerate()
        .map(|(index, chunk)| {
            let value =
                parse_yaml_doc(&chunk.body, chunk.line).map_err(|e| ManifestError::Parse {
                    file: name.to_string(),
                    document: index,
                    line: e.line.map_or(chunk.line, |l| l as usize),
                    message: e.at(name),
                })?;
            Ok(Document {
                index,
                line: chunk.line,
                separator: chunk.sep,
                text: chunk.body,
                value,
            })
        })
        .collect();
    let documents = parsed.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(SourceFile {
        name: name.to_string(),
        path: path.map(Path::to_path_buf),
        format: Format::Yaml,
        documents,
    })
}

/// Parse one YAML document's text as a document of an input is parsed
/// (`None` when it is empty).
pub fn parse_document(text: &str) -> Result<Option<Value>, crate::yaml::YamlError> {
    parse_yaml_doc(text, 1)
}

fn parse_yaml_doc(text: &str, first_line: usize) -> Result<Option<Value>, crate::yaml::YamlError> {
    if !meaningful(text) {
        return Ok(None);
    }
    let mut v: Value = crate::yaml::from_str_at(text, first_line as u64)?;
    unwrap_base64(&mut v);
    Ok(if v.is_null() { None } else { Some(v) })
}

/// Remove line breaks and spaces from the base64 values of Secret `data` and
/// ConfigMap `binaryData` (in a document or the items of a List). The
/// apiserver's base64 decoder ignores them, and tools wrap long values in YAML
/// block scalars (kustomize's `secretGenerator` does), so such a manifest is
/// valid and must be judged, not rejected as malformed.
fn unwrap_base64(doc: &mut Value) {
    let field = |obj: &Value| match obj.get("kind").and_then(Value::as_str) {
        Some("Secret") => Some("data"),
        Some("ConfigMap") => Some("binaryData"),
        _ => None,
    };
    let strip = |obj: &mut Value| {
        let Some(f) = field(obj) else { return };
        if let Some(map) = obj.get_mut(f).and_then(Value::as_object_mut) {
            for value in map.values_mut() {
                if let Value::String(s) = value {
                    if s.bytes().any(|b| b.is_ascii_whitespace()) {
                        s.retain(|c| !c.is_ascii_whitespace());
                    }
                }
            }
        }
    };
    if is_list(doc) {
        if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
            items.iter_mut().for_each(strip);
        }
    } else {
        strip(doc);
    }
}

/// One chunk of a YAML file: the separator text before it (`---` line, or a
/// comment-only preamble) and its body.
struct Chunk {
    sep: String,
    body: String,
    line: usize,
}

/// Split YAML text at `---` separators in column 0 (block scalars are always
/// indented, so a column-0 `---` is always a separator). `sep + body` of every
/// chunk, concatenated, is the input text exactly.
fn split_yaml(text: &str) -> Vec<Chunk> {
    let mut chunks = vec![Chunk {
        sep: String::new(),
        body: String::new(),
        line: 1,
    }];
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") {
            let rest = &bare[3..];
            if rest.trim().is_empty() || rest.trim_start().starts_with('#') {
                chunks.push(Chunk {
                    sep: line.to_string(),
                    body: String::new(),
                    line: i + 2,
                });
            } else {
                // `--- value`: the value starts the document on the same line.
                chunks.push(Chunk {
                    sep: "---".to_string(),
                    body: line[3..].to_string(),
                    line: i + 1,
                });
            }
            continue;
        }
        if let Some(last) = chunks.last_mut() {
            last.body.push_str(line);
        }
    }
    // A comment-only preamble before the first separator is not a document:
    // keep its text with the next one.
    if chunks.len() > 1 && !meaningful(&chunks[0].body) {
        let first = chunks.remove(0);
        chunks[0].sep = format!("{}{}", first.body, chunks[0].sep);
    }
    chunks
}

fn meaningful(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && t != "..."
    })
}

/// Whether a document is a `kind: List` (or `*List`) with `items`.
pub fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array)
}

/// The objects of a document with where they are: itself (an empty path),
/// or the items of a `kind: List`, of a List nested in it, and so on (the
/// path holds the item index at each level).
pub fn objects_with_paths(value: &Value) -> Vec<(Vec<usize>, &Value)> {
    fn walk<'a>(
        v: &'a Value,
        path: &mut Vec<usize>,
        depth: u8,
        out: &mut Vec<(Vec<usize>, &'a Value)>,
    ) {
        let items = v.get("items").and_then(Value::as_array);
        match items {
            Some(items) if is_list(v) && depth < 8 => {
                for (i, item) in items.iter().enumerate() {
                    path.push(i);
                    walk(item, path, depth + 1, out);
                    path.pop();
                }
            }
            _ => out.push((path.clone(), v)),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), 0, &mut out);
    out
}

/// The objects of a document: itself, or the items of a `kind: List`.
pub fn objects_of(value: &Value) -> Vec<&Value> {
    if is_list(value) {
        value
            .get("items")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    } else {
        vec![value]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_keeps_lines() {
        let src = parse_source(
            "x.yaml",
            None,
            "---\na: 1\n---\n# only a comment\n---\nb: 2\n",
        )
        .unwrap();
        assert_eq!(src.documents.len(), 3);
        assert_eq!(src.documents[0].value, Some(serde_json::json!({"a": 1})));
        assert_eq!(src.documents[0].line, 2);
        assert_eq!(src.documents[1].value, None);
        assert_eq!(src.documents[2].line, 6);
        assert_eq!(src.documents[2].index, 2);
        let again: String = src
            .documents
            .iter()
            .map(|d| format!("{}{}", d.separator, d.text))
            .collect();
        assert_eq!(again, "---\na: 1\n---\n# only a comment\n---\nb: 2\n");
    }

    #[test]
    fn bad_yaml_names_file_and_document() {
        let err = parse_source("x.yaml", None, "a: 1\n---\nb: [1, 2\n")
            .unwrap_err()
            .to_string();
        // The position is the file's line and column, not the document's.
        assert!(err.starts_with("x.yaml:3:4: unclosed bracket"), "{err}");
    }

    #[test]
    fn json_and_lists() {
        let src = parse_source(
            "l.json",
            None,
            r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"Pod"},{"kind":"Service"}]}"#,
        )
        .unwrap();
        assert_eq!(src.format, Format::Json);
        let v = src.documents[0].value.as_ref().unwrap();
        assert_eq!(objects_of(v).len(), 2);
    }

    #[test]
    fn wrapped_base64_in_secret_data_is_unwrapped() {
        let text = "kind: Secret\nmetadata:\n  name: s\ndata:\n  ca.crt: |\n    aGVs\n    bG8=\n";
        let src = parse_source("s.yaml", None, text).unwrap();
        let v = src.documents[0].value.as_ref().unwrap();
        assert_eq!(
            v.pointer("/data/ca.crt"),
            Some(&serde_json::json!("aGVsbG8="))
        );
        // The document text, written back by `fix`, is untouched.
        assert_eq!(src.documents[0].text, text);
        let list = "kind: List\nitems:\n- kind: ConfigMap\n  binaryData:\n    b: \"aG Vs\"\n  data:\n    d: \"a b\"\n";
        let src = parse_source("l.yaml", None, list).unwrap();
        let v = src.documents[0].value.as_ref().unwrap();
        assert_eq!(
            v.pointer("/items/0/binaryData/b"),
            Some(&serde_json::json!("aGVs"))
        );
        assert_eq!(
            v.pointer("/items/0/data/d"),
            Some(&serde_json::json!("a b"))
        );
    }

    #[test]
    fn octal_numbers_read_as_kubernetes_does() {
        let src = parse_source("x.yaml", None, "mode: 0644\nplain: 644\n").unwrap();
        assert_eq!(
            src.documents[0].value,
            Some(serde_json::json!({"mode": 420, "plain": 644}))
        );
    }

    #[test]
    fn no_separator_single_document() {
        let src = parse_source("x.yaml", None, "kind: Pod\nmetadata:\n  name: p\n").unwrap();
        assert_eq!(src.documents.len(), 1);
        assert_eq!(src.documents[0].line, 1);
    }
}
