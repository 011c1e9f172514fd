//! Reading YAML the way Kubernetes does, with errors a user can act on: one
//! place for the parser options and for turning a parser error into
//! `line:column: message` of the user's file.
use serde::de::DeserializeOwned;
use serde_saphyr::MessageFormatter;

/// A YAML error at a place in the user's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based line in the file (not in the document), when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong, in the user's terms (no parser-library hints).
    pub message: String,
}

impl YamlError {
    /// `file:line:column: message`, the form editors and CI annotations read.
    pub fn at(&self, file: &str) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{file}:{l}:{c}: {}", self.message),
            (Some(l), None) => format!("{file}:{l}: {}", self.message),
            _ => format!("{file}: {}", self.message),
        }
    }
}

/// Parse `text`, which starts at 1-based line `first_line` of its file.
/// Kubernetes reads manifests as YAML 1.1, so `0644` is octal (420).
pub fn from_str_at<T: DeserializeOwned>(text: &str, first_line: u64) -> Result<T, YamlError> {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| error_at(&e, first_line))
}

/// Parse a whole file's text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    from_str_at(text, 1)
}

fn error_at(e: &serde_saphyr::Error, first_line: u64) -> YamlError {
    let inner = e.without_snippet();
    let location = inner.location().filter(|l| l.line() > 0);
    let message = serde_saphyr::UserMessageFormatter
        .format_message(inner)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    YamlError {
        line: location.map(|l| l.line() + first_line.saturating_sub(1)),
        column: location.map(|l| l.column()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn positions_are_file_lines_and_messages_have_no_library_hints() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n  name: c\n";
        let e = from_str_at::<Value>(text, 5).unwrap_err();
        assert_eq!((e.line, e.column), (Some(9), Some(3)), "{e:?}");
        assert!(e.message.contains("duplicate mapping key"), "{e:?}");
        assert!(!e.message.contains("DuplicateKeyPolicy"), "{e:?}");
        assert!(!e.message.contains("<input>"), "{e:?}");
        assert!(
            e.at("dup.yaml").starts_with("dup.yaml:9:3: "),
            "{}",
            e.at("dup.yaml")
        );
    }

    #[test]
    fn octal_is_yaml_1_1() {
        let v: Value = from_str("mode: 0644\n").unwrap();
        assert_eq!(v, serde_json::json!({"mode": 420}));
    }
}
