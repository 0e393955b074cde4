//! The schedule editor: name, time zone, step rows, sensors; Save (`PUT /api/v1/schedules/{name}`), Delete,
//! Cancel, and the server's answer when it refuses.

use setpoint_control::Limits;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::hooks::store::use_store;
use crate::model::schedule_form::ScheduleForm;
use crate::model::schedules::ScheduleAction;
use crate::model::Action;
use crate::ui::step_row::StepRowEditor;

#[derive(Properties, PartialEq)]
pub struct ScheduleEditorProps {
    pub form: ScheduleForm,
    pub limits: Limits,
    /// Selected cards, for "use selected cards".
    pub selected: usize,
}

#[function_component]
pub fn ScheduleEditor(p: &ScheduleEditorProps) -> Html {
    let store = use_store();
    // Every control of the form dispatches one schedule action.
    let on = |make: fn() -> ScheduleAction| {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| store.dispatch(Action::Schedule(make())))
    };
    let text = |make: fn(String) -> ScheduleAction| {
        let store = store.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            store.dispatch(Action::Schedule(make(input.value())));
        })
    };
    let submit = {
        let store = store.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            store.dispatch(Action::Schedule(ScheduleAction::Save));
        })
    };
    let f = &p.form;
    let busy = f.status.busy();
    let title = match &f.existing {
        Some(name) => format!("Edit schedule {name}"),
        None => "New schedule".to_owned(),
    };
    let single = f.steps.len() == 1;
    let rows = f.steps.iter().enumerate().map(|(i, row)| {
        html! { <StepRowEditor key={i} index={i} row={row.clone()} limits={p.limits} removable={!single} /> }
    });
    html! {
        <form class="schedule-editor" onsubmit={submit} aria-label={title.clone()}>
            <h3>{ title }</h3>
            <div class="form-line">
                <label>{ "Name" }
                    <input type="text" class="schedule-name" value={f.name.clone()} required=true
                        readonly={f.existing.is_some()} placeholder="office" oninput={text(ScheduleAction::Name)} />
                </label>
                <label>{ "Time zone" }
                    <input type="text" class="schedule-zone" value={f.zone.clone()} placeholder="Europe/Berlin"
                        oninput={text(ScheduleAction::Zone)} />
                </label>
            </div>
            <div class="steps" role="group" aria-label="Steps">
                <div class="step-row step-head" aria-hidden="true">
                    <span>{ "Days" }</span><span>{ "Time" }</span><span>{ "Desired" }</span>
                    <span>{ "Up Δ" }</span><span>{ "Down Δ" }</span><span></span>
                </div>
                { for rows }
            </div>
            <div class="actions">
                <button type="button" class="add-step" onclick={on(|| ScheduleAction::AddStep)}>{ "Add step" }</button>
            </div>
            <div class="form-line">
                <label class="grow">{ "Sensors" }
                    <input type="text" class="schedule-sensors" value={f.sensors.clone()} placeholder="1, 2, 3"
                        oninput={text(ScheduleAction::Sensors)} />
                </label>
                <button type="button" class="use-selected" onclick={on(|| ScheduleAction::UseSelected)}
                    disabled={p.selected == 0}>{ format!("Use selected cards ({})", p.selected) }</button>
            </div>
            <div class="actions">
                <button type="submit" class="save-schedule" disabled={busy}>{ "Save" }</button>
                <button type="button" class="cancel-schedule" onclick={on(|| ScheduleAction::Close)}>{ "Cancel" }</button>
                if f.existing.is_some() {
                    <button type="button" class="delete-schedule" onclick={on(|| ScheduleAction::Delete)}
                        disabled={busy}>{ "Delete" }</button>
                }
                <span class={classes!("schedule-status", "save-status", f.status.is_error().then_some("error"))}
                    aria-live="polite">{ f.status.text() }</span>
            </div>
        </form>
    }
}
