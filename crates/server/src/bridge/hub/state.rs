//! Over 400 lines on purpose: one state machine whose inputs all touch the same fields; its tests are in
//! `tests.rs`.
//!
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
//! - **The stream decides conflicts.** A write with a `base_version` is published as a record conditional on
//!   that version (a write without one, on the version this bridge sees in force), and which record takes effect is decided by [`VersionArbiter`] at its position in the
//!   stream — the rule every controller and bridge applies. The writer learns its outcome by reading its own
//!   record back (by `write_id`): `ack` if it took effect, `conflict` with the value in force if another
//!   write got there first, through this bridge or any other. A losing writer also publishes a restatement
//!   of the value in force, so the newest record of the sensor — all that compaction keeps — is one that
//!   holds.
//! - **History.** Each sensor's readings (thinned to at most one per `backfill_ms / backfill_max_per_sensor`),
//!   its decisions and its setpoint changes (who, when, from → to) over the backfill window are kept, so a
//!   new client starts with complete charts, heater strips and change history.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use setpoint_control::{
    check_temperature, Arrival, Config, Decision, InForce, ReadingError, RecordError, SensorId,
    SensorReading, SetpointTable, TimeMs, Verdict,
};
use setpoint_wire::api::{SensorHistory, SensorView};
use setpoint_wire::ws::{
    BusStatus, DecisionsBatch, ErrorCode, ErrorMsg, Hello, ReadingsBatch, ServerMessage, SetpointChangeEntry,
    SetpointHistoryMsg, SetpointMsg, SetpointWrite, StatusMsg, PROTOCOL_VERSION,
};

use setpoint_schedule::{next_steps, Program, ScheduleError};
use setpoint_wire::schedule::{NextStep, Schedule, ScheduleRecord, SchedulesMsg, MAX_SCHEDULES};

use crate::bus::SetpointChange;

/// Most readings (or decisions) in one frame, so a large history or a replay arrives in digestible pieces.
const BACKFILL_FRAME_ITEMS: usize = 5_000;

/// A published write whose record has not come back from the bus after this long is answered
/// `unconfirmed` (the protocol's constant: clients derive their own wait from it).
pub use setpoint_wire::ws::READ_BACK_PATIENCE_MS;

/// Setpoint changes kept per sensor for the change history.
pub const CHANGES_PER_SENSOR: usize = 200;

/// Decisions kept per sensor whatever their age: a heater that flaps still has a bounded history.
const DECISIONS_PER_SENSOR: usize = 5_000;

/// How the hub bounds its memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HubOptions {
    /// Readings and decisions older than this (relative to the newest of their sensor) leave the backfill:
    /// the dashboard's widest chart window.
    pub backfill_ms: i64,
    /// Readings kept per sensor: older readings are thinned to one per `backfill_ms / this`, so the backfill
    /// covers the whole window at any reading rate and its size stays bounded.
    pub backfill_max_per_sensor: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            backfill_ms: 15 * 60_000,
            backfill_max_per_sensor: 1_800,
        }
    }
}

impl HubOptions {
    /// Least time between two readings of one sensor kept for the backfill.
    fn backfill_spacing_ms(&self) -> i64 {
        self.backfill_ms / self.backfill_max_per_sensor.max(1) as i64
    }
}

pub type ClientId = u64;

/// Identifies a setpoint write between [`HubState::begin_write`] and [`HubState::write_published`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriteId(u64);

/// What the shell must deliver.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A record for the setpoint stream (a restatement after a lost race); the shell publishes it.
    Publish(SetpointChange),
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
    write_id: String,
    /// What it asks for, with the version it will have if it takes effect.
    value: SetpointMsg,
    /// The bus acknowledged the record, at this time.
    published_at: Option<TimeMs>,
    /// The record came back: `Ok` with the value it put in force, else the value in force that beat it.
    outcome: Option<Result<SetpointMsg, Option<SetpointMsg>>>,
}

