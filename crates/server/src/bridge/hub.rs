//! The bridge's shared state and its single fan-out.
//!
//! One set of bus subscriptions feeds the hub, whatever the number of clients. The hub keeps what a new
//! client needs (setpoints in force, last command per sensor, a bounded ring of recent readings per sensor)
//! and pushes every event into each client's [`Outbox`]. Registering a client and taking its `hello`
//! snapshot happen under the same lock as fan-out, so a client sees every event exactly once: either in its
//! snapshot or in its outbox.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use setpoint_control::{Config, Decision, SensorId, TimeMs};
use setpoint_wire::ws::{
    BusStatus, DecisionMsg, ErrorCode, ErrorMsg, Hello, ReadingItem, ReadingsBatch, ServerMessage,
    SetSetpoint, SetpointMsg, StatusMsg, PROTOCOL_VERSION,
};
use tokio_util::sync::CancellationToken;

use super::outbox::{Frame, Outbox, SharedBatch};
use crate::bus::{Bus, BusError, Consumer, Payload, ReadingEvent, SetpointChange, StartAt};
use crate::clock::now_ms;
use crate::metrics::Metrics;

/// Readings are sent to clients in batches at this interval rather than one frame per reading.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Status frames go out this often.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Most readings in one backfill frame, so a large history arrives in digestible pieces.
const BACKFILL_FRAME_ITEMS: usize = 5_000;

/// How the hub bounds its memory.
#[derive(Clone, Copy, Debug)]
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

#[derive(Default)]
struct State {
    setpoints: BTreeMap<SensorId, SetpointMsg>,
    commands: BTreeMap<SensorId, DecisionMsg>,
    sensors: BTreeSet<SensorId>,
    history: HashMap<SensorId, VecDeque<ReadingItem>>,
    /// Readings received since the last flush; they enter `history` when flushed, so history and batches
    /// never overlap.
    pending: Vec<ReadingItem>,
    clients: HashMap<u64, Arc<Outbox>>,
    next_client: u64,
    readings_total: u64,
    decisions_total: u64,
}

/// The hub. Shared by the pump task and every connection.
pub struct Hub {
    state: Mutex<State>,
    /// Serialises setpoint writes so version checks and version assignment cannot interleave.
    write_lock: tokio::sync::Mutex<()>,
    options: HubOptions,
    config: Config,
    metrics: Arc<Metrics>,
}

/// What a new client starts from.
pub struct Registration {
    pub id: u64,
    pub outbox: Arc<Outbox>,
    pub hello: ServerMessage,
    pub backfill: Vec<ServerMessage>,
}

