//! The bridge's fan-out: one set of bus subscriptions for all clients, whatever their number.
//!
//! [`state::HubState`] is the sans-IO state machine (what each client is told, and when), coordinating
//! [`history`] (what is kept per sensor), [`writes`] (writes in flight) and [`schedules`]; [`Hub`] is its
//! thin shell: it holds the state behind one lock, stamps inputs with the clock, and delivers the outputs to
//! the clients' [`Outbox`]es while still holding the lock ([`deliver`], routed by [`fanout`]) — which is what makes "every event exactly once
//! per client" hold for real connections. [`pump`] feeds it from the bus; [`Hub::write_setpoints`] publishes
//! a browser's or a script's writes.

#[cfg(test)]
mod bounds_tests;
mod deliver;
mod fanout;
mod history;
#[cfg(test)]
mod paging_tests;
mod pump;
mod queries;
mod room;
mod schedules;
pub mod sources;
pub mod state;
#[cfg(test)]
mod tests;
mod view;
mod watch;
mod write_path;
pub mod writes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use setpoint_control::{Config, Decision, SensorId, TimeMs};
use setpoint_wire::api::SensorHistory;
use setpoint_wire::schedule::{Schedule, ScheduleRecord};
use setpoint_wire::ws::{ServerMessage, SetpointMsg, SetpointWrite};

use super::outbox::Outbox;
use crate::bus::{Bus, SetpointChange};
use crate::clock::now_ms;
use crate::metrics::Metrics;
pub use pump::pump;
pub use state::HubState;
use state::PublishFailure;
pub use state::{ClientId, HubOptions};

/// Readings are sent to clients in batches at this interval rather than one frame per reading.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Status frames go out this often.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// How long a request that arrives before the bridge has read its tables is held before it is refused
/// (`503 broker_unavailable`). Reading them takes milliseconds on the embedded default; this covers a
/// broker that answers slowly just after a restart.
pub const TABLES_PATIENCE: Duration = Duration::from_secs(5);

struct Inner {
    state: HubState,
    outboxes: HashMap<ClientId, Arc<Outbox>>,
    /// Which client watches which room, from the state's `Output::Watch`.
    fanout: fanout::Fanout,
    /// Records the state asked to publish (restatements after a lost race), for the pump to send.
    to_publish: Vec<SetpointChange>,
    /// Quiet clients (HTTP requests) waiting for their writes' answers.
    waiters: HashMap<ClientId, tokio::sync::mpsc::UnboundedSender<ServerMessage>>,
}

/// The hub. Shared by the pump task and every connection.
pub struct Hub {
    inner: Mutex<Inner>,
    /// Woken whenever a schedules record was read: an API request that saved one waits for it.
    schedules_read: tokio::sync::Notify,
    /// Woken once the pump has read the setpoints and schedules to their end: requests wait for it.
    tables_read: tokio::sync::Notify,
    /// Serialises publishing, so records reach the bus in the order their versions were assigned.
    write_lock: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

/// What a new client starts from.
pub struct Registration {
    pub id: ClientId,
    pub outbox: Arc<Outbox>,
    pub hello: ServerMessage,
    pub backfill: Vec<ServerMessage>,
}

impl Hub {
    pub fn new(config: Config, options: HubOptions, metrics: Arc<Metrics>) -> Self {
        Self::with_sources(config, options, metrics, Arc::default())
    }

    /// A hub that knows where its rooms' data comes from (shown on the cards and in the API).
    pub fn with_sources(
        config: Config,
        options: HubOptions,
        metrics: Arc<Metrics>,
        sources: Arc<sources::RoomSources>,
    ) -> Self {
        metrics.record_limits(crate::roles::BRIDGE.name, &config);
        Self {
            inner: Mutex::new(Inner {
                state: HubState::new(config, options)
                    .with_writer(&crate::roles::writer_name())
                    .with_sources(sources),
                outboxes: HashMap::new(),
                fanout: fanout::Fanout::default(),
                to_publish: Vec::new(),
                waiters: HashMap::new(),
            }),
            write_lock: tokio::sync::Mutex::new(()),
            metrics,
            schedules_read: tokio::sync::Notify::new(),
            tables_read: tokio::sync::Notify::new(),
        }
    }

    /// A poisoned lock means a panic elsewhere mid-update; every update leaves the state consistent between
    /// outputs, so keep serving.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one input against the state and delivers its outputs under the same lock.
    fn with_state<R>(&self, input: impl FnOnce(&mut HubState) -> R) -> R {
        let mut inner = self.lock();
        let result = input(&mut inner.state);
        inner.deliver(&self.metrics);
        result
    }

