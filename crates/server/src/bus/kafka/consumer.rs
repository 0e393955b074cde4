//! Reading a topic: batches, catch-up to the end offsets, commits after the effects are durable, and
//! rebalances.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::DeliveryFuture;
use rdkafka::{Offset, TopicPartitionList};
use setpoint_wire::proto::DecodeError;

use super::dead_letter::dead_letter;
use super::{blocking, Context, Inner, KafkaBusError};
use crate::bus::{BusError, Consumer, Payload, Rebalance, Record};

impl<T> KafkaConsumer<T> {
    pub(super) fn new(
        consumer: StreamConsumer<Context>,
        context: Context,
        bus: Arc<Inner>,
        topic: String,
        grouped: bool,
    ) -> Self {
        Self {
            consumer,
            context,
            bus,
            topic,
            grouped,
            pending: Pending {
                copies_dead_letters: grouped,
                ..Pending::default()
            },
            _value: std::marker::PhantomData,
        }
    }

    /// The end offset, taken now, of every assigned partition this consumer has not read up to.
    ///
    /// One ListOffsets request for all partitions, on the bus's offsets client. (Tansu reports a
    /// partition's end as its last batch's first offset + 1; [`Consumer::read_to_end`] therefore also takes
    /// what the fetches that reached it delivered.)
    fn unread_ends(&mut self, timeout: Duration) -> Result<HashMap<i32, i64>, KafkaBusError> {
        let assignment = self.consumer.assignment().map_err(KafkaBusError::from)?;
        let mut list = TopicPartitionList::new();
        for e in assignment.elements() {
            list.add_partition_offset(&self.topic, e.partition(), Offset::End)
                .map_err(KafkaBusError::from)?;
        }
        if list.count() == 0 {
            return Ok(HashMap::new());
        }
        let ends =
            blocking(|| self.bus.offsets.offsets_for_times(list, timeout)).map_err(KafkaBusError::from)?;
        let mut unread = HashMap::new();
        for e in ends.elements() {
            let partition = e.partition();
            let end = match e.offset() {
                Offset::Offset(end) => end,
                // No answer for this partition: ask the slow way.
                _ => {
                    blocking(|| self.bus.offsets.fetch_watermarks(&self.topic, partition, timeout))
                        .map_err(KafkaBusError::from)?
                        .1
                }
            };
            let position = match self.pending.position.get(&partition) {
                Some(p) => *p,
                None => {
                    // Nothing read from it yet: start where the partition starts (retention may have
                    // emptied it, and then there is nothing to wait for). Once per partition.
                    let (low, high) =
                        blocking(|| self.bus.offsets.fetch_watermarks(&self.topic, partition, timeout))
                            .map_err(KafkaBusError::from)?;
                    tracing::debug!(
                        topic = self.topic,
                        partition,
                        low,
                        high,
                        end,
                        "first catch-up of a partition"
                    );
                    if low >= end {
                        self.pending.position.insert(partition, end);
                    }
                    low
                }
            };
            if position < end {
                unread.insert(partition, end);
            }
        }
        Ok(unread)
    }
}

impl<T: Payload> KafkaConsumer<T> {
    /// Takes what the local queue holds right now, up to `max` records, without waiting; stops early at
    /// an error other than a partition EOF (the caller's next wait meets it again).
    fn take_ready(&mut self, out: &mut Vec<Record<T>>, max: usize) {
        while out.len() < max {
            let Some(event) = self.consumer.recv().now_or_never() else {
                break;
            };
            if self.pending.take(&self.bus, &self.topic, event, out).is_err() {
                break;
            }
        }
    }
}

/// A consumer of one topic.
pub struct KafkaConsumer<T> {
    consumer: StreamConsumer<Context>,
    context: Context,
    bus: Arc<Inner>,
    topic: String,
    grouped: bool,
    pending: Pending,
    _value: std::marker::PhantomData<fn() -> T>,
}

