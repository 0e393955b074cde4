//! The embedded bus's durable copy: every stream's log in one redb file, written by one thread.
//!
//! Why redb: it is an embedded, pure-Rust, ACID key-value store with no C to build and no dependencies of its
//! own (SQLite would bring a C build, fjall an LSM tree and its compaction threads for a write load of a few
//! thousand small records per second). Its commits are copy-on-write with a checksummed commit slot, so a
//! crash — `kill -9` included — leaves the last committed transaction intact; it takes an exclusive lock on
//! the file, which is what refuses a second process on the same directory; and it reports a damaged file as
//! an error instead of starting empty.
//!
//! Each stream is one table, offset → (append time, protobuf value): the same record encoding as on Kafka.
//! One writer thread applies what the logs hand it, in order, as *group commits*: events (readings,
//! commands) and the controller's changelog are batched for up to [`COMMIT_INTERVAL`]; a setpoint or
//! schedule record is committed at once, with everything queued before it, and only then enters the
//! in-memory log — so anything a reader sees of those, and any ack given for them, is already on disk. Every commit is
//! `Durability::Immediate` (fsync): at most one [`COMMIT_INTERVAL`] of readings and decisions is lost to a
//! crash, and no setpoint that was acknowledged.
//!
//! **When the file cannot be written** (disk full, an I/O error): what waits for its durability — a
//! setpoint, a schedule — is refused with the cause, so nothing is acknowledged that is not on disk; every
//! other operation stays queued, in order, and is retried every [`RETRY_INTERVAL`] (redb refuses every
//! operation after a failed write until the file is reopened, so the writer reopens it first). What is on
//! disk is therefore always a prefix of what the process did, and once a write succeeds again everything
//! queued lands and setpoints are accepted again, without a restart. The queue is bounded
//! ([`MAX_UNPERSISTED`] records); past it the oldest *events* are given up (counted and logged), never a
//! table record or a committed offset. [`StoreHealth`] says all of this to `/readyz` and `/metrics`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Offset, StreamKind};
use setpoint_control::TimeMs;

/// Longest time an event record waits for its commit.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// How often a data file that could not be written is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Most records held in memory for a data file that cannot be written; beyond it the oldest events are given
/// up. At 100 rooms (30 records/s) this is over nine hours of a full disk; at 10,000 readings/s, 100 s.
pub const MAX_UNPERSISTED: usize = 1 << 20;

/// Whether the data file can be written, for `/readyz`, `/metrics` and the log. Shared by the writer thread
/// and the bus.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Why the last write failed; `None` while writes succeed.
    failing: Mutex<Option<String>>,
    /// Records accepted in memory and not yet on disk because writes fail.
    unpersisted: AtomicU64,
    /// Events given up because the queue reached [`MAX_UNPERSISTED`].
    given_up: AtomicU64,
}

impl StoreHealth {
    /// Why the data file cannot be written now; `None` if it can.
    pub fn problem(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn unpersisted(&self) -> u64 {
        self.unpersisted.load(Relaxed)
    }

    pub fn given_up(&self) -> u64 {
        self.given_up.load(Relaxed)
    }

    fn set(&self, problem: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }
}

/// The open database, replaced by the writer when a failed write makes redb refuse it until reopened.
type Shared = Arc<RwLock<Option<Arc<Database>>>>;

/// The data file inside the data directory.
pub const FILE_NAME: &str = "setpoint.redb";

/// Marks a file as ours, and its layout version.
const FORMAT: &[u8] = b"setpoint-store-1";
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Consumer groups' committed positions, `group/stream` → next offset (Kafka's `__consumer_offsets`).
const OFFSETS: TableDefinition<&str, u64> = TableDefinition::new("offsets");

/// A record as stored: offset, append time, encoded value.
pub type Encoded = (Offset, TimeMs, Vec<u8>);

