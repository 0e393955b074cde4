//! What the browser benchmarks share: the release `setpoint run` as a child process, the page's frame rate
//! and DevTools metrics, the process's memory, and a bounded plain-HTTP GET for the API.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Result, Session};

/// The write token the benchmarks start the server with.
pub const TOKEN: &str = "bench-token_0123456789abcdef";

/// How long the release server may take to print its URL.
const SERVER_START: Duration = Duration::from_secs(120);

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The release server, killed on drop.
pub struct Server {
    child: Child,
    /// The URL it printed (with the token in the fragment).
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `setpoint run --in-memory` on a free port with `args` after it, and waits for its URL.
    pub async fn start(args: &[&str]) -> Result<Server> {
        // Where cargo put it (a shared `CARGO_TARGET_DIR` too), as the other benchmarks find it.
        let mut child = Command::new(setpoint_testkit::release_binary())
            .args(["run", "--in-memory", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("SETPOINT_TOKEN", TOKEN)
            .env(
                "SETPOINT_DIST",
                std::env::var_os("SETPOINT_DIST").unwrap_or_else(|| root().join("dist").into()),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("{e}: build first: cargo build --release -p setpoint && cargo xtask dist")
            })?;
        let stdout = child.stdout.take().ok_or("no stdout from the server")?;
        // Blocking reads on a thread of their own; the timeout bounds them, and killing the server (Drop)
        // ends the read if it is still waiting.
        let lines = tokio::task::spawn_blocking(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
                .find_map(|l| l.trim().starts_with("http://").then(|| l.trim().to_owned()))
        });
        let mut server = Server {
            child,
            url: String::new(),
        };
        server.url = tokio::time::timeout(SERVER_START, lines)
            .await
            .map_err(|_| format!("the server printed no URL within {SERVER_START:?}"))?
            .map_err(|e| e.to_string())?
            .ok_or("the server exited without printing its URL")?;
        Ok(server)
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> Result<std::net::SocketAddr> {
        let rest = self.url.trim_start_matches("http://");
        let host = rest.split('/').next().unwrap_or_default();
        host.parse().map_err(|e| format!("{host}: {e}"))
    }

    /// CPU time the process has used so far, user and system, in seconds (Linux, at 100 ticks a second).
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).map_err(|e| e.to_string())?;
        // The fields after the command name (which may hold spaces) start after its closing parenthesis.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the parenthesis.
        Ok((ticks(11) + ticks(12)) / 100.0)
    }

    /// The process's resident memory in bytes (Linux).
    pub fn rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .map_err(|e| e.to_string())?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| "no VmRSS".to_owned())
    }
}

/// The answer to a GET: status, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// A plain HTTP/1.1 GET on loopback, bounded in time (a client crate would be a dependency for a GET).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Result<Answer> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer in 30 s"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// The page's DevTools `Performance` metrics.
pub async fn metrics(s: &Session) -> Result<HashMap<String, f64>> {
    let v = s.cdp("Performance.getMetrics", json!({})).await?;
    Ok(v["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["name"].as_str()?.to_owned(), m["value"].as_f64()?)))
        .collect())
}

/// The JS heap after a forced garbage collection, in MB.
pub async fn heap_mb(s: &Session) -> Result<f64> {
    let _ = s.cdp("HeapProfiler.collectGarbage", json!({})).await;
    Ok(metrics(s).await?.get("JSHeapUsedSize").copied().unwrap_or(0.0) / 1e6)
}

/// Starts recording `requestAnimationFrame` times in the page afresh (read with [`frame_rate`]); called
/// again, it starts over without a second loop (which would count every frame twice).
pub async fn count_frames(s: &Session) -> Result<()> {
    s.execute(
        "window.__frames = []; if (!window.__counting) { window.__counting = true; \
         const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); }; requestAnimationFrame(tick); }",
        vec![],
    )
    .await
    .map(|_| ())
}

/// Frames since [`count_frames`]: (frames per second, p95 frame interval in ms, frames).
pub async fn frame_rate(s: &Session) -> Result<(f64, f64, usize)> {
    let frames: Vec<f64> = s
        .execute("return window.__frames", vec![])
        .await?
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    let mut intervals: Vec<f64> = frames.windows(2).map(|w| w[1] - w[0]).collect();
    intervals.sort_by(f64::total_cmp);
    let fps = if frames.len() > 1 {
        (frames.len() - 1) as f64 / ((frames[frames.len() - 1] - frames[0]) / 1000.0)
    } else {
        0.0
    };
    let p95 = intervals.get(intervals.len() * 95 / 100).copied().unwrap_or(0.0);
    Ok((fps, p95, frames.len()))
}

/// An environment variable as a number, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