/// What a consumer has read but not yet committed.
#[derive(Default)]
pub(super) struct Pending {
    /// Only a group member copies bad records to the dead-letter topic: each record has exactly one owner
    /// there, which commits past it. Direct readers (bridges; everyone's read of the setpoints) see every
    /// record of their topic, so their copies would multiply with each instance and each restart.
    copies_dead_letters: bool,
    /// Next offset to commit per partition.
    uncommitted: HashMap<i32, i64>,
    /// Next offset to read per partition (what catching up compares with the end offsets).
    position: HashMap<i32, i64>,
    /// Dead-letter copies not yet acknowledged by the broker; offsets are not committed past them.
    dead_letters: Vec<DeliveryFuture>,
    /// Partitions whose end the last fetch reached with nothing read since (librdkafka's partition EOF,
    /// from the Fetch response's high watermark; direct readers only). What a catch-up confirms beyond
    /// the end offsets: a broker's ListOffsets can under-report the end (Tansu's once said 0 for a
    /// changelog partition its Fetch served records of), and a restart must not restore a short table.
    at_end: HashMap<i32, bool>,
}

/// How long a catch-up that reached the end offsets waits for every partition's end-of-partition event
/// before it goes on without: a bound on the cost of a broker or client that never sends one.
const END_CONFIRMATION: Duration = Duration::from_secs(2);

