//! One step of the schedule editor: the days it applies to, the local time and the setpoint.

use setpoint_control::{Limits, SetpointField};
use setpoint_wire::schedule::Weekday;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::hooks::store::use_store;
use crate::model::editor::FieldExt;
use crate::model::format;
use crate::model::schedule_form::StepRow;
use crate::model::schedules::ScheduleAction;
use crate::model::Action;

#[derive(Properties, PartialEq)]
pub struct StepRowProps {
    pub index: usize,
    pub row: StepRow,
    pub limits: Limits,
    /// The last remaining row cannot be removed.
    pub removable: bool,
}

/// The input's class (what the end-to-end test finds it by) and the accessible name of a step's number.
fn names(field: SetpointField) -> (&'static str, &'static str) {
    match field {
        SetpointField::Desired => ("step-desired", "desired (°C)"),
        SetpointField::UpDelta => ("step-up", "up Δ (°C)"),
        SetpointField::DownDelta => ("step-down", "down Δ (°C)"),
        // A step row shows the band's numbers only (`SetpointField::ALL`); a step's policy is the API's.
        other => ("step-other", other.as_str()),
    }
}

#[function_component]
pub fn StepRowEditor(p: &StepRowProps) -> Html {
    let store = use_store();
    let step = p.index;
    let n = step + 1;
    let days = Weekday::ALL.into_iter().zip(p.row.days).map(|(day, on)| {
        let store = store.clone();
        let onchange = Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            store.dispatch(Action::Schedule(ScheduleAction::Day {
                step,
                day,
                on: input.checked(),
            }));
        });
        let name = format::weekday(day);
        html! {
            <label class="day" title={format!("step {n}: {name}")}>
                <input type="checkbox" data-day={format::weekday_id(day)} checked={on} onchange={onchange} />
                { &name[..2] }
            </label>
        }
    });
    let on_time = {
        let store = store.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            store.dispatch(Action::Schedule(ScheduleAction::Time {
                step,
                time: input.value(),
            }));
        })
    };
    let numbers = SetpointField::ALL.into_iter().map(|field| {
        let store = store.clone();
        let (class, label) = names(field);
        let (min, max) = crate::ui::field_row::full_range(field, &p.limits);
        let oninput = Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            // A half-typed number is not a value yet; the input keeps it until it is.
            if let Ok(value) = input.value().trim().parse::<f64>() {
                store.dispatch(Action::Schedule(ScheduleAction::Field { step, field, value }));
            }
        });
        // Shortest form (`21`, `21.5`): a re-render must not rewrite what is being typed ("2" → "2.0").
        html! {
            <input type="number" class={class} step="0.1" min={min.to_string()} max={max.to_string()}
                value={field.get(&p.row.setpoint).to_string()} aria-label={format!("step {n}: {label}")}
                oninput={oninput} />
        }
    });
    let remove = {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| {
            store.dispatch(Action::Schedule(ScheduleAction::RemoveStep(step)))
        })
    };
    html! {
        <div class="step-row" data-step={step.to_string()}>
            <span class="days">{ for days }</span>
            <input type="time" class="step-time" step="1" value={p.row.time.clone()} required=true
                aria-label={format!("step {n}: time")} oninput={on_time} />
            { for numbers }
            <button type="button" class="remove-step" onclick={remove} disabled={!p.removable}
                aria-label={format!("Remove step {n}")}>{ "✕" }</button>
        </div>
    }
}
