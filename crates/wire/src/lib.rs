//! Every message setpoint puts on a wire, defined once and compiled into both the server and the browser.
//!
//! [`proto`] holds the Kafka record values, byte-compatible with the reference thermostat's proto3 schema so
//! reference heaters and controllers interoperate with ours. [`ws`] holds the browser ↔ bridge WebSocket
//! protocol (JSON), [`api`] the shapes of the HTTP API's requests and answers, [`schedule`] the weekly programs, [`view`] what a browser watches, [`write`] the one shape of a setpoint write. Decoders of outside input return typed errors and never panic; the numbers they carry are
//! validated by the control crate, which is the single source of truth for what a valid setpoint is.

pub mod api;
pub mod proto;
pub mod schedule;
pub mod view;
pub mod write;
pub mod ws;

/// Most characters of outside input an error message echoes.
pub const ECHOED_CHARS: usize = 64;

/// Most characters of any error message sent to a client: its echoed parts are clipped to [`ECHOED_CHARS`],
/// and the whole to this, whatever a library's error text repeats of the input.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Longest name people give: a token's or a schedule's (both shown in every change history entry).
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` can name a token or a schedule: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `.`, `_` or
/// `-`. No `:` — authors with a colon (`schedule:NAME`) are the server's own, so no token can take them.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Lower-case hexadecimal of `bytes` (tokens, write ids, entity tags).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `text` cut to at most `max_chars` characters: all that an error message or a log line repeats of a
/// string from outside, so nobody's megabyte ends up in an answer or a log.
pub fn clip(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}
