//! Build script: the revision `{ns}_build_info{revision}` reports.
//!
//! `TELEGATE_REVISION` from the environment wins (a container build passes
//! it as a build argument, since the image has no `.git`); else the short
//! commit from `git rev-parse`; else `unknown`, so a build from a tarball
//! without `.git` (or without git installed) still works.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TELEGATE_REVISION");
    let revision = std::env::var("TELEGATE_REVISION")
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    // A label value: keep it short and printable whatever the source said.
    let revision: String = revision
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    println!("cargo:rustc-env=TELEGATE_REVISION={revision}");
}

/// The short commit, and rebuild triggers on HEAD and the branch it points
/// to (in a worktree both live under the git directory git names).
fn git_revision() -> Option<String> {
    let revision = git(&["rev-parse", "--short=12", "HEAD"])?;
    for path in [
        Some("HEAD".to_string()),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(file) = git(&["rev-parse", "--git-path", &path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    Some(revision)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
