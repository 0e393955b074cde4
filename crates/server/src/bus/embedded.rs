//! The embedded bus: each stream an append-only log with offsets, like a one-partition Kafka topic,
//! bounded in records and (for events) in age. Publishing never blocks on readers; a consumer that falls
//! further behind than the retention skips ahead and counts what it lost, as a Kafka consumer would after
//! retention deleted a segment.
//!
//! With a [`Store`] (the default of `setpoint run`) every log is also kept on disk and comes back on
//! restart: setpoints and schedules are durable *before* a reader can see them or a publisher
//! is answered; events are committed within [`super::store::COMMIT_INTERVAL`]. Without one (`--in-memory`, tests,
//! benchmarks) the logs live and die with the process.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use setpoint_control::{Decision, TimeMs};
use setpoint_wire::ws::BusStatus;
use tokio::sync::Notify;

use super::store::{Encoded, Store, StoreError};
use super::{
    Bus, BusError, Consumer, HeaterMemoryRecord, Offset, Payload, Record, ScheduleRecord, SensorReading,
    SetpointChange, StartAt, StreamKind,
};
use crate::clock::now_ms;

/// Retention of each log, in records. At 10 k readings/s this is 100 s of history, far more than a healthy
/// consumer lags, and about 40 MB of memory.
pub const DEFAULT_RETENTION: usize = 1 << 20;

/// Retention of the event logs (readings, commands), by age.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How often old events are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

/// How long the logs keep records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Records per log (tables keep the newest per key beyond it).
    pub records: usize,
    /// Age of the oldest event kept; `None` keeps events until the record bound pushes them out.
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            records: DEFAULT_RETENTION,
            max_age: Some(DEFAULT_MAX_AGE),
        }
    }
}

/// One record in a log: its offset, when it was appended (what a consumer starting at a time seeks by,
/// like Kafka's record timestamps), and the value.
struct Entry<T> {
    offset: Offset,
    ts: TimeMs,
    value: T,
}

/// One stream.
struct Log<T> {
    stream: StreamKind,
    inner: Mutex<LogInner<T>>,
    appended: Notify,
    retention: usize,
    /// Tables (setpoints, controller state): when full, keep the latest record per key (Kafka's log
    /// compaction) instead of dropping the oldest records; never pruned by age.
    compacted: bool,
    store: Option<Store>,
}

struct LogInner<T> {
    records: VecDeque<Entry<T>>,
    /// The next offset to hand out. With a store, table records get theirs when queued for disk and enter
    /// `records` once durable, so this can be ahead of the last record.
    next_offset: Offset,
    last_ts: TimeMs,
}

impl<T: Payload> Log<T> {
    fn new(retention: usize, store: Option<Store>) -> Self {
        Self {
            stream: T::STREAM,
            inner: Mutex::new(LogInner {
                records: VecDeque::new(),
                next_offset: 0,
                last_ts: 0,
            }),
            appended: Notify::new(),
            retention: retention.max(1),
            compacted: T::STREAM.is_table(),
            store,
        }
    }

    /// Fills a new log from the store, dropping events older than `cutoff`.
    fn restore(&self, records: Vec<Encoded>, cutoff: Option<TimeMs>, path: &Path) -> Result<(), StoreError> {
        let mut entries = Vec::with_capacity(records.len());
        let mut next_offset = 0;
        for (offset, ts, bytes) in records {
            next_offset = offset + 1;
            if !self.compacted && cutoff.is_some_and(|c| ts < c) {
                continue;
            }
            let value = T::decode(None, &bytes, Some(ts)).map_err(|e| StoreError::Damaged {
                path: path.to_owned(),
                detail: format!("record {offset} of {:?}: {e}", self.stream),
            })?;
            entries.push(Entry { offset, ts, value });
        }
        let mut inner = self.lock();
        inner.next_offset = next_offset;
        inner.last_ts = entries.last().map_or(0, |e| e.ts);
        inner.records = entries.into();
        self.enforce_retention(&mut inner);
        Ok(())
    }

