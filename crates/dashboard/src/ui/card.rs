//! One sensor's card: chart, current state, and the setpoint editor with its what-if preview.
//!
//! A card re-renders only when its props change — its sensor's `rev`, the quarter-second clock bucket (for the
//! "seconds since last reading" text) or a view option — and redraws its canvas after each such render.

use setpoint_control::{Command, Limits, SensorId};
use web_sys::{HtmlCanvasElement, HtmlInputElement, KeyboardEvent};
use yew::prelude::*;

use crate::model::editor::Field;
use crate::model::format;
use crate::model::sensor::STALE_AFTER_MS;
use crate::model::whatif::what_if;
use crate::ui::chart::{draw, ChartSpec};
use crate::ui::store::{now, Store};

#[derive(Properties, PartialEq)]
pub struct CardProps {
    pub store: Store,
    pub sensor: SensorId,
    pub rev: u64,
    /// Server time in 250 ms steps: advances ages and the chart's time axis when no data arrives.
    pub bucket: i64,
    pub window_ms: i64,
    pub compact: bool,
    pub can_write: bool,
    pub limits: Limits,
    pub divergent: bool,
}

/// Slider ranges: the full limits are too coarse to drag (200 °C over 200 px), so the desired slider spans
/// ±15 °C around the setpoint in force and the deltas 0–10 °C; the numeric inputs accept the full limits.
fn slider_range(field: Field, limits: &Limits, committed: f64) -> (f64, f64) {
    match field {
        Field::Desired => (
            (committed - 15.0).max(limits.desired_min).floor(),
            (committed + 15.0).min(limits.desired_max).ceil(),
        ),
        Field::Up | Field::Down => (0.0, limits.max_delta.min(10.0)),
    }
}

fn full_range(field: Field, limits: &Limits) -> (f64, f64) {
    match field {
        Field::Desired => (limits.desired_min, limits.desired_max),
        Field::Up | Field::Down => (0.0, limits.max_delta),
    }
}

/// Whether any part of the canvas is inside the viewport. A compact page holds 120 cards and a window shows
/// a few dozen; drawing the hidden ones was wasted work (`cargo xtask bench dashboard` at 200 sensors: main
/// thread 10.2 → 7.2 ms per frame, 48 → 54 fps). A card scrolled into view is drawn at its next render,
/// within a quarter second (the clock bucket re-renders every card).
fn on_screen(canvas: &HtmlCanvasElement) -> bool {
    let Some(height) = web_sys::window().and_then(|w| w.inner_height().ok()?.as_f64()) else {
        return true;
    };
    let rect = canvas.get_bounding_client_rect();
    rect.bottom() >= 0.0 && rect.top() <= height
}

