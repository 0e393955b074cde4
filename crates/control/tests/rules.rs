//! One test per rule of the control crate. Compiled natively and to wasm32, where the same tests run under
//! wasm-bindgen-test, so every rule is checked on both targets.

use setpoint_control::{
    replay, Command, Config, Controller, DecisionCause, Limits, Reading, ReadingError, SensorState, Setpoint,
    SetpointError, SetpointField, VersionedSetpoint,
};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const BAND: Setpoint = Setpoint::new(20.0, 1.0, 2.0); // Off above 21, On below 18.

fn r(t_ms: i64, temperature: f64) -> Reading {
    Reading { t_ms, temperature }
}

fn controller_with(config: Config) -> Controller {
    let mut c = Controller::new(config);
    c.apply_setpoint(1, BAND, 1).expect("valid");
    c
}

fn controller() -> Controller {
    controller_with(Config::default())
}

fn command(c: &mut Controller, sensor: i32, t_ms: i64, temperature: f64) -> Option<Command> {
    c.on_reading(sensor, r(t_ms, temperature))
        .expect("finite")
        .map(|d| d.command)
}

#[test]
fn above_the_band_turns_off_and_below_turns_on() {
    let mut c = controller();
    assert_eq!(command(&mut c, 1, 1, 21.5), Some(Command::Off));
    assert_eq!(command(&mut c, 1, 2, 17.5), Some(Command::On));
}

#[test]
fn exactly_on_a_boundary_or_inside_decides_nothing() {
    let mut c = controller();
    for (t, temp) in [(1, 21.0), (2, 18.0), (3, 20.0), (4, 19.0)] {
        assert_eq!(command(&mut c, 1, t, temp), None, "{temp}");
    }
    assert_eq!(c.sensor(1).and_then(|s| s.last_command), None);
}

#[test]
fn a_command_is_emitted_only_when_it_changes() {
    let mut c = controller();
    assert_eq!(command(&mut c, 1, 1, 25.0), Some(Command::Off));
    assert_eq!(command(&mut c, 1, 2, 26.0), None);
    assert_eq!(command(&mut c, 1, 3, 20.0), None);
    assert_eq!(command(&mut c, 1, 4, 22.0), None);
    assert_eq!(command(&mut c, 1, 5, 10.0), Some(Command::On));
    assert_eq!(command(&mut c, 1, 6, 10.0), None);
}

#[test]
fn without_a_setpoint_nothing_is_decided_but_the_reading_counts() {
    let mut c = Controller::new(Config::default());
    assert_eq!(command(&mut c, 7, 1, -40.0), None);
    assert_eq!(command(&mut c, 7, 2, 140.0), None);
    assert_eq!(c.sensor(7).map(|s| s.readings), Some(2));
    assert_eq!(c.stats().readings, 2);
    assert_eq!(c.stats().decisions, 0);
}

#[test]
fn last_command_is_per_sensor_not_shared() {
    // Reference bug: one "last command" for all sensors, so sensor 2's On was swallowed after sensor 1's On.
    let mut c = controller();
    c.apply_setpoint(2, BAND, 1).expect("valid");
    assert_eq!(command(&mut c, 1, 1, 10.0), Some(Command::On));
    assert_eq!(command(&mut c, 2, 2, 10.0), Some(Command::On));
    assert_eq!(command(&mut c, 2, 3, 30.0), Some(Command::Off));
    assert_eq!(command(&mut c, 1, 4, 10.0), None);
}

#[test]
fn setpoints_are_per_sensor() {
    let mut c = controller();
    c.apply_setpoint(2, Setpoint::new(40.0, 1.0, 1.0), 1)
        .expect("valid");
    assert_eq!(command(&mut c, 1, 1, 30.0), Some(Command::Off));
    assert_eq!(command(&mut c, 2, 1, 30.0), Some(Command::On));
}

#[test]
fn last_command_survives_failover_through_snapshot() {
    // Reference bug: state lost on failover, so the new owner re-sent every command.
    let mut c = controller();
    assert_eq!(command(&mut c, 1, 1, 10.0), Some(Command::On));
    let mut restored = Controller::restore(c.snapshot());
    assert_eq!(command(&mut restored, 1, 2, 10.0), None);
    assert_eq!(command(&mut restored, 1, 3, 30.0), Some(Command::Off));
}

