//! The at-least-once protocol of one batch of readings, sans-IO: what the shell must do, in which order.
//!
//! For a batch: release the sensors of revoked partitions, catch the setpoint table (and, after an
//! assignment, the controller-state changelog) up to its end, decide the readings of partitions still
//! owned, then publish the commands, then the changelog records that explain them, then commit. That
//! order *is* the guarantee: a crash between any two steps repeats at most the commands of one batch and
//! never loses one (a changelog record saying "On was sent" before the On itself would make the next owner
//! suppress it). Here the order is data — [`Effect`]s the shell executes one by one — so it is unit-tested,
//! including a crash between any two effects, instead of only by `kill -9` over a broker.

use setpoint_control::{Arrival, Decision, ReadingError};

use super::join::Join;
use crate::bus::{HeaterMemoryRecord, SensorReading};

/// One step for the shell, executed in the order given; each must succeed before the next.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Read the setpoint table (and the changelog when `changelog`) up to its end offsets of this moment.
    CatchUp { changelog: bool },
    /// Publish these commands and wait until the bus has them.
    PublishCommands(Vec<Decision>),
    /// Then the changelog records that explain them.
    PublishMemories(Vec<HeaterMemoryRecord>),
    /// Then commit the batch's readings.
    Commit,
}

/// A batch arrived, after a rebalance that revoked `revoked` partitions and assigned some (`assigned`):
/// stops deciding the revoked sensors, and returns the catch-up to run before [`decide`].
pub fn begin(join: &mut Join, revoked: &[i32], assigned: bool) -> Effect {
    join.release(revoked);
    Effect::CatchUp { changelog: assigned }
}

/// The batch's readings (partition, reading, arrival), caught up: decides them and returns the remaining
/// effects in order. Refused readings are handed to `refused` (the shell counts and logs them).
pub fn decide<'a>(
    join: &mut Join,
    readings: impl IntoIterator<Item = (i32, &'a SensorReading, Arrival)>,
    mut refused: impl FnMut(&ReadingError),
) -> Vec<Effect> {
    let mut decisions = Vec::new();
    for (partition, reading, arrival) in readings {
        match join.decide(partition, reading, arrival) {
            Ok(Some(d)) => decisions.push(d),
            Ok(None) => {}
            Err(e) => refused(&e),
        }
    }
    let mut effects = publish(join, decisions);
    effects.push(Effect::Commit);
    effects
}

/// The failsafe check at `now_ms`: the commands for silent sensors and their changelog records (no
/// readings to commit).
pub fn tick(join: &mut Join, now_ms: i64) -> Vec<Effect> {
    let failsafes = join.tick(now_ms);
    publish(join, failsafes)
}

