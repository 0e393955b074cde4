//! The real `setpoint` binary, started on an ephemeral loopback port, with raw-socket helpers to talk to
//! it the way a broken or hostile client would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_setpoint");

/// A running `setpoint` process; killed if still running when dropped.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: PathBuf,
    /// Every line the process printed on stdout.
    pub stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    /// `setpoint run --in-memory --listen 127.0.0.1:0 --sensors 2` and `args` (`--data-dir` in them replaces
    /// `--in-memory`, `--sensors` the 2); `env` on top of a clean
    /// environment for the tokens. Waits for the printed URL.
    pub fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Binary {
        Self::spawn(name, args, env, |_| {})
    }

    /// Like [`Binary::run`], with a hook on the command (e.g. resource limits).
    pub fn spawn(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Binary {
        let stderr = std::env::temp_dir().join(format!("setpoint-{name}-{}.log", std::process::id()));
        let log = std::fs::File::create(&stderr).expect("log file");
        let mut command = Command::new(BIN);
        command.args(["run", "--listen", "127.0.0.1:0"]);
        if !args.contains(&"--sensors") {
            command.args(["--sensors", "2"]);
        }
        if !args.contains(&"--data-dir") {
            command.arg("--in-memory");
        }
        command
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("SETPOINT_TOKEN")
            .env_remove("SETPOINT_TOKENS_FILE")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log);
        adjust(&mut command);
        let mut child = command.spawn().expect("starts");
        let out = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("http://") {
                    let _ = tx.send(url.split('/').next().unwrap_or_default().to_owned());
                }
                seen.lock().expect("lines").push(line);
            }
        });
        let host = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no URL printed; stderr:\n{}", read(&stderr)));
        Binary {
            child,
            addr: host.parse().expect("host:port"),
            stderr,
            stdout: lines,
        }
    }

    pub fn log(&self) -> String {
        read(&self.stderr)
    }

    /// Sends SIGTERM and returns the exit status and how long the process took to exit (at most `patience`).
    pub fn terminate(&mut self, patience: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < patience,
                "still running {patience:?} after SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A raw connection to the server.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        s
    }

    /// Sends `request` as is on a new connection and reads the answer until the server closes the
    /// connection (send `Connection: close`).
    pub fn raw(&self, request: &str) -> Answer {
        let mut s = self.connect();
        s.write_all(request.as_bytes()).expect("send");
        let mut bytes = Vec::new();
        let _ = s.read_to_end(&mut bytes);
        Answer::parse(&bytes)
    }

    /// Sends `request` on a new connection and reads one answer, as long as its `Content-Length` says,
    /// without waiting for the connection to close.
    pub fn exchange(&self, request: &str) -> Answer {
        let mut s = self.connect();
        s.write_all(request.as_bytes()).expect("send");
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = Answer::parse(&bytes[..end + 4]);
                let length: usize = head
                    .header("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    return Answer::parse(&bytes);
                }
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return Answer::parse(&bytes),
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// `GET path` with `Host: localhost` and `headers`.
    pub fn get(&self, path: &str, headers: &str) -> Answer {
        self.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n"
        ))
    }

    /// The value of a metric line (`name{labels}` as rendered), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let body = self.get("/metrics", "").body;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Waits until `series` reaches `at_least`, within `patience`.
    pub fn wait_metric(&self, series: &str, at_least: f64, patience: Duration) -> f64 {
        let deadline = Instant::now() + patience;
        loop {
            let value = self.metric(series).unwrap_or(0.0);
            if value >= at_least {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{series} stayed at {value}, below {at_least}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer read off a raw socket.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn parse(bytes: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Answer {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The API error code of a JSON error body.
    pub fn code(&self) -> String {
        let json: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.head, self.body));
        json["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// Reads from `s` until the server closes it (or `patience` passes); returns whether it was closed and
/// how long that took.
pub fn closed_within(s: &mut TcpStream, patience: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 65536];
    while started.elapsed() < patience {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

pub fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
