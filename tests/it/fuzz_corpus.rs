//! The fuzz corpus replayed on stable: every file under
//! `fuzz/corpus/<target>/` (the seeds, and every input a fuzzing run found
//! crashing, kept as a regression) goes through the harness its fuzz target
//! calls, `telegate::fuzzing::<target>`. Files a local run left in
//! `fuzz/artifacts/<target>/` are replayed too, so a crash not yet fixed
//! fails here before it reaches CI. Fuzzing itself needs nightly
//! (`cargo +nightly fuzz run <target>`, docs/security.md); this does not.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use telegate::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir` (none when it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_passes_its_harness() {
    let mut failed = Vec::new();
    let mut replayed = 0;
    for (name, harness) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ has no seed");
        let artifacts = files(&fuzz_dir().join("artifacts").join(name));
        for file in corpus.iter().chain(&artifacts) {
            let data = std::fs::read(file).expect("read a corpus file");
            replayed += 1;
            if catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {replayed} inputs panicked (the message of each is above):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn every_fuzz_target_calls_its_harness() {
    let harnesses: BTreeSet<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    let mut targets = BTreeSet::new();
    for file in files(&fuzz_dir().join("fuzz_targets")) {
        let name = file.file_stem().expect("a file name").to_string_lossy();
        let code = std::fs::read_to_string(&file).expect("read a fuzz target");
        assert!(
            code.contains(&format!("telegate::fuzzing::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs must call telegate::fuzzing::{name}"
        );
        targets.insert(name.into_owned());
    }
    let targets: BTreeSet<&str> = targets.iter().map(String::as_str).collect();
    assert_eq!(
        targets, harnesses,
        "fuzz targets and fuzzing::TARGETS differ"
    );
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &harnesses {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
    }
}
