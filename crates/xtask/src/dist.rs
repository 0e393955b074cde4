//! The dashboard build: Trunk into `dist/`, which the server hosts and the browser tests load.

use std::process::Command;

use crate::exec::{root, run};
use crate::Result;

/// Builds the dashboard into `dist/` with Trunk, offline, in release mode (wasm-opt runs when present).
pub fn build_dashboard() -> Result {
    if !root().join("crates/dashboard").exists() {
        return Ok(());
    }
    // Trunk.toml sets `offline`; its own update check reads only this variable.
    run(Command::new("trunk")
        .args(["build", "--release"])
        .env("TRUNK_SKIP_VERSION_CHECK", "true"))
}