    /// A poisoned lock only means another thread panicked mid-append; the log itself is still consistent
    /// (every mutation is a single push or pop), so keep serving.
    fn lock(&self) -> MutexGuard<'_, LogInner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `values`. Returns, for a table with a store, the wait for their durability: they become
    /// visible to readers only then.
    fn append(
        self: &Arc<Self>,
        values: Vec<T>,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<(), String>>> {
        if values.is_empty() {
            return None;
        }
        // Encoded before taking the lock, which publishers and readers share; the offsets come inside it.
        let encoded: Vec<Vec<u8>> = match self.store {
            Some(_) => values.iter().map(Payload::encode).collect(),
            None => Vec::new(),
        };
        let mut inner = self.lock();
        let ts = now_ms().max(inner.last_ts);
        inner.last_ts = ts;
        let first = inner.next_offset;
        inner.next_offset += values.len() as u64;
        let entries: Vec<Entry<T>> = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| Entry {
                offset: first + i as u64,
                ts,
                value,
            })
            .collect();
        let Some(store) = &self.store else {
            self.push(&mut inner, entries);
            drop(inner);
            self.appended.notify_waiters();
            return None;
        };
        let encoded = entries
            .iter()
            .zip(encoded)
            .map(|(e, bytes)| (e.offset, e.ts, bytes))
            .collect();
        if !waits_for_disk(self.stream) {
            // Queued while still holding the lock, so the store sees this log's records in offset order.
            store.append(self.stream, encoded, None);
            self.push(&mut inner, entries);
            drop(inner);
            self.appended.notify_waiters();
            return None;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let log = Arc::clone(self);
        store.append(
            self.stream,
            encoded,
            Some(Box::new(move |result: Result<(), String>| {
                if result.is_ok() {
                    let mut inner = log.lock();
                    log.push(&mut inner, entries);
                    drop(inner);
                    log.appended.notify_waiters();
                }
                let _ = tx.send(result);
            })),
        );
        Some(rx)
    }

    fn push(&self, inner: &mut LogInner<T>, entries: Vec<Entry<T>>) {
        inner.records.extend(entries);
        self.enforce_retention(inner);
    }

    fn enforce_retention(&self, inner: &mut LogInner<T>) {
        if inner.records.len() <= self.retention {
            return;
        }
        if self.compacted {
            compact(&mut inner.records);
            if let Some(store) = &self.store {
                store.keep(self.stream, inner.records.iter().map(|e| e.offset).collect());
            }
        }
        while inner.records.len() > self.retention {
            inner.records.pop_front();
        }
    }

    /// Records from `position` on, at most `max`; returns them with the new position and how many records
    /// between `position` and the first returned one were no longer retained.
    fn read(&self, position: Offset, max: usize) -> (Vec<Record<T>>, Offset, u64) {
        let inner = self.lock();
        let start = inner.records.partition_point(|e| e.offset < position);
        let batch: Vec<Record<T>> = inner
            .records
            .range(start..)
            .take(max)
            .map(|e| Record {
                partition: 0,
                offset: e.offset,
                log_ms: e.ts,
                value: e.value.clone(),
            })
            .collect();
        let Some(last) = batch.last() else {
            return (batch, position, 0);
        };
        let first = batch[0].offset;
        // In a compacted log, gaps are records superseded by newer ones of the same key, not losses.
        let lost = if self.compacted { 0 } else { first - position };
        let next = last.offset + 1;
        (batch, next, lost)
    }

    fn end(&self) -> Offset {
        let inner = self.lock();
        inner.records.back().map_or(inner.next_offset, |e| e.offset + 1)
    }

    /// The offset of the first record appended at or after `t_ms`.
    fn offset_at(&self, t_ms: TimeMs) -> Offset {
        let inner = self.lock();
        let i = inner.records.partition_point(|e| e.ts < t_ms);
        inner.records.get(i).map_or(inner.next_offset, |e| e.offset)
    }
}

/// What the pruning thread needs of a log, whatever its record type.
trait Prune: Send + Sync {
    /// Drops events appended before `cutoff` and mirrors the log's start into the store.
    fn prune(&self, cutoff: Option<TimeMs>);
}

impl<T: Payload> Prune for Log<T> {
    fn prune(&self, cutoff: Option<TimeMs>) {
        if self.compacted {
            return;
        }
        let mut inner = self.lock();
        if let Some(cutoff) = cutoff {
            while inner.records.front().is_some_and(|e| e.ts < cutoff) {
                inner.records.pop_front();
            }
        }
        let start = inner.records.front().map_or(inner.next_offset, |e| e.offset);
        drop(inner);
        if let Some(store) = &self.store {
            store.truncate(self.stream, start);
        }
    }
}

/// Whether a stream's records become visible (and their publisher is answered) only once on disk: the
/// setpoints and schedules people write, which are acknowledged to them. The controller's changelog is
/// not: it is persisted in order with the commands before it and the committed offsets after it (the store
/// writes a prefix of what happened, see `store`), which is all a restart needs — and a controller whose
/// disk is full goes on deciding from memory instead of waiting for it.
fn waits_for_disk(stream: StreamKind) -> bool {
    matches!(stream, StreamKind::Setpoints | StreamKind::Schedules)
}

fn compact<T: Payload>(records: &mut VecDeque<Entry<T>>) {
    let mut latest: HashMap<String, Offset> = HashMap::new();
    for e in records.iter() {
        latest.insert(e.value.key(), e.offset);
    }
    records.retain(|e| latest.get(&e.value.key()) == Some(&e.offset));
}

/// The in-process bus used by `setpoint run` without `--kafka`. Cloning shares the logs.
#[derive(Clone)]
pub struct EmbeddedBus {
    logs: Arc<Mutex<Logs>>,
    retention: Retention,
    store: Option<Store>,
}

/// One log per stream, keyed by the stream's kind, so the bus needs to know nothing about the payload types
/// beyond the [`Payload`] trait. Each entry is a `Log<T>` for the `T` whose `STREAM` is that kind, and the
/// same log as something to prune.
type Logs = HashMap<StreamKind, (Arc<dyn Any + Send + Sync>, Arc<dyn Prune>)>;

impl EmbeddedBus {
    /// An in-memory bus whose logs keep `retention` records each.
    pub fn new(retention: usize) -> Self {
        Self::in_memory(Retention {
            records: retention,
            max_age: None,
        })
    }

