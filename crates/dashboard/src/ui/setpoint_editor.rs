//! A card's setpoint editor: the three numbers, mode and policy, Save and Revert, and how the latest write went.

use setpoint_control::{Limits, SensorId, Setpoint, SetpointField};
use yew::prelude::*;

use crate::hooks::store::{now, use_store};
use crate::model::editor::{FieldExt, SaveStatus};
use crate::model::Action;
use crate::ui::field_row::FieldRow;
use crate::ui::policy_picker::PolicyPicker;

#[derive(Properties, PartialEq)]
pub struct SetpointEditorProps {
    pub sensor: SensorId,
    /// What the inputs show: the draft, else the setpoint in force, else the default.
    pub shown: Setpoint,
    /// The setpoint in force.
    pub committed: Option<Setpoint>,
    pub limits: Limits,
    pub can_write: bool,
    /// The draft differs from the setpoint in force, so there is something to save.
    pub dirty: bool,
    pub has_draft: bool,
    pub status: SaveStatus,
}

#[function_component]
pub fn SetpointEditor(p: &SetpointEditorProps) -> Html {
    let store = use_store();
    let sensor = p.sensor;
    let commit = {
        let store = store.clone();
        Callback::from(move |()| store.dispatch(Action::Commit { sensor, now: now() }))
    };
    let save = commit.reform(|_e: MouseEvent| ());
    let revert = {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| store.dispatch(Action::Revert { sensor }))
    };
    let disabled = !p.can_write;
    let scope = AttrValue::from(sensor.to_string());
    let rows = SetpointField::ALL.into_iter().map(|field| {
        let store = store.clone();
        let on_edit = Callback::from(move |value| store.dispatch(Action::Edit { sensor, field, value }));
        html! {
            <FieldRow key={field.as_str()} scope={scope.clone()} field={field} value={field.get(&p.shown)}
                committed={p.committed} limits={p.limits} disabled={disabled}
                on_edit={on_edit} on_commit={commit.clone()} />
        }
    });
    let status_class = classes!("save-status", p.status.is_error().then_some("error"));

    html! {
        <fieldset class="editor">
            <legend>{ "Setpoint" }</legend>
            { for rows }
            <PolicyPicker sensor={sensor} shown={p.shown} committed={p.committed} limits={p.limits}
                disabled={disabled} />
            <div class="actions">
                <button type="button" class="save" onclick={save} disabled={disabled || !p.dirty}>{ "Save" }</button>
                <button type="button" class="revert" onclick={revert} disabled={!p.has_draft}>{ "Revert" }</button>
                <span class={status_class} aria-live="polite">{ p.status.text() }</span>
            </div>
        </fieldset>
    }
}
