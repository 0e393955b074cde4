//! The thermostat's decision logic, and nothing else.
//!
//! This crate is sans-IO: it takes readings, setpoints and the current time as arguments and returns
//! decisions. It never reads a clock, opens a socket, spawns a thread or depends on an async runtime, so the
//! very same source runs in the native controller and, compiled to `wasm32-unknown-unknown`, in the browser
//! dashboard (for the what-if preview and the live cross-check). The rule is the reference thermostat's —
//! above `desired + up_delta` turn Off, below `desired - down_delta` turn On, emit only on change, per sensor —
//! plus opt-in extensions (minimum dwell, out-of-order rejection, a stale-sensor failsafe) whose defaults keep
//! the reference behaviour.

mod controller;
mod policy;
mod replay;
mod sensor;
mod setpoint;
mod table;

pub use controller::{Controller, ControllerSnapshot, Stats};
pub use policy::{Mode, Policy, Tpi, TpiCycle, DEFAULT_TPI, TPI_CYCLE_S, TPI_MAX_COEFFICIENT};
pub use replay::replay;
pub use sensor::{
    band_acts_on, HeaterMemory, ReadingOutcome, SensorState, SetpointHistory, TimedSetpoint,
    VersionedSetpoint, MAX_SETPOINT_VERSIONS,
};
pub use setpoint::{Limits, Setpoint, SetpointError, SetpointField, DEFAULT_SETPOINT};
pub use table::{
    Arrival, InForce, RecordError, SetpointChange, SetpointTable, TimeError, Verdict, MAX_AUTHOR_BYTES,
    MAX_VERSION, MAX_WRITE_ID_BYTES,
};

use serde::{Deserialize, Serialize};

/// Sensor ids are `int32` on the reference wire format, so they are here too: every id the reference can
/// send (0, negatives, `i32::MAX`) is a valid id.
pub type SensorId = i32;

/// Event time in milliseconds since the Unix epoch. Passed in, never read: the crate has no clock.
pub type TimeMs = i64;

/// What the controller tells a heater to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Command {
    On,
    Off,
}

impl Command {
    /// Lower-case name as used on the WebSocket protocol and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::On => "on",
            Command::Off => "off",
        }
    }
}

/// One temperature reading. The sensor id travels beside it (as the Kafka key or in the message) so a
/// replay over one sensor's history need not repeat it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub t_ms: TimeMs,
    pub temperature: f64,
}

/// A reading with its sensor: the one shape a reading has on the readings stream, in the bridge and on the
/// WebSocket (`{"sensor", "t_ms", "temperature"}`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SensorReading {
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    pub sensor: SensorId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub t_ms: TimeMs,
    pub temperature: f64,
}

impl SensorReading {
    pub fn new(sensor: SensorId, reading: Reading) -> Self {
        Self {
            sensor,
            t_ms: reading.t_ms,
            temperature: reading.temperature,
        }
    }

    /// The reading without its sensor id, as the controller takes it.
    pub fn reading(&self) -> Reading {
        Reading {
            t_ms: self.t_ms,
            temperature: self.temperature,
        }
    }
}

/// Why a decision was made: the band rule, or the stale-sensor failsafe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DecisionCause {
    #[default]
    Band,
    Failsafe,
}

/// A command for one heater, with the evidence it was made from: the reading's event time and temperature
/// and the version of the setpoint in force. That evidence is what lets the dashboard cross-check the server
/// and lets latency be measured from the reading's event time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    pub sensor: SensorId,
    pub command: Command,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub t_ms: TimeMs,
    pub temperature: f64,
    /// Absent from the JSON of a server that predates versions: unversioned.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub setpoint_version: u64,
    /// Absent from the JSON of a server that predates the failsafe: the band rule.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub cause: DecisionCause,
}

/// Why a reading was refused. A refused reading changes no state.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum ReadingError {
    /// Dated further ahead of the receiver than the clock skew allows: a device with a broken clock. Taking
    /// it would make every later, correctly dated reading of the sensor look out of order.
    #[error(transparent)]
    FromTheFuture(#[from] TimeError),
    #[error(transparent)]
    TooManySensors(#[from] TooManySensors),
    #[error("sensor {sensor}: temperature must be a finite number (got {value})")]
    NonFiniteTemperature { sensor: SensorId, value: f64 },
    /// Colder than anything can be: the sensor is broken. Acting on it would turn the heater on for a
    /// reading that means nothing (a corrupted −1e308 would otherwise look like a very cold room).
    #[error("sensor {sensor}: temperature {value} °C is below absolute zero")]
    BelowAbsoluteZero { sensor: SensorId, value: f64 },
}

impl ReadingError {
    /// A short name for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ReadingError::FromTheFuture(_) => "future_time",
            ReadingError::TooManySensors(_) => "too_many_sensors",
            ReadingError::NonFiniteTemperature { .. } => "non_finite",
            ReadingError::BelowAbsoluteZero { .. } => "below_absolute_zero",
        }
    }
}

