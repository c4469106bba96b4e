//! Records the commit the binary is built from, for `hypersweep --version`: `abc1234 2026-12-05`,
//! with `+changes` when the work tree differs from it, or `unknown commit` outside a git checkout.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

// Cargo reads a build script's stdout; `println!` is its protocol (the pipe is never closed).
#[allow(clippy::disallowed_macros)]
fn main() {
    let commit = match (
        git(&["rev-parse", "--short=9", "HEAD"]),
        git(&["log", "-1", "--format=%cs"]),
    ) {
        (Some(hash), Some(date)) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
            format!("{hash}{} {date}", if dirty { "+changes" } else { "" })
        }
        _ => "unknown commit".to_string(),
    };
    println!("cargo:rustc-env=HYPERSWEEP_COMMIT={commit}");
    // A new commit moves HEAD or the branch it names; sources changing is cargo's own trigger.
    if Path::new(".git/HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed=.git/{head}");
        }
        println!("cargo:rerun-if-changed=.git/index");
        println!("cargo:rerun-if-changed=src");
    }
}
