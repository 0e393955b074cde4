//! The bridge's state machine, sans-IO: what every browser is told, and when.
//!
//! Inputs are records from the bus (readings, decisions, setpoints), clients arriving and leaving, setpoint
//! requests with the outcome of their publishing, and the time (`flush` and `tick` take `now`). Outputs are
//! [`Output`]s: messages for every client or for one. No clock, socket, lock or task in here; the async
//! shell ([`super::Hub`]) holds this behind one lock and delivers the outputs to the clients' outboxes while
//! still holding it, which is what makes the invariants below hold for real sockets too.
//!
//! Invariants (unit-tested below):
//! - **Exactly once per client.** A client registered at any point sees every event once: either in the
//!   snapshot it is registered with (`hello` + backfill) or in the outputs after it.
//! - **One path for setpoints.** A browser's write is published, and enters this state only when it comes
//!   back from the bus, like anybody else's; every bridge reading the stream therefore shows the same
//!   setpoints with the same versions. The writer's `ack` waits for both the bus's acknowledgement and the
//!   record's return, so the client sees the new setpoint in force before (or with) its ack.
//! - **Versions never repeat.** A write gets the version after the highest one in force or in flight for its
//!   sensor, and `base_version` is checked against that same number, so two racing writes on this bridge get
//!   one ack and one `conflict`.
//!
//! Over 400 lines on purpose: one state machine whose inputs all touch the same fields; its tests are in
//! `tests.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use setpoint_control::{Config, Decision, SensorId, SensorReading, TimeMs};
use setpoint_wire::ws::{
    BusStatus, ErrorCode, ErrorMsg, Hello, ReadingsBatch, ServerMessage, SetSetpoint, SetpointMsg, StatusMsg,
    PROTOCOL_VERSION,
};

use crate::bus::SetpointChange;

/// Most readings in one backfill frame, so a large history arrives in digestible pieces.
const BACKFILL_FRAME_ITEMS: usize = 5_000;

/// A published write whose record has not come back from the bus after this long is acknowledged anyway:
/// the bus accepted it, so it is durable; only this bridge's view of it is late.
pub const READ_BACK_PATIENCE_MS: i64 = 10_000;

/// How the hub bounds its memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HubOptions {
    /// Readings older than this (relative to the newest of their sensor) leave the backfill ring.
    pub backfill_ms: i64,
    /// Hard cap of readings kept per sensor, whatever their age.
    pub backfill_max_per_sensor: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            backfill_ms: 5 * 60_000,
            backfill_max_per_sensor: 3_000,
        }
    }
}

pub type ClientId = u64;

/// Identifies a setpoint write between [`HubState::begin_write`] and [`HubState::write_published`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriteId(u64);

/// What the shell must deliver.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// To every client (encode once).
    Broadcast(ServerMessage),
    /// Readings for every client; each client's outbox applies its filter and coalesces when it is behind.
    Readings(Vec<SensorReading>),
    /// To one client.
    Send(ClientId, ServerMessage),
}

/// What a new client starts from.
#[derive(Debug)]
pub struct Welcome {
    pub id: ClientId,
    pub hello: ServerMessage,
    pub backfill: Vec<ServerMessage>,
}

/// The bridge's counters, mirrored into the process metrics by the shell and shown in `status` frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    pub readings: u64,
    pub decisions: u64,
    pub setpoints: u64,
    pub clients: u64,
    pub connections: u64,
}

/// A write in flight: published (or being published) but not yet both acknowledged by the bus and read
/// back from it.
#[derive(Debug)]
struct InFlight {
    client: ClientId,
    request_id: String,
    sensor: SensorId,
    value: SetpointMsg,
    /// The bus acknowledged the record, at this time.
    published_at: Option<TimeMs>,
    /// The record (or a newer one for the sensor) came back from the bus.
    read_back: bool,
}

