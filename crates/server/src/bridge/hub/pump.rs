//! Feeds the hub from the bus: one subscription per stream for all clients, each record with its arrival;
//! what the state refuses is counted here.

use std::sync::Arc;
use std::time::Duration;

use setpoint_wire::schedule::ScheduleRecord;
use setpoint_wire::ws::BusStatus;
use tokio_util::sync::CancellationToken;

use setpoint_control::{Arrival, Decision};

use super::state::HubState;
use super::{Hub, FLUSH_INTERVAL, STATUS_INTERVAL};
use crate::bus::{Bus, BusError, Consumer, Payload, Record, SensorReading, SetpointChange, StartAt};
use crate::clock::now_ms;
use crate::metrics::LOGGED_CHARS;
use crate::retry::{self, Backoff};

/// Subscribes to one stream, retrying until it works or `shutdown` fires. A bridge may start before the
/// broker is reachable or before freshly created topics show their partitions; giving up there would leave
/// it serving pages with no data and no status, forever. Meanwhile browsers are told the bus is unavailable.
async fn subscribe<B: Bus, T: Payload>(
    bus: &B,
    hub: &Hub,
    start: StartAt,
    shutdown: &CancellationToken,
) -> Option<B::Consumer<T>> {
    let what = format!("bridge cannot subscribe to {:?} yet", T::STREAM);
    retry::until_stopped(
        &what,
        || std::future::ready(bus.subscribe::<T>(start, None)),
        |_| hub.with_state(|s| s.tick(now_ms(), BusStatus::Unavailable)),
        shutdown,
    )
    .await?
    .ok()
}

/// Publishes the restatements the hub asked for. Losing one costs nothing today (every reader already
/// skipped the record it restates), so a failure is only logged.
async fn restate<B: Bus>(bus: &B, hub: &Hub) {
    let records = hub.take_to_publish();
    if records.is_empty() {
        return;
    }
    if let Err(e) = bus.publish(records).await {
        tracing::warn!("could not restate a setpoint after a lost race: {e}");
    }
}

/// How long one attempt to read a table to its end may take before it is retried.
const TABLE_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the setpoints and schedules up to their end offsets of this moment, retrying while the bus is
/// away, then tells the hub. Before that the bridge would answer from a partial table (an empty schedule
/// list, a sensor without its setpoint) and judge writes against versions older than the log's. `false` if
/// a stop came first.
async fn read_tables<B: Bus>(
    bus: &B,
    hub: &Hub,
    setpoints: &mut B::Consumer<SetpointChange>,
    schedules: &mut B::Consumer<ScheduleRecord>,
    shutdown: &CancellationToken,
) -> Result<bool, BusError> {
    let started = std::time::Instant::now();
    let mut backoff = Backoff::default();
    loop {
        let read = async {
            hub.on_setpoint(setpoints.read_to_end(TABLE_READ_TIMEOUT).await?);
            hub.on_schedule(
                schedules
                    .read_to_end(TABLE_READ_TIMEOUT)
                    .await?
                    .into_iter()
                    .map(|r| r.value),
            );
            Ok::<(), BusError>(())
        }
        .await;
        match read {
            Ok(()) => break,
            Err(BusError::Closed) => return Err(BusError::Closed),
            Err(e) => {
                hub.with_state(|s| s.tick(now_ms(), BusStatus::Unavailable));
                if !backoff
                    .wait("bridge cannot read the setpoints yet", &e, shutdown)
                    .await
                {
                    return Ok(false);
                }
            }
        }
    }
    restate(bus, hub).await;
    // The failed attempts marked the bus unavailable; let the broker's current state speak at once rather
    // than at the next status tick.
    hub.tick(bus);
    hub.on_tables_read();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "bridge read the setpoints and schedules; answering"
    );
    Ok(true)
}

/// Feeds the hub from the bus until `shutdown` fires, then drains what is already there so the sessions'
/// final frames include it.
pub async fn pump<B: Bus>(bus: B, hub: Arc<Hub>, shutdown: CancellationToken) -> Result<(), BusError> {
    // Readings and decisions from the start of the backfill window, so the first browser already gets
    // complete charts and heater strips (on Kafka: a seek by time; after a restart of the embedded default:
    // what the data file kept).
    let window_start = StartAt::Time(now_ms() - hub.backfill_ms());
    let Some(mut readings) = subscribe(&bus, &hub, window_start, &shutdown).await else {
        return Ok(());
    };
    let Some(mut setpoints) = subscribe(&bus, &hub, StartAt::Beginning, &shutdown).await else {
        return Ok(());
    };
    let Some(mut commands) = subscribe(&bus, &hub, window_start, &shutdown).await else {
        return Ok(());
    };
    let Some(mut schedules) = subscribe(&bus, &hub, StartAt::Beginning, &shutdown).await else {
        return Ok(());
    };
    if !read_tables(&bus, &hub, &mut setpoints, &mut schedules, &shutdown).await? {
        return Ok(());
    }
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    let mut status = tokio::time::interval(STATUS_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = setpoints.next_batch(1024) => {
                hub.on_setpoint(batch?);
                restate(&bus, &hub).await;
            }
            batch = commands.next_batch(1024) => hub.on_decision(batch?),
            batch = schedules.next_batch(256) => hub.on_schedule(batch?.into_iter().map(|r| r.value)),
            batch = readings.next_batch(8192) => hub.on_reading(batch?),
            _ = flush.tick() => hub.flush(),
            _ = status.tick() => hub.tick(&bus),
        }
    }
    hub.on_setpoint(setpoints.try_batch(usize::MAX)?);
    hub.on_decision(commands.try_batch(usize::MAX)?);
    hub.on_reading(readings.try_batch(usize::MAX)?);
    hub.flush();
    Ok(())
}

/// The bus's records, fed to the state with their arrival.
impl Hub {
    /// Readings from the bus; those the state refuses are counted (and the first of each kind logged).
    pub(crate) fn on_reading(&self, records: Vec<Record<SensorReading>>) {
        self.on_records("readings", records, |s, r, at| {
            s.on_reading(r, at).map_err(|e| (e.kind(), e.to_string()))
        });
    }

    pub(crate) fn on_decision(&self, records: Vec<Record<Decision>>) {
        self.on_records("commands", records, |s, d, at| {
            s.on_decision(d, at).map_err(|e| (e.kind(), e.to_string()))
        });
    }

    pub(crate) fn on_setpoint(&self, records: Vec<Record<SetpointChange>>) {
        self.on_records("setpoints", records, |s, c, at| {
            s.on_setpoint(c, at)
                .map(drop)
                .map_err(|e| (e.kind(), e.to_string()))
        });
    }

    /// Feeds records of one stream to the state, each with its arrival, under one lock; counts what the
    /// state refuses, and logs the first of each kind (the rest are only counted, so a producer that floods
    /// bad records cannot flood the log), its text clipped.
    fn on_records<T>(
        &self,
        stream: &'static str,
        records: Vec<Record<T>>,
        input: impl Fn(&mut HubState, T, Arrival) -> Result<(), (&'static str, String)>,
    ) {
        let now = now_ms();
        let metrics = &self.metrics;
        self.with_state(|s| {
            for r in records {
                let arrival = r.arrival(now);
                if let Err((reason, error)) = input(s, r.value, arrival) {
                    if metrics.refused(crate::roles::BRIDGE.name, stream, reason) {
                        tracing::warn!(
                            stream,
                            "record refused, not shown: {} (further ones of this kind are only counted)",
                            setpoint_wire::clip(&error, LOGGED_CHARS)
                        );
                    }
                }
            }
        });
    }
}