    /// An in-memory bus.
    pub fn in_memory(retention: Retention) -> Self {
        Self {
            logs: Arc::new(Mutex::new(HashMap::new())),
            retention,
            store: None,
        }
    }

    /// A bus kept in `dir`: what earlier runs published there is back, and what this one publishes stays.
    /// Fails with a clear error if another process uses `dir` or its data file is damaged.
    pub fn open(dir: &Path, retention: Retention) -> Result<Self, StoreError> {
        let store = Store::open(dir)?;
        let bus = Self {
            logs: Arc::new(Mutex::new(HashMap::new())),
            retention,
            store: Some(store.clone()),
        };
        let cutoff = bus.cutoff();
        // Every stream now, so a damaged record is reported at start, not when a role first reads it.
        bus.restore::<SensorReading>(&store, cutoff)?;
        bus.restore::<SetpointChange>(&store, cutoff)?;
        bus.restore::<Decision>(&store, cutoff)?;
        bus.restore::<HeaterMemoryRecord>(&store, cutoff)?;
        bus.restore::<ScheduleRecord>(&store, cutoff)?;
        bus.prune_in_background();
        Ok(bus)
    }

    fn restore<T: Payload>(&self, store: &Store, cutoff: Option<TimeMs>) -> Result<(), StoreError> {
        let records = store.load(T::STREAM)?;
        let count = records.len();
        self.log::<T>()
            .map_err(|e| StoreError::Damaged {
                path: store.path().to_owned(),
                detail: e.to_string(),
            })?
            .restore(records, cutoff, store.path())?;
        if count > 0 {
            tracing::info!(stream = ?T::STREAM, records = count, "restored from {}", store.path().display());
        }
        Ok(())
    }

    fn cutoff(&self) -> Option<TimeMs> {
        self.retention
            .max_age
            .map(|age| now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
    }

    /// Prunes old events every [`PRUNE_INTERVAL`] until the bus is dropped.
    fn prune_in_background(&self) {
        let logs: Weak<Mutex<Logs>> = Arc::downgrade(&self.logs);
        let retention = self.retention;
        let spawned = std::thread::Builder::new()
            .name("setpoint-retention".into())
            .spawn(move || loop {
                std::thread::sleep(PRUNE_INTERVAL);
                let Some(logs) = logs.upgrade() else {
                    return;
                };
                let bus = EmbeddedBus {
                    logs,
                    retention,
                    store: None,
                };
                bus.prune();
            });
        if let Err(e) = spawned {
            tracing::warn!("old records will not be pruned: cannot start the retention thread: {e}");
        }
    }

    /// Drops the events older than the age limit, and deletes from the store what the logs no longer hold
    /// (aged out, or pushed out by the record bound).
    fn prune(&self) {
        let cutoff = self.cutoff();
        let all: Vec<Arc<dyn Prune>> = self
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|(_, p)| Arc::clone(p))
            .collect();
        for log in all {
            log.prune(cutoff);
        }
    }

