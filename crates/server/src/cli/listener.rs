//! The listener's bounds on the command line: connections, timeouts, rate limits (SECURITY.md's table).

use std::time::Duration;

use clap::Args;
use setpoint::bridge::listener::ListenerOptions;
use setpoint::bridge::BridgeOptions;

/// Shortest timeout accepted: shorter ones are typos (`1ns`), and would close every connection at once.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Descriptors kept back from `--max-connections` for the data file, Kafka's sockets and the probe reserve.
const SPARE_DESCRIPTORS: u64 = 128;

#[derive(Args, Debug, Clone)]
pub struct ListenerArgs {
    /// Most HTTP connections open at once, WebSockets included. Past it a small reserve answers only
    /// /healthz, /readyz and /metrics. Lowered to fit the process's descriptor limit.
    #[arg(long, env = "SETPOINT_MAX_CONNECTIONS", default_value_t = ListenerOptions::default().max_connections)]
    max_connections: usize,
    /// Longest wait for a complete request head, from a connection's start or its previous response (so
    /// also how long an idle keep-alive connection stays open).
    #[arg(long, env = "SETPOINT_HEAD_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    head_timeout: Duration,
    /// Longest wait for a request's whole body.
    #[arg(long, env = "SETPOINT_BODY_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    body_timeout: Duration,
    /// A WebSocket client silent this long is pinged; silent twice this long, it is closed.
    #[arg(long, env = "SETPOINT_WS_PING_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration)]
    ws_ping_interval: Duration,
    /// Longest a frame may take to go out to a WebSocket client; a client whose socket does not drain
    /// is dropped.
    #[arg(long, env = "SETPOINT_SEND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    send_timeout: Duration,
    /// At shutdown, connections still open this long after the server stopped accepting are cut.
    #[arg(long, env = "SETPOINT_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
    /// Setpoint writes per second per token and per client address (a group of writes counts once).
    #[arg(long, env = "SETPOINT_WRITES_PER_SECOND", default_value_t = 5.0)]
    writes_per_second: f64,
    /// Writes at once, per token and per address, before the rate applies.
    #[arg(long, env = "SETPOINT_WRITE_BURST", default_value_t = 10.0)]
    write_burst: f64,
    /// Read-heavy requests (change histories, whole-table listings) per second per client address.
    #[arg(long, env = "SETPOINT_READS_PER_SECOND", default_value_t = 10.0)]
    reads_per_second: f64,
    /// Read-heavy requests at once, per address, before the rate applies.
    #[arg(long, env = "SETPOINT_READ_BURST", default_value_t = 20.0)]
    read_burst: f64,
}

impl ListenerArgs {
    /// Applies the bounds, refusing values that would disable a guard by accident.
    pub fn apply(&self, options: &mut BridgeOptions) -> Result<(), String> {
        let timeouts = [
            ("--head-timeout", self.head_timeout),
            ("--body-timeout", self.body_timeout),
            ("--ws-ping-interval", self.ws_ping_interval),
            ("--send-timeout", self.send_timeout),
            ("--shutdown-timeout", self.shutdown_timeout),
        ];
        for (flag, value) in timeouts {
            if value < MIN_TIMEOUT {
                return Err(format!("{flag} must be at least {} ms", MIN_TIMEOUT.as_millis()));
            }
        }
        let rates = [
            ("--writes-per-second", self.writes_per_second),
            ("--write-burst", self.write_burst),
            ("--reads-per-second", self.reads_per_second),
            ("--read-burst", self.read_burst),
        ];
        for (flag, value) in rates {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{flag} must be a number of 0 or more"));
            }
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        let max_connections = fit_descriptor_limit(self.max_connections);
        options.listener = ListenerOptions {
            max_connections,
            head_timeout: self.head_timeout,
            body_timeout: self.body_timeout,
            ws_ping_interval: self.ws_ping_interval,
            send_timeout: self.send_timeout,
            shutdown_timeout: self.shutdown_timeout,
        };
        options.writes_per_second = self.writes_per_second;
        options.write_burst = self.write_burst;
        options.reads_per_second = self.reads_per_second;
        options.read_burst = self.read_burst;
        Ok(())
    }
}

/// Raises the descriptor limit to its hard maximum (as Go's runtime does) and lowers `wanted` to what it
/// leaves: a server out of descriptors cannot accept even its health probe, and cannot open its data file.
fn fit_descriptor_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read and write only the struct passed, which lives on this stack.
        let soft = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return wanted;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
            limit.rlim_cur
        };
        let room = soft
            .saturating_sub(SPARE_DESCRIPTORS + setpoint::bridge::listener::PROBE_RESERVE as u64)
            .max(1);
        if (wanted as u64) > room {
            tracing::warn!(
                wanted,
                descriptors = soft,
                "--max-connections lowered to {room} to fit the descriptor limit (ulimit -n)"
            );
            return room as usize;
        }
    }
    wanted
}
