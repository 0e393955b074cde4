//! Core throughput: `on_reading` at 1, 1k and 100k sensors with a realistic mix (most readings inside the
//! band), `apply_setpoint`, and `replay` of 10k readings. Run with `cargo bench -p setpoint-control`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use setpoint_control::{replay, Config, Controller, Reading, SensorState, Setpoint, VersionedSetpoint};
use std::hint::black_box;

/// Deterministic temperatures: 90 % inside the 19..21 band, 5 % above, 5 % below.
fn temperature(i: u64) -> f64 {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    match x % 20 {
        0 => 22.5,
        1 => 17.5,
        k => 19.0 + (k as f64) * 0.1,
    }
}

/// Sensor ids in the order readings arrive. `Periodic`: every sensor reports once per round, in the same
/// order each round (what periodic heaters produce). `Random`: each reading from a uniformly random sensor,
/// the worst case for memory locality.
#[derive(Clone, Copy)]
enum Arrival {
    Periodic,
    Random,
}

fn arrival_order(sensors: u32, n: usize, arrival: Arrival) -> Vec<i32> {
    match arrival {
        Arrival::Periodic => (0..n).map(|i| (i as u32 % sensors) as i32).collect(),
        Arrival::Random => (0..n as u64)
            .map(|i| {
                let x = (i ^ 0x5555).wrapping_mul(0x2545_f491_4f6c_dd1d).rotate_left(29);
                (x % u64::from(sensors)) as i32
            })
            .collect(),
    }
}

fn on_reading(c: &mut Criterion) {
    let mut group = c.benchmark_group("on_reading");
    let cases = [
        (1u32, Arrival::Periodic, "1_sensors"),
        (1_000, Arrival::Periodic, "1000_sensors"),
        (100_000, Arrival::Periodic, "100000_sensors"),
        (100_000, Arrival::Random, "100000_sensors_random_order"),
    ];
    for (sensors, arrival, name) in cases {
        let mut controller = Controller::new(Config::default());
        for s in 0..sensors {
            controller
                .apply_setpoint(s as i32, Setpoint::new(20.0, 1.0, 1.0), 1)
                .expect("valid");
        }
        const BATCH: usize = 100_000;
        let order = arrival_order(sensors, BATCH, arrival);
        group.throughput(Throughput::Elements(BATCH as u64));
        let mut t = 0i64;
        group.bench_function(name, |b| {
            b.iter(|| {
                for (i, &sensor) in order.iter().enumerate() {
                    t += 1;
                    black_box(
                        controller
                            .on_reading(
                                sensor,
                                Reading {
                                    t_ms: t,
                                    temperature: temperature(i as u64),
                                },
                            )
                            .ok(),
                    );
                }
            })
        });
    }
    group.finish();
}

fn apply_setpoint(c: &mut Criterion) {
    let mut controller = Controller::new(Config::default());
    for s in 0..1_000 {
        controller
            .apply_setpoint(s, Setpoint::new(20.0, 1.0, 1.0), 1)
            .expect("valid");
    }
    let mut v = 1u64;
    c.bench_function("apply_setpoint", |b| {
        b.iter(|| {
            v += 1;
            black_box(
                controller
                    .apply_setpoint((v % 1_000) as i32, Setpoint::new(21.0, 0.5, 0.5), v)
                    .ok(),
            )
        })
    });
}

fn replay_10k(c: &mut Criterion) {
    let readings: Vec<Reading> = (0..10_000u64)
        .map(|i| Reading {
            t_ms: i as i64 * 100,
            temperature: temperature(i),
        })
        .collect();
    let setpoint = VersionedSetpoint {
        setpoint: Setpoint::new(20.0, 1.0, 1.0),
        version: 1,
    };
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.bench_function("10k_readings", |b| {
        b.iter_batched(
            SensorState::default,
            |state| black_box(replay(&Config::default(), 1, &state, setpoint, &readings, &[])),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, on_reading, apply_setpoint, replay_10k);
criterion_main!(benches);