#[test]
fn decision_carries_the_sensor_id_not_the_command_value() {
    // Reference bug: the command value was written into the sensor-id field.
    for sensor in [0, 1, -5, i32::MAX, i32::MIN] {
        let mut c = Controller::new(Config::default());
        c.apply_setpoint(sensor, BAND, 9).expect("valid");
        for (t, temp, cmd) in [(1, 10.0, Command::On), (2, 30.0, Command::Off)] {
            let d = c
                .on_reading(sensor, r(t, temp))
                .expect("finite")
                .expect("decides");
            assert_eq!((d.sensor, d.command), (sensor, cmd));
            assert_eq!(
                (d.t_ms, d.temperature, d.setpoint_version, d.cause),
                (t, temp, 9, DecisionCause::Band)
            );
        }
    }
}

#[test]
fn a_new_setpoint_applies_to_the_very_next_reading() {
    let mut c = controller();
    assert_eq!(command(&mut c, 1, 1, 19.0), None);
    c.apply_setpoint(1, Setpoint::new(25.0, 1.0, 1.0), 2)
        .expect("valid");
    let d = c.on_reading(1, r(2, 19.0)).expect("finite").expect("decides");
    assert_eq!((d.command, d.setpoint_version), (Command::On, 2));
}

#[test]
fn an_invalid_setpoint_is_refused_naming_the_field_and_the_old_one_stays() {
    let mut c = controller();
    let bad = [
        (Setpoint::new(f64::NAN, 1.0, 1.0), SetpointField::Desired),
        (Setpoint::new(20.0, f64::INFINITY, 1.0), SetpointField::UpDelta),
        (Setpoint::new(20.0, 1.0, -0.5), SetpointField::DownDelta),
        (Setpoint::new(200.0, 1.0, 1.0), SetpointField::Desired),
        (Setpoint::new(-60.0, 1.0, 1.0), SetpointField::Desired),
        (Setpoint::new(20.0, 51.0, 1.0), SetpointField::UpDelta),
    ];
    for (sp, field) in bad {
        let err = c.apply_setpoint(1, sp, 5).expect_err("refused");
        assert_eq!(err.field(), field, "{sp:?}");
        assert!(err.to_string().starts_with(field.as_str()), "{err}");
    }
    assert_eq!(
        c.sensor(1)
            .and_then(|s| s.setpoint())
            .map(|v| (v.setpoint, v.version)),
        Some((BAND, 1))
    );
    assert_eq!(c.stats().setpoints_rejected, 6);
    assert_eq!(command(&mut c, 1, 1, 17.9), Some(Command::On));
}

#[test]
fn limits_accept_negative_zero_and_are_configurable() {
    let limits = Limits::default();
    assert_eq!(limits.validate(&Setpoint::new(20.0, -0.0, 0.0)), Ok(()));
    assert_eq!(limits.validate(&Setpoint::new(150.0, 50.0, 50.0)), Ok(()));
    let sauna = Limits {
        desired_min: 0.0,
        desired_max: 110.0,
        max_delta: 5.0,
    };
    assert!(matches!(
        sauna.validate(&Setpoint::new(120.0, 1.0, 1.0)),
        Err(SetpointError::OutOfRange {
            field: SetpointField::Desired,
            ..
        })
    ));
    assert!(matches!(
        sauna.validate(&Setpoint::new(90.0, 6.0, 1.0)),
        Err(SetpointError::OutOfRange {
            field: SetpointField::UpDelta,
            ..
        })
    ));
}

#[test]
fn a_non_finite_or_impossible_temperature_is_refused_without_changing_state() {
    let mut c = controller();
    assert_eq!(command(&mut c, 1, 10, 10.0), Some(Command::On));
    let before = c.sensor(1).cloned();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            c.on_reading(1, r(20, bad)),
            Err(ReadingError::NonFiniteTemperature { sensor: 1, .. })
        ));
    }
    for impossible in [-273.16, -1e308, f64::MIN] {
        assert!(matches!(
            c.on_reading(1, r(20, impossible)),
            Err(ReadingError::BelowAbsoluteZero { sensor: 1, .. })
        ));
    }
    assert_eq!(c.sensor(1).cloned(), before);
    assert_eq!(c.stats().rejected_readings, 6);
    // A reading at an earlier time than the refused ones is still in order: they left no trace.
    assert_eq!(command(&mut c, 1, 15, 30.0), Some(Command::Off));
}

