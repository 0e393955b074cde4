//! `cargo xtask run`: the release server with the README's defaults.

use crate::exec::{cargo, run};
use crate::Result;

/// `setpoint run` with `args` passed through untouched.
pub fn setpoint(args: &[String]) -> Result {
    run(cargo()
        .args(["run", "--release", "-p", "setpoint", "--", "run"])
        .args(args))
}
