//! Builders shared by the tests.

#![allow(dead_code)]

use setpoint_control::{SensorId, TimeMs};
use setpoint_wire::schedule::{Schedule, ScheduleRecord, ScheduleStep, Weekday};

pub const MINUTE: i64 = 60_000;

/// An RFC 3339 instant in ms since the epoch.
pub fn ms(s: &str) -> TimeMs {
    s.parse::<jiff::Timestamp>().expect(s).as_millisecond()
}

pub fn step(days: &[Weekday], time: &str, desired: f64) -> ScheduleStep {
    ScheduleStep {
        days: days.to_vec(),
        time: time.to_owned(),
        desired,
        up_delta: 0.5,
        down_delta: 0.5,
        mode: None,
        policy: None,
    }
}

pub fn daily(time: &str, desired: f64) -> ScheduleStep {
    step(&Weekday::ALL, time, desired)
}

pub fn schedule(name: &str, zone: &str, steps: Vec<ScheduleStep>, sensors: &[SensorId]) -> Schedule {
    Schedule {
        name: name.to_owned(),
        zone: zone.to_owned(),
        steps,
        sensors: sensors.to_vec(),
    }
}

pub fn saved(schedule: Schedule, t_ms: TimeMs) -> ScheduleRecord {
    ScheduleRecord {
        schedule,
        author: "alice".to_owned(),
        t_ms,
        deleted: false,
    }
}

pub fn deleted(name: &str, t_ms: TimeMs) -> ScheduleRecord {
    ScheduleRecord {
        schedule: schedule(name, "UTC", Vec::new(), &[]),
        author: "alice".to_owned(),
        t_ms,
        deleted: true,
    }
}
