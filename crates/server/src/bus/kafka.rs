//! The Kafka transport: the same [`Bus`] over real topics, with the reference thermostat's protobuf values.
//!
//! Topics default to the reference names (`sensor`, `tempset`, `heatercontrol`); keys are sensor ids as
//! decimal strings; the producer partitions with murmur2 like Java clients, so a sensor lands on the same
//! partition whoever writes it. Publishing resolves only when the broker acknowledged every record.
//! Consumers never auto-commit: a role commits after the effects of a batch are durable (at-least-once).
//! Records that fail to decode are counted, logged once per kind with their offset, and skipped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance as KafkaRebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use setpoint_wire::proto::DecodeError;
use setpoint_wire::ws::BusStatus;

use super::{Bus, BusError, Consumer, Payload, Rebalance, Record, StartAt, StreamKind};
use crate::metrics::Metrics;

/// Topic names, configurable; defaults match the reference thermostat.
#[derive(Clone, Debug)]
pub struct Topics {
    pub readings: String,
    pub setpoints: String,
    pub commands: String,
    /// The controllers' changelog (compacted).
    pub controller_state: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            readings: "sensor".into(),
            setpoints: "tempset".into(),
            commands: "heatercontrol".into(),
            controller_state: "setpoint-controller-state".into(),
        }
    }
}

impl Topics {
    fn name(&self, stream: StreamKind) -> &str {
        match stream {
            StreamKind::Readings => &self.readings,
            StreamKind::Setpoints => &self.setpoints,
            StreamKind::Commands => &self.commands,
            StreamKind::ControllerState => &self.controller_state,
        }
    }
}

/// How to reach and use the cluster.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Client settings passed through to librdkafka (SASL, TLS, timeouts); applied last, so they win.
    pub client_config: Vec<(String, String)>,
    pub topics: Topics,
    /// Partitions of topics this process creates.
    pub partitions: i32,
    pub replication: i32,
    /// Where undecodable records are copied (raw key and value, with headers naming the error and the
    /// source position), so an operator can inspect and replay them. `None`: they are only counted and
    /// logged.
    pub dead_letter: Option<String>,
}

impl KafkaOptions {
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            client_config: Vec::new(),
            topics: Topics::default(),
            partitions: 3,
            replication: 1,
            dead_letter: None,
        }
    }

    fn base(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("statistics.interval.ms", "1000")
            .set("reconnect.backoff.max.ms", "2000");
        cfg
    }

    fn finish(&self, mut cfg: ClientConfig) -> ClientConfig {
        for (k, v) in &self.client_config {
            cfg.set(k, v);
        }
        cfg
    }
}

