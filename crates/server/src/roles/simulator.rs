//! The simulator role: rooms publish readings and obey the commands addressed to them.

use std::time::Duration;

use setpoint_control::Decision;
use setpoint_sim::{SimConfig, Simulator};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusError, Consumer, SensorReading, SetpointChange, StartAt};
use crate::clock::now_ms;

/// Author recorded on the setpoints the simulator seeds.
pub const SEED_AUTHOR: &str = "simulator";

/// Runs the simulated rooms until `shutdown` fires. With `seed_setpoints`, rooms that have no setpoint on
/// the stream get their suggested one first, so a fresh installation is alive without anyone typing.
pub async fn run<B: Bus>(
    bus: B,
    config: SimConfig,
    seed_setpoints: bool,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let mut commands = bus.subscribe::<Decision>(StartAt::End, None)?;
    let mut sim = Simulator::new(config, now_ms());
    if seed_setpoints {
        seed(&bus, &sim).await?;
    }
    let mut interval = tokio::time::interval(Duration::from_millis(config.interval_ms.max(1) as u64));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tracing::info!(
        rooms = config.rooms,
        interval_ms = config.interval_ms,
        "simulator started"
    );
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            batch = commands.next_batch(1024) => {
                for record in batch? {
                    sim.apply_command(record.value.sensor, record.value.command);
                }
            }
            _ = interval.tick() => {
                let readings: Vec<SensorReading> =
                    sim.step(now_ms()).into_iter().map(|(sensor, reading)| SensorReading::new(sensor, reading)).collect();
                // Readings are perishable: when the bus is down they are dropped, not queued.
                if let Err(e) = bus.publish(readings).await {
                    tracing::debug!("readings dropped: {e}");
                }
            }
        }
    }
    tracing::info!("simulator stopped");
    Ok(())
}

async fn seed<B: Bus>(bus: &B, sim: &Simulator) -> Result<(), BusError> {
    let mut existing = bus.subscribe::<SetpointChange>(StartAt::Beginning, None)?;
    let known: std::collections::HashSet<_> = existing
        .read_to_end(Duration::from_secs(30))
        .await?
        .into_iter()
        .map(|r| r.value.sensor)
        .collect();
    let now = now_ms();
    let seeds: Vec<SetpointChange> = sim
        .rooms()
        .iter()
        .filter(|room| !known.contains(&room.sensor))
        // Conditional on nothing being in force: of two simulators seeding at once, one wins.
        .map(|room| SetpointChange::new(room.sensor, room.suggested, 1, SEED_AUTHOR, now).conditional(0, ""))
        .collect();
    if !seeds.is_empty() {
        tracing::info!(count = seeds.len(), "seeding setpoints for rooms that have none");
    }
    bus.publish(seeds).await
}
