//! Over 400 lines on purpose: the coordinator of the hub's sub-states, whose every input touches several
//! of them; the invariants below are about their combination. Its tests are in `tests.rs`.
//!
//! The bridge's state machine, sans-IO: what every browser is told, and when.
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
    band_acts_on, check_temperature, Arrival, Command, Config, Decision, InForce, ReadingError, RecordError,
    SensorId, SensorReading, SetpointTable, TimeMs, Verdict,
};
use setpoint_schedule::ScheduleError;
use setpoint_wire::api::{SensorFilter, SensorHistory, SensorView};
use setpoint_wire::schedule::SchedulesMsg;
use setpoint_wire::schedule::{NextStep, Schedule, ScheduleRecord};
use setpoint_wire::ws::{
    BusStatus, ErrorCode, ErrorMsg, Hello, ServerMessage, SetpointChangeEntry, SetpointHistoryMsg,
    SetpointMsg, SetpointWrite, StatusMsg, PROTOCOL_VERSION,
};

pub use super::history::HubOptions;
use super::history::{History, BACKFILL_FRAME_ITEMS};
use super::schedules::Schedules;
pub use super::watch::Watch;
use super::writes::{conflict_message, Writes, STILL_READING_TABLES};
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

/// A page of sensors ([`HubState::sensor_page`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SensorPage {
    pub sensors: Vec<SensorView>,
    /// How many sensors pass the filters, on every page.
    pub matching: usize,
    /// The `after` of the next page; `None` on the last.
    pub next_after: Option<SensorId>,
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

