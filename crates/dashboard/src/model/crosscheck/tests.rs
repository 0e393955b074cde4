//! The witness against sequences shaped like real traffic: decisions before and after their readings,
//! a real fault, a setpoint applied one reading apart, a reconnect, a slow client.

use super::*;
use setpoint_control::{replay, Command, Reading};

/// A connection's start as the model makes it: reset, then each room watched from its summary.
fn start(cc: &mut CrossCheck, config: Config, setpoints: &[SetpointMsg], commands: &[Decision]) {
    cc.reset(config);
    let mut rooms: Vec<SensorId> = setpoints
        .iter()
        .map(|s| s.sensor)
        .chain(commands.iter().map(|d| d.sensor))
        .collect();
    rooms.sort_unstable();
    rooms.dedup();
    for room in rooms {
        let sp = setpoints.iter().find(|s| s.sensor == room);
        let cmd = commands
            .iter()
            .filter(|d| d.sensor == room)
            .max_by_key(|d| d.t_ms);
        cc.watch(room, sp, cmd);
    }
}

impl CrossCheck {
    /// Judges every queued event now, as if all had settled.
    fn settle_all(&mut self) -> bool {
        self.settle(f64::INFINITY)
    }
}

fn sp(sensor: SensorId, desired: f64, version: u64) -> SetpointMsg {
    SetpointMsg::new(
        sensor,
        &setpoint_control::Setpoint::new(desired, 0.5, 0.5),
        version,
        None,
    )
}

fn item(sensor: SensorId, t_ms: TimeMs, temperature: f64) -> SensorReading {
    SensorReading {
        sensor,
        t_ms,
        temperature,
    }
}

/// Temperatures swinging through the band 20 ± 0.5 so the rule switches repeatedly.
fn wave(sensor: SensorId, n: i64) -> Vec<SensorReading> {
    (0..n)
        .map(|i| item(sensor, 1_000 + i * 100, 20.0 + 1.5 * ((i as f64) / 7.0).sin()))
        .collect()
}