    /// Registers a client; its `hello` and backfill are a snapshot taken atomically with respect to fan-out.
    pub fn register(&self, can_write: bool) -> Registration {
        let outbox = Arc::new(Outbox::default());
        let mut inner = self.lock();
        let welcome = inner.state.register(can_write, now_ms());
        inner.outboxes.insert(welcome.id, Arc::clone(&outbox));
        inner.deliver(&self.metrics);
        drop(inner);
        Registration {
            id: welcome.id,
            outbox,
            hello: welcome.hello,
            backfill: welcome.backfill,
        }
    }

    pub fn unregister(&self, id: ClientId) {
        let mut inner = self.lock();
        inner.state.unregister(id);
        inner.outboxes.remove(&id);
        inner.fanout.remove(id);
        inner.waiters.remove(&id);
        inner.deliver(&self.metrics);
    }

    /// Registers a client that writes and waits for the answers, and nothing else: an HTTP request. It is
    /// unregistered when the returned [`QuietClient`] is dropped, answered or not.
    pub fn register_quiet(self: &Arc<Self>) -> QuietClient {
        let (tx, answers) = tokio::sync::mpsc::unbounded_channel();
        let mut inner = self.lock();
        let id = inner.state.register_quiet();
        inner.waiters.insert(id, tx);
        drop(inner);
        QuietClient {
            id,
            answers,
            hub: Arc::clone(self),
        }
    }

    pub(crate) fn on_schedule(&self, records: impl IntoIterator<Item = ScheduleRecord>) {
        let now = now_ms();
        self.with_state(|s| {
            for record in records {
                let name = record.schedule.name.clone();
                if let Err(e) = s.on_schedule(record, now) {
                    tracing::warn!(schedule = %name, "schedule on the stream is not valid, not shown: {e}");
                }
            }
        });
        self.schedules_read.notify_waiters();
    }

    /// Waits, up to `patience`, until `done` holds of the schedules read so far (an API request's own
    /// save coming back). Whether it held.
    pub async fn wait_for_schedules(&self, patience: Duration, done: impl Fn(&HubState) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let read = self.schedules_read.notified();
            if done(&self.lock().state) {
                return true;
            }
            if tokio::time::timeout_at(deadline, read).await.is_err() {
                return done(&self.lock().state);
            }
        }
    }

    pub(crate) fn on_tables_read(&self) {
        self.with_state(HubState::on_tables_read);
        self.tables_read.notify_waiters();
    }

    /// Whether the setpoints and schedules have been read up to the end offsets of the bridge's start.
    pub fn tables_read(&self) -> bool {
        self.lock().state.tables_read()
    }

    /// Waits, up to `patience`, until the setpoints and schedules have been read. Whether they have. A
    /// request that arrives while a restarted bridge is still reading is held for that moment rather than
    /// answered from a partial table.
    pub async fn wait_for_tables(&self, patience: Duration) -> bool {
        let read = self.tables_read.notified();
        if self.tables_read() {
            return true;
        }
        tokio::time::timeout(patience, read).await.is_ok() || self.tables_read()
    }

