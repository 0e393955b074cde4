//! A card's next scheduled change: `next 17.0 °C · Mon 22:00 · office`, in the browser's time zone.

use setpoint_wire::schedule::NextStep;
use yew::prelude::*;

use crate::model::format;

#[derive(Properties, PartialEq)]
pub struct NextStepProps {
    /// `None` when no schedule will change this sensor.
    pub step: Option<NextStep>,
}

/// The browser's UTC offset (minutes east) at `t_ms` — at the step's own instant, not now, so a step on the
/// other side of a DST change shows the wall-clock time the room will see.
fn utc_offset_at(t_ms: i64) -> i64 {
    -(js_sys::Date::new(&(t_ms as f64).into()).get_timezone_offset() as i64)
}

#[function_component]
pub fn NextStepLine(p: &NextStepProps) -> Html {
    let Some(step) = &p.step else {
        return html! {};
    };
    let text = format::next_step(step, utc_offset_at(step.at_ms));
    let title = format!(
        "Schedule {} sets {} then",
        step.schedule,
        format::band(&setpoint_control::Setpoint::new(
            step.desired,
            step.up_delta,
            step.down_delta
        ))
    );
    html! {
        <p class="band next-step" data-next-step-ms={step.at_ms.to_string()}
            data-schedule={step.schedule.clone()} title={title}>{ text }</p>
    }
}