/// Commands, then the memories that explain them, and those of heaters whose TPI cycle started without
/// a command (the next owner must continue that cycle, not start its own); nothing when neither.
fn publish(join: &mut Join, decisions: Vec<Decision>) -> Vec<Effect> {
    let memories = join.memories_for(&decisions);
    let mut effects = Vec::with_capacity(2);
    if !decisions.is_empty() {
        effects.push(Effect::PublishCommands(decisions));
    }
    if !memories.is_empty() {
        effects.push(Effect::PublishMemories(memories));
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::SetpointChange;
    use setpoint_control::{Command, Config, Setpoint};

    fn at(now_ms: i64) -> Arrival {
        Arrival::at(now_ms)
    }

    fn setpoint() -> SetpointChange {
        SetpointChange::new(1, Setpoint::new(20.0, 0.5, 0.5), 1, "", 0)
    }

    fn reading(t_ms: i64, temperature: f64) -> SensorReading {
        SensorReading {
            sensor: 1,
            t_ms,
            temperature,
        }
    }

    /// What the bus holds: the commands log, the changelog, and the committed readings offset.
    #[derive(Default)]
    struct Log {
        commands: Vec<Decision>,
        changelog: Vec<HeaterMemoryRecord>,
        committed: usize,
    }

    /// A controller instance reading the log from `log.committed` on, in batches of `batch`, executing
    /// effects into the log; stops ("crashes") before effect number `crash_at` (counted over the run).
    fn run(log: &mut Log, readings: &[SensorReading], batch: usize, crash_at: usize) -> bool {
        let mut join = Join::new(Config::default());
        let setpoint = setpoint();
        join.apply_setpoint(&setpoint, at(0)).expect("valid setpoint");
        let mut executed = 0;
        let mut first = true;
        while log.committed < readings.len() {
            let end = (log.committed + batch).min(readings.len());
            let mut effects = vec![begin(&mut join, &[], first)];
            first = false;
            let chunk: Vec<(i32, &SensorReading, Arrival)> = readings[log.committed..end]
                .iter()
                .map(|r| (0, r, at(r.t_ms)))
                .collect();
            // The catch-up is executed first (it reads the changelog), then the batch is decided.
            for effect in effects.drain(..) {
                if executed == crash_at {
                    return false;
                }
                executed += 1;
                if let Effect::CatchUp { changelog: true } = effect {
                    for record in &log.changelog {
                        join.remember(*record);
                    }
                }
            }
            for effect in decide(&mut join, chunk, |e| panic!("refused {e}")) {
                if executed == crash_at {
                    return false;
                }
                executed += 1;
                match effect {
                    Effect::PublishCommands(ds) => log.commands.extend(ds),
                    Effect::PublishMemories(ms) => log.changelog.extend(ms),
                    Effect::Commit => log.committed = end,
                    Effect::CatchUp { .. } => unreachable!("only first"),
                }
            }
        }
        true
    }

    fn readings() -> Vec<SensorReading> {
        // Around the 20 ± 0.5 band: On, Off, On, Off… with readings between that change nothing.
        [
            19.0, 19.2, 21.0, 20.8, 19.1, 20.0, 21.5, 19.4, 19.0, 22.0, 21.0, 18.0,
        ]
        .iter()
        .enumerate()
        .map(|(i, t)| reading(1_000 * (i as i64 + 1), *t))
        .collect()
    }

    #[test]
    fn a_batch_is_published_commands_first_then_memories_then_committed() {
        let mut join = Join::new(Config::default());
        let setpoint = setpoint();
        join.apply_setpoint(&setpoint, at(0)).expect("valid");
        assert_eq!(begin(&mut join, &[], true), Effect::CatchUp { changelog: true });
        let r = reading(1_000, 18.0);
        let effects = decide(&mut join, [(0, &r, at(1_000))], |_| {});
        let kinds: Vec<&str> = effects
            .iter()
            .map(|e| match e {
                Effect::CatchUp { .. } => "catch up",
                Effect::PublishCommands(_) => "commands",
                Effect::PublishMemories(_) => "memories",
                Effect::Commit => "commit",
            })
            .collect();
        assert_eq!(kinds, ["commands", "memories", "commit"]);
        let Effect::PublishCommands(ds) = &effects[0] else {
            panic!("commands")
        };
        assert_eq!(ds[0].command, Command::On);
        // Nothing decided: only the commit.
        let quiet = reading(2_000, 18.1);
        assert_eq!(
            decide(&mut join, [(0, &quiet, at(2_000))], |_| {}),
            [Effect::Commit]
        );
    }

    #[test]
    fn a_crash_between_any_two_effects_loses_no_command() {
        let readings = readings();
        let mut reference = Log::default();
        assert!(run(&mut reference, &readings, 3, usize::MAX));
        let expected: Vec<(i64, Command)> = reference.commands.iter().map(|d| (d.t_ms, d.command)).collect();
        assert!(expected.len() >= 6, "{expected:?}");
        for batch in [1, 2, 3, 5] {
            for crash_at in 0..40 {
                let mut log = Log::default();
                let finished = run(&mut log, &readings, batch, crash_at);
                if !finished {
                    // The next owner takes over from what the log holds.
                    assert!(run(&mut log, &readings, batch, usize::MAX));
                }
                let published: Vec<(i64, Command)> =
                    log.commands.iter().map(|d| (d.t_ms, d.command)).collect();
                for command in &expected {
                    assert!(
                        published.contains(command),
                        "batch {batch}, crash before effect {crash_at}: {command:?} lost; published {published:?}"
                    );
                }
                // At-least-once, not more: only the crashed batch's commands may repeat.
                assert!(
                    published.len() <= expected.len() + batch,
                    "batch {batch}, crash {crash_at}: {published:?}"
                );
            }
        }
    }

    #[test]
    fn memories_published_before_their_commands_would_lose_one() {
        // The order is the guarantee: replay the protocol with the two publishes swapped and a crash
        // between them, and the next owner suppresses a command nobody sent.
        let mut join = Join::new(Config::default());
        let setpoint = setpoint();
        join.apply_setpoint(&setpoint, at(0)).expect("valid");
        let cold = reading(1_000, 18.0);
        let effects = decide(&mut join, [(0, &cold, at(1_000))], |_| {});
        let Effect::PublishMemories(memories) = effects[1].clone() else {
            panic!("memories")
        };
        // Swapped order, crash after the memories: the next owner restores "On sent" and stays silent.
        let mut next = Join::new(Config::default());
        next.apply_setpoint(&setpoint, at(0)).expect("valid");
        for m in memories {
            next.remember(m);
        }
        let replayed = decide(&mut next, [(0, &cold, at(1_000))], |_| {});
        assert_eq!(
            replayed,
            [Effect::Commit],
            "the On is suppressed: this is why commands go first"
        );
    }
}
