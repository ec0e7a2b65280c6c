//! The dependency direction of `docs/architecture.md`, kept: every file
//! under `src/` may name (`crate::...`) only modules of its own layer or of
//! the layers below it. Doc comments and test-only code are not counted
//! (a test may reach across to build what it checks).

use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "clock",
            "env",
            "secret",
            "secret_file",
            "ip",
            "prehashed",
            "test_support",
        ],
    ),
    ("protocol", &["protocol"]),
    ("config", &["config"]),
    ("pipeline", &["pipeline"]),
    ("session", &["session"]),
    ("ingest", &["ingest"]),
    ("http", &["http"]),
    (
        "startup",
        &[
            "reload",
            "fuzzing",
            "logging",
            "startup",
            "cli",
            "healthcheck",
            "main",
            "lib",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without doc comments and without its test modules.
fn production_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        // `#[cfg(test)]` before a `mod`: the rest of the file is tests (the
        // crate keeps test modules last, or in files of their own).
        if trimmed == "#[cfg(test)]" {
            let next = lines.peek().map(|l| l.trim()).unwrap_or("");
            let declaration = if next.starts_with("#[path") {
                lines.clone().nth(1).map(str::trim).unwrap_or("")
            } else {
                next
            };
            if declaration.contains("mod ") {
                if declaration.ends_with(';') {
                    // A test module in a file of its own (skipped above).
                    continue;
                }
                break;
            }
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

#[test]
fn dependencies_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let name = relative.to_string_lossy();
        if name.contains("tests")
            || name.ends_with("conformance.rs")
            || name.contains("conformance/")
        {
            continue; // test-only files
        }
        let top = relative
            .components()
            .next()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .expect("a component");
        let own = layer_of(&top)
            .unwrap_or_else(|| panic!("{name}: module {top} has no layer in tests/layers.rs"));
        let code = production_code(&std::fs::read_to_string(file).expect("read file"));
        for (index, _) in code.match_indices("crate::") {
            let used: String = code[index + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let Some(theirs) = layer_of(&used) else {
                wrong.push(format!("{name}: crate::{used} has no layer"));
                continue;
            };
            if theirs > own {
                wrong.push(format!(
                    "{name} ({}) uses crate::{used} ({})",
                    LAYERS[own].0, LAYERS[theirs].0
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "upward dependencies:\n{}",
        wrong.join("\n")
    );
}