    /// Commits everything published so far and releases the data file (and its lock). Call after every
    /// role has stopped; publishing afterwards fails.
    pub fn close(&self) -> Result<(), String> {
        match &self.store {
            Some(store) => store.sync(true),
            None => Ok(()),
        }
    }

    /// The log of `T`'s stream, created on first use.
    fn log<T: Payload>(&self) -> Result<Arc<Log<T>>, BusError> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let (log, _) = logs.entry(T::STREAM).or_insert_with(|| {
            let log = Arc::new(Log::<T>::new(self.retention.records, self.store.clone()));
            (log.clone(), log)
        });
        Arc::clone(log)
            .downcast::<Log<T>>()
            .map_err(|_| BusError::Unavailable(format!("stream {:?} holds another record type", T::STREAM)))
    }
}

impl Default for EmbeddedBus {
    fn default() -> Self {
        Self::new(DEFAULT_RETENTION)
    }
}

impl Bus for EmbeddedBus {
    type Consumer<T: Payload> = EmbeddedConsumer<T>;

    fn publish<T: Payload>(
        &self,
        values: Vec<T>,
    ) -> impl std::future::Future<Output = Result<(), BusError>> + Send {
        let durable = self.log::<T>().map(|log| log.append(values));
        async move {
            match durable? {
                None => Ok(()),
                Some(wait) => match wait.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(BusError::Unavailable(format!("not saved to the data file: {e}"))),
                    Err(_) => Err(BusError::Closed),
                },
            }
        }
    }

    fn subscribe<T: Payload>(
        &self,
        start: StartAt,
        group: Option<&str>,
    ) -> Result<EmbeddedConsumer<T>, BusError> {
        let log = self.log::<T>()?;
        // A group carries on where it committed (as on Kafka), so a restarted controller does not decide
        // the retained readings again; `start` applies to a group that never committed.
        let committed = match (&self.store, group) {
            (Some(store), Some(group)) => store
                .committed(group, T::STREAM)
                .map_err(|e| BusError::Unavailable(e.to_string()))?,
            _ => None,
        };
        let position = match (committed, start) {
            (Some(offset), _) => offset,
            (None, StartAt::Beginning) => 0,
            (None, StartAt::End) => log.end(),
            (None, StartAt::Time(t_ms)) => log.offset_at(t_ms),
        };
        let commits = match (&self.store, group) {
            (Some(store), Some(group)) => Some((store.clone(), group.to_owned())),
            _ => None,
        };
        Ok(EmbeddedConsumer {
            log,
            position,
            lost: 0,
            commits,
        })
    }

    fn status(&self) -> BusStatus {
        BusStatus::Embedded
    }

    fn persistence_problem(&self) -> Option<String> {
        self.store.as_ref().and_then(|s| s.health().problem())
    }

    fn unpersisted(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.health().unpersisted())
    }
}

/// A consumer of one embedded log. With one process there is one member per group; with a store, a group's
/// commits are kept, so a restarted role carries on where it left off.
pub struct EmbeddedConsumer<T> {
    log: Arc<Log<T>>,
    position: Offset,
    lost: u64,
    /// Where a group's commits go, with a store.
    commits: Option<(Store, String)>,
}

impl<T: Payload> EmbeddedConsumer<T> {
    fn take(&mut self, max: usize) -> Vec<Record<T>> {
        let (batch, next, lost) = self.log.read(self.position, max.max(1));
        self.position = next;
        self.lost += lost;
        batch
    }
}

impl<T: Payload> Consumer<T> for EmbeddedConsumer<T> {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Record<T>>, BusError> {
        let log = Arc::clone(&self.log);
        loop {
            // Register for the wake-up before looking, so an append between the look and the wait is not
            // missed.
            let appended = log.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let batch = self.take(max);
            if !batch.is_empty() {
                return Ok(batch);
            }
            appended.await;
        }
    }

