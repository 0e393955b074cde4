//! The page's heartbeat: one `requestAnimationFrame` loop that pumps the store and re-renders the page when
//! there is something new to show.
//!
//! Frames from the socket only queue up (see [`crate::net::socket`]); applying them here, once per frame,
//! turns a burst of a hundred messages into one render. The page re-renders only when the model's version
//! moved or the quarter-second clock bucket did (ages and chart time axes move without data); with many
//! sensors, renders are further capped to one per `MIN_RENDER_INTERVAL_MANY_MS`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_timers::callback::Interval;
use wasm_bindgen::prelude::*;
use yew::prelude::*;

use crate::hooks::store::{now, Store};

/// Beyond this many cards followed the page is large: a capped render rate.
const MANY_CARDS: usize = 60;
/// With many cards, renders at most this often (ms); with few, every frame that has news.
const MIN_RENDER_INTERVAL_MANY_MS: f64 = 100.0;
/// The clock bucket (ms) that re-renders ages and time axes when no data arrives.
pub const CLOCK_BUCKET_MS: f64 = 250.0;

type FrameFn = Closure<dyn FnMut(f64)>;

/// A running loop. Dropping it cancels the pending frame and frees the callback, which holds itself alive
/// through `callback` while it runs.
struct FrameLoop {
    callback: Rc<RefCell<Option<FrameFn>>>,
    pending: Rc<Cell<Option<i32>>>,
}

impl FrameLoop {
    fn start(mut on_frame: impl FnMut() + 'static) -> Self {
        let callback: Rc<RefCell<Option<FrameFn>>> = Rc::new(RefCell::new(None));
        let pending = Rc::new(Cell::new(None));
        let again = callback.clone();
        let next = pending.clone();
        *callback.borrow_mut() = Some(Closure::new(move |_ts: f64| {
            on_frame();
            next.set(request_frame(&again));
        }));
        pending.set(request_frame(&callback));
        FrameLoop { callback, pending }
    }
}

fn request_frame(callback: &RefCell<Option<FrameFn>>) -> Option<i32> {
    let window = web_sys::window()?;
    let callback = callback.borrow();
    window
        .request_animation_frame(callback.as_ref()?.as_ref().unchecked_ref())
        .ok()
}

impl Drop for FrameLoop {
    fn drop(&mut self) {
        if let (Some(window), Some(id)) = (web_sys::window(), self.pending.take()) {
            let _ = window.cancel_animation_frame(id);
        }
        self.callback.borrow_mut().take();
    }
}

/// Runs the frame loop for as long as the calling component is mounted, re-rendering it when there is news.
#[hook]
pub fn use_frame_loop(store: &Store) {
    let rerender = use_force_update();
    let store = store.clone();
    use_effect_with((), move |_| {
        let frames = {
            let store = store.clone();
            let mut last_version = u64::MAX;
            let mut last_bucket = 0i64;
            let mut last_render = 0.0;
            FrameLoop::start(move || {
                let version = store.pump();
                let t = now();
                let bucket = (t / CLOCK_BUCKET_MS) as i64;
                let many = store.model().sensors.len() > MANY_CARDS;
                let due = !many || t - last_render >= MIN_RENDER_INTERVAL_MANY_MS;
                if due && (version != last_version || bucket != last_bucket) {
                    last_version = version;
                    last_bucket = bucket;
                    last_render = t;
                    rerender.force_update();
                }
            })
        };
        // Background tabs get no animation frames; keep draining the socket so the queue stays small and the
        // cross-check keeps judging. Nothing is rendered from here.
        let background = Interval::new(1_000, move || {
            store.pump();
        });
        move || drop((frames, background))
    });
}
