//! The scheduler role: publishes each weekly schedule's steps as setpoint changes, authored
//! `schedule:NAME`.
//!
//! A thin shell around [`setpoint_schedule::Scheduler`], which decides what to publish and when from the
//! two streams it reads (schedules and setpoints) and the time this shell passes in. Several schedulers may
//! run (one per `setpoint run` or `setpoint controller` process on a cluster): each publishes a step
//! conditional on the version in force, so the stream's arbiter lets exactly one of them take effect, and
//! the others restate the winner (see the core's documentation).

use std::time::Duration;

use setpoint_control::Config;
use setpoint_schedule::Scheduler;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusError, Consumer, Payload, Record, ScheduleRecord, SetpointChange, StartAt};
use crate::clock::now_ms;
use crate::retry;

/// The longest the shell sleeps between polls: a schedule saved or a setpoint changed wakes it anyway, and
/// a clock that jumps is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How long the start-up catch-up of each stream may take before the scheduler starts anyway (it then
/// catches up as it runs; a step fired on a stale base is skipped and restated, never applied twice).
const CATCH_UP: Duration = Duration::from_secs(30);

async fn subscribe<B: Bus, T: Payload>(bus: &B, shutdown: &CancellationToken) -> Option<B::Consumer<T>> {
    let what = format!("scheduler cannot subscribe to {:?} yet", T::STREAM);
    retry::until_stopped(
        &what,
        || std::future::ready(bus.subscribe::<T>(StartAt::Beginning, None)),
        |_| {},
        shutdown,
    )
    .await?
    .ok()
}

fn on_schedules(core: &mut Scheduler, records: impl IntoIterator<Item = ScheduleRecord>) {
    for record in records {
        if let Err(e) = core.on_schedule(&record) {
            // The API refuses invalid schedules; one on the stream came from elsewhere (or an older build).
            tracing::warn!(schedule = %record.schedule.name, "schedule ignored: {e}");
        }
    }
}

fn on_setpoints(core: &mut Scheduler, records: impl IntoIterator<Item = Record<SetpointChange>>) {
    let now = now_ms();
    for record in records {
        if let Err(e) = core.on_setpoint_at(&record.value, record.arrival(now)) {
            tracing::debug!(offset = record.offset, "setpoint record refused: {e}");
        }
    }
}

/// Runs until `shutdown` fires.
pub async fn run<B: Bus>(bus: B, config: Config, shutdown: CancellationToken) -> Result<(), BusError> {
    let writer = format!("sched-{}", super::writer_name());
    let mut core = Scheduler::with_config(&writer, config);
    let Some(mut schedules) = subscribe::<B, ScheduleRecord>(&bus, &shutdown).await else {
        return Ok(());
    };
    let Some(mut setpoints) = subscribe::<B, SetpointChange>(&bus, &shutdown).await else {
        return Ok(());
    };
    // Every schedule and the value in force of every sensor first: the rule compares a step's instant
    // with the time of the value in force.
    match schedules.read_to_end(CATCH_UP).await {
        Ok(records) => on_schedules(&mut core, records.into_iter().map(|r| r.value)),
        Err(e) => tracing::warn!("scheduler starts before reading every schedule: {e}"),
    }
    match setpoints.read_to_end(CATCH_UP).await {
        Ok(records) => on_setpoints(&mut core, records),
        Err(e) => tracing::warn!("scheduler starts before reading every setpoint: {e}"),
    }
    tracing::info!(writer, "scheduler started");
    loop {
        let now = now_ms();
        publish(&bus, &mut core, now).await;
        let sleep = core
            .next_wake(now)
            .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = schedules.next_batch(256) => on_schedules(&mut core, batch?.into_iter().map(|r| r.value)),
            batch = setpoints.next_batch(1024) => on_setpoints(&mut core, batch?),
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

/// Publishes what the core asks for at `now`; a refused publish is handed back, to be fired again.
async fn publish<B: Bus>(bus: &B, core: &mut Scheduler, now: setpoint_control::TimeMs) {
    let records = core.poll(now);
    if records.is_empty() {
        return;
    }
    let ids: Vec<String> = records
        .iter()
        .filter(|r| !r.write_id.is_empty())
        .map(|r| r.write_id.clone())
        .collect();
    for c in &records {
        tracing::info!(
            sensor = c.sensor,
            author = %c.author,
            desired = c.setpoint.desired,
            base_version = ?c.base_version,
            restatement = c.write_id.is_empty(),
            "scheduled setpoint published"
        );
    }
    if let Err(e) = bus.publish(records).await {
        tracing::warn!("scheduled setpoints not published, retrying: {e}");
        core.publish_failed(&ids);
    }
}
