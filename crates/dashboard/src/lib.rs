//! The browser dashboard of setpoint.
//!
//! It connects to the bridge's WebSocket (`/ws`, protocol `setpoint.v1`), shows one card per sensor — a live
//! temperature chart with the comfort band, the heater's On/Off history and the current state — and lets a user
//! with the write token change setpoints. Two things make it more than a viewer, and both exist because the
//! control core is a sans-IO crate that compiles to WASM: while a slider is dragged, the *what-if* preview
//! replays the visible history under the proposed setpoint with the server's own decision function; and a
//! *cross-check* re-decides every live reading in the browser and raises a visible warning if the server ever
//! decided differently.
//!
//! Layout: [`model`] is the state and its reducer (pure, tested natively and under wasm-bindgen-test),
//! [`net`] the reconnect schedule, the token handling and (in the browser) the socket, [`ui`] the Yew components
//! and the canvas drawing. Incoming frames are queued and applied once per animation frame, so a burst of
//! messages costs one render, and only cards whose data changed re-render and redraw.

pub mod model;
pub mod net;
pub mod ui;

/// Mounts the dashboard on the page's `<body>`.
#[cfg(target_arch = "wasm32")]
pub fn run() {
    yew::Renderer::<ui::app::App>::new().render();
}
