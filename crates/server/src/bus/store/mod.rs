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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition};

mod writer;

use writer::{Op, Writer};

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
}

impl StoreHealth {
    /// Why the data file cannot be written now; `None` if it can.
    pub fn problem(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn unpersisted(&self) -> u64 {
        self.unpersisted.load(Relaxed)
    }

    fn set(&self, problem: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }
}

/// The open database, replaced by the writer when a failed write makes redb refuse it until reopened.
type Shared = Arc<RwLock<Option<Arc<Database>>>>;

/// The data file inside the data directory.
pub const FILE_NAME: &str = "setpoint.redb";

/// redb's page cache. Its default is 1 GiB, which a building's stream of appends fills with pages nobody
/// reads again (the logs are read from the file only at start): at 100,000 rooms that was 120 MB more
/// resident after 3 minutes, growing. The interior pages of the tables fit this many times over.
const CACHE_BYTES: usize = 32 << 20;

/// Opens (or creates) the data file with the store's cache size: the one way the store opens it.
pub(super) fn open_database(path: &Path) -> Result<Database, DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

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

/// The table of a stream's records. Names spelled out (they are the file format): see `FORMAT`.
fn table(stream: StreamKind) -> TableDefinition<'static, u64, &'static [u8]> {
    TableDefinition::new(match stream {
        StreamKind::Readings => "readings",
        StreamKind::Setpoints => "setpoints",
        StreamKind::Commands => "commands",
        StreamKind::ControllerState => "controller_state",
        StreamKind::Schedules => "schedules",
    })
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
        let db = open_database(&path).map_err(|e| match e {
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
        let writer = Writer::new(Arc::clone(&db), path.clone(), Arc::clone(&health));
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

/// `group/stream`, with the stream's stored name ([`StreamKind::stored_name`]).
fn offset_key(group: &str, stream: StreamKind) -> String {
    format!("{group}/{}", stream.stored_name())
}
