//! A heater/room simulator, so setpoint is alive with no hardware.
//!
//! Each room is a first-order thermal model — with the heater On its temperature approaches a heater-driven
//! temperature, with it Off it decays toward ambient, both with the room's time constant — or, with
//! [`RoomModel::Lagging`], heated through an emitter that keeps heating after Off (see [`thermal`]). Time constants are
//! tens of seconds rather than the hours of a real room, which time-accelerates the physics so a person sees
//! the heater cycle within a minute. Parameters and sensor noise come from a seeded PRNG, so a seed gives the
//! same rooms and the same readings every time. Like the control crate it is sans-IO: [`Simulator::step`]
//! takes the current time as an argument and the runtime decides where readings go.

pub mod thermal;

use serde::{Deserialize, Serialize};
use setpoint_control::{Command, Reading, SensorId, Setpoint, TimeMs};
pub use thermal::RoomModel;

/// How many rooms, their ids, the seed and the reading interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub rooms: usize,
    /// Id of the first room's sensor; the others follow consecutively.
    pub first_sensor: SensorId,
    pub seed: u64,
    /// One reading per room every `interval_ms` of event time.
    pub interval_ms: i64,
    /// The rooms' physics.
    #[serde(default)]
    pub model: RoomModel,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            rooms: 3,
            first_sensor: 1,
            seed: 42,
            interval_ms: 100,
            model: RoomModel::FirstOrder,
        }
    }
}

/// The physics of one room.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomParams {
    /// Temperature the room decays to with the heater Off, °C.
    pub ambient: f64,
    /// Temperature the room approaches with the heater On, °C.
    pub heated: f64,
    /// Time constant of the exponential approach, ms.
    pub time_constant_ms: f64,
    /// Standard deviation of the sensor's Gaussian noise, °C.
    pub noise_std: f64,
    /// Time constant of the heat emitter, ms; `None` for a first-order room (no emitter).
    #[serde(default)]
    pub emitter_time_constant_ms: Option<f64>,
}

/// One simulated room: its physics, its true temperature and its heater.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub sensor: SensorId,
    pub params: RoomParams,
    /// The true temperature (what the sensor measures before noise).
    pub temperature: f64,
    /// The emitter's temperature (the room's own in a first-order room).
    #[serde(default)]
    pub emitter: f64,
    pub heater: Command,
    /// A setpoint that suits this room, used to seed the setpoint stream so a new installation is alive.
    pub suggested: Setpoint,
}

/// Caps how many missed intervals one `step` catches up on, so a runtime that was paused for an hour does
/// not emit a burst of millions of readings; physics still advances to `now`.
const MAX_CATCH_UP_INTERVALS: i64 = 50;

/// The simulator: many rooms stepped together at a fixed reading interval.
#[derive(Clone, Debug)]
pub struct Simulator {
    rooms: Vec<Room>,
    rng: SplitMix64,
    interval_ms: i64,
    /// Event time the physics has been advanced to.
    now_ms: TimeMs,
    next_reading_ms: TimeMs,
}

impl Simulator {
    /// A simulator of the given rooms (a benchmark's own building), readings every `interval_ms`.
    pub fn with_rooms(rooms: Vec<Room>, seed: u64, interval_ms: i64, start_ms: TimeMs) -> Self {
        Self {
            rooms,
            rng: SplitMix64(seed),
            interval_ms: interval_ms.max(1),
            now_ms: start_ms,
            next_reading_ms: start_ms + interval_ms.max(1),
        }
    }

