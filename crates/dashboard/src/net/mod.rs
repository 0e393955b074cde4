//! Getting messages in and out: the reconnect schedule and the token are pure and tested; the WebSocket and
//! the HTTP API's `fetch` only exist in the browser.

#[cfg(target_arch = "wasm32")]
pub mod api;
pub mod backoff;
#[cfg(target_arch = "wasm32")]
pub mod socket;
pub mod token;