/// What the server would send: the control core's own decisions for the same readings.
fn server_decisions(readings: &[SensorReading], setpoint: &SetpointMsg) -> Vec<Decision> {
    let rs: Vec<Reading> = readings.iter().map(SensorReading::reading).collect();
    let vs = VersionedSetpoint {
        setpoint: setpoint.setpoint(),
        version: setpoint.version,
    };
    replay(
        &Config::default(),
        setpoint.sensor,
        &SensorState::default(),
        vs,
        &rs,
        &[],
    )
    .unwrap_or_default()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn silent_when_server_agrees_even_if_decisions_arrive_early_or_late() {
    let setpoint = sp(1, 20.0, 1);
    let readings = wave(1, 200);
    let decisions = server_decisions(&readings, &setpoint);
    assert!(
        decisions.len() >= 4,
        "the fixture must actually switch ({})",
        decisions.len()
    );

    let mut cc = CrossCheck::default();
    start(&mut cc, Config::default(), &[setpoint], &[]);
    // Batches of 5 readings; decisions for a batch arrive alternately before and after it.
    let mut now = 0.0;
    for (i, batch) in readings.chunks(5).enumerate() {
        let ds: Vec<_> = decisions
            .iter()
            .filter(|d| batch.iter().any(|r| r.t_ms == d.t_ms))
            .copied()
            .collect();
        if i % 2 == 0 {
            ds.iter().for_each(|d| cc.on_server_decision(*d));
        }
        batch.iter().for_each(|r| cc.on_reading(*r, now));
        if i % 2 == 1 {
            ds.iter().for_each(|d| cc.on_server_decision(*d));
        }
        now += 50.0;
        assert!(!cc.settle(now));
    }
    cc.settle_all();
    assert_eq!(cc.divergence(), None);
    assert_eq!(cc.stats().agreed, decisions.len() as u64);
    assert_eq!(cc.stats().readings, 200);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn fires_on_a_real_divergence_and_names_the_first_one() {
    let setpoint = sp(7, 20.0, 1);
    let readings = wave(7, 120);
    let mut decisions = server_decisions(&readings, &setpoint);
    // The server "forgets" its second decision.
    let dropped = decisions.remove(1);

    let mut cc = CrossCheck::default();
    start(&mut cc, Config::default(), &[setpoint], &[]);
    for r in &readings {
        cc.on_reading(*r, 0.0);
    }
    decisions.iter().for_each(|d| cc.on_server_decision(*d));
    assert!(
        !cc.settle(SETTLE_MS - 1.0),
        "nothing is judged before it has settled"
    );
    assert!(cc.settle(SETTLE_MS));
    let div = cc.divergence().cloned().expect("divergence");
    assert_eq!((div.sensor, div.t_ms), (7, dropped.t_ms));
    assert_eq!(div.local, Some(dropped.command));
    assert_eq!(div.server, None);
    assert!(div.to_string().contains("sensor 7"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn fires_when_server_uses_a_wrong_command() {
    let setpoint = sp(2, 20.0, 1);
    let readings = wave(2, 60);
    let mut decisions = server_decisions(&readings, &setpoint);
    decisions[0].command = match decisions[0].command {
        Command::On => Command::Off,
        Command::Off => Command::On,
    };
    let mut cc = CrossCheck::default();
    start(&mut cc, Config::default(), &[setpoint], &[]);
    decisions.iter().for_each(|d| cc.on_server_decision(*d));
    readings.iter().for_each(|r| cc.on_reading(*r, 0.0));
    assert!(cc.settle_all());
    let div = cc.divergence().cloned().expect("divergence");
    assert_eq!(div.t_ms, decisions[0].t_ms);
    assert_eq!(div.server, Some(decisions[0].command));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn setpoint_change_applied_one_reading_apart_is_not_an_alarm() {
    // The room sits at 20.6 °C. Under 20 ± 0.5 that is above the band → Off; the user then moves the setpoint
    // to 22 ± 0.5 → On. The server applied it one reading *earlier* than its arrival order here suggests.
    let old = sp(3, 20.0, 1);
    let new = sp(3, 22.0, 2);
    let mut cc = CrossCheck::default();
    start(&mut cc, Config::default(), std::slice::from_ref(&old), &[]);
    let r = |i: i64| item(3, 1_000 + i * 100, 20.6);
    let off = Decision {
        sensor: 3,
        t_ms: 1_000,
        temperature: 20.6,
        command: Command::Off,
        setpoint_version: 1,
        cause: DecisionCause::Band,
    };
    cc.on_server_decision(off);
    cc.on_reading(r(0), 0.0);
    cc.on_reading(r(1), 0.0);
    // Server: applied v2 before reading 2 → On at reading 2. Locally the setpoint arrives after reading 2.
    cc.on_server_decision(Decision {
        t_ms: 1_200,
        command: Command::On,
        setpoint_version: 2,
        ..off
    });
    cc.on_reading(r(2), 0.0);
    cc.on_setpoint(new, 0.0);
    for i in 3..40 {
        cc.on_reading(r(i), 10.0);
    }
    cc.settle_all();
    assert_eq!(cc.divergence(), None, "{:?}", cc.divergence());
    assert_eq!(cc.stats().tolerated, 1);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn reset_from_hello_starts_from_the_servers_last_command() {
    // The server's last command was On; a reading below the band must therefore not produce a new On.
    let setpoint = sp(4, 20.0, 3);
    let last = Decision {
        sensor: 4,
        t_ms: 500,
        temperature: 19.0,
        command: Command::On,
        setpoint_version: 3,
        cause: DecisionCause::Band,
    };
    let mut cc = CrossCheck::default();
    start(&mut cc, Config::default(), &[setpoint], &[last]);
    cc.on_reading(item(4, 1_000, 19.0), 0.0);
    cc.settle_all();
    assert_eq!(cc.divergence(), None);
    // A stale alarm from before a reconnect is cleared by reset.
    cc.on_reading(item(4, 2_000, 25.0), 0.0); // local Off, server silent → divergence
    cc.settle_all();
    assert!(cc.divergence().is_some());
    start(&mut cc, Config::default(), &[], &[]);
    assert_eq!(cc.divergence(), None);
    assert_eq!(cc.queue.len(), 0);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn decisions_on_missed_readings_are_adopted_not_flagged() {
    let setpoint = sp(5, 20.0, 1);
    let readings = wave(5, 150);
    let decisions = server_decisions(&readings, &setpoint);
    let mut cc = CrossCheck::default();
    start(&mut cc, Config::default(), &[setpoint], &[]);
    decisions.iter().for_each(|d| cc.on_server_decision(*d));
    // This tab only received every third reading (slow client), and the server said so.
    let kept: Vec<_> = readings.iter().step_by(3).copied().collect();
    cc.on_missed(&kept);
    kept.iter().for_each(|r| cc.on_reading(*r, 0.0));
    cc.settle_all();
    assert_eq!(cc.divergence(), None, "{:?}", cc.divergence());
    assert!(
        cc.stats().adopted + cc.stats().tolerated > 0,
        "the gaps were noticed"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn backfilled_decisions_only_bring_the_state_forward() {
    let setpoint = sp(6, 20.0, 1);
    let d = |t_ms, command| Decision {
        sensor: 6,
        t_ms,
        temperature: 20.0,
        command,
        setpoint_version: 1,
        cause: DecisionCause::Band,
    };
    let mut cc = CrossCheck::default();
    // `hello` says On since 2_000. The backfill holds older decisions (history: ignored) and one newer than
    // the snapshot (adopted: the heater has been Off since 3_000).
    start(&mut cc, Config::default(), &[setpoint], &[d(2_000, Command::On)]);
    for b in [
        d(500, Command::Off),
        d(2_000, Command::On),
        d(3_000, Command::Off),
    ] {
        cc.on_backfill_decision(b, 0.0);
    }
    // Hot readings: with the heater Off already, nothing to decide — and the server decided nothing.
    cc.on_reading(item(6, 3_100, 25.0), 0.0);
    cc.on_reading(item(6, 3_200, 25.0), 0.0);
    cc.settle_all();
    assert_eq!(cc.divergence(), None, "{:?}", cc.divergence());
    assert_eq!(cc.stats().adopted, 1, "only the decision newer than hello");
    assert_eq!(
        (cc.stats().readings, cc.stats().agreed),
        (2, 0),
        "history is not compared"
    );
}

/// A TPI room watched mid-stream: the server's cycles started before the page saw the room, so its
/// decisions fall where the page's own cycles would not — followed, never an alarm; a hysteresis room
/// beside it is still judged.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_tpi_room_is_followed_not_judged() {
    use setpoint_control::{Policy, Setpoint, Tpi};
    let tpi = SetpointMsg::new(
        2,
        &Setpoint::new(21.0, 0.5, 0.5).with_policy(Policy::Tpi(Tpi::new(10, 0.5))),
        1,
        None,
    );
    let readings = wave(2, 600);
    // The server's cycles are offset by 3 readings from what the page would start.
    let mut server = server_decisions(&readings[3..], &tpi);
    assert!(server.len() >= 4, "the fixture switches");
    server.iter_mut().for_each(|d| d.sensor = 2);
    let mut cc = CrossCheck::default();
    start(&mut cc, Config::default(), &[tpi], &[]);
    server.iter().for_each(|d| cc.on_server_decision(*d));
    readings.iter().for_each(|r| cc.on_reading(*r, 0.0));
    cc.settle_all();
    assert_eq!(cc.divergence(), None);
    // A hysteresis room's wrong decision is still caught.
    let band = sp(1, 20.0, 1);
    start(&mut cc, Config::default(), &[band], &[]);
    let mut wrong = Decision {
        sensor: 1,
        command: Command::On,
        t_ms: 1_000,
        temperature: 25.0,
        setpoint_version: 1,
        cause: DecisionCause::Band,
    };
    cc.on_server_decision(wrong);
    cc.on_reading(item(1, 1_000, 25.0), 0.0);
    cc.settle_all();
    wrong.command = Command::Off;
    assert!(cc.divergence().is_some(), "{wrong:?}");
}
