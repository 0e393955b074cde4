//! Every message setpoint puts on a wire, defined once and compiled into both the server and the browser.
//!
//! [`proto`] holds the Kafka record values, byte-compatible with the reference thermostat's proto3 schema so
//! reference heaters and controllers interoperate with ours. [`ws`] holds the browser ↔ bridge WebSocket
//! protocol (JSON), [`api`] the shapes of the HTTP API's requests and answers, [`schedule`] the weekly programs. Decoders of outside input return typed errors and never panic; the numbers they carry are
//! validated by the control crate, which is the single source of truth for what a valid setpoint is.

pub mod api;
pub mod proto;
pub mod schedule;
pub mod ws;

/// Most characters of outside input an error message echoes.
pub const ECHOED_CHARS: usize = 64;

/// Most characters of any error message sent to a client: its echoed parts are clipped to [`ECHOED_CHARS`],
/// and the whole to this, whatever a library's error text repeats of the input.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `text` cut to at most `max_chars` characters: all that an error message or a log line repeats of a
/// string from outside, so nobody's megabyte ends up in an answer or a log.
pub fn clip(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}