/// One sensor's readings for new clients: the thinned backfill ring, and the newest reading (which the
/// thinning may have left out of the ring), both as of the last flush.
#[derive(Debug)]
struct ReadingHistory {
    kept: VecDeque<SensorReading>,
    newest: SensorReading,
}

/// The state; see the module documentation.
#[derive(Debug)]
pub struct HubState {
    config: Config,
    options: HubOptions,
    /// Which setpoint records take effect and which are refused, and the values in force: the table the
    /// controller and the scheduler keep too, under the same limits. What clients are shown is derived from
    /// it ([`HubState::setpoint`]).
    table: SetpointTable,
    changes: HashMap<SensorId, VecDeque<SetpointChangeEntry>>,
    commands: BTreeMap<SensorId, Decision>,
    decisions: HashMap<SensorId, VecDeque<Decision>>,
    sensors: BTreeSet<SensorId>,
    history: HashMap<SensorId, ReadingHistory>,
    /// Readings received since the last flush; they enter `history` when flushed, so history and batches
    /// never overlap.
    pending: Vec<SensorReading>,
    clients: HashSet<ClientId>,
    /// Clients that only wait for their writes' answers (HTTP requests): no hello, no broadcasts, not
    /// counted as connected clients.
    quiet: HashSet<ClientId>,
    next_client: ClientId,
    writes: HashMap<WriteId, InFlight>,
    next_write: u64,
    /// Prefix of this hub's write ids, unique per bridge process (the shell draws it at random).
    writer: String,
    bus: BusStatus,
    /// Whether the setpoints and schedules have been read to the end offsets of the bridge's start. Until
    /// then the versions it knows may be stale: a write would be judged against them (a false `conflict`,
    /// or a record the log then refuses), so writes are refused as the broker's absence is.
    tables_read: bool,
    stats: HubStats,
    outputs: Vec<Output>,
    /// Weekly schedules by name, as saved, with their compiled programs (for the next steps).
    schedules: BTreeMap<String, (Schedule, Program)>,
    /// Each scheduled sensor's next step, as last sent, and when that next changes by itself.
    next_steps: Vec<NextStep>,
    next_refresh: Option<TimeMs>,
}

impl HubState {
    /// A hub for clients of a controller running with `config` (sent in `hello`, so the browser's copy of
    /// the control core decides exactly as the server's does).
    pub fn new(config: Config, options: HubOptions) -> Self {
        Self {
            config,
            options,
            table: SetpointTable::new(config),
            changes: HashMap::new(),
            commands: BTreeMap::new(),
            decisions: HashMap::new(),
            sensors: BTreeSet::new(),
            history: HashMap::new(),
            pending: Vec::new(),
            clients: HashSet::new(),
            quiet: HashSet::new(),
            next_client: 0,
            writes: HashMap::new(),
            next_write: 0,
            writer: "hub".to_owned(),
            bus: BusStatus::Connected,
            tables_read: false,
            stats: HubStats::default(),
            outputs: Vec::new(),
            schedules: BTreeMap::new(),
            next_steps: Vec::new(),
            next_refresh: None,
        }
    }

    /// Names this hub's writes `<writer>-<n>`: two bridges on one stream must use different names, or each
    /// could take the other's record for its own.
    pub fn with_writer(mut self, writer: &str) -> Self {
        self.writer = writer.to_owned();
        self
    }

