//! Project automation, in Rust instead of shell scripts (the rust-analyzer convention).
//!
//! `cargo xtask run` and `cargo xtask test` are the README's two commands. Both first install what they
//! need, skipping what is present, so they work on a fresh machine and cost nothing on the second run:
//! `run` the dashboard's build tools (the wasm32 target, trunk, wasm-bindgen-cli pinned to the version in
//! Cargo.lock), `test` also Debian's chromium/chromedriver and the Tansu test broker.
//!
//! Layout: this file parses the command line ([`Cmd`]) and chains the steps of each command; one module
//! per step:
//! - `exec`: running commands from the repository root;
//! - `setup`: installing the tools; `dist`: the Trunk build of the dashboard;
//! - `run`: `setpoint run`; `test`: the test suites and the CI gate;
//! - `bench`, `soak`, `fuzz`: the longer measurements of BENCHMARKS.md and RELIABILITY.md.

mod bench;
mod dist;
mod exec;
mod fuzz;
mod run;
mod setup;
mod soak;
mod test;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Errors as text: each says which command failed, and `main` prints it.
type Result<T = ()> = std::result::Result<T, String>;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Installs what setpoint needs, runs it, tests it"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing, build the dashboard, start `setpoint run` (ARGS go to it)
    // No help flag of our own: `cargo xtask run --help` shows `setpoint run --help`, as it always has.
    #[command(disable_help_flag = true)]
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install what is missing, build the dashboard, run every test (native, WASM, browser)
    Test,
    /// fmt --check, clippy -D warnings, then test
    Ci,
    /// Only install what is missing
    Setup,
    /// Run a benchmark (see BENCHMARKS.md)
    Bench {
        #[arg(value_enum)]
        which: bench::Bench,
    },
    /// The embedded runtime under load with churning clients; RSS must stay flat
    Soak {
        #[arg(default_value_t = soak::DEFAULT_SECS)]
        secs: u64,
    },
    /// Every libFuzzer target for SECS each (nightly + cargo-fuzz)
    Fuzz {
        #[arg(default_value_t = fuzz::DEFAULT_SECS)]
        secs: u64,
    },
    /// Only build the dashboard into dist/
    Dist,
}

fn main() -> ExitCode {
    let Some(command) = Cli::parse().command else {
        // A bare `cargo xtask` is a question, not a mistake: answer it and succeed.
        let _ = Cli::command().print_help();
        return ExitCode::SUCCESS;
    };
    match dispatch(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Cmd) -> Result {
    match command {
        Cmd::Setup => setup::setup(),
        Cmd::Dist => prepare(),
        Cmd::Run { args } => {
            prepare()?;
            run::setpoint(&args)
        }
        Cmd::Test => {
            setup::for_tests()?;
            prepare()?;
            test::all()?;
            bench::bench(bench::Bench::Smoke)?;
            soak::soak(soak::CI_SECS)
        }
        Cmd::Ci => {
            setup::for_tests()?;
            prepare()?;
            test::ci()
        }
        Cmd::Bench { which } => bench::bench(which),
        Cmd::Soak { secs } => soak::soak(secs),
        Cmd::Fuzz { secs } => fuzz::fuzz(secs),
    }
}

/// What every command that serves or tests the dashboard needs first: the build's tools, then `dist/`.
fn prepare() -> Result {
    setup::for_run()?;
    dist::build_dashboard()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(argv: &[&str]) -> Vec<String> {
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Some(Cmd::Run { args })) => args,
            _ => panic!("{argv:?} is not a run"),
        }
    }

    #[test]
    fn run_passes_its_flags_through_with_or_without_a_separator() {
        let want = ["--sensors", "20", "--listen", "127.0.0.1:9000"];
        assert_eq!(
            run_args(&["xtask", "run", "--sensors", "20", "--listen", "127.0.0.1:9000"]),
            want
        );
        assert_eq!(
            run_args(&[
                "xtask",
                "run",
                "--",
                "--sensors",
                "20",
                "--listen",
                "127.0.0.1:9000"
            ]),
            want
        );
        assert_eq!(run_args(&["xtask", "run", "--help"]), ["--help"]);
        assert!(run_args(&["xtask", "run"]).is_empty());
    }

    #[test]
    fn numbers_and_benchmarks_are_checked_before_anything_runs() {
        assert!(Cli::try_parse_from(["xtask", "soak", "ten"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "bench", "nope"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["xtask", "fuzz"]).map(|c| c.command),
            Ok(Some(Cmd::Fuzz {
                secs: fuzz::DEFAULT_SECS
            }))
        ));
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
