//! Over 400 lines on purpose: the hub's fields and every input that changes them (bus records, clients
//! arriving and leaving, the tables read) in one place; writes, queries and views are already apart.
//!
//! The bridge's state machine, sans-IO: what every browser is told, and when. Its inputs from the bus and
//! its clients are here; a browser's write in [`super::write_path`], what it is asked without a change in
//! [`super::queries`], what a client watches in [`super::view`]. Its tests are in `tests.rs`.
//!
//! Inputs are records from the bus (readings, decisions, setpoints, schedules), clients arriving and
//! leaving, setpoint requests with the outcome of their publishing, and the time (`flush` and `tick` take
//! `now`). Outputs are [`Output`]s: messages for every client or for one. No clock, socket, lock or task in
//! here; the async shell ([`super::Hub`]) holds this behind one lock and delivers the outputs to the
//! clients' outboxes while still holding it, which is what makes the invariants below hold for real sockets
//! too. It coordinates three sub-states: [`History`] (what is kept per sensor), [`Writes`] (this bridge's
//! writes in flight) and [`Schedules`]; and it owns the one [`SetpointTable`].
//!
//! Invariants (unit-tested in `tests.rs`):
//! - **Bounded per client.** A client is sent what it watches ([`Watch`], chosen with `view` or
//!   `subscribe`), never every room: `hello` is counts, a view at most `MAX_WATCHED` rooms.
//! - **Exactly once per client.** A client that starts watching a room at any point sees each of its events
//!   once: either in the snapshot it is given then (the view's summary + the room's history) or in the
//!   outputs after it, for as long as it watches.
//! - **One path for setpoints.** A browser's write is published, and enters this state only when it comes
//!   back from the bus, like anybody else's; every bridge reading the stream therefore shows the same
//!   setpoints with the same versions. The writer's `ack` waits for both the bus's acknowledgement and the
//!   record's return, so the client sees the new setpoint in force before (or with) its ack.
//! - **The stream decides conflicts.** A write with a `base_version` is published as a record conditional on
//!   that version (a write without one, on the version this bridge sees in force), and which record takes
//!   effect is decided by the [`SetpointTable`] at its position in the stream — the rule every controller
//!   and bridge applies. The writer learns its outcome by reading its own record back (by `write_id`): `ack`
//!   if it took effect, `conflict` with the value in force if another write got there first, through this
//!   bridge or any other. A losing writer also publishes a restatement of the value in force, so the newest
//!   record of the sensor — all that compaction keeps — is one that holds.
//! - **History.** Each sensor's readings (thinned to at most one per `backfill_ms / backfill_max_per_sensor`),
//!   its decisions and its setpoint changes (who, when, from → to) over the backfill window are kept, so a
//!   new client starts with complete charts, heater strips and change history.

use std::collections::{HashMap, HashSet};

use setpoint_control::{
    check_temperature, Arrival, Config, Decision, ReadingError, RecordError, SensorId, SensorReading,
    SetpointTable, TimeMs, Verdict,
};
use setpoint_schedule::ScheduleError;
use setpoint_wire::schedule::ScheduleRecord;
use setpoint_wire::schedule::{ListPart, NextStep, SchedulesMsg};
use setpoint_wire::ws::{
    BusStatus, ErrorCode, ErrorMsg, Hello, ServerMessage, SetpointChangeEntry, StatusMsg, PROTOCOL_VERSION,
};

pub use super::history::HubOptions;
use super::history::{History, BACKFILL_FRAME_ITEMS};
pub use super::queries::SensorPage;
use super::schedules::Schedules;
pub use super::watch::Watch;
use super::writes::Writes;
pub use super::writes::{PublishFailure, WriteId};
use crate::bus::SetpointChange;

/// A published write whose record has not come back from the bus after this long is answered
/// `unconfirmed` (the protocol's constant: clients derive their own wait from it).
pub use setpoint_wire::ws::READ_BACK_PATIENCE_MS;

pub type ClientId = u64;

