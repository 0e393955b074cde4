//! A card's setpoint history: a toggle, and while open the changes newest first — when, who, from → to
//! (desired, up Δ, down Δ) and the version.

use setpoint_control::SensorId;
use yew::prelude::*;

use crate::hooks::store::use_store;
use crate::model::format;
use crate::model::history::{ChangeList, ListStatus};
use crate::model::Action;

#[derive(Properties, PartialEq)]
pub struct SetpointHistoryProps {
    pub sensor: SensorId,
    /// `None` while closed.
    pub list: Option<ChangeList>,
}

#[function_component]
pub fn SetpointHistory(p: &SetpointHistoryProps) -> Html {
    let store = use_store();
    let sensor = p.sensor;
    let toggle = Callback::from(move |_e: MouseEvent| store.dispatch(Action::ToggleHistory { sensor }));
    let open = p.list.is_some();
    let list_id = format!("history-{sensor}");
    let body = p.list.as_ref().map(|list| {
        let utc_offset_min = -(js_sys::Date::new_0().get_timezone_offset() as i64);
        let note = match &list.status {
            ListStatus::Loading => Some("loading…".to_owned()),
            ListStatus::Failed(why) => Some(why.clone()),
            ListStatus::Loaded if list.changes.is_empty() => Some("no changes recorded".to_owned()),
            ListStatus::Loaded => None,
        };
        html! {
            <>
                if let Some(n) = note { <p class="band history-note" role="status">{ n }</p> }
                <ul id={list_id.clone()} class="band setpoint-history" aria-label={format!("Setpoint changes of sensor {sensor}, newest first")}>
                    { for list.changes.iter().rev().map(|c| {
                        let from = c.from.map_or_else(|| "(first)".to_owned(), |f| format::band(&f));
                        let author = if c.author.is_empty() { "unknown" } else { c.author.as_str() };
                        html! {
                            <li class="history-row" key={c.version} data-version={c.version.to_string()}>
                                <time>{ format::clock(c.t_ms, utc_offset_min) }</time>{ " · " }
                                <span class="history-author">{ author.to_owned() }</span>{ " · " }
                                <span>{ format!("{from} → {}", format::band(&c.to)) }</span>{ " · " }
                                <span class="muted">{ format!("v{}", c.version) }</span>
                            </li>
                        }
                    }) }
                </ul>
            </>
        }
    });
    html! {
        <div class="history">
            <div class="actions">
                <button type="button" class="history-toggle" onclick={toggle} aria-expanded={open.to_string()}
                    aria-controls={list_id}>
                    { if open { "Hide history" } else { "History" } }
                </button>
            </div>
            { for body }
        </div>
    }
}
