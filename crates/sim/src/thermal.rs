//! The rooms' physics: a first-order room, or a room heated through an emitter that lags.
//!
//! **First order** (the default): the room approaches `heated` with the heater On and `ambient` with it
//! Off, with one time constant. Heat stops the instant the heater does, which flatters hysteresis.
//!
//! **Lagging** ([`RoomModel::Lagging`]): a heat emitter (a radiator, a floor) between the heater and the
//! room, a second state with its own time constant. The heater heats the emitter; the emitter heats the
//! room, which loses heat to `ambient`. After Off the emitter keeps heating the room until it has cooled,
//! which is why real heating overshoots a hysteresis band (0.5–1.5 °C with cast-iron radiators):
//!
//! ```text
//! dE/dt = −(E − T)/τe + u·q          q = (heated − ambient)/(r·τe)
//! dT/dt = r·(E − T)/τr − (T − ambient)/τr
//! ```
//!
//! with the coupling `r` = [`EMITTER_COUPLING`] (the emitter conducts twice what the room loses). The steady
//! states are the first-order model's (`heated` On, `ambient` Off). Both models are solved exactly over
//! any elapsed time (the 2×2 system through its matrix exponential, whose eigenvalues are real and
//! distinct for every positive τe, τr and r), so results do not depend on how finely time is stepped.

use serde::{Deserialize, Serialize};
use setpoint_control::Command;

use crate::RoomParams;

/// Which physics the rooms follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoomModel {
    #[default]
    FirstOrder,
    Lagging,
}

/// How much better the emitter conducts to the room than the room to the outside.
pub const EMITTER_COUPLING: f64 = 2.0;

/// A room's temperature `t` and its emitter's `e` after `dt_ms` with the heater `heater` (a first-order
/// room is one whose `emitter_time_constant_ms` is `None`).
pub fn advance(t: f64, e: f64, heater: Command, p: &RoomParams, dt_ms: f64) -> (f64, f64) {
    let (ambient, heated, tau_r) = (p.ambient, p.heated, p.time_constant_ms);
    let u = if heater == Command::On { 1.0 } else { 0.0 };
    let Some(tau_e) = p.emitter_time_constant_ms else {
        let target = ambient + u * (heated - ambient);
        let k = 1.0 - (-dt_ms / tau_r).exp();
        let t = t + (target - t) * k;
        return (t, t);
    };
    let r = EMITTER_COUPLING;
    let q = (heated - ambient) / (r * tau_e);
    let t_ss = ambient + u * (heated - ambient);
    let e_ss = t_ss + u * q * tau_e;
    // x = (e, t) − steady state; x(dt) = exp(A·dt)·x(0).
    let (a11, a12, a21, a22) = (-1.0 / tau_e, 1.0 / tau_e, r / tau_r, -(1.0 + r) / tau_r);
    let trace = a11 + a22;
    let det = a11 * a22 - a12 * a21;
    let root = (trace * trace - 4.0 * det).sqrt();
    let (l1, l2) = ((trace + root) / 2.0, (trace - root) / 2.0);
    let (x1, x2) = (l1 * dt_ms, l2 * dt_ms);
    let (ex1, ex2) = (x1.exp(), x2.exp());
    // exp(A·dt) = c0·I + c1·A.
    let c0 = (l1 * ex2 - l2 * ex1) / (l1 - l2);
    let c1 = (ex1 - ex2) / (l1 - l2);
    let (de, dt) = (e - e_ss, t - t_ss);
    let e_new = e_ss + c0 * de + c1 * (a11 * de + a12 * dt);
    let t_new = t_ss + c0 * dt + c1 * (a21 * de + a22 * dt);
    (t_new, e_new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(tau_e: Option<f64>) -> RoomParams {
        RoomParams {
            ambient: 5.0,
            heated: 35.0,
            time_constant_ms: 3_600_000.0,
            noise_std: 0.0,
            emitter_time_constant_ms: tau_e,
        }
    }

    /// The closed form equals a fine Euler integration of the equations, and stepping in pieces equals
    /// stepping at once.
    #[test]
    fn the_exact_solution_matches_integration_and_does_not_depend_on_steps() {
        let (ambient, heated, tau_r, tau_e) = (5.0, 35.0, 3_600_000.0, 900_000.0);
        assert_eq!(room(None).time_constant_ms, tau_r);
        let (mut t, mut e) = (18.0, 18.0);
        let q = (heated - ambient) / (EMITTER_COUPLING * tau_e);
        let h = 100.0;
        for _ in 0..(1_800_000.0 / h) as usize {
            let de = -(e - t) / tau_e + q;
            let dt = EMITTER_COUPLING * (e - t) / tau_r - (t - ambient) / tau_r;
            e += de * h;
            t += dt * h;
        }
        let p = room(Some(tau_e));
        let (t1, e1) = advance(18.0, 18.0, Command::On, &p, 1_800_000.0);
        assert!(
            (t1 - t).abs() < 1e-3 && (e1 - e).abs() < 1e-3,
            "{t1} {e1} vs {t} {e}"
        );
        let mut s = (18.0, 18.0);
        for _ in 0..18 {
            s = advance(s.0, s.1, Command::On, &p, 100_000.0);
        }
        assert!((s.0 - t1).abs() < 1e-9 && (s.1 - e1).abs() < 1e-9);
    }

    /// After Off a lagging room keeps warming (its emitter still hot); a first-order room cools at once.
    #[test]
    fn a_lagging_room_keeps_warming_after_off() {
        let p = room(Some(1_200_000.0));
        let mut s = (15.0, 15.0);
        for _ in 0..20 {
            s = advance(s.0, s.1, Command::On, &p, 60_000.0);
        }
        let at_off = s.0;
        let mut peak = at_off;
        for _ in 0..60 {
            s = advance(s.0, s.1, Command::Off, &p, 60_000.0);
            peak = peak.max(s.0);
        }
        assert!(peak > at_off + 0.3, "overshoot {:.2} °C", peak - at_off);
        let first = advance(at_off, at_off, Command::Off, &room(None), 60_000.0);
        assert!(first.0 < at_off);
    }
}
