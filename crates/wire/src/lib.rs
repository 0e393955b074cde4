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
