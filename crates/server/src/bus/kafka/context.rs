//! What librdkafka tells us through its callbacks: whether any broker is reachable, and which partitions a
//! group rebalance moved.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance as KafkaRebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use setpoint_wire::ws::BusStatus;

use crate::bus::Rebalance;

/// Status before the first statistics arrive (0) reads as connected: optimistic until proven down.
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Tracks whether any broker is reachable (from librdkafka's statistics and error callbacks) and which
/// partitions a rebalance took away from this consumer.
#[derive(Clone, Default)]
pub struct Context {
    status: Arc<AtomicU8>,
    pub(super) rebalance: Arc<Mutex<Rebalance>>,
}

impl Context {
    /// Whether any broker was reachable at the last statistics or error callback.
    pub(super) fn status(&self) -> BusStatus {
        match self.status.load(Relaxed) {
            DOWN => BusStatus::Unavailable,
            _ => BusStatus::Connected,
        }
    }

    /// A context for one more client of this bus: it reports to the same broker status, and has its own
    /// record of rebalances.
    pub(super) fn for_another_client(&self) -> Self {
        Self {
            status: Arc::clone(&self.status),
            rebalance: Arc::default(),
        }
    }
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let up = statistics.brokers.values().any(|b| b.state == "UP");
        self.status.store(if up { UP } else { DOWN }, Relaxed);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let all_down = matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::AllBrokersDown));
        // librdkafka repeats connection errors many times a second while a broker is away; log only the
        // transition to "down" (the bridge logs the recovery).
        if all_down && self.status.swap(DOWN, Relaxed) != DOWN {
            tracing::warn!("kafka: {error}: {reason}");
        } else {
            tracing::debug!("kafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &KafkaRebalance<'_>) {
        if let KafkaRebalance::Revoke(list) = rebalance {
            let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions revoked");
            let mut moved = self.rebalance.lock().unwrap_or_else(|e| e.into_inner());
            moved.assigned.retain(|p| !partitions.contains(p));
            moved.revoked.extend(partitions);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &KafkaRebalance<'_>) {
        if let KafkaRebalance::Assign(list) = rebalance {
            let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "partitions assigned");
            self.rebalance
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .assigned
                .extend(partitions);
        }
    }
}
