//! `cargo xtask soak`: the release server under load with churning clients (RELIABILITY.md).

use crate::exec::{cargo, run};
use crate::Result;

/// The full soak's length; RELIABILITY.md's figures are from runs this long.
pub const DEFAULT_SECS: u64 = 600;

/// The soak's length inside `cargo xtask test`: long enough to see RSS settle, short enough for CI.
pub const CI_SECS: u64 = 60;

/// Builds the release server (the harness starts it as a child) and runs the soak harness against it.
pub fn soak(secs: u64) -> Result {
    run(cargo().args(["build", "--release", "-p", "setpoint"]))?;
    run(cargo()
        .args(["run", "--release", "-p", "setpoint-bench", "--bin", "soak", "--"])
        .arg(secs.to_string()))
}
