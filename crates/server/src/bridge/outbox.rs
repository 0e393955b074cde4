//! One client's bounded queue of outgoing frames.
//!
//! The hub pushes into every client's outbox and never waits for a socket, so a slow client cannot stall
//! the hub, other clients or the controller. Control frames (decisions, setpoints, acks, errors) are never
//! dropped; if a client lets too many of them pile up it is disconnected (it resyncs from `hello` when it
//! comes back). Readings batches are shared between clients (encoded once); a client that falls behind has
//! its queued readings coalesced to the latest per sensor, with a count of what it missed. The hub hands it
//! only the readings of the rooms the client watches. A message for this client alone (an answer, a room's
//! history) is queued as it is and encoded by the connection's writer, not under the hub's lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use setpoint_control::SensorId;
use setpoint_control::SensorReading;
use setpoint_wire::ws::{ReadingsBatch, ServerMessage};
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Readings batches queued before coalescing starts: about one second at the 50 ms flush interval.
pub const MAX_QUEUED_BATCHES: usize = 20;

/// Control frames a client may have unread before it is disconnected as hopelessly slow.
pub const MAX_QUEUED_CONTROL: usize = 10_000;

/// Most readings in one frame of a slow client's latest-per-room readings (as a history's pieces).
const COALESCED_FRAME_ITEMS: usize = 5_000;

/// A readings batch encoded once and shared by every client it is for.
pub struct SharedBatch {
    pub items: Vec<SensorReading>,
    pub json: Frame,
}

impl SharedBatch {
    /// A live batch of these readings, encoded.
    pub fn new(items: Vec<SensorReading>) -> Arc<Self> {
        let json = ServerMessage::Readings(ReadingsBatch {
            items: items.clone(),
            missed: 0,
            backfill: false,
        })
        .to_json();
        Arc::new(Self {
            items,
            json: json.into(),
        })
    }
}

/// An encoded frame. `Utf8Bytes` is what the WebSocket sends, and cloning it only bumps a reference count:
/// a batch encoded once goes to every client without a copy per client.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// What the writer task takes out in one go.
pub struct Drained {
    pub frames: Vec<Frame>,
    /// The client let control frames pile up past the limit; close the connection.
    pub overflowed: bool,
}

/// A queued frame that must not be lost: encoded already (shared with other clients), or not yet.
enum Outgoing {
    Frame(Frame),
    Message(Box<ServerMessage>),
}

#[derive(Default)]
struct State {
    control: VecDeque<Outgoing>,
    batches: VecDeque<Arc<SharedBatch>>,
    /// Latest reading per sensor once the client fell behind.
    coalesced: HashMap<SensorId, SensorReading>,
    missed: u64,
    overflowed: bool,
}

