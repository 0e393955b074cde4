//! `cargo xtask bench`: the benchmarks of BENCHMARKS.md, one per variant of [`Bench`].

use clap::ValueEnum;

use crate::exec::{cargo, describe, root, run};
use crate::setup::WASM_TARGET;
use crate::Result;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Bench {
    /// criterion, the control crate
    Core,
    /// native vs WASM on the same trace
    Wasm,
    /// the embedded runtime's load generator
    Pipeline,
    /// the pipeline against a Kafka broker
    Kafka,
    /// WebSocket fan-out to many browsers
    Fanout,
    /// a new browser's history: 200 sensors × 15 min of readings and decisions
    Backfill,
    /// the built dashboard in headless Chromium
    Dashboard,
    /// 100,000 rooms at 10,000 readings/s: memory, API page, a browser's first card, 1,000 clients
    Scale,
    /// the same building on Kafka: 2 controllers, 2 bridges behind the harness as load balancer
    Scaleout,
    /// control quality in the loop: rooms × 24 simulated hours per model, policy and decision delay
    Comfort,
    /// seconds-long comfort, pipeline, backfill and scale runs for CI that fail only on gross regressions,
    /// missed comfort targets or wrong answers
    Smoke,
}

pub fn bench(which: Bench) -> Result {
    match which {
        Bench::Core => run(cargo().args(["bench", "-p", "setpoint-control", "--bench", "core"])),
        Bench::Wasm => wasm(),
        Bench::Pipeline => run(release_bin("setpoint-bench")),
        Bench::Kafka => run(release_bin("kafka")),
        Bench::Backfill => run(release_bin("backfill")),
        Bench::Fanout => {
            // The fan-out harness starts the release server as a child; it does not build it.
            run(cargo().args(["build", "--release", "-p", "setpoint"]))?;
            run(release_bin("fanout"))
        }
        Bench::Dashboard => browser_bench("dashboard_bench"),
        Bench::Scale => browser_bench("scale_bench"),
        Bench::Scaleout => {
            // The harness starts Tansu and the release roles as children; it does not build them.
            crate::setup::for_tests()?;
            run(cargo().args(["build", "--release", "-p", "setpoint"]))?;
            run(release_bin("scaleout"))
        }
        Bench::Comfort => run(release_bin("comfort").env("BENCH_ASSERT", "1")),
        Bench::Smoke => {
            // A small building, every answer checked against the offline reference and the targets held.
            run(release_bin("comfort")
                .env("COMFORT_ROOMS", "4")
                .env("BENCH_ASSERT", "1"))?;
            run(release_bin("setpoint-bench")
                .env("BENCH_SECS", "1")
                .env("BENCH_ASSERT", "1"))?;
            run(release_bin("backfill")
                .env("BENCH_RUNS", "3")
                .env("BENCH_ASSERT", "1"))?;
            // The scale benchmark small: 10,000 rooms at 10,000 readings/s, 200 clients. Every answer is
            // still checked (a wrong one fails); the targets are the full run's.
            run(cargo().args(["build", "--release", "-p", "setpoint"]))?;
            run(cargo()
                .args(["run", "--release", "-p", "setpoint-e2e", "--bin", "scale_bench"])
                .env("SCALE_ROOMS", "10000")
                .env("SCALE_INTERVAL_MS", "1000")
                .env("SCALE_WARMUP_SECS", "5")
                .env("SCALE_CLIENTS", "200")
                .env("SCALE_SECS", "3"))
        }
    }
}

/// A benchmark of the release server and the built dashboard in headless Chromium (setpoint-e2e's `bin`).
fn browser_bench(bin: &str) -> Result {
    crate::setup::setup()?;
    crate::dist::build_dashboard()?;
    run(cargo().args(["build", "--release", "-p", "setpoint"]))?;
    run(cargo().args(["run", "--release", "-p", "setpoint-e2e", "--bin", bin]))
}

/// `cargo run --release` of one of setpoint-bench's binaries.
fn release_bin(bin: &str) -> std::process::Command {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "setpoint-bench", "--bin", bin]);
    cmd
}

/// Native vs WASM on the same trace, both release builds, in one run: prints ns per reading and the ratio.
fn wasm() -> Result {
    let native = speed(None)?;
    let wasm = speed(Some(WASM_TARGET))?;
    println!(
        "native {native:.2} ns/reading, wasm {wasm:.2} ns/reading, wasm/native {:.2}",
        wasm / native
    );
    Ok(())
}

/// Runs the control crate's `speed` test and reads its `SPEED <what> <ns>` line.
fn speed(target: Option<&str>) -> Result<f64> {
    let mut cmd = cargo();
    cmd.current_dir(root())
        .args(["test", "--release", "-p", "setpoint-control", "--test", "speed"]);
    if let Some(t) = target {
        cmd.args(["--target", t]).env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            "wasm-bindgen-test-runner",
        );
    }
    cmd.args(["--", "--nocapture"])
        .env("SETPOINT_SPEED_ROUNDS", "2000");
    eprintln!("xtask: $ {}", describe(&cmd));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {}: {e}", describe(&cmd)))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("SPEED "))
        .ok_or_else(|| format!("no SPEED line in:\n{text}"))?;
    eprintln!("{}", line.trim());
    line.split_whitespace()
        .skip_while(|w| *w != "SPEED")
        .nth(2)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("cannot parse {line}"))
}