/// Status before the first statistics arrive (0) reads as connected: optimistic until proven down.
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Tracks whether any broker is reachable (from librdkafka's statistics and error callbacks) and which
/// partitions a rebalance took away from this consumer.
#[derive(Clone, Default)]
pub struct Context {
    status: Arc<AtomicU8>,
    rebalance: Arc<Mutex<Rebalance>>,
}

impl Context {
    /// A context for one more client of this bus: it reports to the same broker status, and has its own
    /// record of rebalances.
    fn for_another_client(&self) -> Self {
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
            .set("message.timeout.ms", "10000");
        let producer: FutureProducer<Context> = options
            .finish(cfg)
            .create_with_context(context.clone())
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let mut offsets_cfg = options.base();
        offsets_cfg
            .set("group.id", "setpoint-offsets")
            .set("enable.auto.commit", "false");
        let offsets: BaseConsumer<Context> = options
            .finish(offsets_cfg)
            .create_with_context(context.for_another_client())
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
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

    /// Creates missing topics (setpoints compacted); warns when an existing setpoints topic is not
    /// compacted, since its history then grows without bound and start-up replays all of it.
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        let o = &self.inner.options;
        let admin: AdminClient<Context> = o
            .finish(o.base())
            .create_with_context(Context::default())
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let retention = "604800000";
        let mut topics = vec![
            NewTopic::new(
                &o.topics.readings,
                o.partitions,
                TopicReplication::Fixed(o.replication),
            )
            .set("cleanup.policy", "delete")
            .set("retention.ms", retention),
            NewTopic::new(
                &o.topics.setpoints,
                o.partitions,
                TopicReplication::Fixed(o.replication),
            )
            .set("cleanup.policy", "compact")
            .set("retention.ms", "-1")
            // The as-of join needs the versions a retained reading may be decided with: compaction keeps
            // every version as long as the readings are kept, then only the latest per sensor.
            .set("min.compaction.lag.ms", retention),
            NewTopic::new(
                &o.topics.controller_state,
                o.partitions,
                TopicReplication::Fixed(o.replication),
            )
            .set("cleanup.policy", "compact")
            .set("retention.ms", "-1"),
            NewTopic::new(
                &o.topics.commands,
                o.partitions,
                TopicReplication::Fixed(o.replication),
            )
            .set("cleanup.policy", "delete")
            .set("retention.ms", retention),
        ];
        if let Some(dead_letter) = &o.dead_letter {
            topics.push(
                NewTopic::new(dead_letter, 1, TopicReplication::Fixed(o.replication))
                    .set("cleanup.policy", "delete")
                    .set("retention.ms", retention),
            );
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics(&topics, &opts)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = name, "created topic"),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::info!(topic = name, "using existing topic as it is");
                    if name == o.topics.setpoints {
                        self.warn_if_not_compacted(&admin, &name).await;
                    }
                }
                Err((name, code)) => {
                    return Err(BusError::Unavailable(format!(
                        "cannot create topic {name}: {code}"
                    )))
                }
            }
        }
        Ok(())
    }

    async fn warn_if_not_compacted(&self, admin: &AdminClient<Context>, topic: &str) {
        let resource = rdkafka::admin::ResourceSpecifier::Topic(topic);
        let Ok(configs) = admin.describe_configs([&resource], &AdminOptions::new()).await else {
            return;
        };
        for config in configs.into_iter().flatten() {
            let policy = config
                .get("cleanup.policy")
                .and_then(|e| e.value.clone())
                .unwrap_or_default();
            if !policy.contains("compact") {
                tracing::warn!(
                    topic,
                    policy,
                    "setpoints topic is not compacted: its history will grow without bound"
                );
            }
        }
    }

    fn topic(&self, stream: StreamKind) -> &str {
        self.inner.options.topics.name(stream)
    }
}

impl Bus for KafkaBus {
    type Consumer<T: Payload> = KafkaConsumer<T>;

    async fn publish<T: Payload>(&self, values: Vec<T>) -> Result<(), BusError> {
        let topic = self.topic(T::STREAM).to_owned();
        let mut deliveries = Vec::with_capacity(values.len());
        for value in &values {
            let key = value.key().to_string();
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
                    Err((e, _)) => return Err(BusError::Unavailable(e.to_string())),
                }
            }
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(BusError::Unavailable(e.to_string())),
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
                if start == StartAt::Beginning {
                    "earliest"
                } else {
                    "latest"
                },
            )
            .set("fetch.wait.max.ms", "10")
            // When the local queue is full librdkafka pauses fetching for this long (default 1 s). A
            // controller catching up drains its queue in milliseconds; a second's pause was a third of
            // the 200k-reading catch-up runs.
            .set("fetch.queue.backoff.ms", "10")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        let context = self.inner.context.for_another_client();
        let consumer: StreamConsumer<Context> = o
            .finish(cfg)
            .create_with_context(context.clone())
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        if group.is_some() {
            consumer
                .subscribe(&[&topic])
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
        } else {
            let metadata = consumer
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .map_err(|e| BusError::Unavailable(format!("metadata of {topic}: {e}")))?;
            let mut list = TopicPartitionList::new();
            let offset = if start == StartAt::Beginning {
                Offset::Beginning
            } else {
                Offset::End
            };
            for t in metadata.topics() {
                for p in t.partitions() {
                    list.add_partition_offset(&topic, p.id(), offset)
                        .map_err(|e| BusError::Unavailable(e.to_string()))?;
                }
            }
            if list.count() == 0 {
                return Err(BusError::Unavailable(format!(
                    "topic {topic} has no partitions (does it exist?)"
                )));
            }
            consumer
                .assign(&list)
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
        }
        Ok(KafkaConsumer {
            consumer,
            context,
            bus: Arc::clone(&self.inner),
            topic,
            grouped: group.is_some(),
            pending: Pending {
                copies_dead_letters: group.is_some(),
                ..Pending::default()
            },
            _value: std::marker::PhantomData,
        })
    }

    fn status(&self) -> BusStatus {
        match self.inner.context.status.load(Relaxed) {
            DOWN => BusStatus::Unavailable,
            _ => BusStatus::Connected,
        }
    }
}

