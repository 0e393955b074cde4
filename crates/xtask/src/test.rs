//! `cargo xtask test` and `cargo xtask ci`: every test, natively and in wasm32.

use crate::exec::{cargo, root, run};
use crate::setup::WASM_TARGET;
use crate::Result;

/// Every test: the workspace natively (unit, integration, Kafka against Tansu, browser end-to-end), then
/// the control crate and the dashboard's state logic compiled to wasm32 and run under Node by
/// wasm-bindgen-test-runner.
pub fn all() -> Result {
    run(cargo()
        .args(["test", "--workspace"])
        .env("SETPOINT_DIST", root().join("dist")))?;
    run(cargo()
        .args(["test", "--target", WASM_TARGET])
        .args(["-p", "setpoint-control", "-p", "setpoint-dashboard"])
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            "wasm-bindgen-test-runner",
        ))
}

/// What CI gates on: formatting and lints first, since they fail in seconds and the tests take minutes.
pub fn ci() -> Result {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    all()
}
