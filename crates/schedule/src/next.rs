//! Which step comes next for each scheduled sensor: shown on the dashboard's cards and in the API, and
//! the same choice the scheduler's rule makes when that instant comes.

use std::collections::BTreeMap;

use setpoint_control::SensorId;
use setpoint_wire::schedule::NextStep;

use crate::program::{Program, StepAt};

/// Per sensor, sorted by sensor: the earliest of the next steps of the schedules assigned to it; at equal
/// instants the schedule with the greater name (the one the rule applies). `programs` pairs each program
/// with its next step after the time of interest (`Program::next_after`, or a cached copy of it).
pub fn next_steps<'a>(programs: impl IntoIterator<Item = (&'a Program, Option<StepAt>)>) -> Vec<NextStep> {
    let mut best: BTreeMap<SensorId, (&'a str, StepAt)> = BTreeMap::new();
    for (program, next) in programs {
        let Some(next) = next else { continue };
        for &sensor in program.sensors() {
            let better = best.get(&sensor).is_none_or(|&(name, b)| {
                next.at_ms < b.at_ms || (next.at_ms == b.at_ms && program.name() > name)
            });
            if better {
                best.insert(sensor, (program.name(), next));
            }
        }
    }
    best.into_iter()
        .map(|(sensor, (name, n))| NextStep {
            sensor,
            schedule: name.to_owned(),
            at_ms: n.at_ms,
            desired: n.setpoint.desired,
            up_delta: n.setpoint.up_delta,
            down_delta: n.setpoint.down_delta,
            mode: n.mode,
        })
        .collect()
}
