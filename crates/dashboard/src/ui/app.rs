//! The page: header, view options, the schedules panel (when open), the group setpoint panel (pages that
//! can write), the card grid (one page of it) and the decision log.
//!
//! Only one page of cards exists in the page at all, and the bridge chooses it out of every room (the model's
//! view), so a hundred thousand rooms cost what a page of them costs. The chart window and the schedules
//! panel are this component's own state: they change nothing the server sees.

use yew::prelude::*;

use crate::hooks::frame_loop::{use_frame_loop, CLOCK_BUCKET_MS};
use crate::hooks::store::{now, Store};
use crate::model::{Action, ViewChange};
use crate::ui::card::Card;
use crate::ui::group_panel::GroupPanel;
use crate::ui::header::{Header, HeaderProps};
use crate::ui::log::DecisionLog;
use crate::ui::pager::Pager;
use crate::ui::schedules_panel::SchedulesPanel;
use crate::ui::toolbar::{Toolbar, DEFAULT_WINDOW_MIN};

#[function_component]
pub fn App() -> Html {
    let store = use_memo((), |_| Store::start());
    use_frame_loop(&store);
    let window_min = use_state(|| DEFAULT_WINDOW_MIN);
    let schedules_open = use_state(|| false);

    let model = store.model();
    let compact = model.compact();
    let server_now = model.server_now(now());
    let opts = model.view_opts.clone();
    let shown = model.shown.clone();
    let (ids, total, pages) = (shown.ids, shown.total, shown.pages);
    let none_yet = model.sensor_count == 0;
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
            <GroupPanel selected={group.selected.len()} shown={ids.len()}
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

    // Every view change goes to the bridge, which answers with the page. A change, not the whole view:
    // the reducer applies it to the view in force, so two changes in one event loop turn both count.
    let on_filter = view_callback(&store, ViewChange::Filter);
    let on_only = view_callback(&store, ViewChange::Only);
    let on_sort = view_callback(&store, ViewChange::Sort);
    let on_compact = view_callback(&store, ViewChange::Compact);
    let on_page = view_callback(&store, ViewChange::Page);
    let on_window = {
        let window_min = window_min.clone();
        Callback::from(move |value| window_min.set(value))
    };
    let on_schedules = {
        let schedules_open = schedules_open.clone();
        Callback::from(move |value| schedules_open.set(value))
    };
    // No answer yet (pages 0) is not "nothing matches".
    let empty_text = if none_yet {
        "No sensors yet — waiting for the server."
    } else if pages == 0 {
        "Loading the rooms…"
    } else {
        "No room matches the view."
    };
    let empty = if total == 0 {
        html! {
            <p class="empty">{ empty_text }</p>
        }
    } else {
        html! {}
    };

    html! {
        <ContextProvider<Store> context={(*store).clone()}>
            <Header ..header />
            <main>
                <Toolbar filter={AttrValue::from(opts.filter.clone())} only={opts.only} sort={opts.sort}
                    window_min={*window_min} compact={compact}
                    on_filter={on_filter} on_only={on_only} on_sort={on_sort} on_window={on_window}
                    on_compact={on_compact} schedules_open={*schedules_open} on_schedules={on_schedules}>
                    <Pager page={shown.page.min(pages.max(1) - 1)} pages={pages.max(1)} total={total} on_page={on_page} />
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

/// A toolbar control's callback: its value, as a change of the view, to the reducer.
fn view_callback<T: 'static>(store: &Store, change: fn(T) -> ViewChange) -> Callback<T> {
    let store = store.clone();
    Callback::from(move |value| {
        store.dispatch(Action::View {
            change: change(value),
            now: now(),
        })
    })
}
