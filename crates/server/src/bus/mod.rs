//! The seam between roles: named streams of keyed records, shaped after Kafka.
//!
//! Roles (simulator, controller, bridge) only talk through a [`Bus`]. The embedded bus ([`embedded`]) keeps
//! each stream as an in-memory log; the Kafka transport implements the same trait over real topics. The
//! trait therefore promises only what Kafka gives: per-key order, at-least-once delivery (a consumer commits
//! what it has processed, and may see records again after a restart), and consumers that start at the
//! beginning of a stream (setpoints: state to rebuild) or at its end (readings: only live data matters).

pub mod embedded;
pub mod kafka;
pub mod store;

use std::future::Future;

use prost::Message as _;
use setpoint_control::{Decision, HeaterMemory, SensorId, TimeMs};
use setpoint_wire::proto::{self, DecodeError};
pub use setpoint_wire::schedule::ScheduleRecord;
use setpoint_wire::ws::BusStatus;

/// Position of a record in its stream (per partition, on Kafka).
pub type Offset = u64;

/// The five streams: the thermostat pattern's three (readings, setpoints, commands), the controllers'
/// changelog and the weekly schedules. Their Kafka topic names are configurable; these are the roles they
/// play.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Temperature readings from heaters (`sensor` topic).
    Readings,
    /// Setpoints from people (`tempset` topic, compacted).
    Setpoints,
    /// Heater commands from the controller (`heatercontrol` topic).
    Commands,
    /// The controllers' changelog: each heater's last command and dwell, for the next owner
    /// (`setpoint-controller-state` topic, compacted).
    ControllerState,
    /// Weekly schedules, keyed by name (`setpoint-schedules` topic, compacted).
    Schedules,
}

impl StreamKind {
    /// The stream's name in the data file's committed-offset keys. Spelled out, not derived from the
    /// variant's name: renaming a variant must not silently reset every consumer group of every
    /// installation. These are the spellings the first format wrote (they were `Debug`'s then).
    pub fn stored_name(self) -> &'static str {
        match self {
            StreamKind::Readings => "Readings",
            StreamKind::Setpoints => "Setpoints",
            StreamKind::Commands => "Commands",
            StreamKind::ControllerState => "ControllerState",
            StreamKind::Schedules => "Schedules",
        }
    }

    /// Streams that are state rather than events: only the latest record per key matters, so their logs
    /// are compacted (Kafka's `cleanup.policy=compact`; the embedded bus keeps the latest per key when full).
    pub fn is_table(self) -> bool {
        matches!(
            self,
            StreamKind::Setpoints | StreamKind::ControllerState | StreamKind::Schedules
        )
    }
}

/// Where a new consumer starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest retained record: for state that must be rebuilt, like setpoints.
    Beginning,
    /// Only records published after subscribing: for live data, like readings.
    End,
    /// The first record published at or after this time (ms since the epoch; Kafka's record timestamps):
    /// recent history, like the decisions a new dashboard shows.
    Time(TimeMs),
}

/// One record as a consumer sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<T> {
    pub partition: i32,
    pub offset: Offset,
    /// When the record entered the log (Kafka's record timestamp; the embedded bus's append time): what
    /// its event time is judged against on a backlog (see `control::Arrival`).
    pub log_ms: TimeMs,
    pub value: T,
}

impl<T> Record<T> {
    /// This record's arrival at a reader whose clock says `now_ms`.
    pub fn arrival(&self, now_ms: TimeMs) -> setpoint_control::Arrival {
        setpoint_control::Arrival {
            now_ms,
            logged_ms: self.log_ms,
        }
    }
}

/// Why the bus could not do what was asked. Publishing errors are reported to the caller so a browser's
/// write is refused rather than silently lost.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BusError {
    #[error("the bus is shut down")]
    Closed,
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// A reading on the readings stream, keyed by sensor: the control crate's type, which is also what the
/// WebSocket carries.
pub use setpoint_control::SensorReading;

/// A setpoint on the setpoints stream, keyed by sensor: the control crate's type, which the scheduler's core
/// reads and writes too.
pub use setpoint_control::SetpointChange;

