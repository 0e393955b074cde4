//! Weekly setpoint schedules, sans-IO: compiling a [`Schedule`](setpoint_wire::schedule::Schedule) into a
//! [`Program`] and running programs against the setpoints stream with a [`Scheduler`].
//!
//! # Layout
//!
//! - [`program`]: [`Program::compile`] validates a schedule ([`ScheduleError`] names the step and field) and
//!   answers which step instance is in force at an instant and which comes next, in the schedule's zone.
//! - [`next`]: [`next_steps`], the next step of each scheduled sensor, for the dashboard and the API; the
//!   choice the rule makes when that instant comes.
//! - [`scheduler`]: [`Scheduler`], the state machine of the scheduler role: records of the schedules and
//!   setpoints streams and the time in, [`SetpointChange`] records out.
//!
//! # Why sans-IO
//!
//! No clock, task, socket or bus in here: time is an argument and outputs are values. The rule (below), DST
//! and the multi-instance race are therefore tested by walking a simulated clock minute by minute and by
//! interleaving two schedulers' records by hand, and the async shell in the server only reads streams,
//! sleeps until [`Scheduler::next_wake`] and publishes — as the controller's `Join` and the bridge's
//! `HubState` are split. The one thing read from outside is the IANA time-zone database, through jiff: the
//! system's copy, else the copy bundled into the binary (so it also works without `/usr/share/zoneinfo`).
//!
//! # The rule
//!
//! For each sensor assigned to at least one schedule, T is the latest step instant ≤ now over its schedules
//! (equal instants: the greater schedule name wins). If the value in force was set before T (`t_ms < T`) or
//! there is none, and no write of this scheduler for the sensor is in flight, the scheduler publishes T's
//! setpoint conditional on the version in force. The same rule fires live steps, catches up after downtime
//! (only the latest missed step: earlier ones would be overwritten at once anyway), and applies a newly
//! saved schedule's current step unless someone changed the setpoint after it. A manual change made after T
//! holds until the next step, as on any thermostat.
//!
//! # Time zones and DST
//!
//! A step is a local wall-clock time on listed weekdays in the schedule's zone, turned into an instant with
//! jiff's *compatible* disambiguation (also RFC 5545's and Temporal's default):
//! - **gap** (spring forward): a time that does not exist is moved forward by the length of the gap, i.e.
//!   read with the offset before the change — 02:30 on 2026-03-29 in Europe/Berlin fires at 03:30 CEST
//!   (01:30 UTC). It still fires that day, once.
//! - **fold** (fall back): a time that happens twice fires once, at its first occurrence — 02:30 on
//!   2026-10-25 in Europe/Berlin fires at 02:30 CEST (00:30 UTC) and not at 02:30 CET.
//!
//! Each (date, step) has exactly one instant, so every step fires exactly once per listed day. A side
//! effect of the gap rule: on the change day a gap time can fire after a later local time (02:30 → 03:30
//! CEST comes after a 03:15 step), and then it is the one in force; see [`Program`] for ties.
//!
//! # Exactly once, with any number of schedulers
//!
//! Several scheduler processes run the same rule on the same streams, so they publish the same step on the
//! same base. Every record of a sensor is in one partition and every reader judges it with
//! [`SetpointTable`](setpoint_control::SetpointTable): a conditional record takes effect only if its base
//! is in force at its position. The first of the duplicates takes effect; the rest are skipped by every
//! reader, controllers included. The step is then in force with `t_ms ≥ T`, so no scheduler fires it
//! again, and a write that got lost (never came back within [`IN_FLIGHT_MS`]) is retried on the base then
//! in force — harmless if it did land after all, since it would be skipped. Compaction keeps only a sensor's
//! newest record, which could be a skipped duplicate; so a scheduler that reads its own record back skipped
//! publishes a restatement of the value in force (`version = base_version =` in force), which a reader of
//! the whole log treats as a no-op and a reader of the compacted log takes as the value in force.

pub mod next;
pub mod program;
pub mod scheduler;

pub use next::next_steps;
pub use program::{Program, ScheduleError, StepAt};
pub use scheduler::{Scheduler, IN_FLIGHT_MS, REMEMBER_SENT_MS};
pub use setpoint_control::SetpointChange;
