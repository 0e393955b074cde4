//! What the pipeline benchmarks share (embedded: `main.rs`; Kafka: `bin/kafka.rs`): the sensors, the
//! setpoints they start from, the controller as they run it, and the load whose every tenth round crosses
//! each sensor's band, so that the two measure the same thing on different buses.

use std::sync::Arc;
use std::time::Duration;

use setpoint::bus::{Bus, BusError, SensorReading, SetpointChange};
use setpoint::metrics::Metrics;
use setpoint::roles::controller::{self, ControllerOptions};
use setpoint_control::{Config, Setpoint};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Sensors under load.
pub const SENSORS: i32 = 1_000;

/// The sensor the setpoint → effect probe flips; its readings sit at 20 °C, so only setpoint changes move it.
pub const PROBE: i32 = SENSORS;

/// The setpoints every run starts from: 20 ± 1 °C for every sensor and the probe.
pub fn starting_setpoints() -> Vec<SetpointChange> {
    (0..=SENSORS)
        .map(|sensor| SetpointChange::new(sensor, Setpoint::new(20.0, 1.0, 1.0), 1, "bench", 0))
        .collect()
}

/// The controller role on `bus`, as the benchmarks run it (default limits, 1 s failsafe tick).
pub fn spawn_controller<B: Bus>(
    bus: B,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> JoinHandle<Result<(), BusError>> {
    let options = ControllerOptions {
        config: Config::default(),
        tick: Duration::from_secs(1),
    };
    tokio::spawn(controller::run(bus, options, Arc::clone(metrics), stop.clone()))
}

/// The `i`th reading of the load, at `t_ms`: sensors in turn, and every sensor's readings cross its band
/// every 10th round, so about 10 % of readings cause a command (most sit inside the band, as in real life).
pub fn load_reading(i: u64, t_ms: i64) -> SensorReading {
    let sensor = (i % SENSORS as u64) as i32;
    let round = i / SENSORS as u64;
    let temperature = match round % 10 {
        0 => 25.0,
        5 => 15.0,
        k => 19.5 + k as f64 * 0.1,
    };
    SensorReading {
        sensor,
        t_ms,
        temperature,
    }
}

/// The probe's setpoint under `version`: alternately far above and far below its 20 °C, so each flip
/// must change its command.
pub fn probe_setpoint(version: u64, t_ms: i64) -> SetpointChange {
    let desired = if version.is_multiple_of(2) { 30.0 } else { 10.0 };
    SetpointChange::new(PROBE, Setpoint::new(desired, 1.0, 1.0), version, "bench", t_ms)
}

/// The frame a benchmark client sends right after connecting to follow every room live (protocol 2
/// sends nothing of any room until a client says what it watches).
pub fn every_room_live() -> String {
    subscribe(None)
}

/// The frame that watches these rooms (their history, then their live data), or every room live.
pub fn subscribe(sensors: Option<Vec<i32>>) -> String {
    serde_json::to_string(&setpoint_wire::ws::ClientMessage::Subscribe { sensors }).unwrap_or_default()
}

/// The frame the dashboard sends on opening: the first page of rooms, by id.
pub fn first_page() -> String {
    let request = setpoint_wire::view::ViewRequest::by_id(0, 24);
    serde_json::to_string(&setpoint_wire::ws::ClientMessage::View(request)).unwrap_or_default()
}
