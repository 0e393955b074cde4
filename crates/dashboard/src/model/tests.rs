//! Reducer tests: whole message sequences as the server sends them, including a reconnect.

use super::*;
use setpoint_control::{Command, DecisionCause, SensorReading, SetpointField, TimeMs};
use setpoint_wire::ws::{
    BusStatus, ClientMessage, ErrorCode, ErrorMsg, Hello, ReadingsBatch, ServerMessage, SetpointMsg,
    StatusMsg,
};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// The sequences below are written as the socket and the components would dispatch them.
trait Drive {
    fn apply(&mut self, msg: ServerMessage, now: f64);
    fn frame(&mut self, text: &str, now: f64);
    fn close(&mut self);
    fn edit(&mut self, sensor: SensorId, field: SetpointField, value: f64);
    fn commit(&mut self, sensor: SensorId, now: f64);
    /// The writes the tick released.
    fn tick(&mut self, now: f64) -> Vec<ClientMessage>;
}

impl Drive for Model {
    fn apply(&mut self, msg: ServerMessage, now: f64) {
        self.dispatch(Action::Server { msg, now });
    }
    fn frame(&mut self, text: &str, now: f64) {
        self.dispatch(Action::Frame {
            text: text.to_owned(),
            now,
        });
    }
    fn close(&mut self) {
        self.dispatch(Action::Closed);
    }
    fn edit(&mut self, sensor: SensorId, field: SetpointField, value: f64) {
        self.dispatch(Action::Edit { sensor, field, value });
    }
    fn commit(&mut self, sensor: SensorId, now: f64) {
        self.dispatch(Action::Commit { sensor, now });
    }
    fn tick(&mut self, now: f64) -> Vec<ClientMessage> {
        self.dispatch(Action::Tick { now })
    }
}

fn hello(can_write: bool, sensors: &[SensorId], commands: Vec<Decision>) -> ServerMessage {
    ServerMessage::Hello(Hello {
        protocol: 1,
        can_write,
        sensors: sensors.to_vec(),
        setpoints: sensors.iter().map(|s| setpoint(*s, 20.0, 1)).collect(),
        commands,
        config: Config::default(),
        server_time_ms: 100_000,
    })
}

fn setpoint(sensor: SensorId, desired: f64, version: u64) -> SetpointMsg {
    SetpointMsg::new(
        sensor,
        &setpoint_control::Setpoint::new(desired, 0.5, 0.5),
        version,
        None,
    )
}

fn batch(sensor: SensorId, times: impl IntoIterator<Item = TimeMs>, backfill: bool) -> ServerMessage {
    ServerMessage::Readings(ReadingsBatch {
        items: times
            .into_iter()
            .map(|t_ms| SensorReading {
                sensor,
                t_ms,
                temperature: 20.0,
            })
            .collect(),
        missed: 0,
        backfill,
    })
}

fn decision(sensor: SensorId, t_ms: TimeMs, command: Command) -> Decision {
    Decision {
        sensor,
        t_ms,
        temperature: 20.0,
        command,
        setpoint_version: 1,
        cause: DecisionCause::Band,
    }
}

fn times(m: &Model, sensor: SensorId) -> Vec<TimeMs> {
    m.sensors[&sensor]
        .readings
        .range(TimeMs::MIN, TimeMs::MAX)
        .map(|r| r.t_ms)
        .collect()
}

#[test]
fn reconnect_resyncs_without_duplicates_or_gaps() {
    let mut m = Model::new("t".into());
    assert_eq!(m.conn_label(), "connecting");
    m.apply(hello(true, &[1, 2], vec![]), 0.0);
    assert_eq!(m.conn_label(), "live");
    m.apply(batch(1, 0..50, true), 0.0);
    m.apply(batch(1, 50..60, false), 10.0);
    m.close();
    assert_eq!(m.conn_label(), "reconnecting");
    // While we were away the sensor produced 60..80. The new connection's backfill overlaps what we hold.
    m.apply(hello(true, &[1, 2], vec![]), 20.0);
    m.apply(batch(1, 30..75, true), 20.0);
    m.apply(batch(1, 73..80, false), 30.0);
    assert_eq!(times(&m, 1), (0..80).collect::<Vec<_>>());
    assert_eq!(times(&m, 2), Vec::<TimeMs>::new());
}

