//! The Kafka transport: the same [`Bus`] over real topics, with the reference thermostat's protobuf values.
//!
//! Topics default to the reference names (`sensor`, `tempset`, `heatercontrol`); keys are sensor ids as
//! decimal strings; the producer partitions with murmur2 like Java clients, so a sensor lands on the same
//! partition whoever writes it. Publishing resolves only when the broker acknowledged every record.
//! Consumers never auto-commit: a role commits after the effects of a batch are durable (at-least-once).
//! Records that fail to decode are counted, logged once per kind with their offset, and skipped.
//!
//! Layout: [`options`] (where, which topics, shared client settings), [`context`] (broker health and
//! rebalances, from librdkafka's callbacks), [`admin`] (topic creation), this module (the producer and
//! subscribing), [`consumer`] (reading, catching up, committing), [`dead_letter`] (copies of bad records).

mod admin;
mod consumer;
mod context;
mod dead_letter;
mod options;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use setpoint_wire::ws::BusStatus;

use super::{Bus, BusError, Payload, StartAt, StreamKind};
use crate::metrics::Metrics;
pub use consumer::KafkaConsumer;
pub use context::Context;
pub use options::{KafkaOptions, Topics};

/// What went wrong talking to the cluster. Every one of these means "unavailable" to the roles (they retry);
/// the variants keep the message specific.
#[derive(Debug, thiserror::Error)]
pub enum KafkaBusError {
    #[error(transparent)]
    Client(#[from] KafkaError),
    #[error("metadata of {topic}: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error("topic {0} has no partitions (does it exist?)")]
    NoPartitions(String),
    #[error("cannot create topic {name}: {code}")]
    CreateTopic { name: String, code: RDKafkaErrorCode },
    #[error("could not read {topic} to its end in {timeout:?}")]
    CatchUpTimeout { topic: String, timeout: Duration },
}

impl From<KafkaBusError> for BusError {
    fn from(e: KafkaBusError) -> Self {
        BusError::Unavailable(e.to_string())
    }
}

/// What every clone of the bus and every consumer shares.
struct Inner {
    options: KafkaOptions,
    producer: FutureProducer<Context>,
    context: Context,
    metrics: Arc<Metrics>,
    /// Decode-error kinds already logged, so a stream of bad records logs once per kind.
    logged: Mutex<HashSet<String>>,
    /// A client that only asks for offsets. Its own connection matters: a broker that serves one
    /// connection's requests in order (Tansu does) would answer an offsets request on a consumer's
    /// connection only after that consumer's waiting fetch, `fetch.wait.max.ms` later.
    offsets: BaseConsumer<Context>,
}

/// A [`Bus`] over Kafka. Cloning shares the producer.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

impl KafkaBus {
    /// Creates the producer. Does not wait for the cluster: with the broker down, the process starts and
    /// reports `unavailable` until it is back.
    pub fn new(options: KafkaOptions, metrics: Arc<Metrics>) -> Result<Self, BusError> {
        let context = Context::default();
        let mut cfg = options.base();
        cfg.set("partitioner", "murmur2_random")
            .set("acks", "all")
            .set("enable.idempotence", "false")
            .set("linger.ms", "1")
            .set(
                "message.timeout.ms",
                setpoint_wire::ws::PUBLISH_TIMEOUT_MS.to_string(),
            );
        let producer: FutureProducer<Context> = options
            .finish(cfg)
            .create_with_context(context.clone())
            .map_err(KafkaBusError::from)?;
        let mut offsets_cfg = options.base();
        offsets_cfg
            .set("group.id", "setpoint-offsets")
            .set("enable.auto.commit", "false");
        let offsets: BaseConsumer<Context> = options
            .finish(offsets_cfg)
            .create_with_context(context.for_another_client())
            .map_err(KafkaBusError::from)?;
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                producer,
                context,
                metrics,
                logged: Mutex::default(),
                offsets,
            }),
        })
    }
}

