//! `cargo xtask fuzz`: every libFuzzer target for a bounded time, keeping what it finds.

use std::path::Path;
use std::process::Command;

use crate::exec::{cargo, output, run};
use crate::Result;

/// Each target's time when none is given.
pub const DEFAULT_SECS: u64 = 300;

/// Fuzz targets, as `crates/fuzz-targets` names them.
const TARGETS: [&str; 4] = ["protobuf", "ws_json", "setpoint", "controller"];

/// Runs every target for `secs`, seeded from the checked-in seeds and the local corpus, and copies any
/// crash into `crates/fuzz/regressions/<target>/`, where the stable replay test picks it up. Needs a
/// nightly toolchain and cargo-fuzz (installed here if missing); the stable replay in `cargo xtask test`
/// does not.
pub fn fuzz(secs: u64) -> Result {
    if output("rustup", &["run", "nightly", "rustc", "--version"]).is_none() {
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    // rustup's `cargo` proxy, not $CARGO: only the proxy understands `+nightly`.
    if output("cargo", &["fuzz", "--version"]).is_none() {
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = crate::exec::root().join("crates/fuzz");
    let mut summary = Vec::new();
    for target in TARGETS {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let seeds = dir.join("seeds").join(target);
        let result = run(Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--fuzz-dir", "crates/fuzz", target])
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .args(["-rss_limit_mb=2048", "-timeout=10"]));
        let crashes = keep_crashes(&dir, target)?;
        let size = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        summary.push(format!(
            "{target}: {secs} s, corpus {size} inputs, {crashes} new crash(es)"
        ));
        if let Err(e) = result {
            summary.push(format!("{target}: {e}"));
            eprintln!("{}", summary.join("\n"));
            return Err(format!(
                "fuzz target {target} found a crash; it was saved as a regression"
            ));
        }
    }
    println!("{}", summary.join("\n"));
    Ok(())
}

/// Copies libFuzzer's crash artifacts for `target` into the checked-in regressions; returns how many.
fn keep_crashes(dir: &Path, target: &str) -> Result<usize> {
    let artifacts = dir.join("artifacts").join(target);
    let keep = dir.join("regressions").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&artifacts).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("crash-") {
            continue;
        }
        std::fs::create_dir_all(&keep).map_err(|e| format!("{}: {e}", keep.display()))?;
        let dest = keep.join(&name);
        if !dest.exists() {
            std::fs::copy(entry.path(), &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
            n += 1;
        }
    }
    Ok(n)
}
