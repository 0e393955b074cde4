//! One number of the setpoint editor: a slider to drag and a number input for the exact value.

use setpoint_control::{Limits, Setpoint, SetpointField};
use web_sys::{HtmlInputElement, KeyboardEvent};
use yew::prelude::*;

use crate::model::editor::DEFAULT_SETPOINT;
use crate::model::format;

#[derive(Properties, PartialEq)]
pub struct FieldRowProps {
    /// Makes the slider's id unique on the page: the sensor id on a card, `group` in the group panel.
    pub scope: AttrValue,
    pub field: SetpointField,
    pub value: f64,
    /// The setpoint in force: the desired slider is centred on it.
    pub committed: Option<Setpoint>,
    pub limits: Limits,
    pub disabled: bool,
    /// A new value was dragged or typed.
    pub on_edit: Callback<f64>,
    /// The value was committed: the slider released, the number input left, or Enter pressed.
    pub on_commit: Callback<()>,
}

/// The row's label, and the classes the end-to-end test finds the slider and the number input by.
fn names(field: SetpointField) -> (&'static str, &'static str, &'static str) {
    match field {
        SetpointField::Desired => ("Desired", "slider-desired", "num-desired"),
        SetpointField::UpDelta => ("Up Δ (off above)", "slider-up", "num-up"),
        SetpointField::DownDelta => ("Down Δ (on below)", "slider-down", "num-down"),
        SetpointField::CycleS => ("Cycle (s)", "slider-cycle", "num-cycle"),
        SetpointField::KInt => ("k_int (per °C)", "slider-kint", "num-kint"),
        SetpointField::KExt => ("k_ext (per °C)", "slider-kext", "num-kext"),
        SetpointField::MinOnS => ("Min on (s)", "slider-minon", "num-minon"),
        SetpointField::MinOffS => ("Min off (s)", "slider-minoff", "num-minoff"),
        SetpointField::OutdoorSensor => ("Outdoor sensor", "slider-outdoor", "num-outdoor"),
    }
}

/// The unit a field's value is shown in (the number input's label and the slider's spoken value).
fn unit(field: SetpointField) -> &'static str {
    match field {
        SetpointField::Desired | SetpointField::UpDelta | SetpointField::DownDelta => "°C",
        SetpointField::CycleS | SetpointField::MinOnS | SetpointField::MinOffS => "s",
        SetpointField::KInt | SetpointField::KExt => "per °C",
        SetpointField::OutdoorSensor => "id",
    }
}

/// Slider step: tenths of a degree and of a coefficient, whole seconds and ids.
fn step(field: SetpointField) -> &'static str {
    match field {
        SetpointField::CycleS
        | SetpointField::MinOnS
        | SetpointField::MinOffS
        | SetpointField::OutdoorSensor => "1",
        SetpointField::KInt | SetpointField::KExt => "0.05",
        SetpointField::Desired | SetpointField::UpDelta | SetpointField::DownDelta => "0.1",
    }
}

/// Slider ranges: the full limits are too coarse to drag (200 °C over 200 px), so the desired slider spans
/// ±15 °C around the setpoint in force and the deltas 0–10 °C; the numeric inputs accept the full limits.
fn slider_range(field: SetpointField, limits: &Limits, committed: Option<Setpoint>) -> (f64, f64) {
    match field {
        SetpointField::Desired => {
            let centre = committed.unwrap_or(DEFAULT_SETPOINT).desired;
            (
                (centre - 15.0).max(limits.desired_min).floor(),
                (centre + 15.0).min(limits.desired_max).ceil(),
            )
        }
        SetpointField::UpDelta | SetpointField::DownDelta => (0.0, limits.max_delta.min(10.0)),
        SetpointField::CycleS => (60.0, 3_600.0),
        SetpointField::KInt | SetpointField::KExt => (0.0, 2.0),
        SetpointField::MinOnS | SetpointField::MinOffS => (0.0, 300.0),
        SetpointField::OutdoorSensor => full_range(field, limits),
    }
}

/// The range a field's number input accepts: the installation's limits.
pub fn full_range(field: SetpointField, limits: &Limits) -> (f64, f64) {
    match field {
        SetpointField::Desired => (limits.desired_min, limits.desired_max),
        SetpointField::UpDelta | SetpointField::DownDelta => (0.0, limits.max_delta),
        SetpointField::CycleS => (
            f64::from(setpoint_control::TPI_CYCLE_S.0),
            f64::from(setpoint_control::TPI_CYCLE_S.1),
        ),
        SetpointField::KInt | SetpointField::KExt => (0.0, setpoint_control::TPI_MAX_COEFFICIENT),
        SetpointField::MinOnS | SetpointField::MinOffS => (0.0, f64::from(setpoint_control::TPI_CYCLE_S.1)),
        SetpointField::OutdoorSensor => (f64::from(i32::MIN), f64::from(i32::MAX)),
    }
}

#[function_component]
pub fn FieldRow(p: &FieldRowProps) -> Html {
    let (label, slider_class, num_class) = names(p.field);
    let (smin, smax) = slider_range(p.field, &p.limits, p.committed);
    let (nmin, nmax) = full_range(p.field, &p.limits);
    let slider_id = format!("{slider_class}-{}", p.scope);
    // Seconds and ids are whole numbers: `600`, not `600.0`.
    let v = match unit(p.field) {
        "s" | "id" if p.value.is_finite() => format!("{}", p.value.round()),
        "id" => String::new(),
        _ => format::num(p.value),
    };

    let on_input = {
        let on_edit = p.on_edit.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            // A half-typed number ("-", "2.") is not a value yet; the input keeps it until it is.
            if let Ok(v) = input.value().trim().parse::<f64>() {
                on_edit.emit(v);
            }
        })
    };
    let on_change = p.on_commit.reform(|_e: Event| ());
    let on_enter = {
        let on_commit = p.on_commit.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" {
                e.prevent_default();
                on_commit.emit(());
            }
        })
    };

    html! {
        <div class="field">
            <label for={slider_id.clone()}>{ label.to_owned() }</label>
            <input id={slider_id} class={slider_class} type="range" min={smin.to_string()} max={smax.to_string()}
                step={step(p.field)} value={v.clone()} disabled={p.disabled}
                aria-valuetext={match unit(p.field) { "°C" => format::temp(p.value), u => format!("{v} {u}") }}
                oninput={on_input.clone()} onchange={on_change.clone()} onkeydown={on_enter.clone()} />
            <input class={num_class} type="number" min={nmin.to_string()} max={nmax.to_string()}
                step={step(p.field)} value={v} disabled={p.disabled}
                aria-label={format!("{label} ({}), exact value", unit(p.field))}
                oninput={on_input} onchange={on_change} onkeydown={on_enter} />
        </div>
    }
}