    /// Creates the rooms for `config`, with the clock starting at `start_ms`.
    pub fn new(config: SimConfig, start_ms: TimeMs) -> Self {
        let mut rng = SplitMix64(config.seed);
        let rooms = (0..config.rooms)
            .map(|i| {
                let ambient = rng.range(8.0, 16.0);
                let heated = rng.range(30.0, 40.0);
                let time_constant_ms = rng.range(15_000.0, 45_000.0);
                // From a generator of its own, so the rooms' other numbers are the same whichever model
                // is chosen (and as before the lagging model existed).
                let emitter_share =
                    SplitMix64(config.seed ^ (i as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f))
                        .range(0.25, 0.5);
                let params = RoomParams {
                    ambient,
                    heated,
                    time_constant_ms,
                    noise_std: rng.range(0.02, 0.08),
                    emitter_time_constant_ms: (config.model == RoomModel::Lagging)
                        .then_some(time_constant_ms * emitter_share),
                };
                let desired = (rng.range(19.0, 23.0) * 2.0).round() / 2.0;
                let delta = (rng.range(0.5, 1.0) * 4.0).round() / 4.0;
                let temperature = ambient + rng.range(0.0, 8.0);
                Room {
                    sensor: config
                        .first_sensor
                        .saturating_add(i32::try_from(i).unwrap_or(i32::MAX)),
                    params,
                    temperature,
                    emitter: temperature,
                    heater: Command::Off,
                    suggested: Setpoint::new(desired, delta, delta),
                }
            })
            .collect();
        Self {
            rooms,
            rng,
            interval_ms: config.interval_ms.max(1),
            now_ms: start_ms,
            next_reading_ms: start_ms + config.interval_ms.max(1),
        }
    }

    /// All rooms, in sensor order.
    pub fn rooms(&self) -> &[Room] {
        &self.rooms
    }

    /// One room by sensor id.
    pub fn room(&self, sensor: SensorId) -> Option<&Room> {
        self.index(sensor).map(|i| &self.rooms[i])
    }

    /// Where a sensor's room is: rooms have consecutive ids from the first, so no search (a building of
    /// 100,000 rooms gets thousands of commands a second).
    fn index(&self, sensor: SensorId) -> Option<usize> {
        let first = self.rooms.first()?.sensor;
        let i = usize::try_from(i64::from(sensor) - i64::from(first)).ok()?;
        self.rooms.get(i).filter(|r| r.sensor == sensor).map(|_| i)
    }

    /// Switches a room's heater. Commands for sensors the simulator does not own are ignored and reported
    /// as `false`, because on a shared command stream they belong to other heaters.
    pub fn apply_command(&mut self, sensor: SensorId, command: Command) -> bool {
        match self.index(sensor) {
            Some(i) => {
                self.rooms[i].heater = command;
                true
            }
            None => false,
        }
    }

    /// When the next batch of readings is due, so a runtime can sleep until then.
    pub fn next_reading_ms(&self) -> TimeMs {
        self.next_reading_ms
    }

    /// Advances the physics to `now_ms` and returns the readings that fell due, in time order and, within
    /// one instant, in sensor order.
    pub fn step(&mut self, now_ms: TimeMs) -> Vec<(SensorId, Reading)> {
        let mut out = Vec::new();
        if now_ms - self.next_reading_ms > MAX_CATCH_UP_INTERVALS * self.interval_ms {
            let skipped = (now_ms - self.next_reading_ms) / self.interval_ms - MAX_CATCH_UP_INTERVALS;
            self.next_reading_ms += skipped * self.interval_ms;
        }
        while self.next_reading_ms <= now_ms {
            let t = self.next_reading_ms;
            self.advance_to(t);
            for room in &mut self.rooms {
                let noisy = room.temperature + self.rng.gaussian() * room.params.noise_std;
                let temperature = (noisy * 1000.0).round() / 1000.0;
                out.push((room.sensor, Reading { t_ms: t, temperature }));
            }
            self.next_reading_ms += self.interval_ms;
        }
        self.advance_to(now_ms);
        out
    }

    /// Exact solution of the first-order model over the elapsed time, so the result does not depend on
    /// how finely time is stepped.
    fn advance_to(&mut self, t_ms: TimeMs) {
        let dt = (t_ms - self.now_ms) as f64;
        if dt <= 0.0 {
            return;
        }
        for room in &mut self.rooms {
            (room.temperature, room.emitter) =
                thermal::advance(room.temperature, room.emitter, room.heater, &room.params, dt);
        }
        self.now_ms = t_ms;
    }
}

