//! `cargo xtask soak`: the release server under load with churning clients (RELIABILITY.md).

use crate::exec::{cargo, run};
use crate::Result;

/// The full soak's length; RELIABILITY.md's figures are from runs this long.
pub const DEFAULT_SECS: u64 = 600;

/// The soak's length inside `cargo xtask test`: the harness's 60 s warm-up (RSS levels off about 50 s into
/// the run) and two minutes of samples to compare, in thirds, after it. One minute was too few: thirds of
/// 20 s compare a few allocator peaks of the clients' churn (CI once read +13.3 % where the same run over
/// 180 s read +4.9 %, with no growth across it).
pub const CI_SECS: u64 = 180;

/// Builds the release server (the harness starts it as a child) and runs the soak harness against it.
pub fn soak(secs: u64) -> Result {
    run(cargo().args(["build", "--release", "-p", "setpoint"]))?;
    run(cargo()
        .args(["run", "--release", "-p", "setpoint-bench", "--bin", "soak", "--"])
        .arg(secs.to_string()))
}