/// The state; see the module documentation.
#[derive(Debug)]
pub struct HubState {
    config: Config,
    options: HubOptions,
    /// Which setpoint records take effect and which are refused, and the values in force: the table the
    /// controller and the scheduler keep too, under the same limits. What clients are shown is derived from
    /// it ([`HubState::setpoint`]).
    table: SetpointTable,
    pub(super) history: History,
    writes: Writes,
    pub(super) schedules: Schedules,
    clients: HashSet<ClientId>,
    /// What each connected client watches; a client missing here watches nothing.
    pub(super) watches: HashMap<ClientId, Watch>,
    /// Clients that only wait for their writes' answers (HTTP requests): no hello, no broadcasts, not
    /// counted as connected clients.
    quiet: HashSet<ClientId>,
    next_client: ClientId,
    bus: BusStatus,
    /// Whether the setpoints and schedules have been read to the end offsets of the bridge's start. Until
    /// then the versions it knows may be stale: a write would be judged against them (a false `conflict`,
    /// or a record the log then refuses), so writes are refused as the broker's absence is.
    tables_read: bool,
    stats: HubStats,
    pub(super) outputs: Vec<Output>,
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
        }
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
            sensor_count: self.history.sensor_count() as u64,
            config: self.config,
            server_time_ms: now,
        });
        // It watches nothing yet: the schedules without any room's next step.
        let backfill = vec![ServerMessage::Schedules(watched_steps(
            self.schedules.msg(),
            &Watch::Nothing,
        ))];
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

    /// A sensor's change history, as `setpoint_history` answers it.
    pub fn change_history(&self, sensor: SensorId) -> SetpointHistoryMsg {
        self.history.change_history(sensor)
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
        let draft = SetpointChange::new(req.sensor, setpoint, 0, author, now);
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
                format!("setpoint not saved: {STILL_READING_TABLES}"),
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
        let value = SetpointMsg::new(req.sensor, &setpoint, version, Some(now));
        let (id, write_id) = self.writes.begin(client, &req.request_id, value);
        let change = SetpointChange {
            version,
            base_version: Some(base),
            write_id,
            ..draft
        };
        Some((id, change))
    }

    /// The outcome of publishing a write: `Ok` once the bus has it durably, or why it could not take it
    /// (the client is told; nothing was written).
    pub fn write_published(&mut self, id: WriteId, outcome: Result<(), PublishFailure>, now: TimeMs) {
        // A record that came back is in the stream whatever the producer says: answer that.
        let taken = outcome.is_ok() || self.writes.is_read_back(id);
        match outcome {
            Err(failure) if !taken => {
                if let Some(w) = self.writes.fail(id) {
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
            _ => {
                self.writes.published(id, now);
                self.settle_writes(now);
            }
        }
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
        if let Some(msg) = self.schedules.tick(now) {
            self.send_schedules(msg);
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

    /// What is known of one sensor now; `None` if the bridge never heard of it.
    pub fn sensor_view(&self, sensor: SensorId) -> Option<SensorView> {
        self.history.knows(sensor).then(|| SensorView {
            sensor,
            reading: self.history.newest(sensor),
            setpoint: self.setpoint(sensor),
            heater: self.history.command(sensor).copied(),
            next_step: self.schedules.next_step(sensor),
        })
    }

    /// Reads the next record of the schedules stream. A schedule that does not compile (the API refuses
    /// those, so it came from elsewhere) is not shown as running; its error is returned for the log.
    pub fn on_schedule(&mut self, record: ScheduleRecord, now: TimeMs) -> Result<(), ScheduleError> {
        let (result, msg) = self.schedules.on_record(record, &self.config.limits, now);
        if let Some(msg) = msg {
            self.send_schedules(msg);
        }
        result
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Vec<Schedule> {
        self.schedules.all()
    }

    /// The schedule of that name.
    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    /// Every scheduled sensor's next step, by sensor.
    pub fn next_steps(&self) -> &[NextStep] {
        self.schedules.next_steps()
    }

    /// What is kept of a sensor between `since` and `until` (inclusive).
    pub fn history(&self, sensor: SensorId, since: TimeMs, until: TimeMs) -> Option<SensorHistory> {
        self.history.between(sensor, since, until)
    }

    /// Every sensor the bridge has heard of, by id.
    pub fn sensor_views(&self) -> Vec<SensorView> {
        self.history
            .sensors()
            .filter_map(|s| self.sensor_view(s))
            .collect()
    }

    /// One page of the sensors that pass every one of `filters` at `now`, by id: at most `limit` after the
    /// sensor `after`. Keyed by id, not by position, so paging while sensors are added shows every sensor
    /// that was there once, and none twice.
    pub fn sensor_page(
        &self,
        after: Option<SensorId>,
        limit: usize,
        filters: &[SensorFilter],
        now: TimeMs,
    ) -> SensorPage {
        let mut page = SensorPage {
            sensors: Vec::new(),
            matching: 0,
            next_after: None,
        };
        if filters.is_empty() {
            // Every sensor matches: the page is a range, and the count is known.
            page.matching = self.history.sensor_count();
            let mut ids = self.history.sensors_after(after);
            page.sensors = ids
                .by_ref()
                .take(limit)
                .filter_map(|s| self.sensor_view(s))
                .collect();
            if ids.next().is_some() {
                page.next_after = page.sensors.last().map(|v| v.sensor);
            }
            return page;
        }
        // Filtered: every sensor is looked at once, for the count.
        for sensor in self.history.sensors() {
            if !filters.iter().all(|&f| self.passes(sensor, f, now)) {
                continue;
            }
            page.matching += 1;
            if after.is_some_and(|a| sensor <= a) {
                continue;
            }
            if page.sensors.len() == limit {
                page.next_after = page.sensors.last().map(|v| v.sensor);
            } else {
                page.sensors.extend(self.sensor_view(sensor));
            }
        }
        page
    }

    /// Whether `sensor` passes `filter` at `now`.
    pub(super) fn passes(&self, sensor: SensorId, filter: SensorFilter, now: TimeMs) -> bool {
        match filter {
            SensorFilter::HeaterOn => self
                .history
                .command(sensor)
                .is_some_and(|d| d.command == Command::On),
            SensorFilter::OutOfBand => match (self.history.newest(sensor), self.table.in_force(sensor)) {
                (Some(r), Some(f)) => band_acts_on(f.setpoint, &r.reading()),
                _ => false,
            },
            SensorFilter::Stale => self
                .history
                .newest(sensor)
                .is_none_or(|r| self.config.is_stale(now.saturating_sub(r.t_ms))),
        }
    }

    /// The setpoint in force for a sensor, as clients are shown it.
    pub fn setpoint(&self, sensor: SensorId) -> Option<SetpointMsg> {
        self.table.in_force(sensor).map(|f| setpoint_msg(sensor, f))
    }

    /// The last command seen for a sensor.
    pub fn last_command(&self, sensor: SensorId) -> Option<&Decision> {
        self.history.command(sensor)
    }

    /// The newest value of a sensor's setpoint, counting this bridge's writes in flight: what a new write
    /// replaces.
    fn latest_value(&self, sensor: SensorId) -> Option<SetpointMsg> {
        match (self.setpoint(sensor), self.writes.latest(sensor)) {
            (Some(c), Some(w)) if c.version >= w.version => Some(c),
            (_, Some(w)) => Some(w.clone()),
            (c, None) => c,
        }
    }

    /// Sends the answers of the writes that are settled at `now`.
    fn settle_writes(&mut self, now: TimeMs) {
        for (client, answer) in self.writes.settle(now) {
            self.send(client, answer);
        }
    }

    /// The schedules to every client, each with the next steps of the rooms it watches: a building's
    /// every next step would not fit a frame.
    fn send_schedules(&mut self, msg: SchedulesMsg) {
        for client in &self.clients {
            let watch = self.watches.get(client).unwrap_or(&Watch::Nothing);
            let mine = watched_steps(msg.clone(), watch);
            self.outputs
                .push(Output::Send(*client, ServerMessage::Schedules(mine)));
        }
    }

    pub(super) fn send(&mut self, client: ClientId, msg: ServerMessage) {
        if self.clients.contains(&client) || self.quiet.contains(&client) {
            self.outputs.push(Output::Send(client, msg));
        }
    }
}

/// `msg` with only the next steps of the rooms the client watches by name: at most a page of them. A
/// client of every room gets none (every scheduled room's would not fit a frame; the API lists them).
pub(super) fn watched_steps(mut msg: SchedulesMsg, watch: &Watch) -> SchedulesMsg {
    msg.next
        .retain(|n| matches!(watch, Watch::Rooms(_)) && watch.covers(n.sensor));
    msg
}

/// A value in force as the WebSocket and the API show it.
fn setpoint_msg(sensor: SensorId, f: &InForce) -> SetpointMsg {
    let mut msg = SetpointMsg::new(sensor, &f.setpoint, f.version, Some(f.t_ms));
    msg.author = (!f.author.is_empty()).then(|| f.author.clone());
    msg
}