/// The outbox; shared between the hub (producer) and the connection's writer (consumer).
#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a message that must not be lost, encoded for this client alone (answers, errors). Error
    /// frames are counted here, the one place every error a client is sent passes.
    pub fn push_message(&self, message: ServerMessage, metrics: &Metrics) {
        if matches!(message, ServerMessage::Error(_)) {
            metrics
                .ws_errors_sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.push(Outgoing::Message(Box::new(message)));
    }

    /// The client now watches only the rooms `covers` says: what is still queued of the others — live
    /// readings, readings kept for a slow client, rooms' histories — is dropped. Without this a reading
    /// queued before the change would reach the client after it (a room it left), or twice (in a room's
    /// history and live, had it left and come back before its queue was sent).
    pub fn keep_only(&self, covers: impl Fn(SensorId) -> bool) {
        let mut s = self.lock();
        let s = &mut *s;
        s.coalesced.retain(|sensor, _| covers(*sensor));
        for batch in s.batches.iter_mut() {
            if batch.items.iter().any(|i| !covers(i.sensor)) {
                let kept = batch.items.iter().copied().filter(|i| covers(i.sensor)).collect();
                *batch = SharedBatch::new(kept);
            }
        }
        s.batches.retain(|b| !b.items.is_empty());
        s.control.retain_mut(|queued| match queued {
            Outgoing::Message(m) => match m.as_mut() {
                ServerMessage::Readings(b) if b.backfill => {
                    b.items.retain(|i| covers(i.sensor));
                    !b.items.is_empty()
                }
                ServerMessage::Decisions(b) if b.backfill => {
                    b.items.retain(|d| covers(d.sensor));
                    !b.items.is_empty()
                }
                _ => true,
            },
            Outgoing::Frame(_) => true,
        });
    }

    /// Queues a frame that must not be lost.
    pub fn push_control(&self, frame: Frame) {
        self.push(Outgoing::Frame(frame));
    }

    fn push(&self, outgoing: Outgoing) {
        {
            let mut s = self.lock();
            if s.control.len() >= MAX_QUEUED_CONTROL {
                s.overflowed = true;
            } else {
                s.control.push_back(outgoing);
            }
        }
        self.ready.notify_one();
    }

    /// Queues a readings batch. Returns how many readings were coalesced away by this call, for metrics.
    pub fn push_readings(&self, batch: &Arc<SharedBatch>) -> u64 {
        let dropped = {
            let mut s = self.lock();
            let s = &mut *s;
            if batch.items.is_empty() {
                return 0;
            }
            let behind = !s.coalesced.is_empty() || s.batches.len() >= MAX_QUEUED_BATCHES;
            if !behind {
                s.batches.push_back(Arc::clone(batch));
                0
            } else {
                let mut dropped = 0;
                let queued: Vec<Arc<SharedBatch>> = s.batches.drain(..).collect();
                for item in queued
                    .iter()
                    .flat_map(|b| b.items.iter())
                    .chain(batch.items.iter())
                {
                    if let Some(old) = s.coalesced.insert(item.sensor, *item) {
                        dropped += 1;
                        if old.t_ms > item.t_ms {
                            s.coalesced.insert(item.sensor, old);
                        }
                    }
                }
                s.missed += dropped;
                dropped
            }
        };
        self.ready.notify_one();
        dropped
    }

    /// Waits until something is queued.
    pub async fn wait(&self) {
        self.ready.notified().await;
    }

    /// Takes everything queued: control frames first (they are small and urgent), then readings.
    pub fn drain(&self) -> Drained {
        let (control, batches, coalesced, overflowed) = {
            let mut s = self.lock();
            let control: Vec<Outgoing> = s.control.drain(..).collect();
            let batches: Vec<Arc<SharedBatch>> = s.batches.drain(..).collect();
            let coalesced = (!s.coalesced.is_empty()).then(|| {
                let items: Vec<SensorReading> = s.coalesced.drain().map(|(_, v)| v).collect();
                (items, std::mem::take(&mut s.missed))
            });
            (control, batches, coalesced, s.overflowed)
        };
        // Encoded here, outside every lock: a room's history can be megabytes.
        let mut frames: Vec<Frame> = control
            .into_iter()
            .map(|o| match o {
                Outgoing::Frame(f) => f,
                Outgoing::Message(m) => m.to_json().into(),
            })
            .collect();
        frames.extend(batches.iter().map(|b| b.json.clone()));
        if let Some((mut items, missed)) = coalesced {
            // One reading per room for a client of every room: split, so no frame outgrows the limit
            // whatever the number of rooms; the count of what it missed rides on the last piece.
            items.sort_by_key(|i| (i.t_ms, i.sensor));
            let pieces = items.len().div_ceil(COALESCED_FRAME_ITEMS);
            for (n, piece) in items.chunks(COALESCED_FRAME_ITEMS).enumerate() {
                let batch = ReadingsBatch {
                    items: piece.to_vec(),
                    missed: if n + 1 == pieces { missed } else { 0 },
                    backfill: false,
                };
                frames.push(ServerMessage::Readings(batch).to_json().into());
            }
        }
        Drained { frames, overflowed }
    }

    /// Readings batches currently queued (for tests and metrics).
    pub fn queued_batches(&self) -> usize {
        self.lock().batches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(t_ms: i64, sensors: &[i32]) -> Arc<SharedBatch> {
        let items: Vec<SensorReading> = sensors
            .iter()
            .map(|&sensor| SensorReading {
                sensor,
                t_ms,
                temperature: 20.0,
            })
            .collect();
        SharedBatch::new(items)
    }

    #[test]
    fn a_slow_client_gets_the_latest_reading_per_sensor_and_a_missed_count() {
        let outbox = Outbox::default();
        let mut dropped = 0;
        for t in 0..1000 {
            dropped += outbox.push_readings(&batch(t, &[1, 2, 3]));
        }
        assert!(outbox.queued_batches() <= MAX_QUEUED_BATCHES);
        let drained = outbox.drain();
        assert_eq!(drained.frames.len(), 1);
        let Ok(ServerMessage::Readings(b)) = ServerMessage::from_json(drained.frames[0].as_str()) else {
            panic!("readings")
        };
        assert_eq!(
            b.items.iter().map(|i| (i.sensor, i.t_ms)).collect::<Vec<_>>(),
            vec![(1, 999), (2, 999), (3, 999)]
        );
        assert_eq!(b.missed, 3000 - 3);
        assert_eq!(dropped, b.missed);
    }

    #[test]
    fn control_frames_are_kept_in_order_and_overflow_is_flagged() {
        let outbox = Outbox::default();
        for i in 0..MAX_QUEUED_CONTROL {
            outbox.push_control(format!("{i}").into());
        }
        assert!(!outbox.drain().overflowed);
        for i in 0..=MAX_QUEUED_CONTROL {
            outbox.push_control(format!("{i}").into());
        }
        let d = outbox.drain();
        assert!(d.overflowed);
        assert_eq!(d.frames[0].as_str(), "0");
    }

    #[test]
    fn a_change_of_watch_drops_what_is_queued_of_the_rooms_left() {
        let outbox = Outbox::default();
        let history = ServerMessage::Readings(ReadingsBatch {
            items: batch(1, &[1, 2]).items.clone(),
            missed: 0,
            backfill: true,
        });
        outbox.push_message(history, &Metrics::default());
        outbox.push_readings(&batch(2, &[1, 2, 3]));
        outbox.keep_only(|room| room == 2);
        let sensors: Vec<Vec<i32>> = outbox
            .drain()
            .frames
            .iter()
            .map(|f| match ServerMessage::from_json(f.as_str()) {
                Ok(ServerMessage::Readings(b)) => b.items.iter().map(|i| i.sensor).collect(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sensors, vec![vec![2], vec![2]]);
    }

    #[test]
    fn a_slow_client_of_every_room_gets_its_catch_up_in_frames_of_bounded_size() {
        let outbox = Outbox::default();
        let rooms: Vec<i32> = (0..12_000).collect();
        for t in 0..=MAX_QUEUED_BATCHES as i64 {
            outbox.push_readings(&batch(t, &rooms));
        }
        let frames = outbox.drain().frames;
        let batches: Vec<ReadingsBatch> = frames
            .iter()
            .filter_map(|f| match ServerMessage::from_json(f.as_str()) {
                Ok(ServerMessage::Readings(b)) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(
            batches.iter().map(|b| b.items.len()).collect::<Vec<_>>(),
            vec![5_000, 5_000, 2_000]
        );
        let missed: u64 = batches.iter().map(|b| b.missed).sum();
        assert_eq!(
            missed,
            12_000 * MAX_QUEUED_BATCHES as u64,
            "counted once, on the last piece"
        );
        assert_eq!(batches.last().map(|b| b.missed), Some(missed));
    }
}
