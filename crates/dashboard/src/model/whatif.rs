//! The what-if preview: what the heater would have done over the visible history under a proposed setpoint.
//!
//! It calls [`setpoint_control::replay`] — the same step function the server's controller runs — so the preview
//! is not an approximation but exactly what would have happened (given the same readings). The replay starts
//! from the heater command that was actually in force at the window's start, so the first marker is a real
//! switch, not an artefact of starting from "unknown".

use setpoint_control::{
    replay, Config, Decision, Policy, Reading, SensorId, SensorState, Setpoint, SetpointError, TimeMs,
    VersionedSetpoint,
};

use crate::model::sensor::SensorView;
use crate::model::Model;

/// A preview result: the would-have decisions (for drawing) and the two switch counts shown side by side.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WhatIf {
    pub decisions: Vec<Decision>,
    /// Switches the proposed setpoint would have caused in the window.
    pub would_switch: usize,
    /// Switches the server actually made in the same window.
    pub actual_switch: usize,
    /// The outdoor sensor whose term the preview had to leave out: the proposed TPI policy has `k_ext`, but
    /// this page holds no readings of that sensor for the window (it is not shown here).
    pub outdoor_left_out: Option<SensorId>,
}

/// The outdoor sensor a proposed setpoint's TPI policy reads, if it has an outdoor term.
fn outdoor_sensor_of(proposed: &Setpoint) -> Option<SensorId> {
    match proposed.policy {
        Policy::Tpi(t) if t.k_ext > 0.0 => t.outdoor_sensor,
        _ => None,
    }
}

/// [`what_if`] for a card of the page: `view` is sensor `sensor`'s, and the outdoor sensor's readings are
/// the page's view of it, when the page has one.
pub fn preview(
    model: &Model,
    sensor: SensorId,
    view: &SensorView,
    proposed: Setpoint,
    from: TimeMs,
    to: TimeMs,
) -> Result<WhatIf, SetpointError> {
    let outdoor = outdoor_sensor_of(&proposed).and_then(|o| model.sensors.get(&o));
    what_if(&model.config, sensor, view, outdoor, proposed, from, to)
}

