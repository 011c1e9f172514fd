//! The limits of what the apiserver accepts in an answer, and the helpers
//! that keep within them: warnings (each under 120 characters, all under
//! 4 KiB) and audit annotation keys (`[A-Za-z0-9._-]`, at most 63
//! characters, no `/`).
use std::collections::BTreeMap;

/// Longest warning in bytes (and so in characters): under 120.
pub const WARNING_MAX: usize = 119;
/// Budget for all warnings together, in bytes: under 4 KiB.
pub const WARNINGS_TOTAL_MAX: usize = 4000;
/// Longest audit annotation key.
pub const ANNOTATION_KEY_MAX: usize = 63;
/// Longest audit annotation value we write.
pub const ANNOTATION_VALUE_MAX: usize = 1024;
/// Most audit annotations we write for findings and exemptions.
pub const ANNOTATION_FINDING_KEYS_MAX: usize = 24;
/// Longest denial message in bytes.
pub const MESSAGE_MAX: usize = 3072;

/// Cut `s` to at most `max` bytes on a character boundary, ending in `...`
/// when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Keep warnings within the limits: each cut to [`WARNING_MAX`], duplicates
/// dropped, in the given order (most severe first), and a final
/// "and N more" when the total budget runs out.
pub fn cap_warnings(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for w in items {
        let w = truncate(w.trim(), WARNING_MAX);
        if !w.is_empty() && !all.contains(&w) {
            all.push(w);
        }
    }
    // Room for the "and N more" line.
    const TAIL: usize = 40;
    let total: usize = all.iter().map(String::len).sum();
    if total <= WARNINGS_TOTAL_MAX {
        return all;
    }
    let mut out = Vec::new();
    let mut used = 0;
    for w in &all {
        if used + w.len() > WARNINGS_TOTAL_MAX - TAIL {
            break;
        }
        used += w.len();
        out.push(w.clone());
    }
    let more = all.len() - out.len();
    out.push(format!("and {more} more (see `tiergate check`)"));
    out
}

/// A valid audit annotation key: characters outside `[A-Za-z0-9._-]` become
/// `-`, at most 63 characters, never empty.
pub fn annotation_key(raw: &str) -> String {
    let mut k: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(ANNOTATION_KEY_MAX)
        .collect();
    if k.is_empty() {
        k.push('-');
    }
    k
}

/// Whether a key is one the apiserver keeps.
pub fn is_valid_annotation_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= ANNOTATION_KEY_MAX
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Audit annotations under construction, keeping keys valid and sizes bounded.
#[derive(Debug, Default)]
pub struct Annotations {
    map: BTreeMap<String, String>,
    bounded_keys: usize,
    dropped: usize,
}

impl Annotations {
    /// Set a fixed key (always kept).
    pub fn set(&mut self, key: &str, value: impl AsRef<str>) {
        self.map.insert(
            annotation_key(key),
            truncate(value.as_ref(), ANNOTATION_VALUE_MAX),
        );
    }

    /// Append to a per-rule key (bounded in number; values joined by `; `).
    pub fn append(&mut self, key: &str, value: &str) {
        let key = annotation_key(key);
        match self.map.get_mut(&key) {
            Some(v) => {
                let joined = format!("{v}; {value}");
                *v = truncate(&joined, ANNOTATION_VALUE_MAX);
            }
            None if self.bounded_keys < ANNOTATION_FINDING_KEYS_MAX => {
                self.bounded_keys += 1;
                self.map.insert(key, truncate(value, ANNOTATION_VALUE_MAX));
            }
            None => self.dropped += 1,
        }
    }

    pub fn finish(mut self) -> BTreeMap<String, String> {
        if self.dropped > 0 {
            self.map
                .insert("more".to_string(), format!("{} more", self.dropped));
        }
        self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_cut_and_counted() {
        let long = "x".repeat(500);
        let many: Vec<String> = (0..200)
            .map(|i| format!("{i:03} {}", "w".repeat(100)))
            .collect();
        let out = cap_warnings(std::iter::once(long).chain(many));
        assert!(out.iter().all(|w| w.len() < 120 && w.chars().count() < 120));
        assert!(out.iter().map(String::len).sum::<usize>() < 4096);
        assert!(out[0].starts_with("xxx") && out[0].ends_with("..."));
        let last = out.last().unwrap();
        assert!(last.starts_with("and ") && last.contains(" more"), "{last}");
        let n: usize = last.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(n + out.len() - 1, 201);
    }

    #[test]
    fn small_warning_lists_are_kept_whole_and_deduplicated() {
        let out = cap_warnings(vec!["a".into(), "b".into(), "a".into()]);
        assert_eq!(out, vec!["a", "b"]);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "é".repeat(100);
        let t = truncate(&s, 119);
        assert!(t.len() <= 119 && t.ends_with("..."));
    }

    #[test]
    fn annotation_keys_are_valid() {
        assert_eq!(
            annotation_key("finding.app.kubernetes.io/name"),
            "finding.app.kubernetes.io-name"
        );
        assert_eq!(annotation_key(""), "-");
        let k = annotation_key(&"a/b c".repeat(40));
        assert!(is_valid_annotation_key(&k) && k.len() == 63);
        let mut a = Annotations::default();
        for i in 0..100 {
            a.append(&format!("finding.rule-{i}"), &"v".repeat(3000));
        }
        let m = a.finish();
        assert!(m.keys().all(|k| is_valid_annotation_key(k)));
        assert!(m.values().all(|v| v.len() <= ANNOTATION_VALUE_MAX));
        assert_eq!(m.get("more").map(String::as_str), Some("76 more"));
    }
}
