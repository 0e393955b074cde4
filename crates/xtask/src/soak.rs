//! `cargo xtask soak`: the release server under load with churning clients (RELIABILITY.md).

use crate::exec::{cargo, run};
use crate::Result;

/// The full soak's length; RELIABILITY.md's figures are from runs this long.
pub const DEFAULT_SECS: u64 = 600;

/// The soak's length inside `cargo xtask test`: the harness's 60 s warm-up (RSS levels off about 50 s into
/// the run) and a minute of samples to compare, in thirds, after it.
pub const CI_SECS: u64 = 120;

/// Builds the release server (the harness starts it as a child) and runs the soak harness against it.
pub fn soak(secs: u64) -> Result {
    run(cargo().args(["build", "--release", "-p", "setpoint"]))?;
    run(cargo()
        .args(["run", "--release", "-p", "setpoint-bench", "--bin", "soak", "--"])
        .arg(secs.to_string()))
}