/// Called by the writer thread once a batch is committed (or failed).
pub type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Why the data directory cannot be used. Every message names the path, so the operator knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "another setpoint process is using the data directory {0} (its data file is locked): stop that \
         process, or give this one another --data-dir"
    )]
    Locked(PathBuf),
    #[error(
        "the data file {path} is damaged ({detail}); it was left untouched: restore it from a backup, or \
         move it away to start with an empty one"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn table(stream: StreamKind) -> TableDefinition<'static, u64, &'static [u8]> {
    TableDefinition::new(match stream {
        StreamKind::Readings => "readings",
        StreamKind::Setpoints => "setpoints",
        StreamKind::Commands => "commands",
        StreamKind::ControllerState => "controller_state",
        StreamKind::Schedules => "schedules",
    })
}

enum Op {
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
    fn urgent(&self) -> bool {
        matches!(self, Op::Append { done: Some(_), .. } | Op::Sync { .. })
    }
}

/// The open data file. Cloning shares it.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    db: Shared,
    ops: Sender<Op>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
    health: Arc<StoreHealth>,
}

impl Store {
    /// Opens (or creates) the data file in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let damaged = |detail: String| StoreError::Damaged {
            path: path.clone(),
            detail,
        };
        let existed = match std::fs::metadata(&path) {
            // redb would initialise an empty file as a new database: a file that lost its contents must
            // not become a silent empty start.
            Ok(m) if m.len() == 0 => return Err(damaged("the file is empty".into())),
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let db = Database::create(&path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(dir.to_owned()),
            // redb reports a foreign or mangled header as invalid data.
            DatabaseError::Storage(redb::StorageError::Io(source))
                if source.kind() != std::io::ErrorKind::InvalidData =>
            {
                StoreError::Io {
                    path: path.clone(),
                    source,
                }
            }
            other => damaged(other.to_string()),
        })?;
        let db = Arc::new(db);
        let fail = |e: redb::Error| damaged(e.to_string());
        if existed {
            let read = db.begin_read().map_err(|e| fail(e.into()))?;
            let format = match read.open_table(META) {
                Ok(meta) => meta
                    .get("format")
                    .map_err(|e| fail(e.into()))?
                    .map(|v| v.value().to_vec()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(fail(e.into())),
            };
            match format {
                Some(f) if f == FORMAT => {}
                Some(f) => {
                    return Err(damaged(format!(
                        "unknown format {:?}",
                        String::from_utf8_lossy(&f)
                    )))
                }
                None => return Err(damaged("not a setpoint data file".into())),
            }
        } else {
            let mut write = db.begin_write().map_err(|e| fail(e.into()))?;
            write
                .set_durability(Durability::Immediate)
                .map_err(|e| damaged(e.to_string()))?;
            {
                let mut meta = write.open_table(META).map_err(|e| fail(e.into()))?;
                meta.insert("format", FORMAT).map_err(|e| fail(e.into()))?;
            }
            write.commit().map_err(|e| fail(e.into()))?;
        }
        let (ops, rx) = mpsc::channel();
        let db: Shared = Arc::new(RwLock::new(Some(db)));
        let health = Arc::new(StoreHealth::default());
        let writer = Writer {
            db: Arc::clone(&db),
            path: path.clone(),
            health: Arc::clone(&health),
            pending: VecDeque::new(),
        };
        let writer = std::thread::Builder::new()
            .name("setpoint-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            db,
            ops,
            writer: Arc::new(Mutex::new(Some(writer))),
            health,
        })
    }

    /// Whether the data file can be written now.
    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// The open database; `None` while the writer reopens it after a failed write.
    fn database(&self) -> Option<Arc<Database>> {
        self.db.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record of `stream`, oldest first. A table that was never written is empty.
    pub fn load(&self, stream: StreamKind) -> Result<Vec<Encoded>, StoreError> {
        let damaged = |e: redb::Error| StoreError::Damaged {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let db = self.database().ok_or_else(|| self.reopening())?;
        let read = db.begin_read().map_err(|e| damaged(e.into()))?;
        let t = match read.open_table(table(stream)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(damaged(e.into())),
        };
        let mut records = Vec::new();
        for entry in t.iter().map_err(|e| damaged(e.into()))? {
            let (offset, value) = entry.map_err(|e| damaged(e.into()))?;
            let bytes = value.value();
            let Some((ts, payload)) = bytes.split_first_chunk::<8>() else {
                return Err(StoreError::Damaged {
                    path: self.path.clone(),
                    detail: format!("record {} of {stream:?} is too short", offset.value()),
                });
            };
            records.push((offset.value(), i64::from_le_bytes(*ts), payload.to_vec()));
        }
        Ok(records)
    }

    /// Queues records for the next commit; `done` (if any) runs once they are durable, or failed.
    pub fn append(&self, stream: StreamKind, records: Vec<Encoded>, done: Option<Done>) {
        if let Err(mpsc::SendError(Op::Append { done: Some(done), .. })) = self.ops.send(Op::Append {
            stream,
            records,
            done,
        }) {
            done(Err("the data file is closed".into()));
        }
    }

    /// Deletes `stream`'s records below `below`.
    pub fn truncate(&self, stream: StreamKind, below: Offset) {
        let _ = self.ops.send(Op::Truncate { stream, below });
    }

    /// Records a consumer group's position in `stream`, with the next commit.
    pub fn commit_offset(&self, group: &str, stream: StreamKind, offset: Offset) {
        let _ = self.ops.send(Op::Commit {
            key: offset_key(group, stream),
            offset,
        });
    }

    /// The position a consumer group committed in `stream`, if any.
    pub fn committed(&self, group: &str, stream: StreamKind) -> Result<Option<Offset>, StoreError> {
        let damaged = |e: redb::Error| StoreError::Damaged {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let db = self.database().ok_or_else(|| self.reopening())?;
        let read = db.begin_read().map_err(|e| damaged(e.into()))?;
        let t = match read.open_table(OFFSETS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(damaged(e.into())),
        };
        let value = t
            .get(offset_key(group, stream).as_str())
            .map_err(|e| damaged(e.into()))?;
        Ok(value.map(|v| v.value()))
    }

    fn reopening(&self) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(format!(
                "the data file is being reopened after a failed write ({})",
                self.health.problem().unwrap_or_default()
            )),
        }
    }

    /// Keeps only `offsets` of `stream` (up to the largest of them): a compaction.
    pub fn keep(&self, stream: StreamKind, offsets: Vec<Offset>) {
        let _ = self.ops.send(Op::Keep { stream, offsets });
    }

    /// Commits everything queued and, with `close`, stops the writer and releases the file (and its
    /// lock) once the last handle is dropped.
    pub fn sync(&self, close: bool) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        self.ops
            .send(Op::Sync { reply, close })
            .map_err(|_| "the data file is closed".to_owned())?;
        let result = answer
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "the data file did not answer".to_owned())?;
        if close {
            let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(handle) = handle {
                let _ = handle.join();
            }
        }
        result
    }
}

fn offset_key(group: &str, stream: StreamKind) -> String {
    format!("{group}/{stream:?}")
}

/// The writer thread: applies the ops in order, as group commits, and holds on to them while the file
/// cannot be written.
struct Writer {
    db: Shared,
    path: PathBuf,
    health: Arc<StoreHealth>,
    /// Ops received and not yet committed, oldest first: non-empty only while writes fail.
    pending: VecDeque<Op>,
}

impl Writer {
    fn run(mut self, ops: Receiver<Op>) {
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
            self.health.given_up.fetch_add(given_up, Relaxed);
            tracing::error!(path = %self.path.display(), records = given_up, "the data file still cannot be written: the oldest readings and commands held for it are given up (they stay in memory, within retention)");
        }
    }

    /// Drops the database (its lock with it) and opens the file again; on failure the next write tries
    /// again.
    fn reopen(&self) {
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        *slot = None;
        match Database::create(&self.path) {
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
                *slot = Some(Arc::new(Database::create(&self.path)?));
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