/// Runs a blocking librdkafka call (metadata, offsets: up to its timeout while the broker is away) without
/// stalling the other tasks of a multi-threaded runtime: a task parked in the blocked worker's LIFO slot
/// cannot be stolen, so an HTTP request or a timer there would wait for the call.
pub(super) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl KafkaBus {
    fn topic(&self, stream: StreamKind) -> &str {
        self.inner.options.topics.name(stream)
    }

    /// Resolves a list of timestamps into offsets (one ListOffsets request). A partition with no record at
    /// or after its time starts at its end; one the broker cannot answer for starts at its beginning, which
    /// reads more than needed but misses nothing.
    fn offsets_at_times(&self, times: TopicPartitionList) -> Result<TopicPartitionList, KafkaBusError> {
        let resolved = match blocking(|| {
            self.inner
                .offsets
                .offsets_for_times(times.clone(), Duration::from_secs(10))
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot look up offsets by time ({e}); reading from the beginning instead");
                let mut all = TopicPartitionList::new();
                for e in times.elements() {
                    all.add_partition_offset(e.topic(), e.partition(), Offset::Beginning)?;
                }
                return Ok(all);
            }
        };
        let mut list = TopicPartitionList::new();
        for e in resolved.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                Offset::End | Offset::Offset(_) => Offset::End,
                _ => Offset::Beginning,
            };
            list.add_partition_offset(e.topic(), e.partition(), offset)?;
        }
        Ok(list)
    }
}

impl Bus for KafkaBus {
    type Consumer<T: Payload> = KafkaConsumer<T>;

    async fn publish<T: Payload>(&self, values: Vec<T>) -> Result<(), BusError> {
        let topic = self.topic(T::STREAM).to_owned();
        let mut deliveries = Vec::with_capacity(values.len());
        for value in &values {
            let key = value.key();
            let payload = value.encode();
            let mut record = FutureRecord::to(&topic).key(&key).payload(&payload);
            loop {
                match self.inner.producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // Back-pressure: let librdkafka drain its queue, then retry the same record.
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(KafkaBusError::from(e).into()),
                }
            }
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(KafkaBusError::from(e).into()),
                Err(_) => return Err(BusError::Closed),
            }
        }
        Ok(())
    }

    fn subscribe<T: Payload>(
        &self,
        start: StartAt,
        group: Option<&str>,
    ) -> Result<KafkaConsumer<T>, BusError> {
        let o = &self.inner.options;
        let topic = self.topic(T::STREAM).to_owned();
        let mut cfg = o.base();
        let group_id = match group {
            Some(g) => g.to_owned(),
            // A private group id that never joins: partitions are assigned directly.
            None => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                format!(
                    "setpoint-direct-{}-{}-{}",
                    std::process::id(),
                    crate::clock::now_us(),
                    NEXT.fetch_add(1, Relaxed)
                )
            }
        };
        cfg.set("group.id", &group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                if start == StartAt::End {
                    "latest"
                } else {
                    "earliest"
                },
            )
            .set("fetch.wait.max.ms", "10")
            // When the local queue is full librdkafka pauses fetching for this long (default 1 s). A
            // controller catching up drains its queue in milliseconds; a second's pause was a third of
            // the 200k-reading catch-up runs.
            .set("fetch.queue.backoff.ms", "10")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        if group.is_none() {
            // A direct reader is told when a fetch reached a partition's end (from the Fetch response's
            // high watermark), which its catch-up confirms: see `Pending::at_end`.
            cfg.set("enable.partition.eof", "true");
        }
        let context = self.inner.context.for_another_client();
        let consumer: StreamConsumer<Context> = o
            .finish(cfg)
            .create_with_context(context.clone())
            .map_err(KafkaBusError::from)?;
        if group.is_some() {
            consumer.subscribe(&[&topic]).map_err(KafkaBusError::from)?;
        } else {
            let metadata = blocking(|| consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)))
                .map_err(|source| KafkaBusError::Metadata {
                    topic: topic.clone(),
                    source,
                })?;
            let mut list = TopicPartitionList::new();
            let offset = match start {
                StartAt::Beginning => Offset::Beginning,
                StartAt::End => Offset::End,
                // A timestamp, which ListOffsets turns into the first offset at or after it.
                StartAt::Time(t_ms) => Offset::Offset(t_ms),
            };
            for t in metadata.topics() {
                for p in t.partitions() {
                    list.add_partition_offset(&topic, p.id(), offset)
                        .map_err(KafkaBusError::from)?;
                }
            }
            if list.count() == 0 {
                return Err(KafkaBusError::NoPartitions(topic).into());
            }
            if let StartAt::Time(_) = start {
                list = self.offsets_at_times(list)?;
            }
            consumer.assign(&list).map_err(KafkaBusError::from)?;
        }
        Ok(KafkaConsumer::new(
            consumer,
            context,
            Arc::clone(&self.inner),
            topic,
            group.is_some(),
        ))
    }

    fn status(&self) -> BusStatus {
        self.inner.context.status()
    }
}
