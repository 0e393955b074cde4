//! Simulator + controller in a closed loop keep every room inside its band (± a small tolerance for noise
//! and the overshoot of one reading interval) after warm-up, across setpoint changes.

use setpoint_control::{Config, Controller, Setpoint};
use setpoint_sim::{SimConfig, Simulator};

const TOLERANCE: f64 = 0.5;

/// Runs the loop from `from_ms` to `to_ms`, checking bands after `check_after_ms`. Returns commands sent.
fn run_loop(
    sim: &mut Simulator,
    controller: &mut Controller,
    from_ms: i64,
    to_ms: i64,
    check_after_ms: i64,
) -> usize {
    let mut commands = 0;
    let mut t = from_ms;
    while t < to_ms {
        t += 100;
        for (sensor, reading) in sim.step(t) {
            if let Some(d) = controller
                .on_reading(sensor, reading)
                .expect("simulated readings are finite")
            {
                sim.apply_command(d.sensor, d.command);
                commands += 1;
            }
        }
        if t >= check_after_ms {
            for room in sim.rooms() {
                let sp = controller
                    .sensor(room.sensor)
                    .and_then(|s| s.setpoint())
                    .expect("has setpoint")
                    .setpoint;
                assert!(
                    room.temperature >= sp.lower() - TOLERANCE && room.temperature <= sp.upper() + TOLERANCE,
                    "t={t} room {} at {:.3} outside {:.2}..{:.2}",
                    room.sensor,
                    room.temperature,
                    sp.lower(),
                    sp.upper()
                );
            }
        }
    }
    commands
}

#[test]
fn rooms_stay_in_band_after_warm_up_and_across_setpoint_changes() {
    let mut sim = Simulator::new(
        SimConfig {
            rooms: 20,
            seed: 7,
            ..SimConfig::default()
        },
        0,
    );
    let mut controller = Controller::new(Config::default());
    for room in sim.rooms() {
        controller
            .apply_setpoint(room.sensor, room.suggested, 1)
            .expect("suggested setpoints are valid");
    }
    let warm_up = 180_000;
    let first = run_loop(&mut sim, &mut controller, 0, 600_000, warm_up);
    assert!(first > 40, "the heaters cycled: {first} commands");

    // Move every setpoint: half up by 3 °C, half down by 2 °C with a narrower band.
    let rooms: Vec<_> = sim.rooms().iter().map(|r| (r.sensor, r.suggested)).collect();
    for (i, (sensor, sp)) in rooms.into_iter().enumerate() {
        let new = if i % 2 == 0 {
            Setpoint::new(sp.desired + 3.0, sp.up_delta, sp.down_delta)
        } else {
            Setpoint::new(sp.desired - 2.0, 0.3, 0.3)
        };
        controller.apply_setpoint(sensor, new, 2).expect("valid");
    }
    let second = run_loop(&mut sim, &mut controller, 600_000, 1_200_000, 600_000 + warm_up);
    assert!(second > 40, "the heaters cycled: {second} commands");
}
