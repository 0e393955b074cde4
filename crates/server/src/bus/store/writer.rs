//! The data file's writer thread: group commits in order, and what it holds on to while the file cannot be
//! written (see the parent module's documentation for the rules).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Instant;

use redb::{Database, Durability};

use super::{
    table, Done, Encoded, Shared, StoreHealth, COMMIT_INTERVAL, MAX_UNPERSISTED, OFFSETS, RETRY_INTERVAL,
};
use crate::bus::{Offset, StreamKind};

pub(super) enum Op {
    Append {
        stream: StreamKind,
        records: Vec<Encoded>,
        done: Option<Done>,
    },
    /// Deletes the records below an offset (retention).
    Truncate { stream: StreamKind, below: Offset },
    /// Keeps only these offsets at or below the largest of them (compaction).
    Keep {
        stream: StreamKind,
        offsets: Vec<Offset>,
    },
    /// A consumer group's position in a stream.
    Commit { key: String, offset: Offset },
    /// Commits what is queued and reports; with `close`, the thread then stops.
    Sync {
        reply: Sender<Result<(), String>>,
        close: bool,
    },
}

impl Op {
    /// Someone waits for this op's commit: do not hold it back for more events.
    pub(super) fn urgent(&self) -> bool {
        matches!(self, Op::Append { done: Some(_), .. } | Op::Sync { .. })
    }
}

/// The writer thread: applies the ops in order, as group commits, and holds on to them while the file
/// cannot be written.
pub(super) struct Writer {
    db: Shared,
    path: PathBuf,
    health: Arc<StoreHealth>,
    /// Ops received and not yet committed, oldest first: non-empty only while writes fail.
    pending: VecDeque<Op>,
}

impl Writer {
    pub(super) fn new(db: Shared, path: PathBuf, health: Arc<StoreHealth>) -> Self {
        Self {
            db,
            path,
            health,
            pending: VecDeque::new(),
        }
    }

    pub(super) fn run(mut self, ops: Receiver<Op>) {
        loop {
            // With nothing held back, wait for work; otherwise wake to retry.
            let first = if self.pending.is_empty() {
                match ops.recv() {
                    Ok(op) => Some(op),
                    Err(_) => return,
                }
            } else {
                match ops.recv_timeout(RETRY_INTERVAL) {
                    Ok(op) => Some(op),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let mut batch: Vec<Op> = first.into_iter().collect();
            let deadline = Instant::now() + COMMIT_INTERVAL;
            while !batch.is_empty() && !batch.iter().any(Op::urgent) {
                match ops.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(op) => batch.push(op),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            batch.extend(ops.try_iter());
            self.pending.extend(batch);
            if self.write() {
                return;
            }
        }
    }

    /// Commits everything pending, answers whoever waits, and keeps what must be retried. Returns whether
    /// a close was asked.
    fn write(&mut self) -> bool {
        let result = self.commit().map_err(|e| e.to_string());
        let mut close = false;
        match &result {
            Ok(()) => {
                if let Some(was) = self.health.problem() {
                    tracing::warn!(path = %self.path.display(), "the data file can be written again (it could not: {was}); everything held in memory is now on disk");
                }
                self.health.set(None);
                for op in self.pending.drain(..) {
                    match op {
                        Op::Append { done: Some(done), .. } => done(Ok(())),
                        Op::Sync { reply, close: c } => {
                            close |= c;
                            let _ = reply.send(Ok(()));
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => {
                if self.health.problem().is_none() {
                    tracing::error!(path = %self.path.display(), "writing the data file failed: {e}; setpoint writes are refused and readings, commands and controller state are kept in memory until it can be written again (retried every {RETRY_INTERVAL:?})");
                }
                self.health.set(Some(e.clone()));
                // redb refuses every operation after a failed write until the file is reopened.
                self.reopen();
                let mut kept = VecDeque::with_capacity(self.pending.len());
                for op in self.pending.drain(..) {
                    match op {
                        // Nobody is told "saved" for what is not on disk: the writer's caller refuses it.
                        Op::Append { done: Some(done), .. } => done(Err(e.clone())),
                        Op::Sync { reply, close: c } => {
                            close |= c;
                            let _ = reply.send(Err(e.clone()));
                        }
                        other => kept.push_back(other),
                    }
                }
                self.pending = kept;
                self.bound();
                if close {
                    tracing::error!(
                        path = %self.path.display(),
                        records = self.unpersisted(),
                        "closing with records that could not be written to the data file: they are lost"
                    );
                }
            }
        }
        self.health.unpersisted.store(self.unpersisted(), Relaxed);
        close
    }

    fn unpersisted(&self) -> u64 {
        self.pending
            .iter()
            .map(|op| match op {
                Op::Append { records, .. } => records.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Gives up the oldest event appends while more than [`MAX_UNPERSISTED`] records are held. Tables
    /// (controller state) and offsets are kept: they are what a restart resumes from.
    fn bound(&mut self) {
        let mut held = self.unpersisted();
        let mut given_up = 0u64;
        self.pending.retain(|op| match op {
            Op::Append { stream, records, .. } if held > MAX_UNPERSISTED as u64 && !stream.is_table() => {
                held -= records.len() as u64;
                given_up += records.len() as u64;
                false
            }
            _ => true,
        });
        if given_up > 0 {
            tracing::error!(path = %self.path.display(), records = given_up, "the data file still cannot be written: the oldest readings and commands held for it are given up (they stay in memory, within retention)");
        }
    }

    /// Drops the database (its lock with it) and opens the file again; on failure the next write tries
    /// again.
    fn reopen(&self) {
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        *slot = None;
        match super::open_database(&self.path) {
            Ok(db) => *slot = Some(Arc::new(db)),
            Err(e) => tracing::debug!(path = %self.path.display(), "reopening the data file failed: {e}"),
        }
    }

    fn commit(&self) -> Result<(), redb::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let db = {
            let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(Arc::new(super::open_database(&self.path)?));
            }
            slot.clone()
        };
        let Some(db) = db else {
            return Ok(());
        };
        commit(&db, &self.pending)
    }
}

fn commit<'a>(db: &Database, batch: impl IntoIterator<Item = &'a Op>) -> Result<(), redb::Error> {
    let mut write = db.begin_write()?;
    write
        .set_durability(Durability::Immediate)
        .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
    for op in batch {
        match op {
            Op::Append { stream, records, .. } => {
                let mut t = write.open_table(table(*stream))?;
                let mut value = Vec::new();
                for (offset, ts, payload) in records {
                    value.clear();
                    value.extend_from_slice(&ts.to_le_bytes());
                    value.extend_from_slice(payload);
                    t.insert(*offset, value.as_slice())?;
                }
            }
            Op::Truncate { stream, below } => {
                let mut t = write.open_table(table(*stream))?;
                t.retain_in(..*below, |_, _| false)?;
            }
            Op::Keep { stream, offsets } => {
                let Some(&last) = offsets.iter().max() else {
                    continue;
                };
                let keep: std::collections::HashSet<Offset> = offsets.iter().copied().collect();
                let mut t = write.open_table(table(*stream))?;
                t.retain_in(..=last, |offset, _| keep.contains(&offset))?;
            }
            Op::Commit { key, offset } => {
                let mut t = write.open_table(OFFSETS)?;
                t.insert(key.as_str(), *offset)?;
            }
            Op::Sync { .. } => {}
        }
    }
    write.commit()?;
    Ok(())
}