/// The state; see the module documentation.
#[derive(Debug)]
pub struct HubState {
    config: Config,
    options: HubOptions,
    setpoints: BTreeMap<SensorId, SetpointMsg>,
    commands: BTreeMap<SensorId, Decision>,
    sensors: BTreeSet<SensorId>,
    history: HashMap<SensorId, VecDeque<SensorReading>>,
    /// Readings received since the last flush; they enter `history` when flushed, so history and batches
    /// never overlap.
    pending: Vec<SensorReading>,
    clients: HashSet<ClientId>,
    next_client: ClientId,
    writes: HashMap<WriteId, InFlight>,
    next_write: u64,
    bus: BusStatus,
    stats: HubStats,
    outputs: Vec<Output>,
}

impl HubState {
    /// A hub for clients of a controller running with `config` (sent in `hello`, so the browser's copy of
    /// the control core decides exactly as the server's does).
    pub fn new(config: Config, options: HubOptions) -> Self {
        Self {
            config,
            options,
            setpoints: BTreeMap::new(),
            commands: BTreeMap::new(),
            sensors: BTreeSet::new(),
            history: HashMap::new(),
            pending: Vec::new(),
            clients: HashSet::new(),
            next_client: 0,
            writes: HashMap::new(),
            next_write: 0,
            bus: BusStatus::Connected,
            stats: HubStats::default(),
            outputs: Vec::new(),
        }
    }

