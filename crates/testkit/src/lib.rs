//! What tests and benchmarks share, so each exists once:
//!
//! - [`broker`]: a Kafka-protocol broker on a free loopback port (Tansu, or `KAFKA_BROKERS`), stopped on drop;
//! - [`proxy`]: a TCP proxy that takes that broker "down" and back with its log intact;
//! - [`reference`]: the offline reference of the controller's event-time join, written independently of
//!   `setpoint-control`'s implementation, that every stream test compares the real commands with.

pub mod broker;
pub mod logs;
pub mod proxy;
pub mod reference;

use std::path::PathBuf;

/// The workspace root (for tools installed under `.cache/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