/// The controllers' changelog record of one heater, keyed by sensor: written after the commands it
/// explains, read back by whichever controller owns the sensor next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeaterMemoryRecord {
    pub sensor: SensorId,
    pub memory: HeaterMemory,
}

/// A value that travels on one of the streams: which stream, its key, and its Kafka codec.
pub trait Payload: Clone + Send + Sync + 'static {
    const STREAM: StreamKind;
    /// The record key: the sensor id (in decimal, as the reference writes it), so all records of one sensor
    /// stay in order; a schedule's name.
    fn key(&self) -> String;
    /// The Kafka record value (protobuf, reference-compatible).
    fn encode(&self) -> Vec<u8>;
    /// Decodes a Kafka record. `key` is optional (reference writers may omit it) but must agree with the
    /// value when present; `log_ms` (the record's log time, or the reader's clock where the log has none)
    /// stands in for a missing event time. No clock is read here: the same bytes decode the same way.
    fn decode(key: Option<&[u8]>, value: &[u8], log_ms: TimeMs) -> Result<Self, DecodeError>;
}

impl Payload for SensorReading {
    const STREAM: StreamKind = StreamKind::Readings;
    fn key(&self) -> String {
        proto::sensor_key(self.sensor)
    }
    fn encode(&self) -> Vec<u8> {
        proto::SensorData::from_reading(self.sensor, &self.reading()).encode_to_vec()
    }
    fn decode(key: Option<&[u8]>, value: &[u8], log_ms: TimeMs) -> Result<Self, DecodeError> {
        let m = proto::SensorData::decode_value(value)?;
        proto::check_key(key, m.sensor_id)?;
        Ok(Self::new(m.sensor_id, m.reading(log_ms)))
    }
}

impl Payload for SetpointChange {
    const STREAM: StreamKind = StreamKind::Setpoints;
    fn key(&self) -> String {
        proto::sensor_key(self.sensor)
    }
    fn encode(&self) -> Vec<u8> {
        proto::TemperatureControl::from_setpoint(
            self.sensor,
            &self.setpoint,
            self.version,
            &self.author,
            self.t_ms,
        )
        .with_claim(self.base_version, &self.write_id)
        .encode_to_vec()
    }
    fn decode(key: Option<&[u8]>, value: &[u8], log_ms: TimeMs) -> Result<Self, DecodeError> {
        let m = proto::TemperatureControl::decode_value(value)?;
        proto::check_key(key, m.sensor_id)?;
        let t_ms = if m.event_time_ms != 0 {
            m.event_time_ms
        } else {
            log_ms
        };
        Ok(Self {
            sensor: m.sensor_id,
            setpoint: m.setpoint(),
            version: m.version,
            author: m.author,
            t_ms,
            base_version: m.base_version,
            write_id: m.write_id,
        })
    }
}

impl Payload for Decision {
    const STREAM: StreamKind = StreamKind::Commands;
    fn key(&self) -> String {
        proto::sensor_key(self.sensor)
    }
    fn encode(&self) -> Vec<u8> {
        proto::HeaterControl::from_decision(self).encode_to_vec()
    }
    fn decode(key: Option<&[u8]>, value: &[u8], log_ms: TimeMs) -> Result<Self, DecodeError> {
        let m = proto::HeaterControl::decode_value(value)?;
        proto::check_key(key, m.sensor_id)?;
        m.decision(log_ms)
    }
}

impl Payload for HeaterMemoryRecord {
    const STREAM: StreamKind = StreamKind::ControllerState;
    fn key(&self) -> String {
        proto::sensor_key(self.sensor)
    }
    fn encode(&self) -> Vec<u8> {
        proto::ControllerState::from_memory(self.sensor, &self.memory).encode_to_vec()
    }
    fn decode(key: Option<&[u8]>, value: &[u8], _log_ms: TimeMs) -> Result<Self, DecodeError> {
        let m = proto::ControllerState::decode_value(value)?;
        proto::check_key(key, m.sensor_id)?;
        Ok(Self {
            sensor: m.sensor_id,
            memory: m.memory()?,
        })
    }
}