#[test]
fn backfill_is_not_cross_checked_but_live_readings_are() {
    let mut m = Model::new("t".into());
    m.apply(hello(true, &[1], vec![]), 0.0);
    // 30 °C is far above 20 ± 0.5: the local core decides Off for the first reading it judges.
    let hot = |t: TimeMs, backfill| {
        ServerMessage::Readings(ReadingsBatch {
            items: vec![SensorReading {
                sensor: 1,
                t_ms: t,
                temperature: 30.0,
            }],
            missed: 0,
            backfill,
        })
    };
    m.apply(hot(1_000, true), 0.0);
    m.tick(10_000.0);
    assert!(m.crosscheck.divergence().is_none(), "history is not judged");
    // Live: the server decides Off too → agreement.
    m.apply(hot(2_000, false), 10_000.0);
    m.apply(
        ServerMessage::Decision(decision(1, 2_000, Command::Off)),
        10_000.0,
    );
    m.tick(20_000.0);
    assert!(m.crosscheck.divergence().is_none());
    assert_eq!(m.crosscheck.stats().agreed, 1);
    // A live duplicate of a point we already hold is not re-judged.
    m.apply(hot(2_000, false), 20_000.0);
    m.tick(30_000.0);
    assert_eq!(m.crosscheck.stats().readings, 1);
}

#[test]
fn decision_log_is_newest_first_deduplicated_and_bounded() {
    let mut m = Model::new("t".into());
    m.apply(hello(true, &[1], vec![decision(1, 50, Command::On)]), 0.0);
    for t in [100, 300, 200] {
        m.apply(ServerMessage::Decision(decision(1, t, Command::Off)), 0.0);
    }
    // The reconnect's hello repeats the last command: no duplicate row.
    m.apply(hello(true, &[1], vec![decision(1, 300, Command::Off)]), 0.0);
    let ts: Vec<_> = m.log.iter().map(|d| d.t_ms).collect();
    assert_eq!(ts, vec![300, 200, 100, 50]);
    for t in 1_000..1_200 {
        m.apply(ServerMessage::Decision(decision(1, t, Command::On)), 0.0);
    }
    assert_eq!(m.log.len(), LOG_LEN);
    assert_eq!(m.log.front().map(|d| d.t_ms), Some(1_199));
    assert_eq!(m.sensors[&1].heater(), Some(Command::On));
}

#[test]
fn write_round_trip_routes_ack_and_conflict_to_the_card() {
    let mut m = Model::new("s".into());
    m.apply(hello(true, &[1, 2], vec![]), 0.0);
    m.edit(1, SetpointField::Desired, 22.0);
    m.commit(1, 0.0);
    m.commit(1, 100.0); // debounced: one write
    assert!(m.tick(200.0).is_empty(), "not due yet");
    let sent = m.tick(1_000.0);
    assert_eq!(sent.len(), 1);
    let ClientMessage::SetSetpoint(req) = &sent[0] else {
        panic!("expected set_setpoint")
    };
    assert_eq!((req.sensor, req.desired, req.base_version), (1, 22.0, Some(1)));
    assert!(m.sensors[&1].editor.status.text().contains("pending"));
    m.apply(
        ServerMessage::Ack {
            request_id: req.request_id.clone(),
        },
        1_100.0,
    );
    assert_eq!(m.sensors[&1].editor.status.text(), "saved");
    m.apply(ServerMessage::Setpoint(setpoint(1, 22.0, 2)), 1_200.0);
    assert_eq!(m.sensors[&1].editor.draft, None);

    // Second sensor: conflict keeps the draft and shows the current value.
    m.edit(2, SetpointField::Desired, 25.0);
    m.commit(2, 2_000.0);
    let sent = m.tick(3_000.0);
    let ClientMessage::SetSetpoint(req) = &sent[0] else {
        panic!("expected set_setpoint")
    };
    m.apply(
        ServerMessage::Error(ErrorMsg {
            request_id: Some(req.request_id.clone()),
            code: ErrorCode::Conflict,
            message: "stale base_version".into(),
            current: Some(setpoint(2, 18.5, 7)),
        }),
        3_100.0,
    );
    let v = &m.sensors[&2];
    assert_eq!(v.setpoint.as_ref().map(|s| s.version), Some(7));
    assert_eq!(v.editor.draft.map(|d| d.desired), Some(25.0));
    assert!(v.editor.status.text().contains("18.5"));
}

