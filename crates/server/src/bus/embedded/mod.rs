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
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use setpoint_control::{Decision, TimeMs};
use setpoint_wire::ws::BusStatus;

mod log;

use log::{Log, Prune};

use super::store::{Store, StoreError};
use super::{
    Bus, BusError, Consumer, HeaterMemoryRecord, Offset, Payload, Record, ScheduleRecord, SensorReading,
    SetpointChange, StartAt, StreamKind,
};
use crate::clock::Clock;

/// Retention of each log, in records. At 10 k readings/s this is 100 s of history, far more than a healthy
/// consumer lags: about 40 MB of readings in memory.
pub const DEFAULT_RETENTION: usize = 1 << 20;

/// Retention of each event log (readings, commands), in bytes of memory: with the default record bound it
/// does not bind (a million readings take 40 MB, commands 48 MB); set lower, it bounds a large site's memory
/// and data file by size whatever the record sizes.
pub const DEFAULT_RETENTION_BYTES: usize = 64 << 20;

/// Retention of the event logs (readings, commands), by age.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How often old events are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

/// How long the logs keep records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Records per log (tables keep the newest per key beyond it).
    pub records: usize,
    /// Bytes per event log, as held in memory (each record's offset, append time and value);
    /// the data file holds the same records. Tables are bounded by `records` only.
    pub bytes: usize,
    /// Age of the oldest event kept; `None` keeps events until the record bound pushes them out.
    pub max_age: Option<Duration>,
}

impl Retention {
    /// What a log of `T` may hold, in records.
    fn records_of<T: Payload>(&self) -> usize {
        if T::STREAM.is_table() {
            self.records
        } else {
            self.records.min(self.bytes / Log::<T>::RECORD_BYTES)
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            records: DEFAULT_RETENTION,
            bytes: DEFAULT_RETENTION_BYTES,
            max_age: Some(DEFAULT_MAX_AGE),
        }
    }
}

/// The in-process bus used by `setpoint run` without `--kafka`. Cloning shares the logs.
#[derive(Clone)]
pub struct EmbeddedBus {
    logs: Arc<Mutex<Logs>>,
    retention: Retention,
    store: Option<Store>,
    /// Stamps appends (what a consumer starting at a time seeks by) and dates the age limit.
    clock: Clock,
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
            bytes: usize::MAX,
            max_age: None,
        })
    }

    /// An in-memory bus.
    pub fn in_memory(retention: Retention) -> Self {
        Self {
            logs: Arc::new(Mutex::new(HashMap::new())),
            retention,
            store: None,
            clock: Clock::system(),
        }
    }

    /// The same bus (sharing its logs), with its time read from `clock`.
    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// A bus kept in `dir`: what earlier runs published there is back, and what this one publishes stays.
    /// Fails with a clear error if another process uses `dir` or its data file is damaged.
    pub fn open(dir: &Path, retention: Retention) -> Result<Self, StoreError> {
        Self::open_with_clock(dir, retention, Clock::system())
    }

    /// [`EmbeddedBus::open`], with the time read from `clock` (restoring prunes by age as of its now).
    pub fn open_with_clock(dir: &Path, retention: Retention, clock: Clock) -> Result<Self, StoreError> {
        let store = Store::open(dir)?;
        let bus = Self {
            logs: Arc::new(Mutex::new(HashMap::new())),
            retention,
            store: Some(store.clone()),
            clock,
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
            .map(|age| self.clock.now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
    }

    /// Prunes old events every [`PRUNE_INTERVAL`] until the bus is dropped.
    fn prune_in_background(&self) {
        let logs: Weak<Mutex<Logs>> = Arc::downgrade(&self.logs);
        let (retention, clock) = (self.retention, self.clock.clone());
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
                    clock: clock.clone(),
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
            let log = Arc::new(Log::<T>::new(
                self.retention.records_of::<T>(),
                self.store.clone(),
            ));
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
        let now = self.clock.now_ms();
        let durable = self.log::<T>().map(|log| log.append(values, now));
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
mod tests;
