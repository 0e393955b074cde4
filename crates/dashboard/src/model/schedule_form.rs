//! The schedule editor's form: what the inputs hold, and turning it into the body of
//! `PUT /api/v1/schedules/{name}`.
//!
//! The browser checks only what it can check with the rules everyone shares — the name with
//! `wire::schedule::is_schedule_name`, each step's setpoint with the control crate's `Limits` (as a card's
//! editor does) — plus what only a form can get wrong (a step with no day ticked, a sensor list that is not
//! numbers). Times and zones are the server's to judge: its answer names the step and field, and the panel
//! shows it.

use setpoint_control::{Limits, Mode, Policy, SensorId, Setpoint, SetpointField};
use setpoint_wire::schedule::{is_schedule_name, Schedule, ScheduleBody, ScheduleStep, Weekday};

use crate::model::editor::{tidy, FieldExt, DEFAULT_SETPOINT};

/// One step row: which days, what local time, which setpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRow {
    /// Ticked days, Monday first (the order of [`Weekday::ALL`]).
    pub days: [bool; 7],
    /// `HH:MM` or `HH:MM:SS`, as the time input gives it.
    pub time: String,
    pub setpoint: Setpoint,
    /// The mode and policy the step sets, if any: kept as loaded (the form edits the numbers; the API sets
    /// these), so saving a schedule from the page does not drop them.
    pub mode: Option<Mode>,
    pub policy: Option<Policy>,
}

impl Default for StepRow {
    /// Weekdays at 07:00 at the default setpoint: a plausible first step to adjust.
    fn default() -> Self {
        Self {
            days: [true, true, true, true, true, false, false],
            time: "07:00".into(),
            setpoint: DEFAULT_SETPOINT,
            mode: None,
            policy: None,
        }
    }
}

impl StepRow {
    /// The ticked days, Monday first.
    pub fn day_list(&self) -> Vec<Weekday> {
        Weekday::ALL
            .into_iter()
            .zip(self.days)
            .filter_map(|(d, on)| on.then_some(d))
            .collect()
    }
}

/// Where a save or delete stands.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum FormStatus {
    #[default]
    Idle,
    /// Refused in the browser; nothing was sent.
    Invalid(String),
    /// Sent as API call `call`; waiting for the answer.
    Saving {
        call: u64,
    },
    Deleting {
        call: u64,
    },
    /// The server refused or could not be reached; the text says why (its `{code, message}`).
    Failed(String),
}

impl FormStatus {
    pub fn text(&self) -> String {
        match self {
            FormStatus::Idle => String::new(),
            FormStatus::Invalid(m) => format!("not sent: {m}"),
            FormStatus::Saving { .. } => "saving…".into(),
            FormStatus::Deleting { .. } => "deleting…".into(),
            FormStatus::Failed(m) => format!("error: {m}"),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, FormStatus::Invalid(_) | FormStatus::Failed(_))
    }

    /// Whether an answer is awaited (the buttons wait too).
    pub fn busy(&self) -> bool {
        matches!(self, FormStatus::Saving { .. } | FormStatus::Deleting { .. })
    }
}

/// The open editor.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleForm {
    /// Set when editing a schedule that exists: its name is then fixed (a rename would leave the old one
    /// running), and Delete is offered.
    pub existing: Option<String>,
    pub name: String,
    /// An IANA zone; a new schedule starts with the browser's.
    pub zone: String,
    pub steps: Vec<StepRow>,
    /// Sensor ids as typed: comma or space separated.
    pub sensors: String,
    pub status: FormStatus,
}

impl ScheduleForm {
    /// A new schedule in `zone` for `sensors` (the selected cards, if any), with one step to start from.
    pub fn new(zone: String, sensors: &[SensorId]) -> Self {
        Self {
            existing: None,
            name: String::new(),
            zone,
            steps: vec![StepRow::default()],
            sensors: sensor_list(sensors),
            status: FormStatus::Idle,
        }
    }

    /// An existing schedule, to edit.
    pub fn edit(s: &Schedule) -> Self {
        Self {
            existing: Some(s.name.clone()),
            name: s.name.clone(),
            zone: s.zone.clone(),
            steps: s
                .steps
                .iter()
                .map(|st| StepRow {
                    days: Weekday::ALL.map(|d| st.days.contains(&d)),
                    time: st.time.clone(),
                    setpoint: st.setpoint_over(None),
                    mode: st.mode,
                    policy: st.policy,
                })
                .collect(),
            sensors: sensor_list(&s.sensors),
            status: FormStatus::Idle,
        }
    }

