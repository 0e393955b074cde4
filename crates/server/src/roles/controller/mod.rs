//! The controller role: joins readings with setpoints through the control crate and publishes commands.
//!
//! The state lives in [`join::Join`] and the order of each batch's steps in [`batch`] (both sans-IO); this
//! module is the async shell around them: it executes the effects `batch` returns — catch up the setpoint
//! table and the controller-state changelog, publish commands, then the changelog records that explain
//! them, then commit — the same way in the live loop and in the drain at shutdown.

pub mod batch;
pub mod join;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use setpoint_control::{Config, Decision};
use tokio_util::sync::CancellationToken;

use crate::bus::{
    Bus, BusError, Consumer, HeaterMemoryRecord, Payload, Record, SensorReading, SetpointChange, StartAt,
};
use crate::clock::{now_ms, now_us};
use crate::metrics::Metrics;
use crate::retry::{self, Backoff};
use batch::Effect;
use join::Join;

/// Consumer group of the controllers; instances in one group share the readings' partitions.
pub const CONTROLLER_GROUP: &str = "setpoint-controller";

/// Most readings processed between two publishes; bounds the latency a large backlog adds.
const READING_BATCH: usize = 65_536;

/// Bound on one catch-up; a broker that cannot answer within it is retried with backoff.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the controller runs.
#[derive(Clone, Copy, Debug)]
pub struct ControllerOptions {
    pub config: Config,
    /// How often the stale-sensor check runs.
    pub tick: Duration,
}

impl Default for ControllerOptions {
    /// The reference thermostat's behaviour, checking for silent sensors every second.
    fn default() -> Self {
        Self {
            config: Config::default(),
            tick: Duration::from_secs(1),
        }
    }
}

/// The two tables the join reads from the beginning and keeps up to date.
struct Tables<S, M> {
    setpoints: S,
    changelog: M,
}

/// Runs the controller until `shutdown` fires.
///
/// Readings are decided with the setpoint in force at their event time (an as-of join). Before the first
/// reading, and before every batch, the setpoint table is read up to the end offsets of that moment, so a
/// setpoint written before a reading was fetched is always known when the reading is decided, however the
/// two consumers' fetches interleave. After a partition assignment the changelog is caught up the same way,
/// and each newly owned sensor takes over its heater memory from it. Commands caused by a batch are
/// published and acknowledged, then the changelog records that explain them, then the batch is committed:
/// at-least-once, and a new owner never suppresses a command the previous one did not send.
pub async fn run<B: Bus>(
    bus: B,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    metrics.controller_catching_up.store(1, Relaxed);
    metrics.record_limits(super::CONTROLLER.name, &options.config);
    tracing::info!(limits = ?options.config, "controller judges setpoints and readings by these limits");
    // Retried: freshly created topics may not show their partitions yet, or the broker may be away.
    let subscribe = || {
        let tables = Tables {
            setpoints: bus.subscribe::<SetpointChange>(StartAt::Beginning, None)?,
            changelog: bus.subscribe::<HeaterMemoryRecord>(StartAt::Beginning, None)?,
        };
        // A group that never committed starts at the oldest retained reading, as Kafka Streams does: a
        // new deployment decides the backlog instead of skipping it.
        let readings = bus.subscribe::<SensorReading>(StartAt::Beginning, Some(CONTROLLER_GROUP))?;
        Ok::<_, BusError>((tables, readings))
    };
    let subscribed = retry::until_stopped(
        "controller cannot subscribe yet",
        || std::future::ready(subscribe()),
        |_| {},
        &shutdown,
    )
    .await;
    let Some(subscribed) = subscribed else {
        return Ok(());
    };
    let (mut tables, mut readings) = subscribed?;
    let mut join = Join::new(options.config);
    let started = std::time::Instant::now();
    if !catch_up(&mut join, &mut tables, true, &metrics, &shutdown).await? {
        return Ok(());
    }
    metrics.controller_catching_up.store(0, Relaxed);
    tracing::info!(
        setpoints = join.stats().setpoints_applied,
        heaters = join.remembered(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "controller caught up with the setpoints and the controller state; deciding readings"
    );
    let mut tick = tokio::time::interval(options.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shell = Shell {
        bus: &bus,
        join: &mut join,
        tables: &mut tables,
        metrics: &metrics,
    };
    let mut interrupted = false;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = shell.tables.setpoints.next_batch(1024) => apply_setpoints(shell.join, batch?, &metrics),
            batch = shell.tables.changelog.next_batch(1024) => remember(shell.join, batch?),
            batch = readings.next_batch(READING_BATCH) => {
                if !shell.run_batch(&mut readings, batch?, &shutdown).await? {
                    interrupted = true;
                    break;
                }
            }
            _ = tick.tick() => {
                let effects = batch::tick(shell.join, now_ms());
                metrics.record_controller(&shell.join.stats());
                if !shell.execute_all(effects, &mut readings, &shutdown).await? {
                    interrupted = true;
                    break;
                }
            }
        }
    }
    if interrupted {
        // A stop came while the bus was away: what is uncommitted is decided again by the next owner.
        tracing::info!("controller stopped with the bus unavailable");
        return Ok(());
    }
    // Drain what was published before the stop, so no reading in the log is left without its command:
    // the same protocol, with retries no stop can end.
    let no_stop = CancellationToken::new();
    loop {
        let batch = readings.try_batch(READING_BATCH)?;
        if batch.is_empty() {
            break;
        }
        shell.run_batch(&mut readings, batch, &no_stop).await?;
    }
    tracing::info!("controller stopped");
    Ok(())
}