impl<T> KafkaConsumer<T> {
    /// The end offset, taken now, of every assigned partition this consumer has not read up to.
    ///
    /// One ListOffsets request for all partitions, on the bus's offsets client. (Tansu reports a
    /// partition's end as its last batch's first offset + 1; [`Consumer::read_to_end`] therefore also takes
    /// what the fetches that reached it delivered.)
    fn unread_ends(&mut self, timeout: Duration) -> Result<HashMap<i32, i64>, BusError> {
        let assignment = self.consumer.assignment().map_err(unavailable)?;
        let mut list = TopicPartitionList::new();
        for e in assignment.elements() {
            list.add_partition_offset(&self.topic, e.partition(), Offset::End)
                .map_err(unavailable)?;
        }
        if list.count() == 0 {
            return Ok(HashMap::new());
        }
        let ends = blocking(|| self.bus.offsets.offsets_for_times(list, timeout)).map_err(unavailable)?;
        let mut unread = HashMap::new();
        for e in ends.elements() {
            let partition = e.partition();
            let end = match e.offset() {
                Offset::Offset(end) => end,
                // No answer for this partition: ask the slow way.
                _ => {
                    blocking(|| self.bus.offsets.fetch_watermarks(&self.topic, partition, timeout))
                        .map_err(unavailable)?
                        .1
                }
            };
            let position = match self.pending.position.get(&partition) {
                Some(p) => *p,
                None => {
                    // Nothing read from it yet: start where the partition starts (retention may have
                    // emptied it, and then there is nothing to wait for). Once per partition.
                    let (low, _) =
                        blocking(|| self.bus.offsets.fetch_watermarks(&self.topic, partition, timeout))
                            .map_err(unavailable)?;
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

/// Runs a blocking librdkafka call without stalling the other tasks of a multi-threaded runtime.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn unavailable(e: KafkaError) -> BusError {
    BusError::Unavailable(e.to_string())
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
struct Pending {
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
}

/// Copies an undecodable record, byte for byte, to the dead-letter topic, with headers saying why and where
/// it came from. Returns the delivery to wait for, or `None` without a dead-letter topic (or if the copy
/// could not even be queued, which is logged: the record is still counted and skipped).
fn dead_letter(
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
            Some(payload) => T::decode(m.key(), payload, m.timestamp().to_millis()),
            None => Err(DecodeError::Tombstone),
        };
        match decoded {
            Ok(value) => out.push(Record {
                partition: m.partition(),
                offset: m.offset().max(0) as u64,
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
            match self.consumer.recv().await {
                Ok(m) => accept(&self.bus, &self.topic, &mut self.pending, &m, &mut out),
                Err(e) => {
                    tracing::debug!(topic = self.topic, "consume: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            while out.len() < max {
                match self.consumer.recv().now_or_never() {
                    Some(Ok(m)) => accept(&self.bus, &self.topic, &mut self.pending, &m, &mut out),
                    _ => break,
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    fn try_batch(&mut self, max: usize) -> Result<Vec<Record<T>>, BusError> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.consumer.recv().now_or_never() {
                Some(Ok(m)) => accept(&self.bus, &self.topic, &mut self.pending, &m, &mut out),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn read_to_end(&mut self, timeout: Duration) -> Result<Vec<Record<T>>, BusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let targets = self.unread_ends(timeout)?;
        let mut out = Vec::new();
        while targets
            .iter()
            .any(|(p, end)| self.pending.position.get(p).copied().unwrap_or(-1) < *end)
        {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(BusError::Unavailable(format!(
                    "could not read {} to its end in {timeout:?}",
                    self.topic
                )));
            }
            match tokio::time::timeout(remaining, self.consumer.recv()).await {
                Ok(Ok(m)) => accept(&self.bus, &self.topic, &mut self.pending, &m, &mut out),
                Ok(Err(e)) => tracing::debug!(topic = self.topic, "consume: {e}"),
                Err(_) => {}
            }
        }
        // Whatever the fetches that got us here delivered beyond the end offsets is in the local queue:
        // take it too. A catch-up reads at least to the ends; and Tansu reports a partition's high
        // watermark as its last batch's first offset + 1, so without this the rest of that batch — records
        // written before this call — would be left for later.
        while let Some(Ok(m)) = self.consumer.recv().now_or_never() {
            accept(&self.bus, &self.topic, &mut self.pending, &m, &mut out);
        }
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
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
        }
        self.consumer
            .commit(&list, CommitMode::Async)
            .map_err(|e| BusError::Unavailable(e.to_string()))
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