/// What the shell must deliver.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A record for the setpoint stream (a restatement after a lost race); the shell publishes it.
    Publish(SetpointChange),
    /// To every client (encode once).
    Broadcast(ServerMessage),
    /// Readings for every client that watches their rooms ([`Watch::covers`]); each client's outbox
    /// keeps those and coalesces when it is behind.
    Readings(Vec<SensorReading>),
    /// To every client that watches this room.
    About(SensorId, ServerMessage),
    /// From now on the client watches this; the shell applies it to the events that follow.
    Watch(ClientId, Watch),
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
    /// Rooms whose history is kept at full resolution now, and the bytes they take (the budget's use).
    pub fine_rooms: u64,
    pub fine_bytes: u64,
}

/// The state; see the module documentation.
#[derive(Debug)]
pub struct HubState {
    pub(super) config: Config,
    options: HubOptions,
    /// Which setpoint records take effect and which are refused, and the values in force: the table the
    /// controller and the scheduler keep too, under the same limits. What clients are shown is derived from
    /// it ([`HubState::setpoint`]).
    pub(super) table: SetpointTable,
    pub(super) history: History,
    pub(super) writes: Writes,
    pub(super) schedules: Schedules,
    clients: HashSet<ClientId>,
    /// What each connected client watches; a client missing here watches nothing.
    pub(super) watches: HashMap<ClientId, Watch>,
    /// Clients that only wait for their writes' answers (HTTP requests): no hello, no broadcasts, not
    /// counted as connected clients.
    quiet: HashSet<ClientId>,
    next_client: ClientId,
    pub(super) bus: BusStatus,
    /// Whether the setpoints and schedules have been read to the end offsets of the bridge's start. Until
    /// then the versions it knows may be stale: a write would be judged against them (a false `conflict`,
    /// or a record the log then refuses), so writes are refused as the broker's absence is.
    pub(super) tables_read: bool,
    stats: HubStats,
    pub(super) outputs: Vec<Output>,
    /// Where each room's data comes from (shown, never judged by).
    pub(super) sources: std::sync::Arc<super::sources::RoomSources>,
}

impl HubState {
    /// A hub for clients of a controller running with `config` (sent in `hello`, so the browser's copy of
    /// the control core decides exactly as the server's does).
    pub fn new(config: Config, options: HubOptions) -> Self {
        Self {
            config,
            options,
            table: SetpointTable::new(config),
            history: History::new(options),
            writes: Writes::new("hub"),
            schedules: Schedules::default(),
            clients: HashSet::new(),
            watches: HashMap::new(),
            quiet: HashSet::new(),
            next_client: 0,
            bus: BusStatus::Connected,
            tables_read: false,
            stats: HubStats::default(),
            outputs: Vec::new(),
            sources: Default::default(),
        }
    }

    /// Tells the hub where its rooms' data comes from.
    pub fn with_sources(mut self, sources: std::sync::Arc<super::sources::RoomSources>) -> Self {
        self.sources = sources;
        self
    }

