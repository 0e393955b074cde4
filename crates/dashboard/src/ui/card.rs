//! One sensor's card: its head (with the group selection box on pages that can write), the chart, and (unless
//! compact) the band, the next scheduled change, the what-if preview, the editor and the history.
//!
//! A card re-renders only when its props change — its sensor's `rev`, the quarter-second clock bucket (for the
//! "seconds since last reading" text), a view option or write access — and redraws its canvas when one of
//! those the chart shows changed.

use setpoint_control::{Limits, SensorId};
use web_sys::HtmlCanvasElement;
use yew::prelude::*;

use crate::hooks::store::{now, use_store};
use crate::model::editor::DEFAULT_SETPOINT;
use crate::model::format;
use crate::model::whatif::preview;
use crate::ui::card_head::CardHead;
use crate::ui::chart::{draw, ChartSpec};
use crate::ui::next_step::NextStepLine;
use crate::ui::setpoint_editor::SetpointEditor;
use crate::ui::setpoint_history::SetpointHistory;

#[derive(Properties, PartialEq)]
pub struct CardProps {
    pub sensor: SensorId,
    /// The sensor's revision; a new one means new data to show.
    pub rev: u64,
    /// Server time in 250 ms steps: advances ages and the chart's time axis when no data arrives.
    pub bucket: i64,
    pub window_ms: i64,
    pub compact: bool,
    pub can_write: bool,
    pub limits: Limits,
    pub divergent: bool,
    /// In the group selection; `None` on a page that cannot write (no box shown).
    pub selected: Option<bool>,
}

/// A compact card's sparkline always shows the last minute.
const COMPACT_WINDOW_MS: i64 = 60_000;

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
    let store = use_store();
    let canvas = use_node_ref();

    // Redraw after every render of this card; the effect's dependencies are exactly what the chart shows.
    {
        let store = store.clone();
        let canvas = canvas.clone();
        let sensor = props.sensor;
        let compact = props.compact;
        let window_ms = props.window_ms;
        use_effect_with((props.rev, props.bucket, compact, window_ms), move |_| {
            let Some(el) = canvas.cast::<HtmlCanvasElement>().filter(on_screen) else {
                return;
            };
            let model = store.model();
            let Some(view) = model.sensors.get(&sensor) else {
                return;
            };
            let to = model.server_now(now()) as i64;
            let from = to - if compact { COMPACT_WINDOW_MS } else { window_ms };
            let dirty = view.editor.is_dirty(view.setpoint.as_ref());
            let shown = view.editor.shown(view.setpoint.as_ref());
            let wi = shown
                .filter(|_| dirty && !compact)
                .and_then(|sp| preview(&model, sensor, view, sp, from, to).ok());
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
        });
    }

    let model = store.model();
    let Some(view) = model.sensors.get(&props.sensor) else {
        return html! {};
    };
    let server_now = model.server_now(now());
    let attention = view.attention(server_now, props.divergent, &model.config);
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
    if props.selected == Some(true) {
        classes.push("is-selected");
    }
    let id = props.sensor;
    let title = format!("Sensor {id}");
    let chart_label = format!(
        "Temperature of sensor {id} over the last {} minutes, with the comfort band and heater state",
        if props.compact {
            COMPACT_WINDOW_MS / 60_000
        } else {
            props.window_ms / 60_000
        }
    );
    let head = html! {
        <CardHead sensor={id} temperature={view.current().map(|r| r.temperature)} heater={view.heater()}
            age_ms={view.age_ms(server_now)} stale={attention.stale} selected={props.selected} />
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

    let committed = view.setpoint.as_ref().map(|s| s.setpoint());
    let shown = view.editor.shown(view.setpoint.as_ref());
    let dirty = view.editor.is_dirty(view.setpoint.as_ref());
    let band_text = match committed {
        Some(sp) => format!(
            "band {} … {} (desired {}, v{}) · {}",
            format::num(sp.lower()),
            format::temp(sp.upper()),
            format::num(sp.desired),
            view.setpoint.as_ref().map_or(0, |s| s.version),
            format::regime(&sp)
        ),
        None => "no setpoint yet".to_owned(),
    };
    let source_html = match &view.source {
        Some(source) => html! {
            <p class="source" data-source={format::source_kind(source)}>{ format::source(source, view.age_ms(server_now)) }</p>
        },
        None => html! {},
    };
    let to = server_now as i64;
    let whatif = shown
        .filter(|_| dirty)
        .map(|sp| preview(&model, id, view, sp, to - props.window_ms, to));
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
                { w.outdoor_left_out.map(|o| format!(" (outdoor term left out: sensor {o} is not on this page)")) }
                { " — Save to apply" }
            </p>
        },
        Some(Err(e)) => {
            html! { <p class="whatif invalid" role="status">{ format!("what-if: not a valid setpoint — {e}") }</p> }
        }
        None => html! {},
    };

    html! {
        <article class={classes} data-sensor={id.to_string()} aria-label={title}>
            { head }
            { chart }
            <p class="band" data-desired={committed.map(|sp| sp.desired.to_string())}
                data-version={view.setpoint.as_ref().map(|s| s.version.to_string())}>{ band_text }</p>
            { source_html }
            <NextStepLine step={model.schedules.next.get(&id).cloned()} />
            { whatif_html }
            <SetpointEditor sensor={id} shown={shown.unwrap_or(DEFAULT_SETPOINT)} committed={committed}
                limits={props.limits} can_write={props.can_write} dirty={dirty}
                has_draft={view.editor.draft.is_some()} status={view.editor.status.clone()} />
            <SetpointHistory sensor={id} list={view.history.clone()} />
        </article>
    }
}