#[test]
fn dwell_holds_a_command_for_the_minimum_time() {
    let mut c = controller_with(Config {
        min_dwell_ms: 1_000,
        ..Config::default()
    });
    assert_eq!(
        command(&mut c, 1, 0, 10.0),
        Some(Command::On),
        "the first command is never held"
    );
    assert_eq!(command(&mut c, 1, 500, 30.0), None, "held: On for only 500 ms");
    assert_eq!(command(&mut c, 1, 999, 30.0), None);
    assert_eq!(command(&mut c, 1, 1_000, 30.0), Some(Command::Off));
    assert_eq!(command(&mut c, 1, 1_500, 10.0), None);
    assert_eq!(
        command(&mut c, 1, 2_100, 19.0),
        None,
        "back in band: nothing to do"
    );
    assert_eq!(command(&mut c, 1, 2_200, 10.0), Some(Command::On));
}

#[test]
fn zero_dwell_is_the_reference_behaviour() {
    let mut c = controller();
    assert_eq!(command(&mut c, 1, 0, 10.0), Some(Command::On));
    assert_eq!(command(&mut c, 1, 0, 30.0), Some(Command::Off));
    assert_eq!(command(&mut c, 1, 1, 10.0), Some(Command::On));
}

#[test]
fn an_older_reading_is_ignored_and_counted_and_equal_times_are_fine() {
    let mut c = controller();
    assert_eq!(command(&mut c, 1, 100, 19.0), None);
    assert_eq!(
        command(&mut c, 1, 99, 10.0),
        None,
        "older than the newest: ignored"
    );
    assert_eq!(c.stats().out_of_order, 1);
    assert_eq!(c.sensor(1).map(|s| (s.out_of_order, s.readings)), Some((1, 1)));
    assert_eq!(
        command(&mut c, 1, 100, 10.0),
        Some(Command::On),
        "same time is in order"
    );
    // Out-of-order is per sensor: another sensor's time does not matter.
    c.apply_setpoint(2, BAND, 1).expect("valid");
    assert_eq!(command(&mut c, 2, 5, 10.0), Some(Command::On));
}

#[test]
fn a_silent_sensor_gets_one_failsafe_off_and_is_stale_until_it_reports() {
    let config = Config {
        stale_after_ms: Some(5_000),
        ..Config::default()
    };
    let mut c = controller_with(config);
    c.apply_setpoint(2, BAND, 1).expect("valid");
    assert_eq!(command(&mut c, 1, 0, 10.0), Some(Command::On));
    assert_eq!(command(&mut c, 2, 0, 10.0), Some(Command::On));
    assert!(
        c.tick(5_000).is_empty(),
        "exactly at the timeout is not yet stale"
    );
    assert_eq!(command(&mut c, 2, 4_000, 10.0), None, "sensor 2 keeps reporting");
    let fs = c.tick(5_001);
    assert_eq!(fs.len(), 1);
    assert_eq!(
        (fs[0].sensor, fs[0].command, fs[0].cause, fs[0].t_ms),
        (1, Command::Off, DecisionCause::Failsafe, 5_001)
    );
    assert_eq!(fs[0].temperature, 10.0, "reports the last known temperature");
    assert!(c.sensor(1).is_some_and(|s| s.stale));
    assert!(
        c.tick(60_000).iter().all(|d| d.sensor != 1),
        "only one failsafe per silence"
    );
    // Its next reading clears the flag and control resumes.
    assert_eq!(command(&mut c, 1, 61_000, 10.0), Some(Command::On));
    assert!(c.sensor(1).is_some_and(|s| !s.stale));
    assert_eq!(c.stats().failsafes, 2, "sensor 1 once, sensor 2 once at 60 s");
}

#[test]
fn failsafe_skips_sensors_already_off_or_not_controlled_and_is_off_by_default() {
    let mut c = controller_with(Config {
        stale_after_ms: Some(1_000),
        ..Config::default()
    });
    assert_eq!(command(&mut c, 1, 0, 30.0), Some(Command::Off));
    assert_eq!(command(&mut c, 9, 0, 30.0), None, "no setpoint");
    assert!(c.tick(10_000).is_empty());
    assert!(c.sensor(1).is_some_and(|s| s.stale) && c.sensor(9).is_some_and(|s| s.stale));

    let mut reference = controller();
    assert_eq!(command(&mut reference, 1, 0, 10.0), Some(Command::On));
    assert!(reference.tick(i64::MAX).is_empty());
}

