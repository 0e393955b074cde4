//! Over 400 lines on purpose: every metric's name and help text in one list, where they are read and kept
//! alike.
//!
//! Counters and the latency histogram every role updates, rendered as Prometheus text by the bridge.
//!
//! Plain atomics rather than a metrics crate: a handful of values, updated on hot paths, read rarely.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use setpoint_control::{Config, Stats};

use crate::bridge::hub::state::HubStats;

/// Upper bounds of the reading→decision latency buckets, in microseconds.
const LATENCY_BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Process-wide metrics, shared by the roles running in this process.
#[derive(Default)]
pub struct Metrics {
    pub readings: AtomicU64,
    pub rejected_readings: AtomicU64,
    pub out_of_order_readings: AtomicU64,
    pub readings_without_outdoor: AtomicU64,
    pub decisions: AtomicU64,
    pub setpoint_changes: AtomicU64,
    pub rejected_setpoints: AtomicU64,
    pub ws_clients: AtomicU64,
    pub ws_connections_total: AtomicU64,
    pub dropped_readings: AtomicU64,
    pub decode_errors: AtomicU64,
    pub ws_errors_sent: AtomicU64,
    pub slow_clients_disconnected: AtomicU64,
    pub bus_lost_records: AtomicU64,
    pub failsafes: AtomicU64,
    pub setpoint_versions_dropped: AtomicU64,
    pub bridge_readings: AtomicU64,
    pub bridge_decisions: AtomicU64,
    pub bridge_setpoints: AtomicU64,
    pub bridge_fine_rooms: AtomicU64,
    pub bridge_fine_bytes: AtomicU64,
    /// The MQTT gateway: readings taken from devices, commands sent to heaters, Home Assistant's writes,
    /// and 1 while connected to the broker.
    pub gateway_readings: AtomicU64,
    pub gateway_commands: AtomicU64,
    pub gateway_setpoint_writes: AtomicU64,
    pub gateway_connected: AtomicU64,
    /// 1 while the controller in this process reads the setpoints (and, after an assignment, the
    /// controller state) up to their end before deciding; `/readyz` answers 503 meanwhile.
    pub controller_catching_up: AtomicU64,
    /// Heater memories restored from the changelog with a time ahead of the controller's clock, clamped.
    pub controller_memories_clamped: AtomicU64,
    /// 1 while the data file of the embedded default cannot be written (disk full, I/O error).
    pub store_failing: AtomicU64,
    /// Records accepted in memory but not yet on disk because the data file cannot be written.
    pub store_unpersisted: AtomicU64,
    /// Records refused by a reader's checks, by (role, stream, reason): what other producers sent that
    /// this process would not use.
    refused: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    /// Clients a listener guard refused or cut, by reason, with when each reason was last logged.
    clients_refused: Mutex<BTreeMap<&'static str, ClientRefusals>>,
    /// HTTP connections open now (WebSockets included).
    pub http_connections: AtomicU64,
    /// The limits each role of this process judges setpoints by, so two processes that disagree show it.
    limits: Mutex<BTreeMap<&'static str, Config>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// Mirrors the controller's own counters ([`Stats`], kept by the control core): the one place they are
    /// counted, exported as they are.
    pub fn record_controller(&self, stats: &Stats) {
        self.readings.store(stats.readings, Relaxed);
        self.rejected_readings.store(stats.rejected_readings, Relaxed);
        self.out_of_order_readings.store(stats.out_of_order, Relaxed);
        self.decisions.store(stats.decisions, Relaxed);
        self.failsafes.store(stats.failsafes, Relaxed);
        self.setpoint_changes.store(stats.setpoints_applied, Relaxed);
        self.rejected_setpoints.store(stats.setpoints_rejected, Relaxed);
        self.setpoint_versions_dropped
            .store(stats.setpoint_versions_dropped, Relaxed);
        self.readings_without_outdoor
            .store(stats.readings_without_outdoor, Relaxed);
    }

    /// Mirrors the bridge hub's counters ([`HubStats`]).
    pub fn record_bridge(&self, stats: &HubStats) {
        self.ws_clients.store(stats.clients, Relaxed);
        self.ws_connections_total.store(stats.connections, Relaxed);
        self.bridge_readings.store(stats.readings, Relaxed);
        self.bridge_decisions.store(stats.decisions, Relaxed);
        self.bridge_setpoints.store(stats.setpoints, Relaxed);
        self.bridge_fine_rooms.store(stats.fine_rooms, Relaxed);
        self.bridge_fine_bytes.store(stats.fine_bytes, Relaxed);
    }

