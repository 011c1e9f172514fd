//! The arrows that must never exist (docs/ARCHITECTURE.md): the policy engine
//! knows no HTTP, no cluster, no terminal and no file; it imports nothing
//! from the admission layer, the server, the cluster caches, the CLI or the
//! config loader. Checked on the source text, so a new file cannot slip by.
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Code lines only: `//` comments (and doc comments) may name anything.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
}

/// `crate::X` paths a file's code uses, from `use crate::X` and inline paths.
fn offending(text: &str, forbidden: &[&str]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code_lines(text) {
        for f in forbidden {
            if line.contains(f) {
                found.push((n, line.trim().to_string()));
            }
        }
    }
    found
}

#[test]
fn the_engine_uses_nothing_outside_itself() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rust_files(&root.join("src/policy"));
    assert!(
        files.len() > 40,
        "only {} files under src/policy",
        files.len()
    );
    let forbidden = [
        // Other parts of tiergate.
        "crate::admission",
        "crate::server",
        "crate::cluster",
        "crate::cli",
        "crate::config",
        "crate::manifest",
        // I/O, async, HTTP, the cluster client, the terminal.
        "std::fs",
        "std::net",
        "std::io",
        "std::process",
        "std::thread",
        "tokio::",
        "axum::",
        "hyper::",
        "rustls::",
        "reqwest::",
        "notify::",
        "kube::Client",
        "kube::runtime",
        "kube::Api",
        "println!",
        "eprintln!",
        "SystemTime",
        "Instant::now",
    ];
    let mut violations = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        for (line, code) in offending(&text, &forbidden) {
            violations.push(format!(
                "{}:{line}: {code}",
                f.strip_prefix(root).unwrap_or(f).display()
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "src/policy must stay pure (see docs/ARCHITECTURE.md):\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn the_check_itself_can_fail() {
    let text = "use crate::server::http;\n// crate::cluster in a comment is fine\nlet x = 1;\n";
    let found = offending(text, &["crate::server", "crate::cluster"]);
    assert_eq!(found, vec![(1, "use crate::server::http;".to_string())]);
}

#[test]
fn the_architecture_doc_names_every_top_level_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc =
        std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).expect("src/lib.rs");
    for line in lib.lines() {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|m| m.strip_suffix(';'))
        {
            assert!(
                doc.contains(&format!("`{m}/`")) || doc.contains(&format!("`{m}.rs`")),
                "docs/ARCHITECTURE.md does not describe src/{m}"
            );
        }
    }
}
