//! The `setpoint` binary as an operator runs it.

mod common;

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
fn run_prints_the_url_without_a_given_secret_and_exits_cleanly_on_sigterm() {
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
    // The operator gave the token: it is theirs already, and stdout often lands in a journal.
    assert!(!url.contains("cli-test-token"), "{url}");
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

/// Runs `setpoint run` until it prints its URL (or fails to start); returns stdout, stderr and whether it
/// started.
#[cfg(unix)]
fn start_and_stop(args: &[&str], env: &[(&str, &str)]) -> (String, String, bool) {
    let log = std::env::temp_dir().join(format!("setpoint-cli-{}-{}.log", std::process::id(), args.len()));
    let mut child = Command::new(BIN)
        .args(["run", "--in-memory", "--listen", "127.0.0.1:0", "--sensors", "1"])
        .args(args)
        .env_remove("SETPOINT_TOKEN")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut out = String::new();
    let mut started = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        out.push_str(&line);
        out.push('\n');
        if line.contains("To change setpoints") || line.contains("#token=") {
            started = true;
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    (out, err, started)
}

#[cfg(unix)]
#[test]
fn a_tokens_file_others_can_read_is_refused_and_a_private_one_is_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tokens");
    std::fs::write(&path, "ops=file-secret-0123456789abc\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let file = path.to_str().expect("utf-8");
    let (_, err, started) = start_and_stop(&["--tokens-file", file], &[]);
    assert!(!started, "started with a world-readable tokens file");
    assert!(err.contains("chmod 600") && !err.contains("file-secret"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (out, err, started) = start_and_stop(&["--tokens-file", file], &[]);
    assert!(started, "{err}");
    assert!(
        !out.contains("file-secret") && !err.contains("file-secret"),
        "{out}{err}"
    );
    // A token on the command line works, with a warning that the process list shows it.
    let (out, err, started) = start_and_stop(&["--token", "cmd-secret-0123456789abc"], &[]);
    assert!(started, "{err}");
    assert!(
        !out.contains("cmd-secret") && err.contains("visible to every local user"),
        "{out}{err}"
    );
    // Only a generated token is printed: the operator has no other way to learn it.
    let (out, _, started) = start_and_stop(&[], &[]);
    assert!(started && out.contains("#token="), "{out}");
}

#[test]
fn the_binary_serves_its_built_in_page_from_any_directory() {
    let elsewhere = tempfile::tempdir().expect("dir");
    let cwd = elsewhere.path().to_path_buf();
    // No dist/ in the working directory: the page must come from the binary itself.
    let server = common::binary::Binary::spawn("embedded-page", &[], &[], |command| {
        command.current_dir(&cwd).env_remove("SETPOINT_DIST");
    });
    assert!(
        server
            .log()
            .contains("serving the dashboard built into this binary"),
        "the dashboard must be built (cargo xtask dist) before this test; log:\n{}",
        server.log()
    );
    let page = server.get("/", "");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html"));
    assert!(page.body.contains("<script"), "{}", page.body);
    // The policy allows the embedded page's inline loader by its hash, as for a build on disk.
    let policy = page
        .header("content-security-policy")
        .unwrap_or_default()
        .to_owned();
    assert!(policy.contains("'sha256-"), "{policy}");
    let script = page
        .body
        .split('"')
        .find(|s| s.starts_with('/') && s.ends_with(".js"))
        .expect("the page names its script")
        .to_owned();
    let js = server.get(&script, "");
    assert_eq!(
        (js.status, js.header("content-type")),
        (200, Some("text/javascript"))
    );
    let head = server.raw(&format!(
        "HEAD {script} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(head.header("content-length"), js.header("content-length"));
    let etag = js.header("etag").expect("etag").to_owned();
    let again = server.get(&script, &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(again.status, 304);
    // A route of the page itself gets the page.
    assert!(server.get("/sensors/3", "").body.contains("<script"));
}