/// Replays `view`'s readings in `[from, to]` under `proposed`, with `outdoor` (the view of the policy's
/// outdoor sensor, when this page has it) for TPI's outdoor term. Fails only if `proposed` is invalid under
/// the configured limits, in which case the caller shows the validation error instead of a preview.
pub fn what_if(
    config: &Config,
    sensor: SensorId,
    view: &SensorView,
    outdoor: Option<&SensorView>,
    proposed: Setpoint,
    from: TimeMs,
    to: TimeMs,
) -> Result<WhatIf, SetpointError> {
    let mut initial = SensorState::default();
    if let Some(prev) = view.decisions.before(from) {
        initial.last_command = Some(prev.command);
        initial.last_change_ms = Some(prev.t_ms);
    }
    let readings: Vec<Reading> = view.readings.range(from, to).copied().collect();
    // The outdoor reading in force at the window's start, then those inside it.
    let outdoor_readings: Vec<Reading> = outdoor
        .map(|o| {
            o.readings
                .before(from)
                .into_iter()
                .chain(o.readings.range(from, to))
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let version = view.setpoint.as_ref().map_or(0, |s| s.version + 1);
    let decisions = replay(
        config,
        sensor,
        &initial,
        VersionedSetpoint {
            setpoint: proposed,
            version,
        },
        &readings,
        &outdoor_readings,
    )?;
    let actual_switch = view.decisions.range(from, to).count();
    Ok(WhatIf {
        would_switch: decisions.len(),
        actual_switch,
        decisions,
        outdoor_left_out: outdoor_sensor_of(&proposed).filter(|_| outdoor_readings.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use setpoint_control::{Command, DecisionCause};

    fn view_with_wave() -> SensorView {
        let mut v = SensorView::new(9, 10_000);
        // 20 ± 1 °C sine, 100 points, 100 ms apart.
        for i in 0..100 {
            v.readings.insert(Reading {
                t_ms: 10_000 + i * 100,
                temperature: 20.0 + ((i as f64) / 5.0).sin(),
            });
        }
        v
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn narrow_band_switches_wide_band_does_not() {
        let v = view_with_wave();
        let cfg = Config::default();
        let narrow = what_if(&cfg, 9, &v, None, Setpoint::new(20.0, 0.2, 0.2), 0, 30_000).expect("valid");
        let wide = what_if(&cfg, 9, &v, None, Setpoint::new(20.0, 5.0, 5.0), 0, 30_000).expect("valid");
        assert!(narrow.would_switch >= 4, "{narrow:?}");
        assert_eq!(wide.would_switch, 0);
        // Decisions alternate, as emit-on-change requires.
        for pair in narrow.decisions.windows(2) {
            assert_ne!(pair[0].command, pair[1].command);
        }
        assert!(what_if(&cfg, 9, &v, None, Setpoint::new(20.0, -1.0, 0.2), 0, 30_000).is_err());
    }

    /// A TPI preview with an outdoor term uses the outdoor sensor's readings when the page has them: cold
    /// outside, the heater is On for more of each cycle than with no outdoor term; without them the preview
    /// says the term was left out.
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn a_tpi_preview_takes_the_outdoor_term_from_the_outdoor_sensors_readings() {
        use setpoint_control::Tpi;
        let mut room = SensorView::new(9, 10_000);
        for i in 0..120 {
            room.readings.insert(Reading {
                t_ms: i * 1_000,
                temperature: 20.0,
            });
        }
        let mut outside = SensorView::new(50, 10_000);
        outside.readings.insert(Reading {
            t_ms: -5_000,
            temperature: 0.0,
        });
        // 0.1·(21 − 20) = 10 % of a 60 s cycle without the outdoor term; + 0.02·(21 − 0) = 52 % with it.
        let tpi = Tpi {
            k_ext: 0.02,
            outdoor_sensor: Some(50),
            ..Tpi::new(60, 0.1)
        };
        let proposed = Setpoint::new(21.0, 0.5, 0.5).with_policy(Policy::Tpi(tpi));
        let cfg = Config::default();
        let off_after = |w: &WhatIf| {
            let on = w
                .decisions
                .iter()
                .find(|d| d.command == Command::On)
                .map(|d| d.t_ms);
            let off = w
                .decisions
                .iter()
                .find(|d| d.command == Command::Off)
                .map(|d| d.t_ms);
            on.zip(off).map(|(on, off)| off - on)
        };
        let with = what_if(&cfg, 9, &room, Some(&outside), proposed, 0, 119_000).expect("valid");
        assert_eq!(with.outdoor_left_out, None);
        assert_eq!(off_after(&with), Some(32_000), "{with:?}");
        let without = what_if(&cfg, 9, &room, None, proposed, 0, 119_000).expect("valid");
        assert_eq!(without.outdoor_left_out, Some(50));
        assert_eq!(off_after(&without), Some(6_000), "{without:?}");
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn starts_from_the_command_in_force_and_counts_actual_switches() {
        let mut v = view_with_wave();
        let d = |t, command| Decision {
            sensor: 9,
            t_ms: t,
            temperature: 0.0,
            command,
            setpoint_version: 1,
            cause: DecisionCause::Band,
        };
        v.decisions.insert(d(5_000, Command::Off));
        v.decisions.insert(d(12_000, Command::On));
        v.decisions.insert(d(15_000, Command::Off));
        // Window from 11 s: the heater was Off then. A band whose first verdict is "Off" emits nothing at first.
        let all_hot = what_if(
            &Config::default(),
            9,
            &v,
            None,
            Setpoint::new(0.0, 0.0, 0.0),
            11_000,
            20_000,
        )
        .expect("ok");
        assert_eq!(all_hot.would_switch, 0, "already Off, stays Off");
        assert_eq!(all_hot.actual_switch, 2);
        let all_cold = what_if(
            &Config::default(),
            9,
            &v,
            None,
            Setpoint::new(100.0, 0.0, 0.0),
            11_000,
            20_000,
        )
        .expect("ok");
        assert_eq!(all_cold.would_switch, 1);
        assert_eq!(all_cold.decisions[0].command, Command::On);
        assert_eq!(all_cold.decisions[0].t_ms, 11_000);
    }
}