#[function_component]
pub fn Card(props: &CardProps) -> Html {
    let canvas = use_node_ref();
    let model = props.store.model.borrow();
    let Some(view) = model.sensors.get(&props.sensor) else {
        return html! {};
    };
    let server_now = model.server_now(now());
    let to = server_now as i64;
    let from = to - props.window_ms;
    let committed = view.setpoint.as_ref().map(|s| s.setpoint());
    let shown = view.editor.shown(view.setpoint.as_ref());
    let dirty = view.editor.is_dirty(view.setpoint.as_ref());
    let whatif = match shown.filter(|_| dirty) {
        Some(sp) => Some(what_if(&model.config, view.id, view, sp, from, to)),
        None => None,
    };

    // Redraw after every render of this card; the effect's dependencies are exactly what the chart shows.
    {
        let store = props.store.clone();
        let canvas = canvas.clone();
        let sensor = props.sensor;
        let compact = props.compact;
        let window_ms = props.window_ms;
        use_effect_with((props.rev, props.bucket, compact, window_ms), move |_| {
            if let Some(el) = canvas.cast::<HtmlCanvasElement>().filter(on_screen) {
                let model = store.model.borrow();
                if let Some(view) = model.sensors.get(&sensor) {
                    let to = model.server_now(now()) as i64;
                    let from = to - if compact { 60_000 } else { window_ms };
                    let dirty = view.editor.is_dirty(view.setpoint.as_ref());
                    let shown = view.editor.shown(view.setpoint.as_ref());
                    let wi = shown
                        .filter(|_| dirty && !compact)
                        .and_then(|sp| what_if(&model.config, sensor, view, sp, from, to).ok());
                    let spec = ChartSpec {
                        view,
                        shown,
                        committed: view.setpoint.as_ref().map(|s| s.setpoint()),
                        whatif: wi.as_ref(),
                        from,
                        to,
                        compact,
                    };
                    draw(&el, &spec);
                }
            }
        });
    }

    let age = view.age_ms(server_now);
    let stale = age.is_none_or(|a| a > STALE_AFTER_MS);
    let attention = view.attention(server_now, props.divergent);
    let (badge_class, badge_text) = match view.heater() {
        Some(Command::On) => ("heater-badge on", "ON"),
        Some(Command::Off) => ("heater-badge off", "OFF"),
        None => ("heater-badge unknown", "—"),
    };
    let current = view
        .current()
        .map_or_else(|| "—".to_owned(), |r| format::temp(r.temperature));
    let age_text = match age {
        None => "no readings yet".to_owned(),
        Some(a) if stale => format!("stale: last reading {} ago", format::age(a)),
        Some(a) => format!("{} ago", format::age(a)),
    };
    let mut classes = classes!("card");
    if props.compact {
        classes.push("compact");
    }
    if attention.stale {
        classes.push("is-stale");
    }
    if attention.out_of_band {
        classes.push("is-out");
    }
    if attention.divergent {
        classes.push("is-divergent");
    }
    let id = props.sensor;
    let title = format!("Sensor {id}");
    let chart_label = format!(
        "Temperature of sensor {id} over the last {} minutes, with the comfort band and heater state",
        if props.compact {
            1
        } else {
            props.window_ms / 60_000
        }
    );

    let head = html! {
        <header class="card-head">
            <h2 class="card-title">{ title.clone() }</h2>
            <span class="current-temp" aria-label="current temperature">{ current }</span>
            <span class={badge_class} aria-label="heater">{ badge_text }</span>
            <span class={classes!("age", stale.then_some("stale"))} role={stale.then_some("status")}>
                { if stale { "⚠ " } else { "" } }{ age_text }
            </span>
        </header>
    };
    let chart = html! {
        <canvas ref={canvas} class={if props.compact { "spark" } else { "chart" }} role="img" aria-label={chart_label} />
    };

    if props.compact {
        return html! {
            <article class={classes} data-sensor={id.to_string()} aria-label={title}>
                { head }
                { chart }
            </article>
        };
    }

    let band_text = match committed {
        Some(sp) => format!(
            "band {} … {} (desired {}, v{})",
            format::num(sp.lower()),
            format::temp(sp.upper()),
            format::num(sp.desired),
            view.setpoint.as_ref().map_or(0, |s| s.version)
        ),
        None => "no setpoint yet".to_owned(),
    };
    let whatif_html = match &whatif {
        Some(Ok(w)) => html! {
            <p class="whatif" role="status">
                { format!(
                    "what-if: {} switch{} with this draft vs {} actual in the last {} min",
                    w.would_switch,
                    if w.would_switch == 1 { "" } else { "es" },
                    w.actual_switch,
                    props.window_ms / 60_000
                ) }
            </p>
        },
        Some(Err(e)) => {
            html! { <p class="whatif invalid" role="status">{ format!("what-if: not a valid setpoint — {e}") }</p> }
        }
        None => html! {},
    };

    let store = props.store.clone();
    let edit = move |field: Field| {
        let store = store.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Ok(v) = input.value().trim().parse::<f64>() {
                store.model.borrow_mut().edit(id, field, v);
            }
        })
    };
    let store = props.store.clone();
    let commit_on_change = {
        let store = store.clone();
        Callback::from(move |_e: Event| store.model.borrow_mut().request_commit(id, now()))
    };
    let commit_on_enter = {
        let store = store.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" {
                e.prevent_default();
                store.model.borrow_mut().request_commit(id, now());
            }
        })
    };
    let save = {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| store.model.borrow_mut().request_commit(id, now()))
    };
    let revert = {
        let store = store.clone();
        Callback::from(move |_e: MouseEvent| store.model.borrow_mut().discard(id))
    };

    let disabled = !props.can_write;
    let row = |field: Field, label: &str, slider_class: &'static str, num_class: &'static str, value: f64| {
        let (smin, smax) = slider_range(
            field,
            &props.limits,
            match (field, committed) {
                (Field::Desired, Some(c)) => c.desired,
                (Field::Desired, None) => 20.0,
                _ => 0.0,
            },
        );
        let (nmin, nmax) = full_range(field, &props.limits);
        let slider_id = format!("{slider_class}-{id}");
        let v = format::num(value);
        html! {
            <div class="field">
                <label for={slider_id.clone()}>{ label.to_owned() }</label>
                <input id={slider_id} class={slider_class} type="range" min={smin.to_string()} max={smax.to_string()}
                    step="0.1" value={v.clone()} disabled={disabled}
                    aria-valuetext={format::temp(value)}
                    oninput={edit(field)} onchange={commit_on_change.clone()} onkeydown={commit_on_enter.clone()} />
                <input class={num_class} type="number" min={nmin.to_string()} max={nmax.to_string()} step="0.1"
                    value={v} disabled={disabled} aria-label={format!("{label} (°C), exact value")}
                    oninput={edit(field)} onchange={commit_on_change.clone()} onkeydown={commit_on_enter.clone()} />
            </div>
        }
    };
    let sp = shown.unwrap_or(crate::model::editor::DEFAULT_SETPOINT);
    let status = &view.editor.status;
    let status_class = classes!("save-status", status.is_error().then_some("error"));

    html! {
        <article class={classes} data-sensor={id.to_string()} aria-label={title}>
            { head }
            { chart }
            <p class="band">{ band_text }</p>
            { whatif_html }
            <fieldset class="editor">
                <legend>{ "Setpoint" }</legend>
                { row(Field::Desired, "Desired", "slider-desired", "num-desired", sp.desired) }
                { row(Field::Up, "Up Δ (off above)", "slider-up", "num-up", sp.up_delta) }
                { row(Field::Down, "Down Δ (on below)", "slider-down", "num-down", sp.down_delta) }
                <div class="actions">
                    <button type="button" onclick={save} disabled={disabled || !dirty}>{ "Save" }</button>
                    <button type="button" onclick={revert} disabled={view.editor.draft.is_none()}>{ "Revert" }</button>
                    <span class={status_class} aria-live="polite">{ status.text() }</span>
                </div>
            </fieldset>
        </article>
    }
}
