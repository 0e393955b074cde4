//! The simulator's flags: how many rooms, their seed and reading interval, and their physics.

use clap::Args;
use setpoint_sim::SimConfig;

#[derive(Args, Debug, Clone)]
pub(super) struct SimArgs {
    /// Number of simulated rooms (sensor ids 1..=N).
    #[arg(long, env = "SETPOINT_SENSORS", default_value_t = 6)]
    pub(super) sensors: usize,
    /// Seed of the simulated rooms and their noise.
    #[arg(long, env = "SETPOINT_SEED", default_value_t = 42)]
    pub(super) seed: u64,
    /// Milliseconds between two readings of one room.
    #[arg(long, env = "SETPOINT_INTERVAL_MS", default_value_t = 100)]
    pub(super) interval_ms: i64,
    /// Do not publish suggested setpoints for rooms that have none.
    #[arg(long, env = "SETPOINT_NO_SEED_SETPOINTS")]
    pub(super) no_seed_setpoints: bool,
    /// The simulated rooms' physics: `first-order`, or `lagging` (heated through an emitter that keeps
    /// heating after Off, as radiators and floors do: hysteresis overshoots its band).
    #[arg(long, env = "SETPOINT_SIM_MODEL", value_enum, default_value_t = SimModel::FirstOrder)]
    sim_model: SimModel,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SimModel {
    FirstOrder,
    Lagging,
}

impl SimArgs {
    pub(super) fn config(&self) -> SimConfig {
        SimConfig {
            rooms: self.sensors,
            first_sensor: 1,
            seed: self.seed,
            interval_ms: self.interval_ms.max(1),
            model: match self.sim_model {
                SimModel::FirstOrder => setpoint_sim::RoomModel::FirstOrder,
                SimModel::Lagging => setpoint_sim::RoomModel::Lagging,
            },
        }
    }
}
