//! Weekly schedules: named programs of (days, local time, setpoint) steps in a named time zone, assigned to
//! sensors. The same types are the HTTP API's bodies, the records of the schedules stream (JSON, keyed by
//! name) and what the dashboard shows; `setpoint-schedule` compiles and runs them.

use serde::{Deserialize, Serialize};
use setpoint_control::{Mode, Policy, SensorId, Setpoint, TimeMs};

/// Longest schedule name: the one name rule ([`crate::is_name`]).
pub const MAX_SCHEDULE_NAME_LEN: usize = crate::MAX_NAME_LEN;

/// Most steps in one schedule (a step per quarter hour of a week would be 672; nobody needs more).
pub const MAX_SCHEDULE_STEPS: usize = 1_000;

/// Most sensors one schedule is assigned to.
pub const MAX_SCHEDULE_SENSORS: usize = 10_000;

/// Most schedules an installation keeps: every reader (bridge, scheduler) compiles each one and every
/// browser is sent the list, so the count is bounded like everything else that comes from outside. A new
/// schedule past it is refused by the API and skipped by readers of the stream.
pub const MAX_SCHEDULES: usize = 1_000;

/// Whether `name` can name a schedule: 1 to [`MAX_SCHEDULE_NAME_LEN`] ASCII letters, digits, `.`, `_` or
/// `-`. The scheduler's changes are recorded under the author `schedule:NAME`, which no token can take
/// (token names may not contain `:`).
pub fn is_schedule_name(name: &str) -> bool {
    crate::is_name(name)
}

/// The author recorded for a schedule's setpoint changes.
pub fn schedule_author(name: &str) -> String {
    format!("schedule:{name}")
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
}

/// One step of a weekly program: on each of `days`, at local `time` (`HH:MM` or `HH:MM:SS`, 24-hour), the
/// setpoint becomes this one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Unknown fields refused: a misspelt `"polcy"` in a step must be an error, not a step that silently keeps
// the room's policy (the rule of every write body).
#[serde(deny_unknown_fields)]
pub struct ScheduleStep {
    pub days: Vec<Weekday>,
    pub time: String,
    pub desired: f64,
    pub up_delta: f64,
    pub down_delta: f64,
    /// A step may switch the room's mode (`"off"` for the summer); absent keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// A step may switch the room's policy; absent keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

impl ScheduleStep {
    /// The step's setpoint over the one `in_force` (see [`Setpoint::requested`]).
    pub fn setpoint_over(&self, in_force: Option<&Setpoint>) -> Setpoint {
        Setpoint::requested(
            self.desired,
            self.up_delta,
            self.down_delta,
            self.mode,
            self.policy,
            in_force,
        )
    }
}

/// A named weekly program in an IANA time zone (`Europe/Berlin`, `UTC`…), assigned to sensors. A manual
/// change holds until the program's next step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub name: String,
    pub zone: String,
    pub steps: Vec<ScheduleStep>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<i32>))]
    pub sensors: Vec<SensorId>,
}

/// The body of `PUT /api/v1/schedules/{name}`: a schedule without its name (the path has it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    pub zone: String,
    pub steps: Vec<ScheduleStep>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<i32>))]
    pub sensors: Vec<SensorId>,
}

impl ScheduleBody {
    pub fn named(self, name: &str) -> Schedule {
        Schedule {
            name: name.to_owned(),
            zone: self.zone,
            steps: self.steps,
            sensors: self.sensors,
        }
    }
}

/// A record of the schedules stream (keyed by name, compacted): the schedule as of `t_ms`, or its
/// deletion (`deleted`, with the name only meaningful).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub schedule: Schedule,
    /// The token name that saved (or deleted) it.
    pub author: String,
    pub t_ms: TimeMs,
    #[serde(default)]
    pub deleted: bool,
}

/// The next change a schedule will make to one sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NextStep {
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    pub sensor: SensorId,
    pub schedule: String,
    /// When, in ms since the epoch.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub at_ms: TimeMs,
    pub desired: f64,
    pub up_delta: f64,
    pub down_delta: f64,
    /// The mode the step sets, if it sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// Most bytes of schedules in one `schedules` message: the list of 1,000 schedules of up to 10,000 rooms and
