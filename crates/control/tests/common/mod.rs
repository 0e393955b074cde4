//! Helpers shared by the control crate's tests, native and WASM.
#![allow(dead_code)]

use setpoint_control::{Command, Controller, Reading, SensorId, Setpoint, TimeMs};

/// One event of the reference trace, in processing order.
#[derive(Clone, Copy, Debug)]
pub enum TraceEvent {
    Setpoint {
        t_ms: TimeMs,
        sensor: SensorId,
        setpoint: Setpoint,
    },
    Reading {
        sensor: SensorId,
        reading: Reading,
    },
}

/// One row of the reference decisions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpectedDecision {
    pub sensor: SensorId,
    pub t_ms: TimeMs,
    pub temperature: f64,
    pub command: Command,
}

pub const TRACE: &str = include_str!("../traces/reference-trace.csv");
pub const DECISIONS: &str = include_str!("../traces/reference-decisions.csv");

fn num<T: std::str::FromStr>(field: &str, line: &str) -> T {
    field
        .parse()
        .unwrap_or_else(|_| panic!("bad number {field:?} in {line:?}"))
}

pub fn parse_trace() -> Vec<TraceEvent> {
    TRACE
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let (t_ms, kind, sensor) = (num(f[0], line), f[1], num(f[2], line));
            match kind {
                "setpoint" => TraceEvent::Setpoint {
                    t_ms,
                    sensor,
                    setpoint: Setpoint::new(num(f[4], line), num(f[5], line), num(f[6], line)),
                },
                "reading" => TraceEvent::Reading {
                    sensor,
                    reading: Reading {
                        t_ms,
                        temperature: num(f[3], line),
                    },
                },
                other => panic!("unknown kind {other}"),
            }
        })
        .collect()
}

pub fn parse_decisions() -> Vec<ExpectedDecision> {
    DECISIONS
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            ExpectedDecision {
                sensor: num(f[0], line),
                t_ms: num(f[1], line),
                temperature: num(f[2], line),
                command: match f[3] {
                    "on" => Command::On,
                    "off" => Command::Off,
                    other => panic!("bad command {other}"),
                },
            }
        })
        .collect()
}

/// Runs the trace through a controller with default (reference) configuration.
pub fn run_trace(controller: &mut Controller, events: &[TraceEvent]) -> Vec<ExpectedDecision> {
    let mut out = Vec::new();
    for (version, event) in events.iter().enumerate() {
        match *event {
            TraceEvent::Setpoint { sensor, setpoint, .. } => {
                controller
                    .apply_setpoint(sensor, setpoint, version as u64 + 1)
                    .expect("trace setpoints are valid");
            }
            TraceEvent::Reading { sensor, reading } => {
                if let Some(d) = controller
                    .on_reading(sensor, reading)
                    .expect("trace readings are finite")
                {
                    out.push(ExpectedDecision {
                        sensor: d.sensor,
                        t_ms: d.t_ms,
                        temperature: d.temperature,
                        command: d.command,
                    });
                }
            }
        }
    }
    out
}
