//! Mode and policy: TPI's duty cycle against its formula, mode off, the minimum dwell, a handover inside
//! a cycle, and the validation of the TPI parameters.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use setpoint_control::{
    Command, Config, Controller, Decision, Limits, Mode, Policy, Reading, Setpoint, SetpointError,
    SetpointField, Tpi,
};

const T0: i64 = 1_700_000_000_000;

fn tpi_room(desired: f64, tpi: Tpi) -> Setpoint {
    Setpoint::new(desired, 0.5, 0.5).with_policy(Policy::Tpi(tpi))
}

/// A reading `t` ms after `T0`.
fn at(t: i64, temperature: f64) -> Reading {
    Reading {
        t_ms: T0 + t,
        temperature,
    }
}

/// Readings every `period_ms` from `T0` for `n` readings at the temperatures `temp(i)`; the decisions.
fn run(c: &mut Controller, sensor: i32, n: i64, period_ms: i64, temp: impl Fn(i64) -> f64) -> Vec<Decision> {
    (0..n)
        .filter_map(|i| {
            let reading = Reading {
                t_ms: T0 + i * period_ms,
                temperature: temp(i),
            };
            c.on_reading(sensor, reading).expect("valid reading")
        })
        .collect()
}

/// Time On within `[from, to)` given the decisions (the heater's state before the first is Off).
fn on_time(decisions: &[Decision], from: i64, to: i64) -> i64 {
    let mut on_since: Option<i64> = None;
    let mut total = 0;
    for d in decisions {
        match (d.command, on_since) {
            (Command::On, None) => on_since = Some(d.t_ms),
            (Command::Off, Some(s)) => {
                total += d.t_ms.clamp(from, to) - s.clamp(from, to);
                on_since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = on_since {
        total += to - s.clamp(from, to);
    }
    total
}

proptest! {
    /// For a steady temperature, each cycle's On time is the formula's share of the cycle —
    /// clamp(k_int·(desired − T), 0, 1) — to within one reading period, and no cycle has more than two
    /// switches.
    #[test]
    fn tpi_duty_equals_the_formula_for_steady_inputs(
        cycle_s in 60u32..1_200,
        k_int in 0.05f64..3.0,
        desired in 15.0f64..25.0,
        below in -1.0f64..4.0,
    ) {
        let temperature = desired - below;
        let mut c = Controller::new(Config::default());
        c.apply_setpoint(1, tpi_room(desired, Tpi::new(cycle_s, k_int)), 1).expect("valid");
        let cycles = 4;
        let cycle_ms = i64::from(cycle_s) * 1000;
        let decisions = run(&mut c, 1, cycles * i64::from(cycle_s), 1_000, |_| temperature);
        let fraction = (k_int * (desired - temperature)).clamp(0.0, 1.0);
        for k in 0..cycles {
            let (from, to) = (T0 + k * cycle_ms, T0 + (k + 1) * cycle_ms);
            let on = on_time(&decisions, from, to);
            let want = fraction * cycle_ms as f64;
            prop_assert!((on as f64 - want).abs() <= 1_000.0, "cycle {k}: on {on} ms, formula {want} ms");
            let switches = decisions.iter().filter(|d| (from..to).contains(&d.t_ms)).count();
            prop_assert!(switches <= 2, "cycle {k}: {switches} switches");
        }
    }

    /// Mode off: one Off, then nothing, however cold or hot, whatever the policy.
    #[test]
    fn mode_off_never_emits_on(
        temps in proptest::collection::vec(-30.0f64..60.0, 1..200),
        tpi in any::<bool>(),
        dwell in prop_oneof![Just(0i64), 1..5_000i64],
    ) {
        let config = Config { min_dwell_ms: dwell, ..Config::default() };
        let mut c = Controller::new(config);
        let policy = if tpi { Policy::Tpi(Tpi::new(60, 1.0)) } else { Policy::Hysteresis };
        c.apply_setpoint(1, Setpoint::new(21.0, 0.5, 0.5).with_mode(Mode::Off).with_policy(policy), 1)
            .expect("valid");
        let decisions = run(&mut c, 1, temps.len() as i64, 1_000, |i| temps[i as usize]);
        prop_assert_eq!(decisions.len(), 1);
        prop_assert_eq!(decisions[0].command, Command::Off);
    }

    /// TPI respects the minimum dwell: no two commands closer than it.
    #[test]
    fn tpi_respects_the_minimum_dwell(
        dwell_s in 1i64..120,
        cycle_s in 60u32..600,
        temps in proptest::collection::vec(15.0f64..25.0, 50..400),
    ) {
        let config = Config { min_dwell_ms: dwell_s * 1000, ..Config::default() };
        let mut c = Controller::new(config);
        c.apply_setpoint(1, tpi_room(21.0, Tpi::new(cycle_s, 0.8)), 1).expect("valid");
        let decisions = run(&mut c, 1, temps.len() as i64, 5_000, |i| temps[i as usize]);
        for pair in decisions.windows(2) {
            prop_assert!(pair[1].t_ms - pair[0].t_ms >= dwell_s * 1000, "{pair:?}");
        }
    }

    /// The minimum on and off times hold across setpoint changes: a new version starts a new cycle at once,
    /// but never cuts an On shorter than `min_on_s` or an Off shorter than `min_off_s`.
    #[test]
    fn minimum_times_hold_across_setpoint_changes(
        min_on_s in 0u32..90,
        min_off_s in 0u32..90,
        temps in proptest::collection::vec(17.0f64..24.0, 100..600),
        changes in proptest::collection::vec((0usize..600, 17.0f64..24.0), 1..30),
    ) {
        let tpi = Tpi { min_on_s, min_off_s, ..Tpi::new(120, 0.9) };
        let mut c = Controller::new(Config::default());
        c.apply_setpoint_at(1, tpi_room(21.0, tpi), 1, T0).expect("valid");
        let mut version = 1;
        let mut decisions = Vec::new();
        for (i, t) in temps.iter().enumerate() {
            let t_ms = T0 + i as i64 * 1_000;
            for (_, desired) in changes.iter().filter(|(at, _)| *at == i) {
                version += 1;
                c.apply_setpoint_at(1, tpi_room(*desired, tpi), version, t_ms).expect("valid");
            }
            decisions.extend(c.on_reading(1, Reading { t_ms, temperature: *t }).expect("valid"));
        }
        for pair in decisions.windows(2) {
            let lasted = pair[1].t_ms - pair[0].t_ms;
            let min_s = match pair[0].command { Command::On => min_on_s, Command::Off => min_off_s };
            prop_assert!(lasted >= i64::from(min_s) * 1000, "{:?} lasted {lasted} ms: {pair:?}", pair[0].command);
        }
    }

    /// A controller that takes over a heater's memory mid-cycle (a handover, a restart) decides exactly as
    /// the one that would have carried on.
    #[test]
    fn a_handover_inside_a_cycle_continues_it(
        split in 1i64..900,
        temps in proptest::collection::vec(18.0f64..23.0, 900),
        min_on_s in 0u32..60,
    ) {
        let room = tpi_room(21.0, Tpi { min_on_s, ..Tpi::new(120, 0.7) });
        let temp = |i: i64| temps[i as usize];
        let mut whole = Controller::new(Config::default());
        whole.apply_setpoint(1, room, 1).expect("valid");
        let all = run(&mut whole, 1, 900, 1_000, temp);

        let mut first = Controller::new(Config::default());
        first.apply_setpoint(1, room, 1).expect("valid");
        let mut got = run(&mut first, 1, split, 1_000, temp);
        let memory = first.sensor(1).expect("known").heater_memory();
        let mut second = Controller::new(Config::default());
        second.apply_setpoint(1, room, 1).expect("valid");
        second.restore_heater(1, memory);
        for i in split..900 {
            let reading = Reading { t_ms: T0 + i * 1_000, temperature: temp(i) };
            got.extend(second.on_reading(1, reading).expect("valid"));
        }
        prop_assert_eq!(got, all);
    }
}

/// The minimum times: a share shorter than `min_on_s` stays Off, a rest shorter than `min_off_s` stays On.
#[test]
fn minimum_on_and_off_times_round_the_share() {
    let tpi = Tpi {
        min_on_s: 60,
        min_off_s: 60,
        ..Tpi::new(600, 0.5)
    };
    // 0.1 °C below: 5 % of 600 s = 30 s < 60 s → no On at all.
    assert_eq!(tpi.on_ms(21.0, 20.9, None), 0);
    // 1.9 °C below: 95 % = 570 s, leaving 30 s < 60 s Off → On for the whole cycle.
    assert_eq!(tpi.on_ms(21.0, 19.1, None), 600_000);
    // 1 °C below: half the cycle.
    assert_eq!(tpi.on_ms(21.0, 20.0, None), 300_000);
    // The outdoor term: 10 °C outside with k_ext 0.02 adds 0.22.
    let ext = Tpi {
        k_ext: 0.02,
        outdoor_sensor: Some(99),
        ..Tpi::new(600, 0.5)
    };
    assert_eq!(ext.on_ms(21.0, 20.0, Some(10.0)), 432_000);
    assert_eq!(ext.on_ms(21.0, 20.0, None), 300_000);
}

/// The controller takes the outdoor temperature from the outdoor sensor's newest reading.
#[test]
fn the_outdoor_term_uses_the_outdoor_sensors_newest_reading() {
    let mut c = Controller::new(Config::default());
    let tpi = Tpi {
        k_ext: 0.05,
        outdoor_sensor: Some(99),
        ..Tpi::new(100, 0.1)
    };
    c.apply_setpoint(1, tpi_room(21.0, tpi), 1).expect("valid");
    assert_eq!(c.on_reading(99, at(0, 1.0)), Ok(None));
    // 0.1·1 + 0.05·20 = 1.1 → On for the whole cycle.
    let on = c.on_reading(1, at(0, 20.0)).expect("valid");
    assert_eq!(on.map(|d| d.command), Some(Command::On));
    assert_eq!(c.on_reading(1, at(99_000, 20.0)), Ok(None));
    // Next cycle, warm outside: 0.1·1 + 0.05·1 = 0.15 → On 15 s, then Off.
    assert_eq!(c.on_reading(99, at(99_500, 20.0)), Ok(None));
    assert_eq!(c.on_reading(1, at(100_000, 20.0)), Ok(None));
    let off = c.on_reading(1, at(115_000, 20.0)).expect("valid");
    assert_eq!(off.map(|d| d.command), Some(Command::Off));
}

/// A room whose outdoor sensor never reported to this controller (on Kafka: its partition is another
/// controller's) is decided without the outdoor term, and every such reading is counted, so an operator
/// sees it; once the outdoor sensor reports, the count stops.
#[test]
fn readings_decided_without_their_outdoor_temperature_are_counted() {
    let mut c = Controller::new(Config::default());
    let tpi = Tpi {
        k_ext: 0.05,
        outdoor_sensor: Some(99),
        ..Tpi::new(100, 0.1)
    };
    c.apply_setpoint(1, tpi_room(21.0, tpi), 1).expect("valid");
    c.apply_setpoint(2, tpi_room(21.0, Tpi::new(100, 0.1)), 1)
        .expect("valid");
    for t in 0..3 {
        c.on_reading(1, at(t * 1_000, 20.0)).expect("valid");
        c.on_reading(2, at(t * 1_000, 20.0)).expect("valid");
    }
    assert_eq!(
        c.stats().readings_without_outdoor,
        3,
        "room 1 only: room 2 has no outdoor term"
    );
    c.on_reading(99, at(3_000, 5.0)).expect("valid");
    c.on_reading(1, at(4_000, 20.0)).expect("valid");
    assert_eq!(c.stats().readings_without_outdoor, 3);
}

/// A new setpoint version starts a new cycle at once: a slider moved mid-cycle acts on the next reading.
#[test]
fn a_new_setpoint_version_starts_a_new_cycle() {
    let mut c = Controller::new(Config::default());
    c.apply_setpoint_at(1, tpi_room(20.0, Tpi::new(600, 1.0)), 1, T0)
        .expect("valid");
    let at = |t: i64| at(t, 20.0);
    // At the desired temperature: 0 % → Off.
    assert_eq!(
        c.on_reading(1, at(0)).expect("valid").map(|d| d.command),
        Some(Command::Off)
    );
    c.apply_setpoint_at(1, tpi_room(21.0, Tpi::new(600, 1.0)), 2, T0 + 10_000)
        .expect("valid");
    let on = c.on_reading(1, at(10_000)).expect("valid");
    assert_eq!(
        on.map(|d| (d.command, d.setpoint_version)),
        Some((Command::On, 2))
    );
}

/// A new cycle started by a new setpoint does not cut the On short: the heater stays On for `min_on_s`
/// (then the new cycle's share decides), and a mode off still goes out at once.
#[test]
fn a_new_setpoint_version_does_not_cut_an_on_shorter_than_min_on() {
    let tpi = Tpi {
        min_on_s: 60,
        ..Tpi::new(600, 1.0)
    };
    let mut c = Controller::new(Config::default());
    c.apply_setpoint_at(1, tpi_room(21.0, tpi), 1, T0).expect("valid");
    let command = |d: Option<Decision>| d.map(|d| d.command);
    // 0.5 °C below with k_int 1: On for half the cycle.
    assert_eq!(
        command(c.on_reading(1, at(0, 20.5)).expect("valid")),
        Some(Command::On)
    );
    // 5 s later the slider goes down: the new cycle's share is 0, but the On has lasted 5 s of its 60.
    c.apply_setpoint_at(1, tpi_room(19.0, tpi), 2, T0 + 5_000)
        .expect("valid");
    for t in (5_000..60_000).step_by(5_000) {
        assert_eq!(c.on_reading(1, at(t, 20.5)).expect("valid"), None, "at {t} ms");
    }
    let off = c.on_reading(1, at(60_000, 20.5)).expect("valid");
    assert_eq!(
        off.map(|d| (d.command, d.setpoint_version)),
        Some((Command::Off, 2))
    );

    // Mode off is a person's decision: it is not held by the minimum on time.
    let mut c = Controller::new(Config::default());
    c.apply_setpoint_at(1, tpi_room(21.0, tpi), 1, T0).expect("valid");
    assert_eq!(
        command(c.on_reading(1, at(0, 20.5)).expect("valid")),
        Some(Command::On)
    );
    c.apply_setpoint_at(1, tpi_room(21.0, tpi).with_mode(Mode::Off), 2, T0 + 5_000)
        .expect("valid");
    assert_eq!(
        command(c.on_reading(1, at(5_000, 20.5)).expect("valid")),
        Some(Command::Off)
    );
}

/// Every TPI parameter is checked by the one rule, naming the field.
#[test]
fn tpi_parameters_are_validated_by_the_one_rule() {
    let limits = Limits::default();
    let check = |tpi: Tpi| limits.validate(&tpi_room(21.0, tpi)).map_err(|e| e.field());
    assert_eq!(check(Tpi::new(600, 0.6)), Ok(()));
    assert_eq!(check(Tpi::new(5, 0.6)), Err(SetpointField::CycleS));
    assert_eq!(check(Tpi::new(100_000, 0.6)), Err(SetpointField::CycleS));
    assert_eq!(check(Tpi::new(600, f64::NAN)), Err(SetpointField::KInt));
    assert_eq!(check(Tpi::new(600, -0.1)), Err(SetpointField::KInt));
    assert_eq!(check(Tpi::new(600, 101.0)), Err(SetpointField::KInt));
    let no_outdoor = Tpi {
        k_ext: 0.1,
        ..Tpi::new(600, 0.6)
    };
    assert_eq!(check(no_outdoor), Err(SetpointField::OutdoorSensor));
    let long_on = Tpi {
        min_on_s: 601,
        ..Tpi::new(600, 0.6)
    };
    assert_eq!(check(long_on), Err(SetpointField::MinOnS));
    assert!(matches!(
        limits.validate(&tpi_room(21.0, Tpi::new(600, f64::INFINITY))),
        Err(SetpointError::NotFinite { .. })
    ));
}

/// The JSON a script sends: `mode` and `policy` with `kind`, unknown fields refused, absent = defaults.
#[test]
fn policy_json_is_strict() {
    let sp: Setpoint = serde_json::from_str(
        r#"{"desired":21,"up_delta":0.5,"down_delta":0.5,"mode":"off","policy":{"kind":"tpi","cycle_s":600,"k_int":0.6}}"#,
    )
    .expect("parses");
    assert_eq!(sp, tpi_room(21.0, Tpi::new(600, 0.6)).with_mode(Mode::Off));
    let plain: Setpoint =
        serde_json::from_str(r#"{"desired":21,"up_delta":0.5,"down_delta":0.5}"#).expect("parses");
    assert_eq!(plain, Setpoint::new(21.0, 0.5, 0.5));
    for bad in [
        r#"{"kind":"tpi","cycle_s":600,"kint":0.6}"#,
        r#"{"kind":"pid"}"#,
        r#"{"kind":"hysteresis","cycle_s":600}"#,
        r#"{"cycle_s":600,"k_int":0.6}"#,
    ] {
        assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad}");
    }
}

/// Times from outside are not trusted: a reading dated at the far past starts a cycle, and the next
/// correctly dated reading starts a new one instead of overflowing (or wrapping into a cycle that never
/// ends); a cycle restored from a changelog record dated ahead moves back whole, keeping its On length.
#[test]
fn cycles_survive_times_at_the_ends_of_the_range() {
    use setpoint_control::{HeaterMemory, TpiCycle};
    let mut c = Controller::new(Config::default());
    c.apply_setpoint(1, tpi_room(21.0, Tpi::new(600, 0.5)), 1)
        .expect("valid");
    let far_past = Reading {
        t_ms: i64::MIN + 1,
        temperature: 21.0,
    };
    assert_eq!(
        c.on_reading(1, far_past).expect("valid").map(|d| d.command),
        Some(Command::Off)
    );
    let now = Reading {
        t_ms: T0,
        temperature: 19.0,
    };
    let d = c.on_reading(1, now).expect("valid").expect("a new cycle");
    assert_eq!(d.command, Command::On);
    let cycle = c.sensor(1).and_then(|s| s.cycle).expect("a cycle");
    assert_eq!((cycle.start_ms, cycle.on_until_ms), (T0, T0 + 600_000));

    let ahead = HeaterMemory {
        cycle: Some(TpiCycle {
            start_ms: T0 + 3_600_000,
            on_until_ms: T0 + 3_660_000,
            version: 1,
        }),
        ..HeaterMemory::default()
    };
    let (clamped, changed) = ahead.clamped(T0);
    assert!(changed);
    assert_eq!(
        clamped.cycle.map(|c| (c.start_ms, c.on_until_ms)),
        Some((T0, T0 + 60_000))
    );
}