    /// One number of a step; non-finite input (half typed) is ignored, as on a card.
    pub fn set_field(&mut self, step: usize, field: SetpointField, value: f64) {
        if let Some(row) = self.steps.get_mut(step).filter(|_| value.is_finite()) {
            field.set(&mut row.setpoint, tidy(value));
        }
    }

    /// The name and body to send, or why not.
    pub fn to_body(&self, limits: &Limits) -> Result<(String, ScheduleBody), String> {
        let name = self.name.trim();
        if !is_schedule_name(name) {
            return Err("name: 1 to 64 letters, digits, '.', '_' or '-'".into());
        }
        let zone = self.zone.trim();
        if zone.is_empty() {
            return Err("zone: a time zone such as Europe/Berlin or UTC".into());
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, row) in self.steps.iter().enumerate() {
            let n = i + 1;
            let days = row.day_list();
            if days.is_empty() {
                return Err(format!("step {n}: tick at least one day"));
            }
            limits
                .validate(&row.setpoint)
                .map_err(|e| format!("step {n}: {e}"))?;
            steps.push(ScheduleStep {
                days,
                time: row.time.trim().to_owned(),
                desired: row.setpoint.desired,
                up_delta: row.setpoint.up_delta,
                down_delta: row.setpoint.down_delta,
                mode: row.mode,
                policy: row.policy,
            });
        }
        let sensors = parse_sensors(&self.sensors)?;
        Ok((
            name.to_owned(),
            ScheduleBody {
                zone: zone.to_owned(),
                steps,
                sensors,
            },
        ))
    }
}

/// `1, 2, 3`.
pub fn sensor_list(ids: &[SensorId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Sensor ids separated by commas or spaces; duplicates dropped, order kept.
pub fn parse_sensors(text: &str) -> Result<Vec<SensorId>, String> {
    let mut out: Vec<SensorId> = Vec::new();
    for part in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let id = part
            .parse()
            .map_err(|_| format!("sensors: “{part}” is not a sensor id"))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn a_form_becomes_the_documented_body_and_back() {
        let mut f = ScheduleForm::new("Europe/Berlin".into(), &[3, 1]);
        f.name = " office ".into();
        f.set_field(0, SetpointField::Desired, 21.000_000_1);
        f.steps.push(StepRow {
            days: [false, false, false, false, false, true, true],
            time: "22:00:30".into(),
            setpoint: Setpoint::new(17.0, 0.5, 1.0),
            mode: None,
            policy: None,
        });
        let (name, body) = f.to_body(&Limits::default()).expect("valid");
        assert_eq!(name, "office");
        assert_eq!(body.sensors, vec![3, 1]);
        assert_eq!(body.steps[0].days.len(), 5);
        assert_eq!(
            (body.steps[0].time.as_str(), body.steps[0].desired),
            ("07:00", 21.0)
        );
        assert_eq!(body.steps[1].days, vec![Weekday::Sat, Weekday::Sun]);
        let json = serde_json::to_value(&body).expect("json");
        assert_eq!(json["steps"][1]["days"], serde_json::json!(["sat", "sun"]));
        // Editing what the server sends back gives the same form.
        let back = ScheduleForm::edit(&body.clone().named(&name));
        assert_eq!(back.existing.as_deref(), Some("office"));
        assert_eq!(back.to_body(&Limits::default()), Ok((name, body)));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn the_browser_refuses_what_the_shared_rules_refuse_and_names_the_step() {
        let limits = Limits::default();
        let mut f = ScheduleForm::new("UTC".into(), &[]);
        f.name = "night setback".into();
        assert!(f.to_body(&limits).unwrap_err().starts_with("name"));
        f.name = "night".into();
        f.steps.push(StepRow::default());
        f.set_field(1, SetpointField::UpDelta, 80.0);
        let e = f.to_body(&limits).unwrap_err();
        assert!(e.starts_with("step 2:") && e.contains("up_delta"), "{e}");
        f.set_field(1, SetpointField::UpDelta, f64::NAN);
        assert_eq!(f.steps[1].setpoint.up_delta, 80.0, "half-typed input is ignored");
        f.set_field(1, SetpointField::UpDelta, 1.0);
        f.steps[0].days = [false; 7];
        assert_eq!(f.to_body(&limits).unwrap_err(), "step 1: tick at least one day");
        f.steps[0].days[6] = true;
        f.sensors = "1, 2 x".into();
        assert!(f.to_body(&limits).unwrap_err().contains("“x”"));
        f.sensors = "1,2 2  7,".into();
        assert_eq!(f.to_body(&limits).map(|(_, b)| b.sensors), Ok(vec![1, 2, 7]));
        f.zone = " ".into();
        assert!(f.to_body(&limits).unwrap_err().starts_with("zone"));
    }
}
