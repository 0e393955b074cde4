//! The top line of a card: the group selection box (pages that can write), which sensor, its temperature,
//! the heater and how fresh the data is.

use setpoint_control::{Command, SensorId};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::hooks::store::use_store;
use crate::model::format;
use crate::model::Action;

#[derive(Properties, PartialEq)]
pub struct CardHeadProps {
    pub sensor: SensorId,
    /// The newest temperature.
    pub temperature: Option<f64>,
    /// The heater command in force.
    pub heater: Option<Command>,
    /// Milliseconds since the newest reading (server clock).
    pub age_ms: Option<f64>,
    pub stale: bool,
    /// Whether the card is in the group selection; `None` hides the box (read-only pages cannot write).
    pub selected: Option<bool>,
}

#[function_component]
pub fn CardHead(p: &CardHeadProps) -> Html {
    let store = use_store();
    let (badge_class, badge_text) = match p.heater {
        Some(Command::On) => ("heater-badge on", "ON"),
        Some(Command::Off) => ("heater-badge off", "OFF"),
        None => ("heater-badge unknown", "—"),
    };
    let current = p.temperature.map_or_else(|| "—".to_owned(), format::temp);
    let select = p.selected.map(|checked| {
        let sensor = p.sensor;
        let onchange = Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            store.dispatch(Action::Select {
                sensor,
                on: input.checked(),
            });
        });
        html! {
            <input type="checkbox" class="select-card" checked={checked} onchange={onchange}
                aria-label={format!("Select sensor {sensor} for a group setpoint")} />
        }
    });
    let age_text = match p.age_ms {
        None => "no readings yet".to_owned(),
        Some(a) if p.stale => format!("stale: last reading {} ago", format::age(a)),
        Some(a) => format!("{} ago", format::age(a)),
    };
    html! {
        <header class="card-head">
            { for select }
            <h2 class="card-title">{ format!("Sensor {}", p.sensor) }</h2>
            <span class="current-temp" aria-label="current temperature">{ current }</span>
            <span class={badge_class} aria-label="heater">{ badge_text }</span>
            <span class={classes!("age", p.stale.then_some("stale"))} role={p.stale.then_some("status")}>
                { if p.stale { "⚠ " } else { "" } }{ age_text }
            </span>
        </header>
    }
}
