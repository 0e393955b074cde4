//! `cargo xtask soak`: the release server under load with churning clients (RELIABILITY.md).

use crate::exec::{cargo, run};
use crate::Result;

/// The full soak's length; RELIABILITY.md's figures are from runs this long.
pub const DEFAULT_SECS: u64 = 600;

/// The soak's length inside `cargo xtask test`: the harness's warm-up (a quarter of the run, at least 60 s)
/// and samples to compare, in thirds, after it. Shorter runs compare a few allocator peaks of the clients'
/// churn: RSS swings between about 49 and 67 MiB with no growth (a 300 s run: first third 56.8 MiB, last
/// 59.4 MiB, +4.6 %, the last sample below the peak), while a 180 s run read +14.2 % once from thirds of 40 s
/// (51.5 → 68.6 MiB between 90 s and 150 s, back to 55 MiB by 270 s in the longer run).
pub const CI_SECS: u64 = 300;

/// Builds the release server (the harness starts it as a child) and runs the soak harness against it.
pub fn soak(secs: u64) -> Result {
    run(cargo().args(["build", "--release", "-p", "setpoint"]))?;
    run(cargo()
        .args(["run", "--release", "-p", "setpoint-bench", "--bin", "soak", "--"])
        .arg(secs.to_string()))
}
