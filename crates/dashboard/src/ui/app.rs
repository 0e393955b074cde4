//! The page: header, view options, the schedules panel (when open), the group setpoint panel (pages that
//! can write), the card grid (one page of it) and the decision log.
//!
//! Only one page of cards exists in the DOM at all, so a thousand sensors cost what a page of them costs. The
//! view options are this component's own state, not the model's: they are per tab, change nothing the server
//! sees, and a change re-renders the page at once without waiting for the frame loop.

use yew::prelude::*;

use crate::hooks::frame_loop::{use_frame_loop, CLOCK_BUCKET_MS, MANY_SENSORS};
use crate::hooks::store::{now, Store};
use crate::model::{SortBy, ViewOpts};
use crate::ui::card::Card;
use crate::ui::group_panel::GroupPanel;
use crate::ui::header::{Header, HeaderProps};
use crate::ui::log::DecisionLog;
use crate::ui::pager::Pager;
use crate::ui::schedules_panel::SchedulesPanel;
use crate::ui::toolbar::{Toolbar, DEFAULT_WINDOW_MIN};

/// Cards per page in full mode and in compact mode.
const PAGE_FULL: usize = 24;
const PAGE_COMPACT: usize = 120;

#[function_component]
pub fn App() -> Html {
    let store = use_memo((), |_| Store::start());
    use_frame_loop(&store);
    let filter = use_state(|| AttrValue::from(""));
    let sort = use_state(|| SortBy::Id);
    let page = use_state(|| 0usize);
    let window_min = use_state(|| DEFAULT_WINDOW_MIN);
    let compact_choice = use_state(|| None::<bool>);
    let schedules_open = use_state(|| false);

    let model = store.model();
    let compact = compact_choice.unwrap_or(model.sensors.len() > MANY_SENSORS);
    let page_size = if compact { PAGE_COMPACT } else { PAGE_FULL };
    let server_now = model.server_now(now());
    let opts = ViewOpts {
        filter: filter.to_string(),
        sort: *sort,
        page: *page,
        page_size,
    };
    // The filter may have shrunk the list below the current page: `shown` then shows the last page.
    let shown = model.shown(&opts, server_now);
    let (ids, total, pages) = (shown.ids, shown.total, shown.pages);
    let bucket = (server_now / CLOCK_BUCKET_MS) as i64;
    let divergent = model.crosscheck.divergence().map(|d| d.sensor);
    let header = HeaderProps::from_model(&model);
    let log_rows: Vec<_> = model.log.iter().copied().collect();
    let utc_offset_min = -(js_sys::Date::new_0().get_timezone_offset() as i64);
    let can_write = model.writable();
    let limits = model.config.limits;
    let group = &model.group;
    // Pages with a valid token; unlike `can_write` this holds through a reconnect, so the selection and the
    // panels do not blink away (an Apply meanwhile says it is not connected).
    let writer = model.can_write;
    // Read-only pages get neither the boxes nor the panel: they could not apply anything.
    let group_panel = writer.then(|| {
        html! {
            <GroupPanel selected={group.selected.len()} opts={opts.clone()} shown={ids.len()}
                draft={group.draft} status={group.status.text()} status_error={group.status.is_error()}
                outcomes={model.group_outcomes().text()} limits={limits} />
        }
    });
    let schedules_panel = schedules_open.then(|| {
        let s = &model.schedules;
        html! {
            <SchedulesPanel list={s.list.clone()} form={s.form.clone()} notice={s.notice.clone()}
                can_write={writer} limits={limits} selected={group.selected.len()} />
        }
    });
    let cards: Vec<Html> = ids
        .iter()
        .filter_map(|id| model.sensors.get(id))
        .map(|v| {
            html! {
                <Card key={v.id} sensor={v.id} rev={v.rev()} bucket={bucket}
                    window_ms={*window_min * 60_000} compact={compact} can_write={can_write} limits={limits}
                    divergent={divergent == Some(v.id)}
                    selected={writer.then(|| group.selected.contains(&v.id))} />
            }
        })
        .collect();
    drop(model);

    let on_filter = {
        let (filter, page) = (filter.clone(), page.clone());
        Callback::from(move |value: String| {
            filter.set(value.into());
            page.set(0);
        })
    };
    let on_sort = {
        let sort = sort.clone();
        Callback::from(move |value| sort.set(value))
    };
    let on_window = {
        let window_min = window_min.clone();
        Callback::from(move |value| window_min.set(value))
    };
    let on_compact = {
        let (compact_choice, page) = (compact_choice.clone(), page.clone());
        Callback::from(move |value| {
            compact_choice.set(Some(value));
            page.set(0);
        })
    };
    let on_page = {
        let page = page.clone();
        Callback::from(move |value| page.set(value))
    };
    let on_schedules = {
        let schedules_open = schedules_open.clone();
        Callback::from(move |value| schedules_open.set(value))
    };
    let empty = if total == 0 {
        html! {
            <p class="empty">{ if filter.is_empty() { "No sensors yet — waiting for the server." } else { "No sensor id matches the filter." } }</p>
        }
    } else {
        html! {}
    };

    html! {
        <ContextProvider<Store> context={(*store).clone()}>
            <Header ..header />
            <main>
                <Toolbar filter={(*filter).clone()} sort={*sort} window_min={*window_min} compact={compact}
                    on_filter={on_filter} on_sort={on_sort} on_window={on_window} on_compact={on_compact}
                    schedules_open={*schedules_open} on_schedules={on_schedules}>
                    <Pager page={(*page).min(pages - 1)} pages={pages} total={total} on_page={on_page} />
                </Toolbar>
                { for schedules_panel }
                { for group_panel }
                { empty }
                <section class={classes!("grid", compact.then_some("compact"))} aria-label="Sensors">
                    { for cards }
                </section>
                <DecisionLog rows={log_rows} utc_offset_min={utc_offset_min} />
            </main>
        </ContextProvider<Store>>
    }
}
