//! One stream of the embedded bus: an append-only log with offsets and append times, bounded in records
//! (tables compacted to the newest record per key) and, for events, in age; optionally mirrored into the
//! data file.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use setpoint_control::TimeMs;
use tokio::sync::Notify;

use crate::bus::store::{Encoded, Store, StoreError};
use crate::bus::{Offset, Payload, Record, StreamKind};

/// Fewest records a changelog holds before it is compacted for being half stale.
const MIN_COMPACTION: usize = 4_096;

/// One record in a log: its offset, when it was appended (what a consumer starting at a time seeks by,
/// like Kafka's record timestamps), and the value.
pub(super) struct Entry<T> {
    offset: Offset,
    ts: TimeMs,
    value: T,
}

/// One stream.
pub(super) struct Log<T> {
    pub(super) stream: StreamKind,
    inner: Mutex<LogInner<T>>,
    pub(super) appended: Notify,
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
    /// Records left by the last compaction: a changelog is compacted again once as many have been added.
    clean: usize,
}

impl<T: Payload> Log<T> {
    /// What one record takes in memory (its offset, append time and value), the unit of a byte bound.
    pub(super) const RECORD_BYTES: usize = std::mem::size_of::<Entry<T>>();

    pub(super) fn new(retention: usize, store: Option<Store>) -> Self {
        Self {
            stream: T::STREAM,
            inner: Mutex::new(LogInner {
                records: VecDeque::new(),
                next_offset: 0,
                last_ts: 0,
                clean: 0,
            }),
            appended: Notify::new(),
            retention: retention.max(1),
            compacted: T::STREAM.is_table(),
            store,
        }
    }

    /// Fills a new log from the store, dropping events older than `cutoff`.
    pub(super) fn restore(
        &self,
        records: Vec<Encoded>,
        cutoff: Option<TimeMs>,
        path: &Path,
    ) -> Result<(), StoreError> {
        let mut entries = Vec::with_capacity(records.len());
        let mut next_offset = 0;
        for (offset, ts, bytes) in records {
            next_offset = offset + 1;
            if !self.compacted && cutoff.is_some_and(|c| ts < c) {
                continue;
            }
            let value = T::decode(None, &bytes, ts).map_err(|e| StoreError::Damaged {
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
    pub(super) fn append(
        self: &Arc<Self>,
        values: Vec<T>,
        now: TimeMs,
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
        // Never before the last append: a clock stepped back must not make a later record look older.
        let ts = now.max(inner.last_ts);
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

    fn push(&self, inner: &mut LogInner<T>, mut entries: Vec<Entry<T>>) {
        if !self.compacted {
            // A batch longer than the log keeps only its end, as if appended record by record.
            entries.drain(..entries.len().saturating_sub(self.retention));
            // Room made before the append, so a full log never doubles its allocation to hold one batch.
            let over = (inner.records.len() + entries.len()).saturating_sub(self.retention);
            inner.records.drain(..over.min(inner.records.len()));
        }
        // Grown by doubling, but never past the retention: a full log of a million records would otherwise
        // sit in an allocation for two.
        let (len, capacity) = (inner.records.len(), inner.records.capacity());
        let need = len + entries.len();
        if need > capacity {
            let target = capacity.saturating_mul(2).min(self.retention).max(need);
            inner.records.reserve_exact(target - len);
        }
        inner.records.extend(entries);
        self.enforce_retention(inner);
    }

    fn enforce_retention(&self, inner: &mut LogInner<T>) {
        let len = inner.records.len();
        // The changelog is read only for its latest record per key, so it is compacted as Kafka would with
        // `min.cleanable.dirty.ratio` 0.5: once half of it is superseded records, not only when full (a
        // building of 100,000 heaters would otherwise hold a million changelog records, most of them
        // stale). Setpoints and schedules keep their older records until full: the bridge's change history
        // is read back from them.
        let dirty = self.stream == StreamKind::ControllerState && len >= 2 * inner.clean.max(MIN_COMPACTION);
        if self.compacted && (len > self.retention || dirty) {
            compact(&mut inner.records);
            inner.clean = inner.records.len();
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
    pub(super) fn read(&self, position: Offset, max: usize) -> (Vec<Record<T>>, Offset, u64) {
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

    /// Records held and the room allocated for them (what the bounds are about).
    #[cfg(test)]
    pub(super) fn allocated(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.records.len(), inner.records.capacity())
    }

    pub(super) fn end(&self) -> Offset {
        let inner = self.lock();
        inner.records.back().map_or(inner.next_offset, |e| e.offset + 1)
    }

    /// The offset of the first record appended at or after `t_ms`.
    pub(super) fn offset_at(&self, t_ms: TimeMs) -> Offset {
        let inner = self.lock();
        let i = inner.records.partition_point(|e| e.ts < t_ms);
        inner.records.get(i).map_or(inner.next_offset, |e| e.offset)
    }
}

/// What the pruning thread needs of a log, whatever its record type.
pub(super) trait Prune: Send + Sync {
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