impl Hub {
    /// A hub for clients of a controller running with `config` (sent in `hello`, so the browser's copy of
    /// the control core decides the same way).
    pub fn new(config: Config, options: HubOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::default(),
            write_lock: tokio::sync::Mutex::new(()),
            options,
            config,
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a client and snapshots what it needs, atomically with respect to fan-out.
    pub fn register(&self, can_write: bool) -> Registration {
        let mut s = self.lock();
        let id = s.next_client;
        s.next_client += 1;
        let outbox = Arc::new(Outbox::default());
        s.clients.insert(id, Arc::clone(&outbox));
        let hello = ServerMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            can_write,
            sensors: s.sensors.iter().copied().collect(),
            setpoints: s.setpoints.values().cloned().collect(),
            commands: s.commands.values().copied().collect(),
            config: self.config,
            server_time_ms: now_ms(),
        });
        let mut items: Vec<ReadingItem> = s.history.values().flat_map(|h| h.iter().copied()).collect();
        drop(s);
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
        self.metrics.ws_clients.fetch_add(1, Relaxed);
        self.metrics.ws_connections_total.fetch_add(1, Relaxed);
        Registration {
            id,
            outbox,
            hello,
            backfill,
        }
    }

    /// Removes a client.
    pub fn unregister(&self, id: u64) {
        if self.lock().clients.remove(&id).is_some() {
            self.metrics.ws_clients.fetch_sub(1, Relaxed);
        }
    }

    fn broadcast(&self, s: &State, frame: &Frame) {
        for outbox in s.clients.values() {
            outbox.push_control(frame.clone());
        }
    }

    fn on_reading(&self, event: ReadingEvent) {
        let mut s = self.lock();
        s.sensors.insert(event.sensor);
        s.pending.push(ReadingItem {
            sensor: event.sensor,
            t_ms: event.reading.t_ms,
            temperature: event.reading.temperature,
        });
        s.readings_total += 1;
    }

    /// Sends the readings received since the last flush to every client, encoded once.
    fn flush(&self) {
        let mut s = self.lock();
        if s.pending.is_empty() {
            return;
        }
        let items = std::mem::take(&mut s.pending);
        let (keep_ms, keep_max) = (self.options.backfill_ms, self.options.backfill_max_per_sensor);
        for item in &items {
            let ring = s.history.entry(item.sensor).or_default();
            ring.push_back(*item);
            while ring.len() > keep_max || ring.front().is_some_and(|f| item.t_ms - f.t_ms > keep_ms) {
                ring.pop_front();
            }
        }
        let json = ServerMessage::Readings(ReadingsBatch {
            items: items.clone(),
            missed: 0,
            backfill: false,
        })
        .to_json();
        let batch = Arc::new(SharedBatch {
            items,
            json: json.into(),
        });
        let mut dropped = 0;
        for outbox in s.clients.values() {
            dropped += outbox.push_readings(&batch);
        }
        self.metrics.dropped_readings.fetch_add(dropped, Relaxed);
    }

    fn on_decision(&self, d: &Decision) {
        let msg = DecisionMsg::from(d);
        let frame: Frame = ServerMessage::Decision(msg).to_json().into();
        let mut s = self.lock();
        s.sensors.insert(d.sensor);
        s.commands.insert(d.sensor, msg);
        s.decisions_total += 1;
        self.broadcast(&s, &frame);
    }

    /// Applies a setpoint record from the stream. Records at or below the version already known are echoes
    /// of this bridge's own writes (already broadcast) or stale; unversioned records (written by other
    /// tools) get the next version, so every bridge reading the stream numbers them alike.
    fn on_setpoint(&self, change: SetpointChange) {
        let mut s = self.lock();
        let current = s.setpoints.get(&change.sensor);
        let current_version = current.map_or(0, |c| c.version);
        let mut msg = SetpointMsg::new(change.sensor, &change.setpoint, change.version, Some(change.t_ms));
        if change.version == 0 {
            msg.version = current_version + 1;
        } else if change.version < current_version || current.is_some_and(|c| same_setpoint(c, &msg)) {
            return;
        }
        s.sensors.insert(change.sensor);
        s.setpoints.insert(change.sensor, msg.clone());
        let frame: Frame = ServerMessage::Setpoint(msg).to_json().into();
        self.broadcast(&s, &frame);
    }

    fn status(&self, bus_status: BusStatus, previous: BusStatus) {
        let s = self.lock();
        if bus_status == BusStatus::Unavailable && previous != BusStatus::Unavailable {
            tracing::warn!("broker unavailable: setpoint writes are refused until it is back");
            let e = ServerMessage::Error(ErrorMsg {
                request_id: None,
                code: ErrorCode::BrokerUnavailable,
                message: "the message broker cannot be reached: data is stale and setpoint changes are refused until it is back".into(),
                current: None,
            });
            self.broadcast(&s, &e.to_json().into());
        } else if bus_status != BusStatus::Unavailable && previous == BusStatus::Unavailable {
            tracing::info!("broker reachable again");
        }
        let msg = ServerMessage::Status(StatusMsg {
            clients: s.clients.len() as u64,
            bus: bus_status,
            readings_total: s.readings_total,
            decisions_total: s.decisions_total,
            server_time_ms: now_ms(),
        });
        let frame: Frame = msg.to_json().into();
        self.broadcast(&s, &frame);
    }

    /// Validates and publishes a browser's setpoint write; returns the message to answer with.
    ///
    /// Validation is the control crate's own `Limits::validate`. The version check and the publish happen
    /// under one lock, so two writers racing on one sensor get one ack and one `conflict`. The ack is sent
    /// only after the bus accepted the record: an acknowledged setpoint is never lost.
    pub async fn write_setpoint<B: Bus>(&self, bus: &B, req: &SetSetpoint, author: &str) -> ServerMessage {
        let error = |code, message: String, current| {
            ServerMessage::Error(ErrorMsg {
                request_id: Some(req.request_id.clone()),
                code,
                message,
                current,
            })
        };
        let setpoint = req.setpoint();
        if let Err(e) = self.config.limits.validate(&setpoint) {
            return error(ErrorCode::InvalidSetpoint, e.to_string(), None);
        }
        if bus.status() == BusStatus::Unavailable {
            return error(
                ErrorCode::BrokerUnavailable,
                "setpoint not saved: the message broker cannot be reached".into(),
                None,
            );
        }
        let _guard = self.write_lock.lock().await;
        let current = self.lock().setpoints.get(&req.sensor).cloned();
        let current_version = current.as_ref().map_or(0, |c| c.version);
        if let Some(base) = req.base_version {
            if base != current_version {
                return error(
                    ErrorCode::Conflict,
                    format!(
                        "sensor {} changed meanwhile: version {current_version} is in force, not {base}",
                        req.sensor
                    ),
                    current,
                );
            }
        }
        let change = SetpointChange {
            sensor: req.sensor,
            setpoint,
            version: current_version + 1,
            author: author.to_owned(),
            t_ms: now_ms(),
        };
        match bus.publish(vec![change.clone()]).await {
            Ok(()) => {
                tracing::info!(
                    sensor = req.sensor,
                    desired = setpoint.desired,
                    up_delta = setpoint.up_delta,
                    down_delta = setpoint.down_delta,
                    version = change.version,
                    "setpoint written"
                );
                self.on_setpoint(change);
                ServerMessage::Ack {
                    request_id: req.request_id.clone(),
                }
            }
            Err(BusError::Unavailable(why)) => error(
                ErrorCode::BrokerUnavailable,
                format!("setpoint not saved: {why}"),
                None,
            ),
            Err(BusError::Closed) => error(
                ErrorCode::Internal,
                "setpoint not saved: server is shutting down".into(),
                None,
            ),
        }
    }

    /// Current setpoint of a sensor (for tests and for the controller's view).
    pub fn setpoint(&self, sensor: SensorId) -> Option<SetpointMsg> {
        self.lock().setpoints.get(&sensor).cloned()
    }

    /// The last command the bridge has seen for a sensor (for tests).
    pub fn last_command(&self, sensor: SensorId) -> Option<DecisionMsg> {
        self.lock().commands.get(&sensor).copied()
    }

    /// Readings batches queued per client, largest first: shows that a stalled client's queue stays bounded.
    pub fn queue_depths(&self) -> Vec<usize> {
        let mut depths: Vec<usize> = self.lock().clients.values().map(|o| o.queued_batches()).collect();
        depths.sort_unstable_by(|a, b| b.cmp(a));
        depths
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    /// Newest reading time seen (for readiness).
    pub fn newest_reading_ms(&self) -> Option<TimeMs> {
        self.lock()
            .history
            .values()
            .filter_map(|h| h.back().map(|i| i.t_ms))
            .max()
    }
}

