//! A card's mode and policy: heat or off, hysteresis or time-proportional control, and TPI's two main
//! numbers (cycle and k_int) when it is chosen. A choice changes the draft and is not sent: the card's
//! what-if shows what the room would have done under it over the chart window, and Save (or the next
//! released slider, which commits the whole draft) applies it. A number typed here commits like a slider.

use setpoint_control::{Limits, Mode, Policy, SensorId, Setpoint, SetpointField, DEFAULT_TPI};
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::hooks::store::{now, use_store};
use crate::model::editor::FieldExt;
use crate::model::Action;
use crate::ui::field_row::FieldRow;

#[derive(Properties, PartialEq)]
pub struct PolicyPickerProps {
    pub sensor: SensorId,
    pub shown: Setpoint,
    pub committed: Option<Setpoint>,
    pub limits: Limits,
    pub disabled: bool,
}

/// The TPI numbers a card offers (the minimum times through the API): k_ext with an outdoor sensor is what
/// holds a room at its target rather than below it.
const TPI_FIELDS: [SetpointField; 4] = [
    SetpointField::CycleS,
    SetpointField::KInt,
    SetpointField::KExt,
    SetpointField::OutdoorSensor,
];

#[function_component]
pub fn PolicyPicker(p: &PolicyPickerProps) -> Html {
    let store = use_store();
    let sensor = p.sensor;
    let commit = {
        let store = store.clone();
        Callback::from(move |()| store.dispatch(Action::Commit { sensor, now: now() }))
    };
    let on_mode = {
        let store = store.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            let mode = if select.value() == "off" {
                Mode::Off
            } else {
                Mode::Heat
            };
            store.dispatch(Action::SetMode { sensor, mode });
        })
    };
    let on_policy = {
        let store = store.clone();
        Callback::from(move |e: Event| {
            let select: HtmlSelectElement = e.target_unchecked_into();
            let policy = if select.value() == "tpi" {
                Policy::Tpi(DEFAULT_TPI)
            } else {
                Policy::Hysteresis
            };
            store.dispatch(Action::SetPolicy { sensor, policy });
        })
    };
    let mode = p.shown.mode;
    let tpi = matches!(p.shown.policy, Policy::Tpi(_));
    let scope = AttrValue::from(sensor.to_string());
    let tpi_rows = TPI_FIELDS.into_iter().filter(|_| tpi).map(|field| {
        let store = store.clone();
        let on_edit = Callback::from(move |value| store.dispatch(Action::Edit { sensor, field, value }));
        html! {
            <FieldRow key={field.as_str()} scope={scope.clone()} field={field} value={field.get(&p.shown)}
                committed={p.committed} limits={p.limits} disabled={p.disabled}
                on_edit={on_edit} on_commit={commit.clone()} />
        }
    });
    html! {
        <div class="policy">
            <label>{ "Mode " }
                <select class="mode" disabled={p.disabled} onchange={on_mode}>
                    <option value="heat" selected={mode == Mode::Heat}>{ "heat" }</option>
                    <option value="off" selected={mode == Mode::Off}>{ "off" }</option>
                </select>
            </label>
            <label>{ " Policy " }
                <select class="policy-kind" disabled={p.disabled || mode == Mode::Off} onchange={on_policy}>
                    <option value="hysteresis" selected={!tpi}>{ "hysteresis" }</option>
                    <option value="tpi" selected={tpi}>{ "TPI" }</option>
                </select>
            </label>
            { for tpi_rows }
        </div>
    }
}