#[test]
fn read_only_and_disconnected_writes_are_refused_locally() {
    let mut m = Model::new("s".into());
    m.apply(hello(false, &[1], vec![]), 0.0);
    assert_eq!(m.conn_label(), "read-only");
    m.edit(1, SetpointField::UpDelta, 1.0);
    m.commit(1, 0.0);
    assert!(m.tick(1_000.0).is_empty());
    assert!(m.sensors[&1].editor.status.text().contains("read-only"));
    // Pending writes fail when the connection drops.
    m.apply(hello(true, &[1], vec![]), 0.0);
    m.commit(1, 0.0);
    assert_eq!(m.tick(1_000.0).len(), 1);
    m.close();
    assert!(m.sensors[&1].editor.status.text().contains("connection lost"));
}

#[test]
fn status_gives_rates_and_unknown_frames_become_a_notice() {
    let mut m = Model::new("s".into());
    let status = |t: TimeMs, r: u64, d: u64| {
        ServerMessage::Status(StatusMsg {
            clients: 2,
            bus: BusStatus::Embedded,
            readings_total: r,
            decisions_total: d,
            server_time_ms: t,
        })
    };
    m.apply(status(1_000, 100, 10), 0.0);
    m.apply(status(3_000, 500, 14), 0.0);
    assert_eq!(m.rates.readings_per_s, Some(200.0));
    assert_eq!(m.rates.decisions_per_min, Some(120.0));
    m.frame("{\"type\":\"nope\"}", 0.0);
    assert!(m.notice.is_some());
    m.frame("not json", 0.0);
    assert!(m
        .notice
        .as_deref()
        .unwrap_or_default()
        .contains("does not understand"));
}

#[test]
fn filter_sort_and_page() {
    let mut m = Model::new("s".into());
    let ids: Vec<SensorId> = (1..=30).collect();
    m.apply(hello(true, &ids, vec![]), 0.0);
    let now = m.server_now(0.0);
    // Only sensor 17 has a fresh reading, so every other one is stale; 23 is out of band but fresh.
    for (s, temp) in [(17, 20.0), (23, 30.0)] {
        m.apply(
            ServerMessage::Readings(ReadingsBatch {
                items: vec![SensorReading {
                    sensor: s,
                    t_ms: now as TimeMs,
                    temperature: temp,
                }],
                missed: 0,
                backfill: false,
            }),
            0.0,
        );
    }
    let opts = |filter: &str, sort, page| ViewOpts {
        filter: filter.into(),
        sort,
        page,
        page_size: 10,
    };
    let (page, total) = m.visible(&opts("", SortBy::Id, 2), now);
    assert_eq!((page, total), ((21..=30).collect(), 30));
    let (page, total) = m.visible(&opts("1", SortBy::Id, 0), now);
    assert_eq!(total, 12); // 1, 10..=19, 21
    assert_eq!(page.len(), 10);
    let (page, _) = m.visible(&opts("", SortBy::Attention, 0), now);
    // Stale sensors first (by id), the fresh out-of-band one next, the healthy one last.
    assert_eq!(page[0], 1);
    let (all, _) = m.visible(
        &ViewOpts {
            filter: String::new(),
            sort: SortBy::Attention,
            page: 0,
            page_size: 100,
        },
        now,
    );
    assert_eq!(&all[28..], &[23, 17]);
}

#[test]
fn the_reducer_bumps_exactly_the_revisions_of_what_changed() {
    let mut m = Model::new("s".into());
    let revs = |m: &Model| (m.version(), m.sensors[&1].rev(), m.sensors[&2].rev());
    m.apply(hello(true, &[1, 2], vec![]), 0.0);
    let (v0, a0, b0) = revs(&m);
    assert!(a0 > 0 && b0 > 0, "a hello redraws every card");

    m.apply(batch(1, 0..3, false), 0.0);
    let (v1, a1, b1) = revs(&m);
    assert!(v1 > v0 && a1 > a0, "new readings change their card");
    assert_eq!(b1, b0, "and no other");

    m.apply(batch(1, 0..3, false), 0.0);
    let (v2, a2, _) = revs(&m);
    assert!(v2 > v1, "every message counts for the page");
    assert_eq!(a2, a1, "but a duplicate reading leaves its card alone");

    m.commit(2, 0.0);
    assert_eq!(revs(&m), (v2, a2, b1), "a scheduled commit shows nothing yet");
    m.edit(2, SetpointField::Desired, 21.0);
    let (v3, _, b3) = revs(&m);
    assert!(v3 > v2 && b3 > b1, "an edit changes its card");
    m.edit(99, SetpointField::Desired, 21.0);
    assert_eq!(m.version(), v3, "an edit of an unknown sensor changes nothing");
}