impl SensorReading {
    /// The checks every reader of the readings stream applies before using a reading (the controller, the
    /// bridge): a finite temperature not below absolute zero, and an event time not further ahead of the
    /// reference time than `config.max_clock_skew_ms`. One function, so a reading the controller refuses
    /// never reaches a browser either.
    pub fn check(&self, config: &Config, arrival: Arrival) -> Result<(), ReadingError> {
        check_temperature(self.sensor, self.temperature)?;
        arrival.check(self.sensor, self.t_ms, config.max_clock_skew_ms)?;
        Ok(())
    }
}

/// A temperature a working sensor can report: finite, not below absolute zero.
pub fn check_temperature(sensor: SensorId, value: f64) -> Result<(), ReadingError> {
    if !value.is_finite() {
        return Err(ReadingError::NonFiniteTemperature { sensor, value });
    }
    if value < ABSOLUTE_ZERO_C {
        return Err(ReadingError::BelowAbsoluteZero { sensor, value });
    }
    Ok(())
}

/// The lowest temperature a working sensor can report, in °C (the unit of the reference thermostat).
pub const ABSOLUTE_ZERO_C: f64 = -273.15;

/// Default of [`Config::max_clock_skew_ms`]: five minutes, far more than NTP-synchronised clocks differ
/// and far less than a clock that is wrong (a device reset to its firmware's date, a year typed wrong).
pub const DEFAULT_MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;

/// Default of [`Config::max_sensors`]: ten times the largest building the project measures (100,000 rooms),
/// so only a flood of made-up ids reaches it.
pub const DEFAULT_MAX_SENSORS: usize = 1_000_000;

/// Controller behaviour. The defaults (default limits, no dwell, no failsafe) decide exactly as the
/// reference thermostat; the bounds on clock skew and sensors refuse only what the reference would have
/// been broken by.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Which setpoints are accepted.
    pub limits: Limits,
    /// Minimum time a command stays in force before the opposite one may be emitted (anti short-cycling of
    /// compressors and relays). 0 disables it.
    pub min_dwell_ms: i64,
    /// A sensor under control that is silent for longer than this gets one failsafe Off. `None` disables it.
    /// Silence is measured on the controller's own clock (when readings arrived), never on event times a
    /// device's clock wrote.
    pub stale_after_ms: Option<i64>,
    /// How far ahead of the receiver's reference time (see [`Arrival`]) a reading or setpoint may be dated
    /// before it is refused as a clock error.
    #[serde(default = "default_max_clock_skew_ms")]
    pub max_clock_skew_ms: i64,
    /// Most sensors one process keeps state for; a record for a new sensor beyond it is refused.
    #[serde(default = "default_max_sensors")]
    pub max_sensors: usize,
}

/// A sensor this process has no room for (`Config::max_sensors`): refused, counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sensor {sensor}: this process already has {max} sensors (--max-sensors)")]
pub struct TooManySensors {
    pub sensor: SensorId,
    pub max: usize,
}

/// How long a sensor may be silent before it is shown as stale when the failsafe is off (its default).
pub const DEFAULT_STALE_SHOWN_MS: i64 = 5 * 60_000;

impl Config {
    /// Whether a sensor whose newest reading is `age_ms` old is stale: silent past the failsafe's limit (or,
    /// with the failsafe off, its default). One rule for the dashboard's cards, the bridge's views and the
    /// API's `filter=stale`.
    pub fn is_stale(&self, age_ms: i64) -> bool {
        age_ms > self.stale_after_ms.unwrap_or(DEFAULT_STALE_SHOWN_MS)
    }

    /// The one sensor bound, for every keeper of per-sensor state (controller, setpoint table, bridge): a
    /// sensor already `known` is always admitted, a new one while fewer than `max_sensors` are kept.
    pub fn admit(&self, sensor: SensorId, known: bool, kept: usize) -> Result<(), TooManySensors> {
        if known || kept < self.max_sensors {
            return Ok(());
        }
        Err(TooManySensors {
            sensor,
            max: self.max_sensors,
        })
    }
}

fn default_max_clock_skew_ms() -> i64 {
    DEFAULT_MAX_CLOCK_SKEW_MS
}

fn default_max_sensors() -> usize {
    DEFAULT_MAX_SENSORS
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            min_dwell_ms: 0,
            stale_after_ms: None,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
            max_sensors: DEFAULT_MAX_SENSORS,
        }
    }
}
