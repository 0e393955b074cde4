//! The group setpoint panel (pages that can write): how many cards are selected, "select all shown" and
//! "clear", and — once something is selected — one setpoint and "Apply to N sensors". Each card then shows
//! its own outcome; the panel sums them up.

use setpoint_control::{Limits, Setpoint, SetpointField};
use yew::prelude::*;

use crate::hooks::store::{now, use_store};
use crate::model::editor::FieldExt;
use crate::model::Action;
use crate::ui::field_row::FieldRow;

#[derive(Properties, PartialEq)]
pub struct GroupPanelProps {
    pub selected: usize,
    /// How many cards the grid shows now.
    pub shown: usize,
    pub draft: Setpoint,
    /// The latest Apply's status text, and whether it is a complaint.
    pub status: String,
    pub status_error: bool,
    /// The latest group write's outcomes as its cards show them (`2 saved · 1 conflict`).
    pub outcomes: String,
    pub limits: Limits,
}

#[function_component]
pub fn GroupPanel(p: &GroupPanelProps) -> Html {
    let store = use_store();
    let select_shown = {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| store.dispatch(Action::SelectShown))
    };
    let clear = {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| store.dispatch(Action::ClearSelection))
    };
    let apply = {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| store.dispatch(Action::ApplyGroup { now: now() }))
    };
    let n = p.selected;
    let fields = (n > 0).then(|| {
        let rows = SetpointField::ALL.into_iter().map(|field| {
            let store = store.clone();
            let on_edit = Callback::from(move |value| store.dispatch(Action::GroupEdit { field, value }));
            // Releasing a slider or pressing Enter does not apply: writing many rooms takes the button.
            html! {
                <FieldRow key={field.as_str()} scope="group" field={field} value={field.get(&p.draft)}
                    committed={None::<Setpoint>} limits={p.limits} disabled={false}
                    on_edit={on_edit} on_commit={Callback::noop()} />
            }
        });
        html! {
            <fieldset class="editor group-fields">
                <legend>{ "Setpoint for the selected sensors" }</legend>
                { for rows }
            </fieldset>
        }
    });
    let status = [p.status.as_str(), p.outcomes.as_str()]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" — ");
    html! {
        <section class="group" aria-label="Group setpoint">
            <div class="group-bar">
                <strong class="group-count">{ format!("{n} selected") }</strong>
                <button type="button" class="select-shown" onclick={select_shown} disabled={p.shown == 0}>
                    { format!("Select all shown ({})", p.shown) }
                </button>
                <button type="button" class="clear-selection" onclick={clear} disabled={n == 0}>{ "Clear" }</button>
                if n == 0 {
                    <span class="muted">{ "Tick cards to set one setpoint for many rooms." }</span>
                }
            </div>
            { for fields }
            if n > 0 {
                <div class="actions">
                    <button type="button" class="apply-group" onclick={apply}>
                        { format!("Apply to {n} sensor{}", if n == 1 { "" } else { "s" }) }
                    </button>
                    <span class={classes!("group-status", "save-status", p.status_error.then_some("error"))}
                        aria-live="polite">{ status }</span>
                </div>
            }
        </section>
    }
}
