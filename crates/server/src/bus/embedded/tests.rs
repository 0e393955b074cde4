//! The embedded bus: offsets, retention, compaction, seeking by time, and the data file.

use super::*;
use crate::bus::{SensorReading, SetpointChange};
use setpoint_control::Setpoint;
use std::sync::atomic::Ordering::Relaxed;

fn reading(sensor: i32, t_ms: i64) -> SensorReading {
    SensorReading {
        sensor,
        t_ms,
        temperature: 20.0,
    }
}

/// The system clock 20 ms on: what was just written is then older than a 10 ms age limit, without a sleep.
fn twenty_ms_later() -> Clock {
    Clock::from_fn(|| crate::clock::now_ms() + 20)
}

fn setpoint(sensor: i32, version: u64) -> SetpointChange {
    SetpointChange::new(sensor, Setpoint::new(20.0, 1.0, 1.0), version, "", 0)
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
    // On this single-threaded runtime the waiter runs until it waits for a record, and then we publish.
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "nothing to read yet");
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
async fn a_full_event_log_holds_its_retention_in_an_allocation_of_that_size() {
    let bus = EmbeddedBus::new(1_000);
    // Batches of 37: a log grown by plain doubling from there would sit in 1,184 slots.
    for batch in 0..100 {
        bus.publish((0..37).map(|i| reading(i, batch)).collect())
            .await
            .expect("publish");
    }
    let (len, capacity) = bus.log::<SensorReading>().expect("log").allocated();
    assert_eq!((len, capacity), (1_000, 1_000));
    let mut c = bus
        .subscribe::<SensorReading>(StartAt::Beginning, None)
        .expect("subscribe");
    let first = c.try_batch(1).expect("read");
    assert_eq!(
        first.first().map(|r| r.offset),
        Some(3_700 - 1_000),
        "the newest are kept"
    );
}

#[tokio::test]
async fn an_event_log_is_bounded_by_bytes_too_at_the_record_sizes_the_readme_states() {
    assert_eq!(log::Log::<SensorReading>::RECORD_BYTES, 40);
    assert_eq!(log::Log::<Decision>::RECORD_BYTES, 48);
    let bus = EmbeddedBus::in_memory(Retention {
        records: 1 << 20,
        bytes: 40 * 100 + 39,
        max_age: None,
    });
    bus.publish((0..1_000).map(|i| reading(1, i)).collect())
        .await
        .expect("publish");
    assert_eq!(bus.log::<SensorReading>().expect("log").allocated(), (100, 100));
    // Tables are bounded by records only.
    bus.publish((1..=1_000).map(|v| setpoint(1, v)).collect())
        .await
        .expect("publish");
    assert_eq!(bus.log::<SetpointChange>().expect("log").allocated().0, 1_000);
}

#[tokio::test]
async fn the_controllers_changelog_is_compacted_once_half_stale_not_only_when_full() {
    let bus = EmbeddedBus::new(1 << 20);
    let record = |sensor: i32, t: i64| HeaterMemoryRecord {
        sensor,
        memory: setpoint_control::HeaterMemory {
            last_command: Some(setpoint_control::Command::On),
            last_change_ms: Some(t),
            newest_ms: Some(t),
            last_temperature: Some(20.0),
            stale: false,
            cycle: None,
        },
    };
    for t in 0..3_000 {
        bus.publish((0..10).map(|s| record(s, t)).collect())
            .await
            .expect("publish");
    }
    let (len, _) = bus.log::<HeaterMemoryRecord>().expect("log").allocated();
    assert!(len <= 2 * 4_096, "{len} records held for 10 heaters");
    let mut c = bus
        .subscribe::<HeaterMemoryRecord>(StartAt::Beginning, None)
        .expect("subscribe");
    let mut latest = std::collections::HashMap::new();
    for r in c.try_batch(100_000).expect("read") {
        latest.insert(r.value.sensor, r.value.memory.newest_ms);
    }
    assert_eq!(latest.len(), 10);
    assert!(
        latest.values().all(|&t| t == Some(2_999)),
        "each heater's newest record is kept"
    );
    // Setpoints are not compacted before they fill the log: the bridge reads their history back.
    bus.publish((1..=9_000).map(|v| setpoint(1, v)).collect())
        .await
        .expect("publish");
    assert_eq!(bus.log::<SetpointChange>().expect("log").allocated().0, 9_000);
}

#[tokio::test]
async fn start_at_a_time_reads_from_the_first_record_appended_then() {
    let time = Arc::new(std::sync::atomic::AtomicI64::new(1_000_000));
    let read = Arc::clone(&time);
    let bus = EmbeddedBus::new(100).with_clock(Clock::from_fn(move || read.load(Relaxed)));
    bus.publish(vec![reading(1, 1), reading(1, 2)])
        .await
        .expect("publish");
    let t = 1_000_005;
    time.store(t, Relaxed);
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
        bytes: usize::MAX,
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

    let short = Retention {
        records: 100,
        bytes: usize::MAX,
        max_age: Some(std::time::Duration::from_millis(10)),
    };
    let aged = EmbeddedBus::open_with_clock(dir.path(), short, twenty_ms_later()).expect("reopens");
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
        bytes: usize::MAX,
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
        bytes: usize::MAX,
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
    let aged = EmbeddedBus {
        retention: Retention {
            records: 100,
            bytes: usize::MAX,
            max_age: Some(std::time::Duration::from_millis(10)),
        },
        ..again.clone()
    }
    .with_clock(twenty_ms_later());
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