/// A tiny, well-known PRNG (SplitMix64): deterministic across platforms, including WASM, with no dependency.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal by Box–Muller.
    fn gaussian(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_readings_different_seed_different_rooms() {
        let cfg = SimConfig {
            rooms: 4,
            ..SimConfig::default()
        };
        let mut a = Simulator::new(cfg, 0);
        let mut b = Simulator::new(cfg, 0);
        assert_eq!(a.step(10_000), b.step(10_000));
        let c = Simulator::new(SimConfig { seed: 7, ..cfg }, 0);
        assert_ne!(a.rooms()[0].params, c.rooms()[0].params);
    }

    #[test]
    fn one_reading_per_room_per_interval() {
        let mut sim = Simulator::new(
            SimConfig {
                rooms: 3,
                interval_ms: 100,
                ..SimConfig::default()
            },
            0,
        );
        let readings = sim.step(1_000);
        assert_eq!(readings.len(), 30);
        assert_eq!(readings[0].1.t_ms, 100);
        assert_eq!(readings[29].1.t_ms, 1_000);
        assert!(sim.step(1_050).is_empty());
        assert_eq!(sim.step(1_100).len(), 3);
        let ids: Vec<_> = readings.iter().take(3).map(|(s, _)| *s).collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn heater_on_warms_and_off_cools_toward_ambient() {
        let mut sim = Simulator::new(
            SimConfig {
                rooms: 1,
                ..SimConfig::default()
            },
            0,
        );
        let start = sim.rooms()[0].temperature;
        sim.apply_command(1, Command::On);
        sim.step(20_000);
        let warm = sim.rooms()[0].temperature;
        assert!(warm > start + 1.0, "{start} -> {warm}");
        assert!(warm < sim.rooms()[0].params.heated);
        sim.apply_command(1, Command::Off);
        sim.step(400_000);
        let cold = sim.rooms()[0].temperature;
        assert!((cold - sim.rooms()[0].params.ambient).abs() < 0.1, "{cold}");
    }

    #[test]
    fn commands_for_unknown_sensors_are_ignored() {
        let mut sim = Simulator::new(SimConfig::default(), 0);
        assert!(!sim.apply_command(99, Command::On));
        assert!(!sim.apply_command(0, Command::On));
        assert!(!sim.apply_command(i32::MIN, Command::On));
        assert!(sim.rooms().iter().all(|r| r.heater == Command::Off));
    }

    #[test]
    fn a_command_switches_exactly_its_room() {
        let config = SimConfig {
            rooms: 1_000,
            first_sensor: 500,
            ..SimConfig::default()
        };
        let mut sim = Simulator::new(config, 0);
        for sensor in [500, 777, 1_499] {
            assert!(sim.apply_command(sensor, Command::On));
        }
        assert!(!sim.apply_command(1_500, Command::On) && !sim.apply_command(499, Command::On));
        let on: Vec<SensorId> = sim
            .rooms()
            .iter()
            .filter(|r| r.heater == Command::On)
            .map(|r| r.sensor)
            .collect();
        assert_eq!(on, [500, 777, 1_499]);
        assert_eq!(sim.room(777).map(|r| r.sensor), Some(777));
    }

    #[test]
    fn a_long_pause_does_not_emit_a_flood() {
        let mut sim = Simulator::new(
            SimConfig {
                rooms: 2,
                ..SimConfig::default()
            },
            0,
        );
        let readings = sim.step(3_600_000);
        assert!(
            readings.len() <= 2 * (MAX_CATCH_UP_INTERVALS as usize + 1),
            "{}",
            readings.len()
        );
        assert_eq!(readings.last().map(|(_, r)| r.t_ms), Some(3_600_000));
    }
}
