//! The schedules panel (the toolbar's "Schedules" button): every weekly schedule the server has, its steps
//! and sensors, and — for pages that can write — "New schedule", "Edit" and the editor.

use std::rc::Rc;

use setpoint_control::Limits;
use setpoint_wire::schedule::Schedule;
use wasm_bindgen::JsValue;
use yew::prelude::*;

use crate::hooks::store::use_store;
use crate::model::format;
use crate::model::schedule_form::{sensor_list, ScheduleForm};
use crate::model::schedules::ScheduleAction;
use crate::model::Action;
use crate::ui::schedule_editor::ScheduleEditor;

#[derive(Properties, PartialEq)]
pub struct SchedulesPanelProps {
    pub list: Rc<Vec<Schedule>>,
    pub form: Option<ScheduleForm>,
    pub notice: Option<String>,
    pub can_write: bool,
    pub limits: Limits,
    /// Selected cards, for the editor's "use selected cards".
    pub selected: usize,
}

/// The browser's IANA time zone (`Intl.DateTimeFormat().resolvedOptions().timeZone`), which a new schedule
/// starts in; `UTC` if the browser does not say.
fn browser_zone() -> String {
    let options =
        js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new()).resolved_options();
    js_sys::Reflect::get(&options, &JsValue::from_str("timeZone"))
        .ok()
        .and_then(|z| z.as_string())
        .unwrap_or_else(|| "UTC".to_owned())
}

#[function_component]
pub fn SchedulesPanel(p: &SchedulesPanelProps) -> Html {
    let store = use_store();
    let new = {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| {
            store.dispatch(Action::Schedule(ScheduleAction::New { zone: browser_zone() }))
        })
    };
    let editing = p.form.as_ref().and_then(|f| f.existing.clone());
    let rows = p.list.iter().map(|s| {
        let edit = {
            let (store, name) = (store.clone(), s.name.clone());
            Callback::from(move |_e: MouseEvent| {
                store.dispatch(Action::Schedule(ScheduleAction::Edit { name: name.clone() }))
            })
        };
        let sensors = if s.sensors.is_empty() {
            "no sensors".to_owned()
        } else {
            format!("sensors {}", sensor_list(&s.sensors))
        };
        html! {
            <li class="schedule" key={s.name.clone()} data-schedule={s.name.clone()}>
                <div class="schedule-head">
                    <strong class="schedule-title">{ s.name.clone() }</strong>
                    <span class="muted">{ format!("{} · {sensors}", s.zone) }</span>
                    if p.can_write {
                        <button type="button" class="edit-schedule" onclick={edit}
                            disabled={editing.as_deref() == Some(s.name.as_str())}>{ "Edit" }</button>
                    }
                </div>
                <ul class="schedule-steps">
                    { for s.steps.iter().map(|st| html! { <li>{ format::step(st) }</li> }) }
                </ul>
            </li>
        }
    });
    html! {
        <section id="schedules" class="schedules" aria-labelledby="schedules-title">
            <div class="schedules-head">
                <h2 id="schedules-title">{ "Weekly schedules" }</h2>
                if p.can_write {
                    <button type="button" class="new-schedule" onclick={new}
                        disabled={p.form.as_ref().is_some_and(|f| f.existing.is_none())}>{ "New schedule" }</button>
                }
            </div>
            if let Some(n) = &p.notice {
                <p class="schedule-notice" role="status">{ n.clone() }</p>
            }
            if p.list.is_empty() {
                <p class="muted">{ "No schedules yet." }</p>
            }
            <ul class="schedule-list">{ for rows }</ul>
            if let Some(form) = &p.form {
                <ScheduleEditor form={form.clone()} limits={p.limits} selected={p.selected} />
            }
        </section>
    }
}
