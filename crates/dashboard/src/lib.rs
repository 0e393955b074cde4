//! The browser dashboard of setpoint.
//!
//! It connects to the bridge's WebSocket (`/ws`, protocol `setpoint.v3`), shows one card per sensor — a live
//! temperature chart with the comfort band, the heater's On/Off history and the current state — and lets a user
//! with the write token change setpoints. Two things make it more than a viewer, and both exist because the
//! control core is a sans-IO crate that compiles to WASM: while a slider is dragged, the *what-if* preview
//! replays the visible history under the proposed setpoint with the server's own decision function; and a
//! *cross-check* re-decides every live reading in the browser and raises a visible warning if the server ever
//! decided differently.
//!
//! # Layout
//!
//! The major components are:
//!
//! * [`model`]: the state and the one reducer. Everything that can happen is an [`model::Action`];
//!   [`model::Model::dispatch`] applies it and bumps the revisions of what changed. Pure Rust, tested natively
//!   and under wasm-bindgen-test, like the editor, the cross-check and the what-if preview it holds.
//!
//! * [`net`]: getting messages in and out — the reconnect schedule and the token (pure, tested) and, in the
//!   browser, the WebSocket, which only queues what it receives, and `fetch` for the schedules API.
//!
//! * `hooks` (browser only): the store context every component reads and dispatches to, and the frame loop
//!   that feeds it.
//!
//! * [`ui`]: the Yew function components, one per file, and the hand-drawn canvas charts.
//!
//! # Data flow
//!
//! ```text
//! socket ──text──▶ queue ──(each animation frame)──▶ Action::Frame ─┐
//! components (input, click) ─────────────────────▶ Action::Edit … ─┼─▶ Model::dispatch ─▶ version / rev
//! frame loop ────────────────────────────────────▶ Action::Tick ───┤        │
//! fetch answers (schedules API) ─────────────────▶ Action::Schedule┘        │
//!                   writes to send, API calls to make ◀─────────────────────┘
//! version moved ─▶ App re-renders ─▶ cards whose rev moved re-render ─▶ their canvas redraws
//! ```
//!
//! The frame loop (`hooks::frame_loop`, browser only) drains the queue once per animation frame, so a
//! burst of messages costs one render; it re-renders the page only when the model's version or the
//! quarter-second clock moved. A card re-renders, and redraws its canvas, only when its sensor's revision
//! (or the clock, or a view option) did.

#[cfg(target_arch = "wasm32")]
pub mod hooks;
pub mod model;
pub mod net;
pub mod ui;

/// Mounts the dashboard on the page's `<body>`.
#[cfg(target_arch = "wasm32")]
pub fn run() {
    yew::Renderer::<ui::app::App>::new().render();
}
