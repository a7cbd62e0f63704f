//! The README is the front door: what it promises must be checked by the
//! tests it names. Every test it cites in its Guarantees section must exist,
//! so a renamed or deleted test cannot leave a guarantee backed by nothing.

use std::collections::BTreeSet;
use std::path::Path;

/// Every `fn` name in the workspace's Rust sources (tests, benches, src),
/// outside `target/`.
fn function_names(root: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for rest in text.split("fn ").skip(1) {
                    let ident: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    names.insert(ident);
                }
            }
        }
    }
    names
}

/// The section of `readme` under `## {title}`, up to the next `## `.
fn section<'a>(readme: &'a str, title: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("the README has no section {title:?}"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// Backticked snake_case words of four or more parts: how the README names
/// a test (`a_torn_tail_is_cut_off`); config keys and API names are shorter
/// (`max_attempts`, `spawn_blocking`).
fn cited_tests(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            word.split('_').count() >= 4
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_test_the_guarantees_cite_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let cited = cited_tests(section(&readme, "Guarantees"));
    assert!(
        cited.len() >= 10,
        "too few tests found in the Guarantees: {cited:?}"
    );
    let names = function_names(root);
    let missing: Vec<&String> = cited.iter().filter(|name| !names.contains(*name)).collect();
    assert!(
        missing.is_empty(),
        "the README's Guarantees cite tests that do not exist: {missing:?}"
    );
}

#[test]
fn a_missing_test_is_found() {
    let cited = cited_tests("(`tests/x.rs`: `a_torn_tail_is_truncated`, `max_attempts`)");
    assert_eq!(cited, BTreeSet::from(["a_torn_tail_is_truncated".to_owned()]));
}
