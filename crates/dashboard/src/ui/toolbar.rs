//! The view options above the grid: filter, condition, order, chart window and compact mode, the schedules
//! panel's toggle, with the pager as child. All but the chart window are answered by the bridge, over every
//! room.

use setpoint_wire::api::SensorFilter;
use setpoint_wire::view::{ViewSort, MAX_QUERY_LEN};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

/// Chart windows offered, in minutes.
const WINDOWS_MIN: [i64; 3] = [1, 5, 15];
/// The chart window a page opens with, in minutes.
pub const DEFAULT_WINDOW_MIN: i64 = 5;

#[derive(Properties, PartialEq)]
pub struct ToolbarProps {
    pub filter: AttrValue,
    /// Only rooms in this condition.
    pub only: Option<SensorFilter>,
    pub sort: ViewSort,
    /// Chart window in minutes.
    pub window_min: i64,
    pub compact: bool,
    pub on_filter: Callback<String>,
    pub on_only: Callback<Option<SensorFilter>>,
    pub on_sort: Callback<ViewSort>,
    pub on_window: Callback<i64>,
    pub on_compact: Callback<bool>,
    /// Whether the schedules panel is open; the button toggles it.
    pub schedules_open: bool,
    pub on_schedules: Callback<bool>,
    /// Rendered at the end of the bar (the pager).
    #[prop_or_default]
    pub children: Html,
}

#[function_component]
pub fn Toolbar(p: &ToolbarProps) -> Html {
    let on_filter = p.on_filter.reform(|e: InputEvent| {
        let input: HtmlInputElement = e.target_unchecked_into();
        input.value()
    });
    let on_sort = p.on_sort.reform(|e: Event| {
        let sel: HtmlSelectElement = e.target_unchecked_into();
        if sel.value() == "attention" {
            ViewSort::Attention
        } else {
            ViewSort::Id
        }
    });
    let on_only = p.on_only.reform(|e: Event| {
        let sel: HtmlSelectElement = e.target_unchecked_into();
        SensorFilter::parse_list(&sel.value())
            .ok()
            .and_then(|list| list.first().copied())
    });
    let on_window = p.on_window.reform(|e: Event| {
        let sel: HtmlSelectElement = e.target_unchecked_into();
        sel.value().parse().unwrap_or(DEFAULT_WINDOW_MIN)
    });
    let on_compact = p.on_compact.reform(|e: Event| {
        let input: HtmlInputElement = e.target_unchecked_into();
        input.checked()
    });
    let open = p.schedules_open;
    let on_schedules = p.on_schedules.reform(move |_e: MouseEvent| !open);
    html! {
        <section class="toolbar" aria-label="View options">
            <label class="tool">{ "Filter" }
                <input type="search" placeholder="sensor id" maxlength={MAX_QUERY_LEN.to_string()} value={p.filter.clone()} oninput={on_filter} />
            </label>
            <label class="tool">{ "Sort" }
                <select onchange={on_sort}>
                    <option value="id" selected={p.sort == ViewSort::Id}>{ "by id" }</option>
                    <option value="attention" selected={p.sort == ViewSort::Attention}>{ "needs attention first" }</option>
                </select>
            </label>
            <label class="tool">{ "Show" }
                <select id="only" onchange={on_only}>
                    <option value="" selected={p.only.is_none()}>{ "all rooms" }</option>
                    { for SensorFilter::ALL.into_iter().map(|f| html! {
                        <option value={f.as_str()} selected={p.only == Some(f)}>{ condition_label(f) }</option>
                    }) }
                </select>
            </label>
            <label class="tool">{ "Window" }
                <select onchange={on_window}>
                    { for WINDOWS_MIN.into_iter().map(|m| html! {
                        <option value={m.to_string()} selected={p.window_min == m}>{ format!("{m} min") }</option>
                    }) }
                </select>
            </label>
            <label class="tool check">
                <input type="checkbox" checked={p.compact} onchange={on_compact} />{ "Compact" }
            </label>
            <button type="button" class={classes!("schedules-toggle", open.then_some("active"))}
                onclick={on_schedules} aria-expanded={open.to_string()} aria-controls="schedules">{ "Schedules" }</button>
            { p.children.clone() }
        </section>
    }
}

/// What the condition select says of a filter.
fn condition_label(filter: SensorFilter) -> &'static str {
    match filter {
        SensorFilter::OutOfBand => "out of band",
        SensorFilter::HeaterOn => "heating",
        SensorFilter::Stale => "stale",
    }
}
