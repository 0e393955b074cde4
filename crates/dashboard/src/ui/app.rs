//! The page: header, view controls, the card grid (one page of it) and the decision log, driven by one
//! `requestAnimationFrame` loop.
//!
//! The loop drains the socket queue into the model and re-renders only when the model's version moved (or the
//! quarter-second clock bucket did, for ages). With many sensors the render rate is capped further, and only
//! one page of cards exists in the DOM at all, so a thousand sensors cost what a page of them costs.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use wasm_bindgen::prelude::*;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::model::{SortBy, ViewOpts};
use crate::ui::card::Card;
use crate::ui::header::{Header, HeaderProps};
use crate::ui::log::DecisionLog;
use crate::ui::store::{now, Store};

/// Cards per page in full mode and in compact mode.
const PAGE_FULL: usize = 24;
const PAGE_COMPACT: usize = 120;
/// Beyond this many sensors, compact mode is the default.
const AUTO_COMPACT_ABOVE: usize = 60;
/// Renders at most this often with many sensors (ms); with few, every frame that has news.
const MIN_RENDER_INTERVAL_MANY: f64 = 100.0;

/// Starts the animation-frame loop; it runs for the page's lifetime.
fn start_loop(store: Store, rerender: UseForceUpdateHandle) {
    type FrameFn = Closure<dyn FnMut(f64)>;
    let slot: Rc<RefCell<Option<FrameFn>>> = Rc::new(RefCell::new(None));
    let again = slot.clone();
    let mut last_version = u64::MAX;
    let mut last_bucket = 0i64;
    let mut last_render = 0.0;
    *slot.borrow_mut() = Some(Closure::new(move |_ts: f64| {
        let version = store.pump();
        let t = now();
        let bucket = (t / 250.0) as i64;
        let many = store.model.borrow().sensors.len() > AUTO_COMPACT_ABOVE;
        let due = !many || t - last_render >= MIN_RENDER_INTERVAL_MANY;
        if due && (version != last_version || bucket != last_bucket) {
            last_version = version;
            last_bucket = bucket;
            last_render = t;
            rerender.force_update();
        }
        if let (Some(w), Some(cb)) = (web_sys::window(), again.borrow().as_ref()) {
            let _ = w.request_animation_frame(cb.as_ref().unchecked_ref());
        }
    }));
    if let (Some(w), Some(cb)) = (web_sys::window(), slot.borrow().as_ref()) {
        let _ = w.request_animation_frame(cb.as_ref().unchecked_ref());
    }
    // The closure holds `again`, a clone of `slot`: the cycle keeps the loop alive for the page's lifetime.
    std::mem::forget(slot);
}

