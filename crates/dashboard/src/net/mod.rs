//! Getting messages in and out: the reconnect schedule and the token are pure and tested; the WebSocket itself
//! only exists in the browser.

pub mod backoff;
#[cfg(target_arch = "wasm32")]
pub mod socket;
pub mod token;