    /// Counts a record refused by `role`'s checks. Returns `true` for the first of its kind, which callers
    /// log (the rest are only counted, so a producer flooding bad records cannot flood the log).
    pub fn refused(&self, role: &'static str, stream: &'static str, reason: &'static str) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let count = refused.entry((role, stream, reason)).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// Counts a client a listener guard refused or cut. Returns `Some(unlogged)` when a log line is due: the
    /// first of each reason, then at most one per [`CLIENT_LOG_EVERY`], carrying how many went unlogged in
    /// between. A client repeating a bad request cannot flood the log.
    pub fn client_refused(&self, reason: &'static str) -> Option<u64> {
        let mut refused = self.clients_refused.lock().unwrap_or_else(|e| e.into_inner());
        let entry = refused.entry(reason).or_default();
        entry.total += 1;
        let now = Instant::now();
        if entry
            .logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < CLIENT_LOG_EVERY)
        {
            entry.unlogged += 1;
            return None;
        }
        entry.logged_at = Some(now);
        Some(std::mem::take(&mut entry.unlogged))
    }

    /// How many clients were refused for `reason` (for tests).
    pub fn clients_refused_count(&self, reason: &str) -> u64 {
        let refused = self.clients_refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.get(reason).map_or(0, |r| r.total)
    }

    /// Records the limits `role` judges by, exported as `setpoint_limits`.
    pub fn record_limits(&self, role: &'static str, config: &Config) {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits.insert(role, *config);
    }

    /// Records one reading→decision latency.
    pub fn observe_latency_us(&self, us: u64) {
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|b| us <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(us, Relaxed);
    }

    /// The Prometheus text exposition. Contains no secrets: the write token is never stored here.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: &[(&str, &str, &AtomicU64)] = &[
            (
                "setpoint_readings_total",
                "Readings processed by the controller.",
                &self.readings,
            ),
            (
                "setpoint_rejected_readings_total",
                "Readings the controller refused (not a finite temperature, below absolute zero, from the future, past the sensor bound; by reason in setpoint_refused_records_total).",
                &self.rejected_readings,
            ),
            (
                "setpoint_out_of_order_readings_total",
                "Readings ignored as older than one already processed.",
                &self.out_of_order_readings,
            ),
            (
                "setpoint_readings_without_outdoor_total",
                "Readings of TPI rooms with an outdoor term decided without the outdoor temperature (its sensor has not reported to this controller: not since it started, or its partition is another controller's).",
                &self.readings_without_outdoor,
            ),
            (
                "setpoint_decisions_total",
                "Heater commands emitted.",
                &self.decisions,
            ),
            (
                "setpoint_setpoint_changes_total",
                "Setpoints applied by the controller.",
                &self.setpoint_changes,
            ),
            (
                "setpoint_rejected_setpoints_total",
                "Setpoint records the controller refused (by reason in setpoint_refused_records_total).",
                &self.rejected_setpoints,
            ),
            (
                "setpoint_ws_connections_total",
                "WebSocket connections accepted.",
                &self.ws_connections_total,
            ),
            (
                "setpoint_ws_dropped_readings_total",
                "Readings coalesced away for slow WebSocket clients.",
                &self.dropped_readings,
            ),
            (
                "setpoint_decode_errors_total",
                "Frames or records that failed to decode.",
                &self.decode_errors,
            ),
            (
                "setpoint_ws_errors_sent_total",
                "Error frames sent to WebSocket clients.",
                &self.ws_errors_sent,
            ),
            (
                "setpoint_ws_slow_clients_disconnected_total",
                "Clients disconnected for not reading their control messages.",
                &self.slow_clients_disconnected,
            ),
            (
                "setpoint_bus_lost_records_total",
                "Records a consumer missed because retention dropped them first.",
                &self.bus_lost_records,
            ),
            (
                "setpoint_failsafes_total",
                "Failsafe Off commands for sensors that fell silent.",
                &self.failsafes,
            ),
            (
                "setpoint_setpoint_versions_dropped_total",
                "Setpoint versions pushed out of a sensor's bounded history before any reading used them.",
                &self.setpoint_versions_dropped,
            ),
            (
                "setpoint_bridge_readings_total",
                "Readings relayed by the bridge to its WebSocket clients.",
                &self.bridge_readings,
            ),
            (
                "setpoint_bridge_decisions_total",
                "Heater commands relayed by the bridge to its WebSocket clients.",
                &self.bridge_decisions,
            ),
            (
                "setpoint_bridge_setpoints_total",
                "Setpoint changes the bridge read from the stream that took effect (and showed its clients).",
                &self.bridge_setpoints,
            ),
            (
                "setpoint_gateway_readings_total",
                "Readings the MQTT gateway took from devices and published (refusals by reason in setpoint_refused_records_total, role gateway).",
                &self.gateway_readings,
            ),
            (
                "setpoint_gateway_commands_total",
                "Commands the MQTT gateway sent to heaters (first sends and re-sends).",
                &self.gateway_commands,
            ),
            (
                "setpoint_gateway_setpoint_writes_total",
                "Setpoint writes the MQTT gateway published for Home Assistant.",
                &self.gateway_setpoint_writes,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        let gauges = [
            (
                "setpoint_bridge_history_fine_rooms",
                "Rooms whose history the bridge keeps at full resolution (the most recently viewed).",
                &self.bridge_fine_rooms,
            ),
            (
                "setpoint_bridge_history_fine_bytes",
                "Bytes those rooms' readings and decisions take, bounded by --history-cache-mb.",
                &self.bridge_fine_bytes,
            ),
            (
                "setpoint_gateway_connected",
                "1 while the MQTT gateway is connected to its broker.",
                &self.gateway_connected,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP setpoint_ws_clients WebSocket clients connected now.\n# TYPE setpoint_ws_clients gauge\nsetpoint_ws_clients {}",
            self.ws_clients.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP setpoint_controller_catching_up 1 while the controller catches up with the setpoints and its state before deciding.\n# TYPE setpoint_controller_catching_up gauge\nsetpoint_controller_catching_up {}",
            self.controller_catching_up.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP setpoint_controller_memories_clamped_total Heater memories restored with a time ahead of the controller's clock, clamped to it.\n# TYPE setpoint_controller_memories_clamped_total counter\nsetpoint_controller_memories_clamped_total {}",
            self.controller_memories_clamped.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP setpoint_store_failing 1 while the data file cannot be written (disk full, I/O error): setpoint writes are refused, control goes on from memory.\n# TYPE setpoint_store_failing gauge\nsetpoint_store_failing {}",
            self.store_failing.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP setpoint_store_unpersisted_records Records held in memory until the data file can be written again.\n# TYPE setpoint_store_unpersisted_records gauge\nsetpoint_store_unpersisted_records {}",
            self.store_unpersisted.load(Relaxed)
        );
        let name = "setpoint_refused_records_total";
        let _ = writeln!(out, "# HELP {name} Records a reader refused (other producers' records it will not use), by role, stream and reason.\n# TYPE {name} counter");
        for ((role, stream, reason), n) in self.refused.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "{name}{{role=\"{role}\",stream=\"{stream}\",reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP setpoint_http_connections HTTP connections open now (WebSockets included).\n# TYPE setpoint_http_connections gauge\nsetpoint_http_connections {}",
            self.http_connections.load(Relaxed)
        );
        let name = "setpoint_clients_refused_total";
        let _ = writeln!(out, "# HELP {name} Requests and connections the listener's guards refused or cut, by reason (see SECURITY.md).\n# TYPE {name} counter");
        for (reason, r) in self
            .clients_refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {}", r.total);
        }
        let name = "setpoint_limits";
        let _ = writeln!(out, "# HELP {name} The limits each role judges setpoints and readings by; processes that disagree refuse different records.\n# TYPE {name} gauge");
        for (role, c) in self.limits.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (limit, value) in [
                ("desired_min", c.limits.desired_min),
                ("desired_max", c.limits.desired_max),
                ("max_delta", c.limits.max_delta),
                ("max_clock_skew_seconds", c.max_clock_skew_ms as f64 / 1e3),
                ("max_sensors", c.max_sensors as f64),
            ] {
                let _ = writeln!(out, "{name}{{role=\"{role}\",limit=\"{limit}\"}} {value}");
            }
        }
        let name = "setpoint_reading_to_decision_seconds";
        let _ = writeln!(out, "# HELP {name} From a reading's event time to its decision being published.\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS_US.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let total = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
        out
    }
}