/// Schedules travel as JSON: the topic is setpoint's own (the reference has no schedules), and the record
/// is the very type the HTTP API takes and serves, so there is one definition of a schedule.
impl Payload for ScheduleRecord {
    const STREAM: StreamKind = StreamKind::Schedules;
    fn key(&self) -> String {
        self.schedule.name.clone()
    }
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    fn decode(key: Option<&[u8]>, value: &[u8], _log_ms: TimeMs) -> Result<Self, DecodeError> {
        let record: ScheduleRecord = serde_json::from_slice(value).map_err(|e| DecodeError::Json {
            message: "schedule",
            detail: e.to_string(),
        })?;
        if key.is_some_and(|k| k != record.schedule.name.as_bytes()) {
            return Err(DecodeError::BadKey {
                key: String::from_utf8_lossy(key.unwrap_or_default()).into_owned(),
            });
        }
        Ok(record)
    }
}

/// Partitions a group rebalance moved since the last look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebalance {
    /// Taken away from this consumer: another member decides their records now.
    pub revoked: Vec<i32>,
    /// Given to this consumer: their sensors' state must be restored before their records are decided.
    pub assigned: Vec<i32>,
}

impl Rebalance {
    /// Whether records of `partition` fetched before this rebalance now belong to another member.
    pub fn lost(&self, partition: i32) -> bool {
        self.revoked.contains(&partition) && !self.assigned.contains(&partition)
    }
}

/// A transport for the streams.
pub trait Bus: Clone + Send + Sync + 'static {
    type Consumer<T: Payload>: Consumer<T>;

    /// Publishes records; resolves once the bus has durably accepted all of them (on Kafka: the broker
    /// acknowledged them). Records of one key keep their order.
    fn publish<T: Payload>(&self, values: Vec<T>) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Opens a consumer. `group` names a consumer group whose members share the stream's partitions
    /// (controllers scaling out); `None` reads every partition (bridges, setpoint state).
    fn subscribe<T: Payload>(
        &self,
        start: StartAt,
        group: Option<&str>,
    ) -> Result<Self::Consumer<T>, BusError>;

    /// Whether the bus can currently be reached, for the dashboard and `/readyz`.
    fn status(&self) -> BusStatus;

    /// Why what is published cannot be persisted now (the embedded default's data file cannot be
    /// written), if so: `/readyz` answers 503 with it, and writes that must be durable are refused.
    fn persistence_problem(&self) -> Option<String> {
        None
    }

    /// Records accepted but held in memory because they cannot be persisted now.
    fn unpersisted(&self) -> u64 {
        0
    }
}

/// Reads one stream in order.
pub trait Consumer<T>: Send + 'static {
    /// Waits until at least one record is available and returns up to `max`. Cancel-safe: dropping the
    /// future loses nothing.
    fn next_batch(&mut self, max: usize) -> impl Future<Output = Result<Vec<Record<T>>, BusError>> + Send;

    /// Returns the records available right now, without waiting (possibly none).
    fn try_batch(&mut self, max: usize) -> Result<Vec<Record<T>>, BusError>;

    /// Reads everything published before this call (up to the end offsets taken at the call) and returns
    /// it: the catch-up of a table (setpoints, controller state) that must be complete before a role
    /// decides anything with it. Cheap when already caught up (one offsets request). Gives up after
    /// `timeout`.
    fn read_to_end(
        &mut self,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<Record<T>>, BusError>> + Send;

    /// Marks everything returned so far as processed. At-least-once: call it only after the effects of
    /// those records (e.g. the commands they caused) are durable.
    fn commit(&mut self) -> Result<(), BusError>;

    /// Records this consumer never saw because retention dropped them before it read them.
    fn lost(&self) -> u64;

    /// Partitions a group rebalance took away from or gave to this consumer since the last call. Offsets
    /// of revoked partitions are no longer committed by this consumer.
    fn take_rebalance(&mut self) -> Rebalance {
        Rebalance::default()
    }
}
