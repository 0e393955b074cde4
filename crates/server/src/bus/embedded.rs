//! The embedded bus: each stream an in-memory, bounded, append-only log with offsets, like a one-partition
//! Kafka topic. Publishing never blocks; a consumer that falls further behind than the retention skips
//! ahead and counts what it lost, as a Kafka consumer would after retention deleted a segment.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use setpoint_wire::ws::BusStatus;
use tokio::sync::Notify;

use super::{Bus, BusError, Consumer, Offset, Payload, Record, StartAt, StreamKind};

/// Retention of the readings and commands logs, in records. At 10 k readings/s this is 100 s of history,
/// far more than a healthy consumer lags, and about 3 MB of memory.
pub const DEFAULT_RETENTION: usize = 1 << 20;

/// One stream.
struct Log<T> {
    inner: Mutex<LogInner<T>>,
    appended: Notify,
    retention: usize,
    /// Tables (setpoints, controller state): when full, keep the latest record per key (Kafka's log
    /// compaction) instead of dropping the oldest records.
    compacted: bool,
}

struct LogInner<T> {
    records: VecDeque<(Offset, T)>,
    next_offset: Offset,
}

impl<T: Payload> Log<T> {
    fn new(retention: usize, compacted: bool) -> Self {
        Self {
            inner: Mutex::new(LogInner {
                records: VecDeque::new(),
                next_offset: 0,
            }),
            appended: Notify::new(),
            retention: retention.max(1),
            compacted,
        }
    }

    /// A poisoned lock only means another thread panicked mid-append; the log itself is still consistent
    /// (every mutation is a single push or pop), so keep serving.
    fn lock(&self) -> MutexGuard<'_, LogInner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, values: Vec<T>) {
        if values.is_empty() {
            return;
        }
        {
            let mut inner = self.lock();
            for v in values {
                let offset = inner.next_offset;
                inner.next_offset += 1;
                inner.records.push_back((offset, v));
            }
            if inner.records.len() > self.retention {
                if self.compacted {
                    compact(&mut inner.records);
                }
                while inner.records.len() > self.retention {
                    inner.records.pop_front();
                }
            }
        }
        self.appended.notify_waiters();
    }

    /// Records from `position` on, at most `max`; returns them with the new position and how many records
    /// between `position` and the first returned one were no longer retained.
    fn read(&self, position: Offset, max: usize) -> (Vec<Record<T>>, Offset, u64) {
        let inner = self.lock();
        let start = inner.records.partition_point(|(o, _)| *o < position);
        let batch: Vec<Record<T>> = inner
            .records
            .range(start..)
            .take(max)
            .map(|(offset, value)| Record {
                partition: 0,
                offset: *offset,
                value: value.clone(),
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
        self.lock().next_offset
    }
}

fn compact<T: Payload>(records: &mut VecDeque<(Offset, T)>) {
    let mut latest: HashMap<i32, Offset> = HashMap::new();
    for (offset, v) in records.iter() {
        latest.insert(v.key(), *offset);
    }
    records.retain(|(offset, v)| latest.get(&v.key()) == Some(offset));
}

/// The in-process bus used by `setpoint run` without `--kafka`. Cloning shares the logs.
#[derive(Clone)]
pub struct EmbeddedBus {
    logs: Arc<Mutex<Logs>>,
    retention: usize,
}

/// One log per stream, keyed by the stream's kind, so the bus needs to know nothing about the payload types
/// beyond the [`Payload`] trait. Each entry is a `Log<T>` for the `T` whose `STREAM` is that kind.
type Logs = HashMap<StreamKind, Arc<dyn Any + Send + Sync>>;

impl EmbeddedBus {
    /// A bus whose event logs (readings, commands) keep `retention` records each.
    pub fn new(retention: usize) -> Self {
        Self {
            logs: Arc::new(Mutex::new(HashMap::new())),
            retention,
        }
    }

    /// The log of `T`'s stream, created on first use.
    fn log<T: Payload>(&self) -> Result<Arc<Log<T>>, BusError> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let log = logs
            .entry(T::STREAM)
            .or_insert_with(|| Arc::new(Log::<T>::new(self.retention, T::STREAM.is_table())));
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
        std::future::ready(self.log::<T>().map(|log| log.append(values)))
    }

    fn subscribe<T: Payload>(
        &self,
        start: StartAt,
        _group: Option<&str>,
    ) -> Result<EmbeddedConsumer<T>, BusError> {
        let log = self.log::<T>()?;
        let position = match start {
            StartAt::Beginning => 0,
            StartAt::End => log.end(),
        };
        Ok(EmbeddedConsumer {
            log,
            position,
            lost: 0,
        })
    }

    fn status(&self) -> BusStatus {
        BusStatus::Embedded
    }
}

/// A consumer of one embedded log. With one process there is one member per group, so committing only
/// acknowledges; nothing survives the process anyway.
pub struct EmbeddedConsumer<T> {
    log: Arc<Log<T>>,
    position: Offset,
    lost: u64,
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
}