#[test]
fn failsafe_overrides_dwell() {
    let mut c = controller_with(Config {
        stale_after_ms: Some(100),
        min_dwell_ms: 1_000_000,
        ..Config::default()
    });
    assert_eq!(command(&mut c, 1, 0, 10.0), Some(Command::On));
    assert_eq!(c.tick(200).len(), 1);
}

#[test]
fn replay_matches_live_processing_and_starts_from_the_given_state() {
    let readings: Vec<Reading> = [19.0, 17.0, 16.0, 19.5, 21.5, 22.0, 18.5, 17.9, f64::NAN, 17.0]
        .iter()
        .enumerate()
        .map(|(i, t)| r(i as i64, *t))
        .collect();
    let mut live = controller();
    let live_decisions: Vec<_> = readings
        .iter()
        .filter_map(|x| live.on_reading(1, *x).ok().flatten())
        .collect();
    let vs = VersionedSetpoint {
        setpoint: BAND,
        version: 1,
    };
    let replayed = replay(&Config::default(), 1, &SensorState::default(), vs, &readings, &[]).expect("valid");
    assert_eq!(replayed, live_decisions);
    assert_eq!(
        replayed.iter().map(|d| d.command).collect::<Vec<_>>(),
        vec![Command::On, Command::Off, Command::On]
    );

    let on_already = SensorState {
        last_command: Some(Command::On),
        ..SensorState::default()
    };
    let from_on = replay(&Config::default(), 1, &on_already, vs, &readings, &[]).expect("valid");
    assert_eq!(from_on.len(), 2, "the first On is not repeated");

    let bad = VersionedSetpoint {
        setpoint: Setpoint::new(20.0, -1.0, 1.0),
        version: 2,
    };
    assert!(replay(
        &Config::default(),
        1,
        &SensorState::default(),
        bad,
        &readings,
        &[]
    )
    .is_err());
}

#[test]
fn release_forgets_the_heater_but_keeps_the_setpoint() {
    let mut c = controller();
    assert_eq!(command(&mut c, 1, 10, 10.0), Some(Command::On));
    c.release(1);
    assert_eq!(
        c.sensor(1).and_then(|s| s.setpoint()).map(|v| v.setpoint),
        Some(BAND)
    );
    // The sensor came back after another instance may have turned the heater off: On is sent again, and
    // an earlier timestamp than before the release is accepted (the other owner's history is not ours).
    assert_eq!(command(&mut c, 1, 5, 10.0), Some(Command::On));
}

/// Mode off: one Off, then nothing however cold (also in the browser, where the what-if runs this code).
#[test]
fn mode_off_sends_one_off_and_then_nothing() {
    let mut c = Controller::new(Config::default());
    c.apply_setpoint(1, BAND.with_mode(setpoint_control::Mode::Off), 1)
        .expect("valid");
    assert_eq!(command(&mut c, 1, 1, 5.0), Some(Command::Off));
    for t in 2..50 {
        assert_eq!(command(&mut c, 1, t, -20.0 + f64::from(t as i32)), None);
    }
}

/// TPI: at a cycle's start the share k_int·(desired − T) of the cycle On, then Off; a new cycle after one
/// cycle length. The replay the what-if runs gives the same.
#[test]
fn tpi_is_on_for_its_share_of_each_cycle() {
    use setpoint_control::{Policy, Tpi};
    let tpi = BAND.with_policy(Policy::Tpi(Tpi::new(10, 0.25)));
    let mut c = Controller::new(Config::default());
    c.apply_setpoint(1, tpi, 1).expect("valid");
    // 2 °C below: 50 % of 10 s.
    let readings: Vec<Reading> = (0..25).map(|i| r(i * 1_000, 18.0)).collect();
    let got: Vec<(i64, Command)> = readings
        .iter()
        .filter_map(|&reading| c.on_reading(1, reading).expect("finite"))
        .map(|d| (d.t_ms, d.command))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Command::On),
            (5_000, Command::Off),
            (10_000, Command::On),
            (15_000, Command::Off),
            (20_000, Command::On)
        ]
    );
    let replayed = replay(
        &Config::default(),
        1,
        &SensorState::default(),
        VersionedSetpoint {
            setpoint: tpi,
            version: 1,
        },
        &readings,
        &[],
    )
    .expect("valid");
    assert_eq!(
        replayed.iter().map(|d| (d.t_ms, d.command)).collect::<Vec<_>>(),
        got
    );
}
