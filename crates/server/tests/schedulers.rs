//! Two schedulers on one Kafka cluster (as two `setpoint controller` processes run them), one weekly
//! schedule: each step takes effect exactly once per sensor, whatever the two publish, and a reader of the
//! compacted log ends with the same value in force as a reader of the whole log.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::broker::Broker;
use common::kafka::*;
use setpoint::bus::kafka::KafkaBus;
use setpoint::bus::{Bus, Consumer, ScheduleRecord, SetpointChange, StartAt};
use setpoint::clock::now_ms;
use setpoint::roles::scheduler;
use setpoint_control::{Arrival, Config, Setpoint, SetpointTable, Verdict};
use setpoint_wire::schedule::{Schedule, ScheduleStep, Weekday};
use tokio_util::sync::CancellationToken;

const SENSORS: [i32; 3] = [1, 2, 3];

/// `HH:MM:SS` in UTC for an instant on a whole second.
fn utc_time(at_ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(at_ms).expect("time");
    jiff::tz::TimeZone::UTC
        .to_datetime(ts)
        .strftime("%H:%M:%S")
        .to_string()
}

fn step(at_ms: i64, desired: f64) -> ScheduleStep {
    ScheduleStep {
        days: Weekday::ALL.to_vec(),
        time: utc_time(at_ms),
        desired,
        up_delta: 0.5,
        down_delta: 0.5,
        mode: None,
        policy: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_on_kafka_make_each_step_take_effect_once() {
    let broker = Broker::start();
    let topics = topics("sched");
    let bus = kafka_bus(&broker, &topics).await;
    let seeded = now_ms();
    let seeds: Vec<SetpointChange> = SENSORS
        .iter()
        .map(|&sensor| {
            SetpointChange::new(sensor, Setpoint::new(20.0, 1.0, 1.0), 1, "seed", seeded)
                .conditional(0, format!("seed-{sensor}"))
        })
        .collect();
    bus.publish(seeds).await.expect("seeded");

    // Two schedulers, each on its own clients, as two processes would be.
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let own = kafka_bus(&broker, &topics).await;
        tasks.push(tokio::spawn(scheduler::run(own, Config::default(), stop.clone())));
    }
    let first = (now_ms() + 8_000) / 1000 * 1000;
    let second = first + 6_000;
    let schedule = Schedule {
        name: "shift".into(),
        zone: "UTC".into(),
        steps: vec![step(first, 18.0), step(second, 22.0)],
        sensors: SENSORS.to_vec(),
    };
    bus.publish(vec![ScheduleRecord {
        schedule,
        author: "admin".into(),
        t_ms: now_ms(),
        deleted: false,
    }])
    .await
    .expect("schedule saved");

    // Until the second step took effect on every sensor and every duplicate a scheduler lost with is
    // restated — the event the test waits for, read from the log itself — bounded: 30 s past the step.
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(second - now_ms()).unwrap_or(0),
    ))
    .await;
    let deadline = second + 30_000;
    let (log, judged) = loop {
        let log = read_log(&bus).await;
        let judged = judge(&log);
        let stepped = SENSORS
            .iter()
            .all(|s| judged.in_force.get(s).is_some_and(|f| f.1 == 22.0));
        if (stepped && judged.restated == judged.skipped) || now_ms() > deadline {
            break (log, judged);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.cancel();
    for t in tasks {
        t.await.expect("scheduler task").expect("scheduler ran");
    }
    let Judged {
        applied,
        in_force,
        skipped,
        restated,
        writers,
    } = judged;
    for sensor in SENSORS {
        let changes = &applied[&sensor];
        let by_schedule: Vec<&(f64, i64, String)> =
            changes.iter().filter(|(_, _, a)| a == "schedule:shift").collect();
        assert_eq!(by_schedule.len(), 2, "sensor {sensor}: {changes:?}");
        let (d1, t1, _) = by_schedule[0];
        let (d2, t2, _) = by_schedule[1];
        assert_eq!((*d1, *d2), (18.0, 22.0), "sensor {sensor}");
        assert!(
            *t1 >= first && *t1 < second,
            "sensor {sensor}: first step at {t1}, due {first}"
        );
        assert!(
            *t2 >= second,
            "sensor {sensor}: second step at {t2}, due {second}"
        );
        assert_eq!(in_force[&sensor].1, 22.0);
    }
    // Each skipped duplicate is restated, so compaction (the newest record per sensor) keeps a value that
    // holds: a reader of only those ends where the whole log does.
    assert_eq!(restated, skipped, "every skipped duplicate is restated");
    let mut newest: BTreeMap<i32, &SetpointChange> = BTreeMap::new();
    for c in &log {
        newest.insert(c.sensor, c);
    }
    let mut compacted = SetpointTable::default();
    for (sensor, c) in newest {
        let verdict = compacted.judge(c, Arrival::at(c.t_ms)).expect("a valid record");
        assert!(matches!(verdict, Verdict::Applied { .. }), "{verdict:?}");
        assert_eq!(
            (c.version, c.setpoint.desired),
            in_force[&sensor],
            "sensor {sensor}"
        );
    }
    println!(
        "schedulers that published: {}; duplicates skipped: {skipped}, restated: {restated}; records: {}",
        writers.len(),
        log.len()
    );
}

/// The whole setpoint log, from the beginning.
async fn read_log(bus: &KafkaBus) -> Vec<SetpointChange> {
    let mut reader = bus
        .subscribe::<SetpointChange>(StartAt::Beginning, None)
        .expect("reader");
    reader
        .read_to_end(Duration::from_secs(20))
        .await
        .expect("whole log")
        .into_iter()
        .map(|r| r.value)
        .collect()
}

/// What every reader's rule makes of a log.
struct Judged {
    /// Per sensor, the changes that took effect: (desired, time, author).
    applied: BTreeMap<i32, Vec<(f64, i64, String)>>,
    /// Per sensor, the version and desired temperature in force at the end.
    in_force: BTreeMap<i32, (u64, f64)>,
    skipped: usize,
    restated: usize,
    /// The schedulers whose records are in the log (by writer name).
    writers: std::collections::BTreeSet<String>,
}

fn judge(log: &[SetpointChange]) -> Judged {
    let mut arbiter = SetpointTable::default();
    let mut judged = Judged {
        applied: BTreeMap::new(),
        in_force: BTreeMap::new(),
        skipped: 0,
        restated: 0,
        writers: std::collections::BTreeSet::new(),
    };
    for c in log {
        let verdict = arbiter.judge(c, Arrival::at(c.t_ms)).expect("a valid record");
        if c.author == "schedule:shift" && !c.write_id.is_empty() {
            judged.writers.insert(
                c.write_id
                    .rsplit_once('-')
                    .map(|(w, _)| w.to_owned())
                    .unwrap_or_default(),
            );
        }
        match verdict {
            Verdict::Applied { version, .. } => {
                judged.in_force.insert(c.sensor, (version, c.setpoint.desired));
                judged.applied.entry(c.sensor).or_default().push((
                    c.setpoint.desired,
                    c.t_ms,
                    c.author.clone(),
                ));
            }
            Verdict::Restated { .. } => judged.restated += 1,
            Verdict::Skipped { .. } => judged.skipped += 1,
        }
    }
    judged
}