/// What executes the [`batch`] protocol's effects: the bus, the join and its tables.
struct Shell<'a, B, S, M> {
    bus: &'a B,
    join: &'a mut Join,
    tables: &'a mut Tables<S, M>,
    metrics: &'a Metrics,
}

impl<B, S, M> Shell<'_, B, S, M>
where
    B: Bus,
    S: Consumer<SetpointChange>,
    M: Consumer<HeaterMemoryRecord>,
{
    /// One batch of readings through the protocol: the live loop and the drain alike. Returns `false` if a
    /// stop ended a retry (the batch stays uncommitted; whoever reads it next decides it again).
    async fn run_batch<R: Consumer<SensorReading>>(
        &mut self,
        readings: &mut R,
        records: Vec<Record<SensorReading>>,
        shutdown: &CancellationToken,
    ) -> Result<bool, BusError> {
        let moved = readings.take_rebalance();
        let assigned = !moved.assigned.is_empty();
        if assigned {
            self.metrics.controller_catching_up.store(1, Relaxed);
        }
        let catch_up = batch::begin(self.join, &moved.revoked, assigned);
        if !self.execute_all(vec![catch_up], readings, shutdown).await? {
            return Ok(false);
        }
        if assigned {
            self.metrics.controller_catching_up.store(0, Relaxed);
            tracing::info!(partitions = ?moved.assigned, heaters = self.join.remembered(), "caught up with the controller state for the assigned partitions");
        }
        let now = now_ms();
        let mine = records
            .iter()
            .filter(|r| !moved.lost(r.partition))
            .map(|r| (r.partition, &r.value, r.arrival(now)));
        let metrics = self.metrics;
        let effects = batch::decide(self.join, mine, |e| {
            if metrics.refused(super::CONTROLLER.name, "readings", e.kind()) {
                // The first of each kind is logged; the rest are counted in /metrics.
                tracing::warn!("reading refused: {e} (further ones of this kind are only counted)");
            }
        });
        metrics.record_controller(&self.join.stats());
        metrics
            .controller_memories_clamped
            .store(self.join.clamped(), Relaxed);
        self.execute_all(effects, readings, shutdown).await
    }

    /// Executes `effects` in order, each only after the one before it succeeded. Returns `false` if a stop
    /// ended a retry.
    async fn execute_all<R: Consumer<SensorReading>>(
        &mut self,
        effects: Vec<Effect>,
        readings: &mut R,
        shutdown: &CancellationToken,
    ) -> Result<bool, BusError> {
        for effect in effects {
            let done = match effect {
                Effect::CatchUp { changelog } => {
                    catch_up(self.join, self.tables, changelog, self.metrics, shutdown).await?
                }
                Effect::PublishCommands(decisions) => {
                    let published = publish(self.bus, &decisions, shutdown).await?;
                    if published {
                        self.observe(&decisions);
                    }
                    published
                }
                Effect::PublishMemories(memories) => publish(self.bus, &memories, shutdown).await?,
                Effect::Commit => {
                    readings.commit()?;
                    self.metrics.bus_lost_records.store(readings.lost(), Relaxed);
                    true
                }
            };
            if !done {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Latency and a debug line for published commands; failsafes are worth a warning.
    fn observe(&self, decisions: &[Decision]) {
        let now = now_us();
        for d in decisions {
            self.metrics
                .observe_latency_us(now.saturating_sub((d.t_ms.max(0) as u64) * 1000));
            if d.cause == setpoint_control::DecisionCause::Failsafe {
                tracing::warn!(sensor = d.sensor, "sensor silent: failsafe off");
            }
            tracing::debug!(
                sensor = d.sensor,
                command = d.command.as_str(),
                temperature = d.temperature,
                "command"
            );
        }
    }
}

/// Reads the setpoint table (and, when `changelog` is set, the controller-state changelog) up to the end
/// offsets of this moment, retrying while the bus is away. Returns `false` if a stop was asked meanwhile.
async fn catch_up<S, M>(
    join: &mut Join,
    tables: &mut Tables<S, M>,
    changelog: bool,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<bool, BusError>
where
    S: Consumer<SetpointChange>,
    M: Consumer<HeaterMemoryRecord>,
{
    let mut backoff = Backoff::default();
    loop {
        let result = async {
            if changelog {
                remember(join, tables.changelog.read_to_end(CATCH_UP_TIMEOUT).await?);
            }
            apply_setpoints(
                join,
                tables.setpoints.read_to_end(CATCH_UP_TIMEOUT).await?,
                metrics,
            );
            Ok::<(), BusError>(())
        }
        .await;
        match result {
            Ok(()) => return Ok(true),
            Err(BusError::Closed) => return Err(BusError::Closed),
            Err(e) => {
                if !backoff
                    .wait("cannot catch up with the setpoints yet", &e, shutdown)
                    .await
                {
                    return Ok(false);
                }
            }
        }
    }
}

fn remember(join: &mut Join, batch: Vec<Record<HeaterMemoryRecord>>) {
    for record in batch {
        join.remember(record.value);
    }
}

fn apply_setpoints(join: &mut Join, batch: Vec<Record<SetpointChange>>, metrics: &Metrics) {
    let now = now_ms();
    for record in batch {
        let change = &record.value;
        match join.apply_setpoint(change, record.arrival(now)) {
            Ok(_) => {
                tracing::debug!(
                    sensor = change.sensor,
                    desired = change.setpoint.desired,
                    up_delta = change.setpoint.up_delta,
                    down_delta = change.setpoint.down_delta,
                    version = change.version,
                    from_ms = change.t_ms,
                    "setpoint applied"
                );
            }
            Err(e) => {
                metrics.refused(super::CONTROLLER.name, "setpoints", e.kind());
                tracing::warn!(
                    sensor = change.sensor,
                    offset = record.offset,
                    "setpoint record refused, the version in force stays: {}",
                    setpoint_wire::clip(&e.to_string(), crate::metrics::LOGGED_CHARS)
                );
            }
        }
    }
    metrics.record_controller(&join.stats());
}

/// Publishes records, retrying while the bus is unavailable: the readings that caused them are not
/// committed until this succeeds, so giving up would only mean redoing the work. A stop request ends the
/// retries (returns `false`).
async fn publish<B: Bus, T: Payload>(
    bus: &B,
    records: &[T],
    shutdown: &CancellationToken,
) -> Result<bool, BusError> {
    match retry::until_stopped(
        "records not published",
        || bus.publish(records.to_vec()),
        |_| {},
        shutdown,
    )
    .await
    {
        Some(published) => published.map(|()| true),
        None => Ok(false),
    }
}
