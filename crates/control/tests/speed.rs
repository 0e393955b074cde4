//! The reference trace decided many times over, timed — natively and in WASM, so the two figures come from
//! the same code on the same input. Run through `cargo xtask bench wasm` (release builds of both); in a
//! normal test run it only checks that the timing loop decides the expected number of commands.

mod common;

use common::{parse_decisions, parse_trace, TraceEvent};
use setpoint_control::{Config, Controller};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Decides the trace `rounds` times (each round a fresh controller) and returns (readings, decisions).
fn decide_rounds(events: &[TraceEvent], rounds: usize) -> (u64, u64) {
    let (mut readings, mut decisions) = (0u64, 0u64);
    for _ in 0..rounds {
        let mut c = Controller::new(Config::default());
        for (i, e) in events.iter().enumerate() {
            match *e {
                TraceEvent::Setpoint { sensor, setpoint, .. } => {
                    let _ = c.apply_setpoint(sensor, setpoint, i as u64);
                }
                TraceEvent::Reading { sensor, reading } => {
                    readings += 1;
                    if let Ok(Some(_)) = c.on_reading(sensor, reading) {
                        decisions += 1;
                    }
                }
            }
        }
    }
    (readings, decisions)
}

#[cfg(not(target_arch = "wasm32"))]
fn now_ms() -> f64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

#[cfg(target_arch = "wasm32")]
fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[cfg(not(target_arch = "wasm32"))]
fn report(line: &str) {
    println!("{line}");
}

#[cfg(target_arch = "wasm32")]
fn report(line: &str) {
    web_sys_console_log(line);
}

#[cfg(target_arch = "wasm32")]
fn web_sys_console_log(line: &str) {
    wasm_bindgen_test::console_log!("{}", line);
}

#[test]
fn trace_decisions_timed() {
    let events = parse_trace();
    let expected = parse_decisions().len() as u64;
    let rounds: usize = option_env!("SETPOINT_SPEED_ROUNDS")
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    // Warm-up: lets Node's optimizing compiler tier up the WASM (and warms caches natively), so the timed
    // part compares steady states.
    decide_rounds(&events, rounds.div_ceil(2));
    let start = now_ms();
    let (readings, decisions) = decide_rounds(&events, rounds);
    let elapsed_ms = now_ms() - start;
    assert_eq!(decisions, expected * rounds as u64);
    let target = if cfg!(target_arch = "wasm32") {
        "wasm"
    } else {
        "native"
    };
    report(&format!(
        "SPEED {target} {:.2} ns/reading ({readings} readings in {elapsed_ms:.0} ms)",
        elapsed_ms * 1e6 / readings as f64
    ));
}