fn same_setpoint(a: &SetpointMsg, b: &SetpointMsg) -> bool {
    a.version == b.version && a.setpoint() == b.setpoint()
}

/// Subscribes to one stream, retrying until it works or `shutdown` fires. A bridge may start before the
/// broker is reachable or before freshly created topics show their partitions; giving up there would leave it
/// serving pages with no data and no status, forever. Meanwhile browsers are told the bus is unavailable.
async fn subscribe<B: Bus, T: Payload>(
    bus: &B,
    hub: &Hub,
    last_status: &mut BusStatus,
    start: StartAt,
    shutdown: &CancellationToken,
) -> Option<B::Consumer<T>> {
    let mut delay = Duration::from_millis(100);
    loop {
        match bus.subscribe::<T>(start, None) {
            Ok(consumer) => return Some(consumer),
            Err(e) => {
                tracing::warn!("bridge cannot subscribe to {:?} yet, retrying: {e}", T::STREAM);
                hub.status(BusStatus::Unavailable, *last_status);
                *last_status = BusStatus::Unavailable;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Feeds the hub from the bus until `shutdown` fires: one subscription per stream for all clients.
pub async fn pump<B: Bus>(bus: B, hub: Arc<Hub>, shutdown: CancellationToken) -> Result<(), BusError> {
    let mut last_status = BusStatus::Connected;
    let Some(mut readings) = subscribe(&bus, &hub, &mut last_status, StartAt::End, &shutdown).await else {
        return Ok(());
    };
    let Some(mut setpoints) = subscribe(&bus, &hub, &mut last_status, StartAt::Beginning, &shutdown).await
    else {
        return Ok(());
    };
    let Some(mut commands) = subscribe(&bus, &hub, &mut last_status, StartAt::End, &shutdown).await else {
        return Ok(());
    };
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    let mut status = tokio::time::interval(STATUS_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = setpoints.next_batch(1024) => for r in batch? { hub.on_setpoint(r.value) },
            batch = commands.next_batch(1024) => for r in batch? { hub.on_decision(&r.value) },
            batch = readings.next_batch(8192) => for r in batch? { hub.on_reading(r.value) },
            _ = flush.tick() => hub.flush(),
            _ = status.tick() => {
                let now = bus.status();
                hub.status(now, last_status);
                last_status = now;
            }
        }
    }
    // Drain what is already on the bus so the sessions' final frames include it.
    for r in setpoints.try_batch(usize::MAX)? {
        hub.on_setpoint(r.value);
    }
    for r in commands.try_batch(usize::MAX)? {
        hub.on_decision(&r.value);
    }
    for r in readings.try_batch(usize::MAX)? {
        hub.on_reading(r.value);
    }
    hub.flush();
    Ok(())
}
