//! The hot path allocates nothing: once a sensor is known, `on_reading` and `apply_setpoint` make no heap
//! allocation, whatever they decide. A counting global allocator proves it.
#![cfg(not(target_arch = "wasm32"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use setpoint_control::{Config, Controller, Reading, Setpoint};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn readings_and_setpoints_for_known_sensors_allocate_nothing() {
    const SENSORS: i32 = 10_000;
    let mut c = Controller::new(Config {
        min_dwell_ms: 5,
        ..Config::default()
    });
    for s in 0..SENSORS {
        c.apply_setpoint(s, Setpoint::new(20.0, 1.0, 1.0), 1)
            .expect("valid");
    }
    let before = ALLOCATIONS.load(Relaxed);
    let mut decisions = 0u64;
    for t in 0..100i64 {
        for s in 0..SENSORS {
            // A mix: mostly inside the band, sometimes out of it on either side, sometimes invalid.
            let temperature = match (t + i64::from(s)) % 10 {
                0 => 25.0,
                1 => 15.0,
                2 => f64::NAN,
                k => 19.0 + k as f64 * 0.2,
            };
            if let Ok(Some(_)) = c.on_reading(
                s,
                Reading {
                    t_ms: t * 10,
                    temperature,
                },
            ) {
                decisions += 1;
            }
        }
        c.apply_setpoint((t as i32) % SENSORS, Setpoint::new(21.0, 1.0, 0.5), t as u64)
            .expect("valid");
    }
    let allocations = ALLOCATIONS.load(Relaxed) - before;
    assert!(decisions > 10_000, "the run made decisions: {decisions}");
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations for {} readings",
        100 * SENSORS
    );
}