impl Pending {
    /// What one event of the consumer's queue is: a message is accepted; a partition EOF is noted; any
    /// other error is returned for the caller to log (and perhaps back off).
    fn take<T: Payload>(
        &mut self,
        bus: &Inner,
        topic: &str,
        event: Result<rdkafka::message::BorrowedMessage<'_>, rdkafka::error::KafkaError>,
        out: &mut Vec<Record<T>>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        match event {
            Ok(m) => {
                self.at_end.insert(m.partition(), false);
                accept(bus, topic, self, &m, out);
                Ok(())
            }
            Err(rdkafka::error::KafkaError::PartitionEOF(partition)) => {
                self.at_end.insert(partition, true);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Decodes one message; bad ones are counted, logged once per kind, copied to the dead-letter topic when
/// there is one, and skipped (their offset still advances, so a poison record cannot stall the stream).
fn accept<T: Payload>(
    bus: &Inner,
    topic: &str,
    pending: &mut Pending,
    m: &rdkafka::message::BorrowedMessage<'_>,
    out: &mut Vec<Record<T>>,
) {
    {
        pending.uncommitted.insert(m.partition(), m.offset() + 1);
        pending.position.insert(m.partition(), m.offset() + 1);
        let decoded = match m.payload() {
            // No timestamp at all (a v0 message format): as if logged now.
            Some(payload) => T::decode(
                m.key(),
                payload,
                m.timestamp().to_millis().unwrap_or_else(crate::clock::now_ms),
            ),
            None => Err(DecodeError::Tombstone),
        };
        match decoded {
            Ok(value) => out.push(Record {
                partition: m.partition(),
                offset: m.offset().max(0) as u64,
                // No timestamp at all (a v0 message format): as if logged now, which the reader's clock
                // caps anyway.
                log_ms: m.timestamp().to_millis().unwrap_or(i64::MAX),
                value,
            }),
            Err(e) => {
                bus.metrics.decode_errors.fetch_add(1, Relaxed);
                let kind = format!("{topic}:{}", e.kind());
                let first = bus.logged.lock().unwrap_or_else(|p| p.into_inner()).insert(kind);
                if first {
                    tracing::warn!(
                        topic,
                        partition = m.partition(),
                        offset = m.offset(),
                        "skipping undecodable record: {e} (further ones of this kind are only counted)"
                    );
                }
                if pending.copies_dead_letters {
                    if let Some(delivery) = dead_letter(bus, topic, m, &e) {
                        pending.dead_letters.push(delivery);
                    }
                }
            }
        }
    }
}

impl Pending {
    /// Whether every dead-letter copy made so far is acknowledged; failed copies are logged and dropped.
    fn dead_letters_settled(&mut self) -> bool {
        self.dead_letters
            .retain_mut(|delivery| match delivery.now_or_never() {
                None => true,
                Some(Ok(Ok(_))) => false,
                Some(Ok(Err((e, _)))) => {
                    tracing::warn!("a dead-letter copy was not delivered: {e}");
                    false
                }
                Some(Err(_)) => false,
            });
        self.dead_letters.is_empty()
    }
}

impl<T: Payload> Consumer<T> for KafkaConsumer<T> {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Record<T>>, BusError> {
        let mut out = Vec::new();
        loop {
            let event = self.consumer.recv().await;
            if let Err(e) = self.pending.take(&self.bus, &self.topic, event, &mut out) {
                tracing::debug!(topic = self.topic, "consume: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            self.take_ready(&mut out, max);
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    fn try_batch(&mut self, max: usize) -> Result<Vec<Record<T>>, BusError> {
        let mut out = Vec::new();
        self.take_ready(&mut out, max);
        Ok(out)
    }

    async fn read_to_end(&mut self, timeout: Duration) -> Result<Vec<Record<T>>, BusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let targets = self.unread_ends(timeout)?;
        // Direct readers also wait (briefly) until every assigned partition's fetch reached its end.
        let partitions: Vec<i32> = if self.grouped {
            Vec::new()
        } else {
            let assignment = self.consumer.assignment().map_err(KafkaBusError::from)?;
            assignment.elements().iter().map(|e| e.partition()).collect()
        };
        let mut out = Vec::new();
        let mut ends_reached_at = None;
        loop {
            let behind = targets
                .iter()
                .any(|(p, end)| self.pending.position.get(p).copied().unwrap_or(-1) < *end);
            let now = tokio::time::Instant::now();
            if !behind {
                let reached = *ends_reached_at.get_or_insert(now);
                let unconfirmed = |p: &&i32| self.pending.at_end.get(p) != Some(&true);
                if !partitions.iter().any(|p| unconfirmed(&p)) {
                    break;
                }
                if now >= reached + END_CONFIRMATION {
                    let missing: Vec<&i32> = partitions.iter().filter(unconfirmed).collect();
                    tracing::warn!(topic = self.topic, partitions = ?missing, "caught up to the end offsets, but no end-of-partition came for these within {END_CONFIRMATION:?}; going on without");
                    break;
                }
            }
            let mut until = deadline;
            if let Some(reached) = ends_reached_at {
                until = until.min(reached + END_CONFIRMATION);
            }
            if now >= deadline {
                return Err(KafkaBusError::CatchUpTimeout {
                    topic: self.topic.clone(),
                    timeout,
                }
                .into());
            }
            if let Ok(event) = tokio::time::timeout_at(until, self.consumer.recv()).await {
                if let Err(e) = self.pending.take(&self.bus, &self.topic, event, &mut out) {
                    tracing::debug!(topic = self.topic, "consume: {e}");
                }
            }
        }
        // Whatever the fetches that got us here delivered beyond the end offsets is in the local queue:
        // take it too. A catch-up reads at least to the ends; and Tansu reports a partition's high
        // watermark as its last batch's first offset + 1, so without this the rest of that batch — records
        // written before this call — would be left for later.
        self.take_ready(&mut out, usize::MAX);
        // What a catch-up aimed for and got, per partition: the evidence when a restored table looks short
        // (join.rs's restart test once restored one partition's heaters and not the other's).
        tracing::debug!(topic = self.topic, ends = ?targets, positions = ?self.pending.position, records = out.len(), "read to end");
        Ok(out)
    }

    fn commit(&mut self) -> Result<(), BusError> {
        if !self.grouped || self.pending.uncommitted.is_empty() {
            return Ok(());
        }
        if !self.pending.dead_letters_settled() {
            // A skipped record's copy is still in flight: commit it (and what came with it) next time, so a
            // crash now replays the record rather than losing its only copy.
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in self.pending.uncommitted.drain() {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .map_err(KafkaBusError::from)?;
        }
        self.consumer
            .commit(&list, CommitMode::Async)
            .map_err(|e| KafkaBusError::from(e).into())
    }

    fn lost(&self) -> u64 {
        0
    }

    fn take_rebalance(&mut self) -> Rebalance {
        let moved = std::mem::take(&mut *self.context.rebalance.lock().unwrap_or_else(|e| e.into_inner()));
        for partition in &moved.revoked {
            if !moved.assigned.contains(partition) {
                // Another member owns it now and starts from the last committed offset: committing what
                // this member read there would skip records nobody decided.
                self.pending.uncommitted.remove(partition);
            }
        }
        moved
    }
}