    /// Names this hub's writes `<writer>-<n>`: two bridges on one stream must use different names, or each
    /// could take the other's record for its own.
    pub fn with_writer(mut self, writer: &str) -> Self {
        self.writes = Writes::new(writer);
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
        let (fine_rooms, fine_bytes) = self.history.fine();
        HubStats {
            fine_rooms: fine_rooms as u64,
            fine_bytes: fine_bytes as u64,
            ..self.stats
        }
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
            sensor_count: self.history.sensor_count() as u64,
            config: self.config,
            server_time_ms: now,
        });
        // It watches nothing yet: the schedules without any room's next step.
        let mut backfill: Vec<ServerMessage> = SchedulesMsg::parts(&self.schedules.all())
            .into_iter()
            .map(ServerMessage::Schedules)
            .collect();
        backfill.push(ServerMessage::Schedules(SchedulesMsg::steps(
            Vec::new(),
            ListPart::Last,
        )));
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

    /// Whether `id` is a connected (not quiet) client.
    pub(super) fn is_client(&self, id: ClientId) -> bool {
        self.clients.contains(&id)
    }

    /// Removes a client; its writes in flight still complete on the bus but answer nobody.
    pub fn unregister(&mut self, id: ClientId) -> bool {
        self.watches.remove(&id);
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
        self.history.add_reading(reading);
        self.stats.readings += 1;
        Ok(())
    }

    /// Refuses a sensor the bridge has not heard of once it knows `max_sensors`.
    fn admit(&self, sensor: SensorId) -> Result<(), ReadingError> {
        let known = self.history.knows(sensor);
        Ok(self.config.admit(sensor, known, self.history.sensor_count())?)
    }

    /// Sends the readings received since the last flush, as one batch for everybody.
    pub fn flush(&mut self) {
        let items = self.history.flush();
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
        self.history.add_decision(decision);
        self.stats.decisions += 1;
        self.outputs
            .push(Output::About(decision.sensor, ServerMessage::Decision(decision)));
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
            let entry = SetpointChangeEntry {
                version,
                author: change.author.clone(),
                t_ms: change.t_ms,
                from: previous,
                to: change.setpoint,
            };
            self.history.add_change(change.sensor, entry);
            self.stats.setpoints += 1;
            self.outputs
                .push(Output::About(change.sensor, ServerMessage::Setpoint(msg.clone())));
        }
        if let Verdict::Skipped { .. } = verdict {
            self.settle_refused(&change, now);
        } else if let Some(in_force) = in_force {
            if self.writes.read_back(&change, Ok(in_force)) {
                self.settle_writes(now);
            }
        }
        Ok(verdict)
    }

    /// `change` did not take effect: if it is one of this hub's writes, its writer gets `conflict` with
    /// the value in force, and a restatement of that value is published (see the module docs).
    fn settle_refused(&mut self, change: &SetpointChange, now: TimeMs) {
        let current = self.setpoint(change.sensor);
        if !self.writes.read_back(change, Err(current)) {
            return;
        }
        if let Some(r) = self.table.restatement(change.sensor) {
            self.outputs.push(Output::Publish(r));
        }
        self.settle_writes(now);
    }

    /// A sensor's setpoint changes, for one client.
    pub fn send_history(&mut self, client: ClientId, sensor: SensorId) {
        let history = self.change_history(sensor);
        self.send(client, ServerMessage::SetpointHistory(history));
    }

    /// Periodic work at `now` with the bus in `bus` state: the status frame, a warning to every client when
    /// the broker goes away, the acks of published writes whose record is late coming back, and the
    /// schedules' next steps when a step passed.
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
        if self.schedules.tick(now) {
            self.send_schedules(false);
        }
        self.outputs
            .push(Output::Broadcast(ServerMessage::Status(StatusMsg {
                clients: self.clients.len() as u64,
                sensors: self.history.sensor_count() as u64,
                heating: self.history.heating() as u64,
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

    /// Reads the next record of the schedules stream. A schedule that does not compile (the API refuses
    /// those, so it came from elsewhere) is not shown as running; its error is returned for the log.
    pub fn on_schedule(&mut self, record: ScheduleRecord, now: TimeMs) -> Result<(), ScheduleError> {
        let result = self.schedules.on_record(record, &self.config.limits, now);
        self.send_schedules(true);
        result
    }

    /// The schedules to every client. When the list changed: the list in parts of at most a megabyte,
    /// each encoded once for all, then each client's next steps ending it; when only a step passed, only
    /// the next steps. A client gets the next steps of the rooms it watches: a building's every next step
    /// would not fit a frame.
    fn send_schedules(&mut self, list_changed: bool) {
        let end = if list_changed {
            for part in SchedulesMsg::parts(&self.schedules.all()) {
                self.outputs
                    .push(Output::Broadcast(ServerMessage::Schedules(part)));
            }
            ListPart::Last
        } else {
            ListPart::Unchanged
        };
        for client in &self.clients {
            let watch = self.watches.get(client).unwrap_or(&Watch::Nothing);
            let mine = watched_steps(self.schedules.next_steps(), watch);
            self.outputs.push(Output::Send(
                *client,
                ServerMessage::Schedules(SchedulesMsg::steps(mine, end)),
            ));
        }
    }

    pub(super) fn send(&mut self, client: ClientId, msg: ServerMessage) {
        if self.clients.contains(&client) || self.quiet.contains(&client) {
            self.outputs.push(Output::Send(client, msg));
        }
    }
}

/// The next steps of the rooms the client watches by name: at most a page of them. A client of every room
/// gets none (every scheduled room's would not fit a frame; the API lists them).
pub(super) fn watched_steps(next: &[NextStep], watch: &Watch) -> Vec<NextStep> {
    next.iter()
        .filter(|n| matches!(watch, Watch::Rooms(_)) && watch.covers(n.sensor))
        .cloned()
        .collect()
}