    /// What the shell must deliver, in order, since the last call.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    pub fn stats(&self) -> HubStats {
        self.stats
    }

    /// Registers a client and returns the state it starts from. Everything after this call reaches it
    /// through the outputs.
    pub fn register(&mut self, can_write: bool, now: TimeMs) -> Welcome {
        let id = self.next_client;
        self.next_client += 1;
        self.clients.insert(id);
        self.stats.clients = self.clients.len() as u64;
        self.stats.connections += 1;
        let hello = ServerMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            can_write,
            sensors: self.sensors.iter().copied().collect(),
            setpoints: self.setpoints.values().cloned().collect(),
            commands: self.commands.values().copied().collect(),
            config: self.config,
            server_time_ms: now,
        });
        let mut items: Vec<SensorReading> = self.history.values().flat_map(|h| h.iter().copied()).collect();
        items.sort_by_key(|i| (i.t_ms, i.sensor));
        let backfill = items
            .chunks(BACKFILL_FRAME_ITEMS)
            .map(|c| {
                ServerMessage::Readings(ReadingsBatch {
                    items: c.to_vec(),
                    missed: 0,
                    backfill: true,
                })
            })
            .collect();
        Welcome { id, hello, backfill }
    }

    /// Removes a client; its writes in flight still complete on the bus but answer nobody.
    pub fn unregister(&mut self, id: ClientId) -> bool {
        let known = self.clients.remove(&id);
        self.stats.clients = self.clients.len() as u64;
        known
    }

    pub fn on_reading(&mut self, reading: SensorReading) {
        self.sensors.insert(reading.sensor);
        self.pending.push(reading);
        self.stats.readings += 1;
    }

    /// Sends the readings received since the last flush, as one batch for everybody.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.pending);
        let (keep_ms, keep_max) = (self.options.backfill_ms, self.options.backfill_max_per_sensor);
        for item in &items {
            let ring = self.history.entry(item.sensor).or_default();
            ring.push_back(*item);
            while ring.len() > keep_max || ring.front().is_some_and(|f| item.t_ms - f.t_ms > keep_ms) {
                ring.pop_front();
            }
        }
        self.outputs.push(Output::Readings(items));
    }

    pub fn on_decision(&mut self, decision: Decision) {
        self.sensors.insert(decision.sensor);
        self.commands.insert(decision.sensor, decision);
        self.stats.decisions += 1;
        self.outputs
            .push(Output::Broadcast(ServerMessage::Decision(decision)));
    }

    /// Applies a setpoint record from the stream — every setpoint, this bridge's writes included, comes
    /// this way. A record below the version in force is stale, one equal to it in version and value a
    /// redelivery; both are dropped. An unversioned record (written by another tool) gets the next version,
    /// so every bridge reading the stream numbers it alike.
    pub fn on_setpoint(&mut self, change: SetpointChange) {
        let current = self.setpoints.get(&change.sensor);
        let current_version = current.map_or(0, |c| c.version);
        let mut msg = SetpointMsg::new(change.sensor, &change.setpoint, change.version, Some(change.t_ms));
        let applied = if change.version == 0 {
            msg.version = current_version + 1;
            true
        } else {
            change.version >= current_version
                && !current.is_some_and(|c| c.version == msg.version && c.setpoint() == msg.setpoint())
        };
        if applied {
            self.sensors.insert(change.sensor);
            self.setpoints.insert(change.sensor, msg.clone());
            self.stats.setpoints += 1;
            self.outputs
                .push(Output::Broadcast(ServerMessage::Setpoint(msg.clone())));
        }
        let seen = msg.version.max(current_version);
        for write in self.writes.values_mut() {
            if write.sensor == change.sensor && write.value.version <= seen {
                write.read_back = true;
            }
        }
        self.settle_writes(None);
    }

    /// Checks a browser's setpoint request. On success returns the record to publish; the shell publishes
    /// it and reports the outcome with [`HubState::write_published`]. On refusal the answer is already in the
    /// outputs.
    pub fn begin_write(
        &mut self,
        client: ClientId,
        req: &SetSetpoint,
        author: &str,
        now: TimeMs,
    ) -> Option<(WriteId, SetpointChange)> {
        let refuse = |code, message: String, current| {
            Output::Send(
                client,
                ServerMessage::Error(ErrorMsg {
                    request_id: Some(req.request_id.clone()),
                    code,
                    message,
                    current,
                }),
            )
        };
        let setpoint = req.setpoint();
        if let Err(e) = self.config.limits.validate(&setpoint) {
            self.outputs
                .push(refuse(ErrorCode::InvalidSetpoint, e.to_string(), None));
            return None;
        }
        if self.bus == BusStatus::Unavailable {
            self.outputs.push(refuse(
                ErrorCode::BrokerUnavailable,
                "setpoint not saved: the message broker cannot be reached".into(),
                None,
            ));
            return None;
        }
        let latest = self.latest_value(req.sensor);
        let latest_version = latest.as_ref().map_or(0, |c| c.version);
        if let Some(base) = req.base_version {
            if base != latest_version {
                let message = format!(
                    "sensor {} changed meanwhile: version {latest_version} is in force, not {base}",
                    req.sensor
                );
                self.outputs.push(refuse(ErrorCode::Conflict, message, latest));
                return None;
            }
        }
        let change = SetpointChange {
            sensor: req.sensor,
            setpoint,
            version: latest_version + 1,
            author: author.to_owned(),
            t_ms: now,
        };
        let id = WriteId(self.next_write);
        self.next_write += 1;
        self.writes.insert(
            id,
            InFlight {
                client,
                request_id: req.request_id.clone(),
                sensor: req.sensor,
                value: SetpointMsg::new(req.sensor, &setpoint, change.version, Some(now)),
                published_at: None,
                read_back: false,
            },
        );
        Some((id, change))
    }

    /// The outcome of publishing a write: `Ok` once the bus has it durably, or why it could not take it
    /// (the client is told; nothing was written).
    pub fn write_published(&mut self, id: WriteId, outcome: Result<(), PublishFailure>, now: TimeMs) {
        match outcome {
            Ok(()) => {
                if let Some(w) = self.writes.get_mut(&id) {
                    w.published_at = Some(now);
                }
                self.settle_writes(None);
            }
            Err(failure) => {
                if let Some(w) = self.writes.remove(&id) {
                    let (code, message) = match failure {
                        PublishFailure::Unavailable(why) => {
                            (ErrorCode::BrokerUnavailable, format!("setpoint not saved: {why}"))
                        }
                        PublishFailure::ShuttingDown => (
                            ErrorCode::Internal,
                            "setpoint not saved: server is shutting down".to_owned(),
                        ),
                    };
                    self.send(
                        w.client,
                        ServerMessage::Error(ErrorMsg {
                            request_id: Some(w.request_id),
                            code,
                            message,
                            current: None,
                        }),
                    );
                }
            }
        }
    }

    /// Periodic work at `now` with the bus in `bus` state: the status frame, a warning to every client when
    /// the broker goes away, and the acks of published writes whose record is late coming back.
    pub fn tick(&mut self, now: TimeMs, bus: BusStatus) {
        let previous = std::mem::replace(&mut self.bus, bus);
        if bus == BusStatus::Unavailable && previous != BusStatus::Unavailable {
            self.outputs.push(Output::Broadcast(ServerMessage::Error(ErrorMsg {
                request_id: None,
                code: ErrorCode::BrokerUnavailable,
                message: "the message broker cannot be reached: data is stale and setpoint changes are refused until it is back".into(),
                current: None,
            })));
        }
        self.settle_writes(Some(now));
        self.outputs
            .push(Output::Broadcast(ServerMessage::Status(StatusMsg {
                clients: self.clients.len() as u64,
                bus,
                readings_total: self.stats.readings,
                decisions_total: self.stats.decisions,
                server_time_ms: now,
            })));
    }

    /// The bus state as of the last tick.
    pub fn bus(&self) -> BusStatus {
        self.bus
    }

    /// The setpoint in force for a sensor.
    pub fn setpoint(&self, sensor: SensorId) -> Option<&SetpointMsg> {
        self.setpoints.get(&sensor)
    }

    /// The last command seen for a sensor.
    pub fn last_command(&self, sensor: SensorId) -> Option<&Decision> {
        self.commands.get(&sensor)
    }

    /// The newest value of a sensor's setpoint, counting writes in flight: what a new write replaces.
    fn latest_value(&self, sensor: SensorId) -> Option<SetpointMsg> {
        let in_flight = self
            .writes
            .values()
            .filter(|w| w.sensor == sensor)
            .map(|w| &w.value)
            .max_by_key(|v| v.version);
        match (self.setpoints.get(&sensor), in_flight) {
            (Some(c), Some(w)) if c.version >= w.version => Some(c.clone()),
            (_, Some(w)) => Some(w.clone()),
            (c, None) => c.cloned(),
        }
    }

    /// Acknowledges writes that are both published and read back — or, with `now`, published longer ago
    /// than the read-back patience.
    fn settle_writes(&mut self, now: Option<TimeMs>) {
        let done: Vec<WriteId> = self
            .writes
            .iter()
            .filter(|(_, w)| match w.published_at {
                None => false,
                Some(at) => w.read_back || now.is_some_and(|now| now - at >= READ_BACK_PATIENCE_MS),
            })
            .map(|(id, _)| *id)
            .collect();
        let mut done: Vec<(WriteId, InFlight)> = done
            .into_iter()
            .filter_map(|id| self.writes.remove(&id).map(|w| (id, w)))
            .collect();
        done.sort_by_key(|(id, _)| id.0);
        for (_, w) in done {
            self.send(
                w.client,
                ServerMessage::Ack {
                    request_id: w.request_id,
                },
            );
        }
    }

    fn send(&mut self, client: ClientId, msg: ServerMessage) {
        if self.clients.contains(&client) {
            self.outputs.push(Output::Send(client, msg));
        }
    }
}

/// Why the bus did not take a write.
#[derive(Clone, Debug, PartialEq)]
pub enum PublishFailure {
    Unavailable(String),
    ShuttingDown,
}
