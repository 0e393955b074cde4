//! The dead-letter topic: where undecodable records are copied for an operator to inspect and replay.

use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use setpoint_wire::proto::DecodeError;

use super::Inner;

/// Copies an undecodable record, byte for byte, to the dead-letter topic, with headers saying why and where
/// it came from. Returns the delivery to wait for, or `None` without a dead-letter topic (or if the copy
/// could not even be queued, which is logged: the record is still counted and skipped).
pub(super) fn dead_letter(
    bus: &Inner,
    topic: &str,
    m: &rdkafka::message::BorrowedMessage<'_>,
    error: &DecodeError,
) -> Option<DeliveryFuture> {
    let dead_letter = bus.options.dead_letter.as_deref()?;
    let source = format!("{topic}/{}/{}", m.partition(), m.offset());
    let kind = error.kind().to_string();
    let reason = error.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "setpoint.error",
            value: Some(kind.as_str()),
        })
        .insert(Header {
            key: "setpoint.reason",
            value: Some(reason.as_str()),
        })
        .insert(Header {
            key: "setpoint.source",
            value: Some(source.as_str()),
        });
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(dead_letter).headers(headers);
    if let Some(key) = m.key() {
        record = record.key(key);
    }
    if let Some(payload) = m.payload() {
        record = record.payload(payload);
    }
    match bus.producer.send_result(record) {
        Ok(delivery) => Some(delivery),
        Err((e, _)) => {
            tracing::warn!(source, "cannot copy the record to {dead_letter}: {e}");
            None
        }
    }
}
