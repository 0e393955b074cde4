//! The shell's delivery: the state's outputs into the clients' outboxes, under the hub's lock. Each message
//! is encoded once for all it goes to; live readings and a room's events are routed by the fan-out index.

use std::sync::atomic::Ordering::Relaxed;

use super::state::Output;
use super::Inner;
use crate::bridge::outbox::{Frame, SharedBatch};
use crate::metrics::Metrics;

impl Inner {
    /// Hands the state's outputs to the outboxes, encoding each message once, and mirrors its counters.
    pub(super) fn deliver(&mut self, metrics: &Metrics) {
        for output in self.state.take_outputs() {
            match output {
                Output::Publish(change) => self.to_publish.push(change),
                Output::Broadcast(msg) => {
                    let frame: Frame = msg.to_json().into();
                    for outbox in self.outboxes.values() {
                        outbox.push_control(frame.clone());
                    }
                }
                Output::About(sensor, msg) => {
                    // Encoded once, and only if somebody watches the room.
                    let mut frame: Option<Frame> = None;
                    for client in self.fanout.watching(sensor) {
                        if let Some(outbox) = self.outboxes.get(&client) {
                            let frame = frame.get_or_insert_with(|| msg.to_json().into());
                            outbox.push_control(frame.clone());
                        }
                    }
                }
                Output::Watch(client, watch) => {
                    if let Some(outbox) = self.outboxes.get(&client) {
                        // What is still queued of rooms it leaves goes too: "nothing of the others".
                        outbox.keep_only(|room| watch.covers(room));
                        self.fanout.set(client, watch);
                    }
                }
                Output::Readings(items) => {
                    let routed = self.fanout.route(&items);
                    let mut dropped = 0;
                    if !routed.whole.is_empty() {
                        // Encoded once for every client that watches every room.
                        let batch = SharedBatch::new(items);
                        for client in &routed.whole {
                            if let Some(outbox) = self.outboxes.get(client) {
                                dropped += outbox.push_readings(&batch);
                            }
                        }
                    }
                    for (client, part) in routed.parts {
                        if let Some(outbox) = self.outboxes.get(&client) {
                            dropped += outbox.push_readings(&SharedBatch::new(part));
                        }
                    }
                    metrics.dropped_readings.fetch_add(dropped, Relaxed);
                }
                Output::Send(client, msg) => {
                    if let Some(waiter) = self.waiters.get(&client) {
                        // The request may have given up meanwhile; its answer then goes nowhere.
                        let _ = waiter.send(msg);
                        continue;
                    }
                    if let Some(outbox) = self.outboxes.get(&client) {
                        outbox.push_message(msg, metrics);
                    }
                }
            }
        }
        metrics.record_bridge(&self.state.stats());
    }
}
