//! The controller role: joins readings with setpoints through the control crate and publishes commands.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use setpoint_control::{Config, Controller, Decision, SensorId};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusError, Consumer, ReadingEvent, Record, SetpointChange, StartAt};
use crate::clock::{now_ms, now_us};
use crate::metrics::Metrics;

/// Consumer group of the controllers; instances in one group share the readings' partitions.
pub const CONTROLLER_GROUP: &str = "setpoint-controller";

/// Most readings processed between two publishes; bounds the latency a large backlog adds.
const READING_BATCH: usize = 4096;

/// How the controller runs.
#[derive(Clone, Copy, Debug)]
pub struct ControllerOptions {
    pub config: Config,
    /// How often the stale-sensor check runs.
    pub tick: Duration,
}

/// Runs the controller until `shutdown` fires.
///
/// Setpoints are read from the beginning (they are state) and applied before every batch of readings, so a
/// setpoint published before a reading is in force for it. Commands caused by a batch are published and
/// acknowledged before the batch is committed: at-least-once, and commands are idempotent.
pub async fn run<B: Bus>(
    bus: B,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let mut setpoints = bus.subscribe::<SetpointChange>(StartAt::Beginning, None)?;
    let mut readings = bus.subscribe::<ReadingEvent>(StartAt::End, Some(CONTROLLER_GROUP))?;
    let mut controller = Controller::new(options.config);
    // Every setpoint already on the stream is in force before the first reading is decided.
    apply_setpoints(
        &mut controller,
        setpoints.read_to_end(Duration::from_secs(30)).await?,
        &metrics,
    );
    // Which readings partition each sensor last came from, to forget the right sensors on a rebalance.
    let mut owners: HashMap<SensorId, i32> = HashMap::new();
    let mut tick = tokio::time::interval(options.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!("controller started");
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = setpoints.next_batch(1024) => apply_setpoints(&mut controller, batch?, &metrics),
            batch = readings.next_batch(READING_BATCH) => {
                let batch = batch?;
                release_revoked(&mut controller, &mut owners, readings.take_revoked());
                apply_setpoints(&mut controller, setpoints.try_batch(usize::MAX)?, &metrics);
                for r in &batch {
                    owners.insert(r.value.sensor, r.partition);
                }
                let decisions = decide(&mut controller, &batch, &metrics);
                publish(&bus, decisions, &metrics, &shutdown).await?;
                readings.commit()?;
                metrics.bus_lost_records.store(readings.lost(), Relaxed);
            }
            _ = tick.tick() => {
                let failsafes = controller.tick(now_ms());
                for d in &failsafes {
                    tracing::warn!(sensor = d.sensor, "sensor silent: failsafe off");
                }
                publish(&bus, failsafes, &metrics, &shutdown).await?;
            }
        }
    }
    // Drain what was published before the stop, so no reading in the log is left without its command.
    loop {
        let batch = readings.try_batch(READING_BATCH)?;
        if batch.is_empty() {
            break;
        }
        apply_setpoints(&mut controller, setpoints.try_batch(usize::MAX)?, &metrics);
        let decisions = decide(&mut controller, &batch, &metrics);
        publish(&bus, decisions, &metrics, &CancellationToken::new()).await?;
        readings.commit()?;
    }
    tracing::info!("controller stopped");
    Ok(())
}

fn apply_setpoints(controller: &mut Controller, batch: Vec<Record<SetpointChange>>, metrics: &Metrics) {
    for record in batch {
        let change = record.value;
        match controller.apply_setpoint(change.sensor, change.setpoint, change.version) {
            Ok(()) => {
                metrics.setpoint_changes.fetch_add(1, Relaxed);
                tracing::info!(
                    sensor = change.sensor,
                    desired = change.setpoint.desired,
                    up_delta = change.setpoint.up_delta,
                    down_delta = change.setpoint.down_delta,
                    version = change.version,
                    "setpoint applied"
                );
            }
            Err(e) => {
                metrics.rejected_setpoints.fetch_add(1, Relaxed);
                tracing::warn!(
                    sensor = change.sensor,
                    offset = record.offset,
                    "setpoint refused: {e}"
                );
            }
        }
    }
}

fn decide(controller: &mut Controller, batch: &[Record<ReadingEvent>], metrics: &Metrics) -> Vec<Decision> {
    let before = controller.stats();
    let mut decisions = Vec::new();
    for record in batch {
        let ReadingEvent { sensor, reading } = record.value;
        match controller.on_reading(sensor, reading) {
            Ok(Some(d)) => decisions.push(d),
            Ok(None) => {}
            Err(e) => tracing::debug!(offset = record.offset, "reading refused: {e}"),
        }
    }
    let after = controller.stats();
    metrics
        .readings
        .fetch_add(after.readings - before.readings, Relaxed);
    metrics
        .rejected_readings
        .fetch_add(after.rejected_readings - before.rejected_readings, Relaxed);
    metrics
        .out_of_order_readings
        .fetch_add(after.out_of_order - before.out_of_order, Relaxed);
    decisions
}

fn release_revoked(controller: &mut Controller, owners: &mut HashMap<SensorId, i32>, revoked: Vec<i32>) {
    if revoked.is_empty() {
        return;
    }
    owners.retain(|sensor, partition| {
        let keep = !revoked.contains(partition);
        if !keep {
            controller.release(*sensor);
        }
        keep
    });
}

/// Publishes commands, retrying while the bus is unavailable: the readings that caused them are not
/// committed until this succeeds, so giving up would only mean redoing the work. A stop request ends the
/// retries (the batch stays uncommitted and is decided again by whoever reads it next).
async fn publish<B: Bus>(
    bus: &B,
    decisions: Vec<Decision>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), BusError> {
    if decisions.is_empty() {
        return Ok(());
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        match bus.publish(decisions.clone()).await {
            Ok(()) => break,
            Err(BusError::Closed) => return Err(BusError::Closed),
            Err(e) => {
                tracing::warn!("commands not published, retrying in {backoff:?}: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return Err(e),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    let now = now_us();
    for d in &decisions {
        metrics.observe_latency_us(now.saturating_sub((d.t_ms.max(0) as u64) * 1000));
        tracing::info!(
            sensor = d.sensor,
            command = d.command.as_str(),
            temperature = d.temperature,
            "command"
        );
    }
    metrics.decisions.fetch_add(decisions.len() as u64, Relaxed);
    Ok(())
}