    /// What the shell must deliver, in order, since the last call.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    pub fn config(&self) -> Config {
        self.config
    }

    pub fn options(&self) -> HubOptions {
        self.options
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
            setpoints: self.setpoints_in_force(),
            commands: self.commands.values().copied().collect(),
            config: self.config,
            server_time_ms: now,
        });
        let mut backfill = vec![ServerMessage::Schedules(self.schedules_msg())];
        let mut items: Vec<SensorReading> = self
            .history
            .values()
            .flat_map(|h| h.kept.iter().copied())
            .collect();
        items.sort_by_key(|i| (i.t_ms, i.sensor));
        backfill.extend(items.chunks(BACKFILL_FRAME_ITEMS).map(|c| {
            ServerMessage::Readings(ReadingsBatch {
                items: c.to_vec(),
                missed: 0,
                backfill: true,
            })
        }));
        let mut decisions: Vec<Decision> = self.decisions.values().flat_map(|h| h.iter().copied()).collect();
        decisions.sort_by_key(|d| (d.t_ms, d.sensor));
        backfill.extend(decisions.chunks(BACKFILL_FRAME_ITEMS).map(|c| {
            ServerMessage::Decisions(DecisionsBatch {
                items: c.to_vec(),
                backfill: true,
            })
        }));
        Welcome { id, hello, backfill }
    }

    /// Registers a client that only writes and waits for the answers (an HTTP request): it is sent
    /// nothing but those answers.
    pub fn register_quiet(&mut self) -> ClientId {
        let id = self.next_client;
        self.next_client += 1;
        self.quiet.insert(id);
        id
    }

    /// Removes a client; its writes in flight still complete on the bus but answer nobody.
    pub fn unregister(&mut self, id: ClientId) -> bool {
        let known = self.clients.remove(&id) | self.quiet.remove(&id);
        self.stats.clients = self.clients.len() as u64;
        known
    }

    /// A reading from the bus. Refused — never shown, never kept — by the checks the controller applies
    /// (a temperature that is not a finite number or below absolute zero, a time from the future), or if it
    /// would add a sensor past the bound: a browser gets only what the controller would decide on.
    pub fn on_reading(&mut self, reading: SensorReading, arrival: Arrival) -> Result<(), ReadingError> {
        reading.check(&self.config, arrival)?;
        self.admit(reading.sensor)?;
        self.sensors.insert(reading.sensor);
        self.pending.push(reading);
        self.stats.readings += 1;
        Ok(())
    }

    /// Refuses a sensor the bridge has not heard of once it knows `max_sensors`.
    fn admit(&self, sensor: SensorId) -> Result<(), ReadingError> {
        let known = self.sensors.contains(&sensor);
        Ok(self.config.admit(sensor, known, self.sensors.len())?)
    }

    /// Sends the readings received since the last flush, as one batch for everybody.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.pending);
        let (keep_ms, keep_max) = (self.options.backfill_ms, self.options.backfill_max_per_sensor);
        let spacing = self.options.backfill_spacing_ms();
        for item in &items {
            let history = self.history.entry(item.sensor).or_insert(ReadingHistory {
                kept: VecDeque::new(),
                newest: *item,
            });
            if item.t_ms >= history.newest.t_ms {
                history.newest = *item;
            }
            let ring = &mut history.kept;
            if ring.back().is_some_and(|last| item.t_ms - last.t_ms < spacing) {
                continue;
            }
            ring.push_back(*item);
            while ring.len() > keep_max || ring.front().is_some_and(|f| item.t_ms - f.t_ms > keep_ms) {
                ring.pop_front();
            }
        }
        // A replay (a bridge starting on a backlog) can flush many readings at once: split them so no frame
        // outgrows the transport's write buffer.
        for chunk in items.chunks(BACKFILL_FRAME_ITEMS) {
            self.outputs.push(Output::Readings(chunk.to_vec()));
        }
    }

    /// A command from the bus. One carrying a temperature no browser can read (not finite) or a time from
    /// the future is refused: it did not come from a controller that checks its readings.
    pub fn on_decision(&mut self, decision: Decision, arrival: Arrival) -> Result<(), ReadingError> {
        check_temperature(decision.sensor, decision.temperature)?;
        arrival.check(decision.sensor, decision.t_ms, self.config.max_clock_skew_ms)?;
        self.admit(decision.sensor)?;
        self.sensors.insert(decision.sensor);
        self.commands.insert(decision.sensor, decision);
        let ring = self.decisions.entry(decision.sensor).or_default();
        ring.push_back(decision);
        // Keep the newest decision before the window too: it is the heater's state where the window starts.
        let cutoff = decision.t_ms - self.options.backfill_ms;
        while ring.len() > DECISIONS_PER_SENSOR || (ring.len() > 1 && ring[1].t_ms < cutoff) {
            ring.pop_front();
        }
        self.stats.decisions += 1;
        self.outputs
            .push(Output::Broadcast(ServerMessage::Decision(decision)));
        Ok(())
    }

    /// Reads the next setpoint record of the stream — every setpoint, this bridge's writes included, comes
    /// this way. [`SetpointTable`] decides whether it takes effect (or is refused, for every reader alike);
    /// if it is one of this hub's writes, its writer now knows its outcome.
    pub fn on_setpoint(&mut self, change: SetpointChange, arrival: Arrival) -> Result<Verdict, RecordError> {
        let now = arrival.now_ms;
        let previous = self.table.in_force(change.sensor).map(|f| f.setpoint);
        let verdict = match self.table.judge(&change, arrival) {
            Ok(verdict) => verdict,
            Err(e) => {
                // One of ours refused (the limits changed under it): the writer is told it did not take.
                self.settle_refused(&change, now);
                return Err(e);
            }
        };
        let in_force = self.setpoint(change.sensor);
        if let (Verdict::Applied { version, .. }, Some(msg)) = (verdict, &in_force) {
            let changes = self.changes.entry(change.sensor).or_default();
            changes.push_back(SetpointChangeEntry {
                version,
                author: change.author.clone(),
                t_ms: change.t_ms,
                from: previous,
                to: change.setpoint,
            });
            if changes.len() > CHANGES_PER_SENSOR {
                changes.pop_front();
            }
            self.sensors.insert(change.sensor);
            self.stats.setpoints += 1;
            self.outputs
                .push(Output::Broadcast(ServerMessage::Setpoint(msg.clone())));
        }
        if let Verdict::Skipped { .. } = verdict {
            self.settle_refused(&change, now);
        } else if let Some(in_force) = in_force {
            if let Some(write) = self.own_write(&change) {
                write.outcome = Some(Ok(in_force));
                self.settle_writes(now);
            }
        }
        Ok(verdict)
    }

    /// This hub's write in flight that `change` is the record of, if its outcome is not known yet (a
    /// redelivery of a record already judged finds none).
    fn own_write(&mut self, change: &SetpointChange) -> Option<&mut InFlight> {
        if change.write_id.is_empty() {
            return None;
        }
        self.writes
            .values_mut()
            .find(|w| w.write_id == change.write_id && w.outcome.is_none())
    }

    /// `change` did not take effect: if it is one of this hub's writes, its writer gets `conflict` with
    /// the value in force, and a restatement of that value is published (see the module docs).
    fn settle_refused(&mut self, change: &SetpointChange, now: TimeMs) {
        let current = self.setpoint(change.sensor);
        let restatement = self.table.restatement(change.sensor);
        let Some(write) = self.own_write(change) else {
            return;
        };
        write.outcome = Some(Err(current));
        if let Some(r) = restatement {
            self.outputs.push(Output::Publish(r));
        }
        self.settle_writes(now);
    }

    /// A sensor's setpoint changes, for one client.
    pub fn send_history(&mut self, client: ClientId, sensor: SensorId) {
        let history = self.change_history(sensor);
        self.send(client, ServerMessage::SetpointHistory(history));
    }

    /// A sensor's change history, as `setpoint_history` answers it.
    pub fn change_history(&self, sensor: SensorId) -> SetpointHistoryMsg {
        let changes = self
            .changes
            .get(&sensor)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        SetpointHistoryMsg { sensor, changes }
    }

    /// Checks a browser's setpoint request. On success returns the record to publish; the shell publishes
    /// it and reports the outcome with [`HubState::write_published`]. On refusal the answer is already in the
    /// outputs.
    pub fn begin_write(
        &mut self,
        client: ClientId,
        req: &SetpointWrite,
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
        // The table's checks, as every reader will apply them to the record (limits, sizes, the sensor
        // bound); the version is checked below, once the base is known.
        let draft = SetpointChange {
            sensor: req.sensor,
            setpoint,
            version: 0,
            author: author.to_owned(),
            t_ms: now,
            base_version: None,
            write_id: String::new(),
        };
        if let Err(e) = self.table.check(&draft, None) {
            let message = match e {
                RecordError::InvalidSetpoint { error, .. } => error.to_string(),
                other => other.to_string(),
            };
            self.outputs
                .push(refuse(ErrorCode::InvalidSetpoint, message, None));
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
        if !self.tables_read {
            self.outputs.push(refuse(
                ErrorCode::BrokerUnavailable,
                "setpoint not saved: the bridge is still reading the setpoints in force; try again in a moment"
                    .into(),
                None,
            ));
            return None;
        }
        // This bridge's own writes in flight count, so one client's quick succession of writes chains up
        // instead of conflicting with itself, and a write this bridge already knows to be stale is refused
        // without a record. The stream has the final word on the rest.
        let latest = self.latest_value(req.sensor);
        let latest_version = latest.as_ref().map_or(0, |c| c.version);
        if let Some(base) = req.base_version {
            if base != latest_version {
                self.outputs.push(refuse(
                    ErrorCode::Conflict,
                    conflict_message(req.sensor, latest_version, base),
                    latest,
                ));
                return None;
            }
        }
        // Without a base version the write replaces the latest this bridge knows of. Every record a bridge
        // writes is conditional and carries its version: if another bridge's write lands first, this one is
        // answered `conflict` like any other, rather than silently overwriting a change its author never saw.
        let base = req.base_version.unwrap_or(latest_version);
        let version = match SetpointTable::next_version(req.sensor, base) {
            Ok(v) => v,
            Err(e) => {
                self.outputs
                    .push(refuse(ErrorCode::InvalidSetpoint, e.to_string(), None));
                return None;
            }
        };
        let id = WriteId(self.next_write);
        self.next_write += 1;
        let write_id = format!("{}-{}", self.writer, id.0);
        let change = SetpointChange {
            version,
            base_version: Some(base),
            write_id: write_id.clone(),
            ..draft
        };
        self.writes.insert(
            id,
            InFlight {
                client,
                request_id: req.request_id.clone(),
                write_id,
                value: SetpointMsg::new(req.sensor, &setpoint, version, Some(now)),
                published_at: None,
                outcome: None,
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
                self.settle_writes(now);
            }
            Err(_) if self.writes.get(&id).is_some_and(|w| w.outcome.is_some()) => {
                // The record came back, so it is in the stream whatever the producer says: answer that.
                if let Some(w) = self.writes.get_mut(&id) {
                    w.published_at = Some(now);
                }
                self.settle_writes(now);
            }
            Err(failure) => {
                if let Some(w) = self.writes.remove(&id) {
                    let (code, message) = failure.answer("setpoint");
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
        self.settle_writes(now);
        if self.next_refresh.is_some_and(|at| now >= at) {
            self.refresh_next_steps(now, false);
        }
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

    /// The setpoints and schedules have been read up to the end offsets of the bridge's start: from now
    /// on the versions this hub knows are at least as new as every write acknowledged before it started.
    pub fn on_tables_read(&mut self) {
        self.tables_read = true;
    }

    /// Whether [`on_tables_read`](Self::on_tables_read) has happened: `/readyz` and the API wait for it.
    pub fn tables_read(&self) -> bool {
        self.tables_read
    }

    /// What is known of one sensor now; `None` if the bridge never heard of it.
    pub fn sensor_view(&self, sensor: SensorId) -> Option<SensorView> {
        self.sensors.contains(&sensor).then(|| SensorView {
            sensor,
            reading: self.history.get(&sensor).map(|h| h.newest),
            setpoint: self.setpoint(sensor),
            heater: self.commands.get(&sensor).copied(),
            next_step: self
                .next_steps
                .binary_search_by_key(&sensor, |n| n.sensor)
                .ok()
                .map(|i| self.next_steps[i].clone()),
        })
    }

    /// Reads the next record of the schedules stream. A schedule that does not compile (the API refuses
    /// those, so it came from elsewhere) is not shown as running; its error is returned for the log.
    pub fn on_schedule(&mut self, record: ScheduleRecord, now: TimeMs) -> Result<(), ScheduleError> {
        let name = record.schedule.name.clone();
        let known = self.schedules.remove(&name).is_some();
        let result = if record.deleted {
            Ok(())
        } else if !known && self.schedules.len() >= MAX_SCHEDULES {
            Err(ScheduleError::TooManySchedules { max: MAX_SCHEDULES })
        } else {
            Program::compile(&record.schedule, &self.config.limits).map(|program| {
                self.schedules.insert(name, (record.schedule, program));
            })
        };
        self.refresh_next_steps(now, true);
        result
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Vec<Schedule> {
        self.schedules.values().map(|(s, _)| s.clone()).collect()
    }

    /// The schedule of that name.
    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name).map(|(s, _)| s)
    }

    /// Every scheduled sensor's next step, by sensor.
    pub fn next_steps(&self) -> &[NextStep] {
        &self.next_steps
    }

    fn schedules_msg(&self) -> SchedulesMsg {
        SchedulesMsg {
            schedules: self.schedules(),
            next: self.next_steps.clone(),
        }
    }

    /// Recomputes the next steps at `now`; tells every client when they (or, `changed`, the schedules)
    /// changed.
    fn refresh_next_steps(&mut self, now: TimeMs, changed: bool) {
        let next = next_steps(self.schedules.values().map(|(_, p)| (p, p.next_after(now))));
        self.next_refresh = next.iter().map(|n| n.at_ms).min();
        if changed || next != self.next_steps {
            self.next_steps = next;
            self.outputs
                .push(Output::Broadcast(ServerMessage::Schedules(self.schedules_msg())));
        }
    }

    /// What is kept of a sensor between `since` and `until` (inclusive): the backfill's readings (the
    /// newest too, which thinning may have left out of the ring), decisions and setpoint changes.
    pub fn history(&self, sensor: SensorId, since: TimeMs, until: TimeMs) -> Option<SensorHistory> {
        if !self.sensors.contains(&sensor) {
            return None;
        }
        let within = |t: TimeMs| (since..=until).contains(&t);
        let mut readings: Vec<SensorReading> = Vec::new();
        if let Some(h) = self.history.get(&sensor) {
            readings.extend(h.kept.iter().filter(|r| within(r.t_ms)));
            if within(h.newest.t_ms) && readings.last().is_none_or(|last| last.t_ms < h.newest.t_ms) {
                readings.push(h.newest);
            }
        }
        let decisions = self
            .decisions
            .get(&sensor)
            .map(|d| d.iter().filter(|d| within(d.t_ms)).copied().collect())
            .unwrap_or_default();
        let changes = self
            .changes
            .get(&sensor)
            .map(|c| c.iter().filter(|c| within(c.t_ms)).cloned().collect())
            .unwrap_or_default();
        Some(SensorHistory {
            sensor,
            since_ms: since,
            until_ms: until,
            kept_ms: self.options.backfill_ms,
            readings,
            decisions,
            changes,
        })
    }

    /// Every sensor the bridge has heard of, by id.
    pub fn sensor_views(&self) -> Vec<SensorView> {
        self.sensors.iter().filter_map(|&s| self.sensor_view(s)).collect()
    }

    /// The setpoint in force for a sensor, as clients are shown it.
    pub fn setpoint(&self, sensor: SensorId) -> Option<SetpointMsg> {
        self.table.in_force(sensor).map(|f| setpoint_msg(sensor, f))
    }

    /// Every setpoint in force, by sensor.
    fn setpoints_in_force(&self) -> Vec<SetpointMsg> {
        let mut all: Vec<SetpointMsg> = self.table.iter().map(|(s, f)| setpoint_msg(s, f)).collect();
        all.sort_by_key(|m| m.sensor);
        all
    }

    /// The last command seen for a sensor.
    pub fn last_command(&self, sensor: SensorId) -> Option<&Decision> {
        self.commands.get(&sensor)
    }

    /// The newest value of a sensor's setpoint, counting this bridge's writes in flight: what a new write
    /// replaces.
    fn latest_value(&self, sensor: SensorId) -> Option<SetpointMsg> {
        let in_flight = self
            .writes
            .values()
            .filter(|w| w.value.sensor == sensor && w.outcome.is_none())
            .map(|w| &w.value)
            .max_by_key(|v| v.version);
        match (self.setpoint(sensor), in_flight) {
            (Some(c), Some(w)) if c.version >= w.version => Some(c),
            (_, Some(w)) => Some(w.clone()),
            (c, None) => c,
        }
    }

    /// Answers the writes whose outcome is known and whose record the bus has acknowledged; and, once
    /// published longer ago than the read-back patience, the writes still unread.
    fn settle_writes(&mut self, now: TimeMs) {
        let mut done: Vec<WriteId> = self
            .writes
            .iter()
            .filter(|(_, w)| {
                w.published_at
                    .is_some_and(|at| w.outcome.is_some() || now - at >= READ_BACK_PATIENCE_MS)
            })
            .map(|(id, _)| *id)
            .collect();
        done.sort_by_key(|id| id.0);
        for id in done {
            let Some(w) = self.writes.remove(&id) else {
                continue;
            };
            let answer = match w.outcome {
                Some(Ok(in_force)) => ServerMessage::Ack {
                    request_id: w.request_id,
                    setpoint: Some(in_force),
                },
                Some(Err(current)) => {
                    let in_force = current.as_ref().map_or(0, |c| c.version);
                    ServerMessage::Error(ErrorMsg {
                        request_id: Some(w.request_id),
                        code: ErrorCode::Conflict,
                        message: format!(
                            "another write to this sensor took effect first: version {in_force} is in force"
                        ),
                        current,
                    })
                }
                None => ServerMessage::Error(ErrorMsg {
                    request_id: Some(w.request_id),
                    code: ErrorCode::Unconfirmed,
                    message: "setpoint saved, but not yet confirmed: it shows as an update if it took effect"
                        .to_owned(),
                    current: None,
                }),
            };
            self.send(w.client, answer);
        }
    }

    fn send(&mut self, client: ClientId, msg: ServerMessage) {
        if self.clients.contains(&client) || self.quiet.contains(&client) {
            self.outputs.push(Output::Send(client, msg));
        }
    }
}

/// A value in force as the WebSocket and the API show it.
fn setpoint_msg(sensor: SensorId, f: &InForce) -> SetpointMsg {
    let mut msg = SetpointMsg::new(sensor, &f.setpoint, f.version, Some(f.t_ms));
    msg.author = (!f.author.is_empty()).then(|| f.author.clone());
    msg
}

fn conflict_message(sensor: SensorId, in_force: u64, base: u64) -> String {
    format!("sensor {sensor} changed meanwhile: version {in_force} is in force, not {base}")
}

/// Why the bus did not take a write.
#[derive(Clone, Debug, PartialEq)]
pub enum PublishFailure {
    Unavailable(String),
    ShuttingDown,
}

impl From<crate::bus::BusError> for PublishFailure {
    fn from(e: crate::bus::BusError) -> Self {
        match e {
            crate::bus::BusError::Unavailable(why) => Self::Unavailable(why),
            crate::bus::BusError::Closed => Self::ShuttingDown,
        }
    }
}

impl PublishFailure {
    /// The error code and message a client gets for a `what` (a setpoint, a schedule) the bus did not take:
    /// the one mapping, for the WebSocket and the HTTP API alike.
    pub fn answer(&self, what: &str) -> (ErrorCode, String) {
        match self {
            Self::Unavailable(why) => (ErrorCode::BrokerUnavailable, format!("{what} not saved: {why}")),
            Self::ShuttingDown => (
                ErrorCode::Internal,
                format!("{what} not saved: server is shutting down"),
            ),
        }
    }
}