#[function_component]
pub fn App() -> Html {
    let store = use_memo((), |_| Store::start());
    let rerender = use_force_update();
    let filter = use_state(String::new);
    let sort = use_state(|| SortBy::Id);
    let page = use_state(|| 0usize);
    let window_min = use_state(|| 5i64);
    let compact_choice = use_state(|| None::<bool>);

    {
        let store = (*store).clone();
        let rerender = rerender.clone();
        use_effect_with((), move |_| {
            start_loop(store.clone(), rerender);
            // Background tabs get no animation frames; keep draining the socket so the queue stays small and
            // the cross-check keeps judging. Nothing is rendered from here.
            let keep = Interval::new(1_000, move || {
                store.pump();
            });
            move || drop(keep)
        });
    }

    let store = (*store).clone();
    let model = store.model.borrow();
    let compact = compact_choice.unwrap_or(model.sensors.len() > AUTO_COMPACT_ABOVE);
    let page_size = if compact { PAGE_COMPACT } else { PAGE_FULL };
    let t = now();
    let server_now = model.server_now(t);
    let opts = ViewOpts {
        filter: (*filter).clone(),
        sort: *sort,
        page: *page,
        page_size,
    };
    let (mut ids, total) = model.visible(&opts, server_now);
    let pages = total.div_ceil(page_size).max(1);
    if ids.is_empty() && total > 0 {
        // The filter shrank the list below the current page: show the last page instead.
        ids = model
            .visible(
                &ViewOpts {
                    page: pages - 1,
                    ..opts
                },
                server_now,
            )
            .0;
    }
    let bucket = (server_now / 250.0) as i64;
    let divergent = model.crosscheck.divergence().map(|d| d.sensor);
    let header = HeaderProps::from_model(&model);
    let log_rows: Vec<_> = model.log.iter().copied().collect();
    let utc_offset_min = -(js_sys::Date::new_0().get_timezone_offset() as i64);
    let can_write = model.can_write && model.conn == crate::model::ConnState::Live;
    let limits = model.config.limits;

    let cards: Vec<Html> = ids
        .iter()
        .filter_map(|id| model.sensors.get(id))
        .map(|v| {
            html! {
                <Card key={v.id} store={store.clone()} sensor={v.id} rev={v.rev} bucket={bucket}
                    window_ms={*window_min * 60_000} compact={compact} can_write={can_write} limits={limits}
                    divergent={divergent == Some(v.id)} />
            }
        })
        .collect();
    drop(model);

    let on_filter = {
        let filter = filter.clone();
        let page = page.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            filter.set(input.value());
            page.set(0);
        })
    };
    let on_sort = {
        let sort = sort.clone();
        Callback::from(move |e: Event| {
            let sel: HtmlSelectElement = e.target_unchecked_into();
            sort.set(if sel.value() == "attention" {
                SortBy::Attention
            } else {
                SortBy::Id
            });
        })
    };
    let on_window = {
        let window_min = window_min.clone();
        Callback::from(move |e: Event| {
            let sel: HtmlSelectElement = e.target_unchecked_into();
            window_min.set(sel.value().parse().unwrap_or(5));
        })
    };
    let on_compact = {
        let compact_choice = compact_choice.clone();
        let page = page.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            compact_choice.set(Some(input.checked()));
            page.set(0);
        })
    };
    let current_page = (*page).min(pages - 1);
    let go = |delta: isize| {
        let page = page.clone();
        Callback::from(move |_e: MouseEvent| {
            let next = (current_page as isize + delta).clamp(0, pages as isize - 1) as usize;
            page.set(next);
        })
    };
    let empty = if total == 0 {
        html! {
            <p class="empty">{ if filter.is_empty() { "No sensors yet — waiting for the server." } else { "No sensor id matches the filter." } }</p>
        }
    } else {
        html! {}
    };

    html! {
        <>
            <Header ..header />
            <main>
                <section class="toolbar" aria-label="View options">
                    <label class="tool">{ "Filter" }
                        <input type="search" placeholder="sensor id" value={(*filter).clone()} oninput={on_filter} />
                    </label>
                    <label class="tool">{ "Sort" }
                        <select onchange={on_sort}>
                            <option value="id" selected={*sort == SortBy::Id}>{ "by id" }</option>
                            <option value="attention" selected={*sort == SortBy::Attention}>{ "needs attention first" }</option>
                        </select>
                    </label>
                    <label class="tool">{ "Window" }
                        <select onchange={on_window}>
                            { for [1i64, 5, 15].into_iter().map(|m| html! {
                                <option value={m.to_string()} selected={*window_min == m}>{ format!("{m} min") }</option>
                            }) }
                        </select>
                    </label>
                    <label class="tool check">
                        <input type="checkbox" checked={compact} onchange={on_compact} />{ "Compact" }
                    </label>
                    if pages > 1 {
                        <nav class="pager" aria-label="Pages">
                            <button type="button" onclick={go(-1)} disabled={current_page == 0} aria-label="Previous page">{ "‹" }</button>
                            <span>{ format!("page {} / {} · {} sensors", current_page + 1, pages, total) }</span>
                            <button type="button" onclick={go(1)} disabled={current_page + 1 >= pages} aria-label="Next page">{ "›" }</button>
                        </nav>
                    }
                </section>
                { empty }
                <section class={classes!("grid", compact.then_some("compact"))} aria-label="Sensors">
                    { for cards }
                </section>
                <DecisionLog rows={log_rows} utc_offset_min={utc_offset_min} />
            </main>
        </>
    }
}