    /// The setpoint limits of the controller this bridge serves (schedules' steps are checked with them).
    pub fn limits(&self) -> setpoint_control::Limits {
        self.lock().state.config().limits
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Vec<Schedule> {
        self.lock().state.schedules()
    }

    /// The schedule of that name.
    pub fn schedule(&self, name: &str) -> Option<Schedule> {
        self.lock().state.schedule(name).cloned()
    }

    /// Records the state asked to publish since the last call.
    pub(crate) fn take_to_publish(&self) -> Vec<SetpointChange> {
        std::mem::take(&mut self.lock().to_publish)
    }

    /// Answers a client's `view`: the page's summaries, then the history of the rooms new to it.
    pub fn view(&self, client: ClientId, req: &setpoint_wire::view::ViewRequest) {
        self.with_state(|s| s.view(client, req, now_ms()));
    }

    /// Answers a client's `subscribe`.
    pub fn subscribe(&self, client: ClientId, sensors: Option<Vec<SensorId>>) {
        self.with_state(|s| s.subscribe(client, sensors));
    }

    /// Answers a client's `setpoint_history`. Copied under the hub's lock, encoded after it: a history
    /// can run to tens of kilobytes, and every reading's fan-out waits on that lock.
    pub fn send_history(&self, client: ClientId, sensor: SensorId) {
        let (history, outbox) = {
            let inner = self.lock();
            (
                inner.state.change_history(sensor),
                inner.outboxes.get(&client).cloned(),
            )
        };
        if let Some(outbox) = outbox {
            outbox.push_control(ServerMessage::SetpointHistory(history).to_json().into());
        }
    }

    pub(crate) fn flush(&self) {
        self.with_state(HubState::flush);
    }

    pub(crate) fn tick<B: Bus>(&self, bus: &B) {
        let now = bus.status();
        self.with_state(|s| {
            let before = s.bus();
            if now == setpoint_wire::ws::BusStatus::Unavailable && before != now {
                tracing::warn!("broker unavailable: setpoint writes are refused until it is back");
            } else if before == setpoint_wire::ws::BusStatus::Unavailable && before != now {
                tracing::info!("broker reachable again");
            }
            s.tick(now_ms(), now);
        });
    }

    /// Validates and publishes setpoint writes (one, or a group's in one publish). Each write's answer
    /// (`ack` or an error) reaches the client on its own: an ack only once the bus has the record and it
    /// has come back to this hub.
    pub async fn write_setpoints<B: Bus>(
        &self,
        bus: &B,
        client: ClientId,
        reqs: &[SetpointWrite],
        author: &str,
    ) {
        // Not yet read, the state refuses the writes (`broker_unavailable`) rather than judge them against
        // stale versions.
        self.wait_for_tables(TABLES_PATIENCE).await;
        let _order = self.write_lock.lock().await;
        let begun: Vec<_> = self.with_state(|s| {
            reqs.iter()
                .filter_map(|req| s.begin_write(client, req, author, now_ms()))
                .collect()
        });
        if begun.is_empty() {
            return;
        }
        let changes: Vec<SetpointChange> = begun.iter().map(|(_, change)| change.clone()).collect();
        let outcome = match bus.publish(changes).await {
            Ok(()) => {
                for (_, change) in &begun {
                    tracing::info!(
                        sensor = change.sensor,
                        author = %change.author,
                        base_version = ?change.base_version,
                        desired = change.setpoint.desired,
                        up_delta = change.setpoint.up_delta,
                        down_delta = change.setpoint.down_delta,
                        "setpoint written"
                    );
                }
                Ok(())
            }
            Err(e) => Err(PublishFailure::from(e)),
        };
        self.with_state(|s| {
            for (id, _) in &begun {
                s.write_published(*id, outcome.clone(), now_ms());
            }
        });
    }

    /// How far back a new client's history reaches.
    pub fn backfill_ms(&self) -> i64 {
        self.lock().state.options().backfill_ms
    }

    /// What is known of one sensor now.
    pub fn sensor_view(&self, sensor: SensorId) -> Option<setpoint_wire::api::SensorView> {
        self.lock().state.sensor_view(sensor)
    }

    /// One page of the sensors that pass `filters`, now ([`HubState::sensor_page`]).
    pub fn sensor_page(
        &self,
        after: Option<SensorId>,
        limit: usize,
        filters: &[setpoint_wire::api::SensorFilter],
    ) -> state::SensorPage {
        self.lock().state.sensor_page(after, limit, filters, now_ms())
    }

    /// Every sensor the bridge has heard of.
    pub fn sensor_views(&self) -> Vec<setpoint_wire::api::SensorView> {
        self.lock().state.sensor_views()
    }

    /// What is kept of a sensor between two times; `None` if the bridge never heard of it.
    pub fn history(&self, sensor: SensorId, since: TimeMs, until: TimeMs) -> Option<SensorHistory> {
        self.lock().state.history(sensor, since, until)
    }

    /// The setpoint in force for a sensor.
    pub fn setpoint(&self, sensor: SensorId) -> Option<SetpointMsg> {
        self.lock().state.setpoint(sensor)
    }

    /// The last command the bridge has seen for a sensor.
    pub fn last_command(&self, sensor: SensorId) -> Option<Decision> {
        self.lock().state.last_command(sensor).copied()
    }

    /// Readings batches queued per client, largest first: shows that a stalled client's queue stays bounded.
    pub fn queue_depths(&self) -> Vec<usize> {
        let mut depths: Vec<usize> = self
            .lock()
            .outboxes
            .values()
            .map(|o| o.queued_batches())
            .collect();
        depths.sort_unstable_by(|a, b| b.cmp(a));
        depths
    }
}

/// An HTTP request's place in the hub: its id for writes, and the answers to them.
pub struct QuietClient {
    pub id: ClientId,
    pub answers: tokio::sync::mpsc::UnboundedReceiver<ServerMessage>,
    hub: Arc<Hub>,
}

impl Drop for QuietClient {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}