    fn try_batch(&mut self, max: usize) -> Result<Vec<Record<T>>, BusError> {
        Ok(self.take(max))
    }

    async fn read_to_end(&mut self, _timeout: std::time::Duration) -> Result<Vec<Record<T>>, BusError> {
        Ok(self.take(usize::MAX))
    }

    fn commit(&mut self) -> Result<(), BusError> {
        if let Some((store, group)) = &self.commits {
            store.commit_offset(group, self.log.stream, self.position);
        }
        Ok(())
    }

    fn lost(&self) -> u64 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{SensorReading, SetpointChange};
    use setpoint_control::Setpoint;

    fn reading(sensor: i32, t_ms: i64) -> SensorReading {
        SensorReading {
            sensor,
            t_ms,
            temperature: 20.0,
        }
    }

    fn setpoint(sensor: i32, version: u64) -> SetpointChange {
        SetpointChange {
            base_version: None,
            write_id: String::new(),
            sensor,
            setpoint: Setpoint::new(20.0, 1.0, 1.0),
            version,
            author: String::new(),
            t_ms: 0,
        }
    }

    #[tokio::test]
    async fn start_at_end_sees_only_new_records_and_beginning_sees_all() {
        let bus = EmbeddedBus::new(100);
        bus.publish(vec![reading(1, 1)]).await.expect("publish");
        let mut from_end = bus
            .subscribe::<SensorReading>(StartAt::End, None)
            .expect("subscribe");
        let mut from_start = bus
            .subscribe::<SensorReading>(StartAt::Beginning, None)
            .expect("subscribe");
        assert!(from_end.try_batch(10).expect("read").is_empty());
        bus.publish(vec![reading(1, 2), reading(2, 3)])
            .await
            .expect("publish");
        let got: Vec<i64> = from_end
            .next_batch(10)
            .await
            .expect("read")
            .iter()
            .map(|r| r.value.t_ms)
            .collect();
        assert_eq!(got, vec![2, 3]);
        assert_eq!(from_start.next_batch(10).await.expect("read").len(), 3);
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_on_publish() {
        let bus = EmbeddedBus::new(100);
        let mut c = bus
            .subscribe::<SensorReading>(StartAt::End, None)
            .expect("subscribe");
        let waiter = tokio::spawn(async move { c.next_batch(10).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        bus.publish(vec![reading(5, 1)]).await.expect("publish");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woke")
            .expect("joined");
        assert_eq!(got.expect("read")[0].value.sensor, 5);
    }

    #[tokio::test]
    async fn a_consumer_behind_retention_skips_ahead_and_counts_the_loss() {
        let bus = EmbeddedBus::new(10);
        let mut c = bus
            .subscribe::<SensorReading>(StartAt::Beginning, None)
            .expect("subscribe");
        bus.publish((0..25).map(|t| reading(1, t)).collect())
            .await
            .expect("publish");
        let batch = c.next_batch(100).await.expect("read");
        assert_eq!(batch.len(), 10);
        assert_eq!(batch[0].value.t_ms, 15);
        assert_eq!(c.lost(), 15);
    }

    #[tokio::test]
    async fn the_setpoint_log_compacts_to_the_latest_per_sensor() {
        let bus = EmbeddedBus::new(4);
        bus.publish((1..=10).map(|v| setpoint((v % 3) as i32, v)).collect())
            .await
            .expect("publish");
        let mut c = bus
            .subscribe::<SetpointChange>(StartAt::Beginning, None)
            .expect("subscribe");
        let mut got: Vec<(i32, u64)> = c
            .try_batch(100)
            .expect("read")
            .iter()
            .map(|r| (r.value.sensor, r.value.version))
            .collect();
        got.sort();
        assert_eq!(got, vec![(0, 9), (1, 10), (2, 8)]);
        assert_eq!(c.lost(), 0);
    }

    #[tokio::test]
    async fn start_at_a_time_reads_from_the_first_record_appended_then() {
        let bus = EmbeddedBus::new(100);
        bus.publish(vec![reading(1, 1), reading(1, 2)])
            .await
            .expect("publish");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let t = now_ms();
        bus.publish(vec![reading(1, 3)]).await.expect("publish");
        let mut c = bus
            .subscribe::<SensorReading>(StartAt::Time(t), None)
            .expect("subscribe");
        let got: Vec<i64> = c
            .try_batch(10)
            .expect("read")
            .iter()
            .map(|r| r.value.t_ms)
            .collect();
        assert_eq!(got, vec![3]);
        let mut future = bus
            .subscribe::<SensorReading>(StartAt::Time(t + 60_000), None)
            .expect("subscribe");
        assert!(future.try_batch(10).expect("read").is_empty(), "nothing yet");
    }

    #[tokio::test]
    async fn a_reopened_bus_has_its_tables_and_the_events_within_the_age_limit() {
        let dir = tempfile::tempdir().expect("tmp");
        let keep_all = Retention {
            records: 100,
            max_age: None,
        };
        let bus = EmbeddedBus::open(dir.path(), keep_all).expect("opens");
        bus.publish((1..=3).map(|v| setpoint(1, v)).collect())
            .await
            .expect("durable");
        bus.publish(vec![reading(1, 10), reading(2, 11)])
            .await
            .expect("publish");
        bus.close().expect("closes");
        assert!(
            bus.publish(vec![reading(1, 12)]).await.is_ok(),
            "an event after close stays in memory only"
        );
        assert!(
            bus.publish(vec![setpoint(1, 4)]).await.is_err(),
            "a table record after close is refused"
        );
        drop(bus);

        let again = EmbeddedBus::open(dir.path(), keep_all).expect("reopens");
        let versions = |bus: &EmbeddedBus| -> Vec<u64> {
            bus.subscribe::<SetpointChange>(StartAt::Beginning, None)
                .expect("subscribe")
                .try_batch(100)
                .expect("read")
                .iter()
                .map(|r| r.value.version)
                .collect()
        };
        assert_eq!(versions(&again), vec![1, 2, 3]);
        let readings: Vec<i64> = again
            .subscribe::<SensorReading>(StartAt::Beginning, None)
            .expect("subscribe")
            .try_batch(100)
            .expect("read")
            .iter()
            .map(|r| r.value.t_ms)
            .collect();
        assert_eq!(readings, vec![10, 11]);
        // New records continue the offsets.
        again.publish(vec![setpoint(1, 4)]).await.expect("durable");
        assert_eq!(versions(&again), vec![1, 2, 3, 4]);
        again.close().expect("closes");
        drop(again);

        std::thread::sleep(std::time::Duration::from_millis(20));
        let short = Retention {
            records: 100,
            max_age: Some(std::time::Duration::from_millis(10)),
        };
        let aged = EmbeddedBus::open(dir.path(), short).expect("reopens");
        assert_eq!(versions(&aged), vec![1, 2, 3, 4], "tables are not aged out");
        assert!(
            aged.subscribe::<SensorReading>(StartAt::Beginning, None)
                .expect("subscribe")
                .try_batch(100)
                .expect("read")
                .is_empty(),
            "events older than the age limit are gone"
        );
        aged.close().expect("closes");
    }

    #[tokio::test]
    async fn pruning_deletes_aged_and_excess_events_from_the_data_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let three = Retention {
            records: 3,
            max_age: None,
        };
        let bus = EmbeddedBus::open(dir.path(), three).expect("opens");
        bus.publish((0..5).map(|t| reading(1, t)).collect())
            .await
            .expect("publish");
        bus.prune();
        bus.close().expect("closes");
        drop(bus);
        let roomy = Retention {
            records: 100,
            max_age: None,
        };
        let times = |bus: &EmbeddedBus| -> Vec<i64> {
            bus.subscribe::<SensorReading>(StartAt::Beginning, None)
                .expect("subscribe")
                .try_batch(100)
                .expect("read")
                .iter()
                .map(|r| r.value.t_ms)
                .collect()
        };
        let again = EmbeddedBus::open(dir.path(), roomy).expect("reopens");
        assert_eq!(times(&again), vec![2, 3, 4], "the record bound reached the disk");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let aged = EmbeddedBus {
            retention: Retention {
                records: 100,
                max_age: Some(std::time::Duration::from_millis(10)),
            },
            ..again.clone()
        };
        aged.prune();
        assert!(times(&again).is_empty(), "aged out in memory");
        again.close().expect("closes");
        drop((again, aged));
        let last = EmbeddedBus::open(dir.path(), roomy).expect("reopens");
        assert!(
            times(&last).is_empty(),
            "and on disk, even for a reader without an age limit"
        );
        last.close().expect("closes");
    }
}
