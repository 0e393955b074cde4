//! The `setpoint` binary as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_setpoint");

#[test]
fn refuses_a_non_loopback_address_without_an_explicit_token() {
    let out = Command::new(BIN)
        .args(["run", "--listen", "0.0.0.0:0"])
        .env_remove("SETPOINT_TOKEN")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token") && stderr.contains("0.0.0.0"),
        "{stderr}"
    );
}

#[test]
fn help_explains_every_subcommand_and_env_vars() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "controller", "bridge", "simulate"] {
        assert!(help.contains(word), "{help}");
    }
    let out = Command::new(BIN).args(["run", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("SETPOINT_LISTEN") && help.contains("SETPOINT_TOKEN"),
        "{help}"
    );
}

#[cfg(unix)]
#[test]
fn run_prints_the_url_with_the_token_and_exits_cleanly_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["run", "--in-memory", "--listen", "127.0.0.1:0", "--sensors", "2"])
        .env("SETPOINT_TOKEN", "cli-test-token-0123456789")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut url = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(u) = line.trim().strip_prefix("http://") {
            url = Some(u.to_owned());
            break;
        }
        assert!(Instant::now() < deadline, "no URL printed");
    }
    let url = url.expect("a URL");
    assert!(url.ends_with("/#token=cli-test-token-0123456789"), "{url}");
    let host = url.split('/').next().expect("host");
    assert!(
        !host.ends_with(":0"),
        "the printed URL has the bound port: {host}"
    );
    std::net::TcpStream::connect(host).expect("serving on the printed address");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