/// 1,000 steps each would be far over the frame limit, so it comes in parts. One schedule is at most about
/// 300 KB of JSON, so every part holds at least one.
pub const MAX_SCHEDULES_PART_BYTES: usize = 1 << 20;

/// What the `schedules` of a [`SchedulesMsg`] are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListPart {
    /// Every schedule.
    #[default]
    Whole,
    /// A part of the list, more to come (its `next` is empty).
    More,
    /// The last part: the list is the `more` parts before it and these.
    Last,
    /// No list: only the next steps changed (the client keeps its list).
    Unchanged,
}

/// The schedules, by name, and the next step of each room the client watches. The list is sent whole, or
/// in parts ([`ListPart`]) when it would not fit one frame ([`MAX_SCHEDULES_PART_BYTES`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulesMsg {
    pub schedules: Vec<Schedule>,
    pub next: Vec<NextStep>,
    #[serde(default)]
    pub list: ListPart,
}

impl SchedulesMsg {
    /// `schedules` cut into `more` parts of at most [`MAX_SCHEDULES_PART_BYTES`] of JSON each (a schedule
    /// is never split), to be followed by one `last` message.
    pub fn parts(schedules: &[Schedule]) -> Vec<SchedulesMsg> {
        let mut parts = Vec::new();
        let mut part: Vec<Schedule> = Vec::new();
        let mut bytes = 0;
        for schedule in schedules {
            let size = serde_json::to_vec(schedule).map_or(MAX_SCHEDULES_PART_BYTES, |v| v.len() + 1);
            if !part.is_empty() && bytes + size > MAX_SCHEDULES_PART_BYTES {
                parts.push(std::mem::take(&mut part));
                bytes = 0;
            }
            bytes += size;
            part.push(schedule.clone());
        }
        if !part.is_empty() {
            parts.push(part);
        }
        parts
            .into_iter()
            .map(|schedules| SchedulesMsg {
                schedules,
                next: Vec::new(),
                list: ListPart::More,
            })
            .collect()
    }

    /// The message that ends a list sent in parts (`list` is `Last`), or that carries only next steps
    /// (`Unchanged`).
    pub fn steps(next: Vec<NextStep>, list: ListPart) -> SchedulesMsg {
        SchedulesMsg {
            schedules: Vec::new(),
            next,
            list,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_reads_as_the_api_documents_it() {
        let json = r#"{"zone":"Europe/Berlin","sensors":[1,2],"steps":[
            {"days":["mon","tue","wed","thu","fri"],"time":"06:30","desired":21.0,"up_delta":0.5,"down_delta":0.5},
            {"days":["sat","sun"],"time":"22:00:30","desired":17.0,"up_delta":0.5,"down_delta":0.5}]}"#;
        let body: ScheduleBody = serde_json::from_str(json).expect("valid body");
        let schedule = body.named("office");
        assert_eq!(schedule.steps[0].days.len(), 5);
        assert_eq!(schedule.steps[1].days, vec![Weekday::Sat, Weekday::Sun]);
        assert_eq!(schedule.steps[1].setpoint_over(None).desired, 17.0);
        assert!(serde_json::from_str::<ScheduleBody>(r#"{"zone":"UTC","steps":[],"colour":1}"#).is_err());
        // A misspelt field in a step is refused too, rather than silently keeping the room's policy.
        let misspelt = r#"{"zone":"UTC","steps":[{"days":["mon"],"time":"07:00","desired":20.0,
            "up_delta":0.5,"down_delta":0.5,"polcy":{"kind":"tpi","cycle_s":600,"k_int":0.6}}]}"#;
        assert!(serde_json::from_str::<ScheduleBody>(misspelt).is_err());
    }

    #[test]
    fn schedule_names_are_plain() {
        assert!(is_schedule_name("office-2.north_wing"));
        for bad in ["", "a b", "x:y", "ü", &"n".repeat(65)] {
            assert!(!is_schedule_name(bad), "{bad:?}");
        }
        assert_eq!(schedule_author("office"), "schedule:office");
    }
}
