//! Previous/next through the pages of cards; absent when everything fits on one page.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct PagerProps {
    /// The page shown, from 0.
    pub page: usize,
    pub pages: usize,
    /// Sensors matching the filter, on all pages.
    pub total: usize,
    pub on_page: Callback<usize>,
}

#[function_component]
pub fn Pager(p: &PagerProps) -> Html {
    if p.pages <= 1 {
        return html! {};
    }
    let go = |delta: isize| {
        let next = (p.page as isize + delta).clamp(0, p.pages as isize - 1) as usize;
        p.on_page.reform(move |_e: MouseEvent| next)
    };
    html! {
        <nav class="pager" aria-label="Pages">
            <button type="button" onclick={go(-1)} disabled={p.page == 0} aria-label="Previous page">{ "‹" }</button>
            <span>{ format!("page {} / {} · {} sensors", p.page + 1, p.pages, p.total) }</span>
            <button type="button" onclick={go(1)} disabled={p.page + 1 >= p.pages} aria-label="Next page">{ "›" }</button>
        </nav>
    }
}