/// At most one log line per kind of client refusal per this long; the rest are counted.
pub const CLIENT_LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct ClientRefusals {
    total: u64,
    unlogged: u64,
    logged_at: Option<Instant>,
}

/// Most characters of outside text a log line repeats (see `setpoint_wire::clip`).
pub const LOGGED_CHARS: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_latency_us(50);
        m.observe_latency_us(800);
        m.observe_latency_us(5_000_000);
        let text = m.render();
        assert!(
            text.contains("setpoint_reading_to_decision_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("setpoint_reading_to_decision_seconds_bucket{le=\"0.001\"} 2\n"));
        assert!(text.contains("setpoint_reading_to_decision_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("setpoint_reading_to_decision_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("setpoint_reading_to_decision_seconds_count 3\n"));
    }

    #[test]
    fn a_repeated_client_refusal_is_logged_once_a_minute_and_always_counted() {
        let m = Metrics::default();
        assert_eq!(m.client_refused("misdirected_host"), Some(0));
        for _ in 0..999 {
            assert_eq!(m.client_refused("misdirected_host"), None);
        }
        assert_eq!(
            m.client_refused("head_timeout"),
            Some(0),
            "each reason logs on its own"
        );
        assert_eq!(m.clients_refused_count("misdirected_host"), 1000);
        assert!(m
            .render()
            .contains("setpoint_clients_refused_total{reason=\"misdirected_host\"} 1000\n"));
    }
}
