//! Running commands: in the repository root, echoed before they start, failing with their command line.

use std::borrow::BorrowMut;
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

/// The repository root, whatever directory `cargo xtask` was started from.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}

/// The cargo that started us, so that a `+toolchain` choice carries over.
pub fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs a command in the repository root, failing with its command line if it fails. Takes the command
/// by value or by `&mut`, so that both a builder chain and a finished `Command` fit.
pub fn run(mut cmd: impl BorrowMut<Command>) -> Result {
    let cmd = cmd.borrow_mut();
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

pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Stdout of a command, or None if it cannot run or fails: the probes that decide what to install.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn on_path(program: &str) -> bool {
    output("sh", &["-c", &format!("command -v {program}")]).is_some()
}
