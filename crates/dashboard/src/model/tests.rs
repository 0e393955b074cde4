//! Reducer tests: whole message sequences as the server sends them, including a reconnect.
//!
//! Over 400 lines on purpose: each test is one whole message sequence (hello, backfill, live, reconnect),
//! readable top to bottom; splitting them would scatter the shared fixtures.

use super::*;
use crate::model::editor::SaveStatus;
use setpoint_control::{Command, DecisionCause, SensorReading, SetpointField, TimeMs};
use setpoint_wire::view::ViewMsg;
use setpoint_wire::ws::{
    BusStatus, ClientMessage, DecisionsBatch, ErrorCode, ErrorMsg, Hello, ReadingsBatch, ServerMessage,
    SetpointMsg, StatusMsg,
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
    /// The writes and requests the tick released (not the periodic `view`: its own test looks at it).
    fn tick(&mut self, now: f64) -> Vec<ClientMessage>;
    /// A (re)connection as the bridge makes it: `hello`, then the answer to the view the page asks for,
    /// with these rooms on the page, each new, at version 1 and with its last command among `commands`.
    fn connect(&mut self, can_write: bool, sensors: &[SensorId], commands: Vec<Decision>, now: f64);
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
        let mut out = self.dispatch(Action::Tick { now });
        out.retain(|m| !matches!(m, ClientMessage::View(_)));
        out
    }
    fn connect(&mut self, can_write: bool, sensors: &[SensorId], commands: Vec<Decision>, now: f64) {
        let count = sensors.len();
        self.apply(hello(can_write, count), now);
        self.apply(view(sensors, &commands, sensors), now);
    }
}

fn hello(can_write: bool, sensor_count: usize) -> ServerMessage {
    ServerMessage::Hello(Hello {
        protocol: setpoint_wire::ws::PROTOCOL_VERSION,
        can_write,
        sensor_count: sensor_count as u64,
        config: Config::default(),
        server_time_ms: 100_000,
    })
}

/// The bridge's answer to a view: `page`'s rooms at version 1 with their last command among `commands`;
/// those in `fresh` new to the connection.
fn view(page: &[SensorId], commands: &[Decision], fresh: &[SensorId]) -> ServerMessage {
    ServerMessage::View(ViewMsg {
        sensors: page
            .iter()
            .map(|&s| setpoint_wire::api::SensorView {
                sensor: s,
                reading: None,
                setpoint: Some(setpoint(s, 20.0, 1)),
                heater: commands
                    .iter()
                    .filter(|d| d.sensor == s)
                    .max_by_key(|d| d.t_ms)
                    .copied(),
                next_step: None,
                source: None,
            })
            .collect(),
        fresh: fresh.to_vec(),
        total: page.len() as u64,
        page: 0,
        pages: 1,
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

/// The `decisions` backfill after `hello`.
fn decisions(items: impl IntoIterator<Item = Decision>) -> ServerMessage {
    ServerMessage::Decisions(DecisionsBatch {
        items: items.into_iter().collect(),
        backfill: true,
    })
}

/// A sensor's heater history as the strip draws it: (time, command), oldest first.
fn strip(m: &Model, sensor: SensorId) -> Vec<(TimeMs, Command)> {
    m.sensors[&sensor]
        .decisions
        .range(TimeMs::MIN, TimeMs::MAX)
        .map(|d| (d.t_ms, d.command))
        .collect()
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
    m.connect(true, &[1, 2], vec![], 0.0);
    assert_eq!(m.conn_label(), "live");
    m.apply(batch(1, 0..50, true), 0.0);
    m.apply(batch(1, 50..60, false), 10.0);
    m.close();
    assert_eq!(m.conn_label(), "reconnecting");
    // While we were away the sensor produced 60..80. The new connection's backfill overlaps what we hold.
    m.connect(true, &[1, 2], vec![], 20.0);
    m.apply(batch(1, 30..75, true), 20.0);
    m.apply(batch(1, 73..80, false), 30.0);
    assert_eq!(times(&m, 1), (0..80).collect::<Vec<_>>());
    assert_eq!(times(&m, 2), Vec::<TimeMs>::new());
}

#[test]
fn backfill_is_not_cross_checked_but_live_readings_are() {
    let mut m = Model::new("t".into());
    m.connect(true, &[1], vec![], 0.0);
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
    m.connect(true, &[1], vec![decision(1, 50, Command::On)], 0.0);
    for t in [100, 300, 200] {
        m.apply(ServerMessage::Decision(decision(1, t, Command::Off)), 0.0);
    }
    // The reconnect's hello repeats the last command and the backfill repeats the rest: no duplicate row.
    m.connect(true, &[1], vec![decision(1, 300, Command::Off)], 0.0);
    let backfill = [
        (50, Command::On),
        (100, Command::Off),
        (200, Command::Off),
        (300, Command::Off),
    ];
    m.apply(decisions(backfill.map(|(t, c)| decision(1, t, c))), 0.0);
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
    m.connect(true, &[1, 2], vec![], 0.0);
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
            setpoint: None,
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
    m.connect(false, &[1], vec![], 0.0);
    assert_eq!(m.conn_label(), "read-only");
    m.edit(1, SetpointField::UpDelta, 1.0);
    m.commit(1, 0.0);
    assert!(m.tick(1_000.0).is_empty());
    assert!(m.sensors[&1].editor.status.text().contains("read-only"));
    // Pending writes fail when the connection drops.
    m.connect(true, &[1], vec![], 0.0);
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
            sensors: 40,
            heating: 3,
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
fn the_view_is_asked_of_the_bridge_and_its_answer_is_the_page() {
    use setpoint_wire::api::SensorFilter;
    use setpoint_wire::view::ViewSort;
    let mut m = Model::new("s".into());
    // On `hello` the page asks for its view at once: compact (a large building), the first page.
    let sent = m.dispatch(Action::Server {
        msg: hello(true, 30_000),
        now: 0.0,
    });
    let [ClientMessage::View(asked)] = sent.as_slice() else {
        panic!("a view request: {sent:?}")
    };
    assert_eq!(
        (asked.page, asked.page_size, asked.query.as_str()),
        (0, PAGE_COMPACT as u32, "")
    );
    m.apply(
        view(
            &[1, 2, 3],
            &[
                decision(1, 98_000, Command::Off),
                decision(2, 99_000, Command::On),
            ],
            &[1, 2, 3],
        ),
        0.0,
    );
    assert_eq!(m.shown.ids, vec![1, 2, 3]);
    assert!(
        m.log.iter().any(|d| d.sensor == 1),
        "room 1's last command is in the log"
    );
    assert_eq!(strip(&m, 2), vec![(99_000, Command::On)]);
    // Each change of view is asked at once, applied to the view in force: changes made one after the
    // other (before the page re-renders) all count, and all but a page turn go back to the first page.
    let mut sent = Vec::new();
    for change in [
        ViewChange::Page(5),
        ViewChange::Filter("7".into()),
        ViewChange::Only(Some(SensorFilter::Stale)),
        ViewChange::Sort(ViewSort::Attention),
        ViewChange::Compact(false),
        ViewChange::Page(3),
    ] {
        sent = m.dispatch(Action::View { change, now: 1_000.0 });
    }
    let [ClientMessage::View(asked)] = sent.as_slice() else {
        panic!("a view request: {sent:?}")
    };
    assert_eq!(
        (
            asked.query.as_str(),
            asked.filters.as_slice(),
            asked.sort,
            asked.page,
            asked.page_size
        ),
        (
            "7",
            &[SensorFilter::Stale][..],
            ViewSort::Attention,
            3,
            PAGE_FULL as u32
        )
    );
    // The answer: room 2 stays (followed live all along, its strip kept), 7 and 17 are new, 1 and 3 left
    // the page — except 3, whose draft the user has not saved.
    m.edit(3, SetpointField::Desired, 22.0);
    m.apply(batch(2, [99_500], false), 0.0);
    let mut answer = view(&[7, 2, 17], &[decision(2, 1, Command::Off)], &[7, 17]);
    if let ServerMessage::View(v) = &mut answer {
        v.page = 1;
        v.pages = 2;
        v.total = 4;
    }
    m.apply(answer, 1_000.0);
    assert_eq!(
        (m.shown.ids.clone(), m.shown.page, m.shown.pages, m.shown.total),
        (vec![7, 2, 17], 1, 2, 4)
    );
    assert_eq!(
        m.view_opts.page, 1,
        "the page the bridge answered (the last, when asked past it)"
    );
    assert_eq!(
        strip(&m, 2),
        vec![(99_000, Command::On)],
        "a room still watched is not restarted"
    );
    assert_eq!(times(&m, 2), vec![99_500]);
    assert!(m.sensors.contains_key(&7) && m.sensors.contains_key(&17));
    assert!(
        !m.sensors.contains_key(&1),
        "a room that left the page is forgotten"
    );
    assert!(m.sensors.contains_key(&3), "but not a draft");
    m.apply(batch(1, [99_600], false), 1_000.0);
    m.apply(ServerMessage::Decision(decision(1, 99_600, Command::On)), 1_000.0);
    assert!(
        !m.sensors.contains_key(&1),
        "a reading or decision on its way does not bring it back"
    );
    assert!(
        m.log.iter().all(|d| d.sensor != 1),
        "nor does the log keep its rows"
    );
    // Asked again every few seconds (order and conditions change), and on a reconnection.
    assert!(m.dispatch(Action::Tick { now: 2_000.0 }).is_empty());
    let sent = m.dispatch(Action::Tick {
        now: 1_000.0 + view::VIEW_REFRESH_MS,
    });
    assert!(
        matches!(sent.as_slice(), [ClientMessage::View(v)] if v.page == 1 && v.query == "7"),
        "{sent:?}"
    );
    m.close();
    let sent = m.dispatch(Action::Server {
        msg: hello(true, 4),
        now: 9_000.0,
    });
    assert!(
        matches!(sent.as_slice(), [ClientMessage::View(v)] if v.page == 1),
        "{sent:?}"
    );
}

#[test]
fn the_reducer_bumps_exactly_the_revisions_of_what_changed() {
    let mut m = Model::new("s".into());
    let revs = |m: &Model| (m.version(), m.sensors[&1].rev(), m.sensors[&2].rev());
    m.connect(true, &[1, 2], vec![], 0.0);
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

#[test]
fn decisions_backfill_fills_every_strip_and_the_log_at_once() {
    let mut m = Model::new("t".into());
    // Last commands in the view's summaries; the window's decisions of both sensors, interleaved, oldest
    // first.
    m.connect(
        true,
        &[1, 2],
        vec![decision(1, 400, Command::Off), decision(2, 350, Command::On)],
        0.0,
    );
    let (v1, r1, r2) = (m.version(), m.sensors[&1].rev(), m.sensors[&2].rev());
    m.apply(
        decisions([
            decision(1, 100, Command::On),
            decision(2, 150, Command::Off),
            decision(1, 200, Command::Off),
            decision(1, 300, Command::On),
            decision(2, 350, Command::On),
            decision(1, 400, Command::Off),
        ]),
        0.0,
    );
    use Command::{Off, On};
    assert_eq!(strip(&m, 1), vec![(100, On), (200, Off), (300, On), (400, Off)]);
    assert_eq!(strip(&m, 2), vec![(150, Off), (350, On)]);
    let log: Vec<_> = m.log.iter().map(|d| (d.sensor, d.t_ms)).collect();
    assert_eq!(
        log,
        vec![(1, 400), (2, 350), (1, 300), (1, 200), (2, 150), (1, 100)]
    );
    assert!(
        m.version() > v1 && m.sensors[&1].rev() > r1 && m.sensors[&2].rev() > r2,
        "cards redraw"
    );
    assert_eq!(m.sensors[&1].heater(), Some(Off));
}

#[test]
fn reconnect_replaces_heater_history_without_duplicates_or_gaps() {
    use Command::{Off, On};
    let mut m = Model::new("t".into());
    m.connect(true, &[1], vec![decision(1, 100, On)], 0.0);
    m.apply(decisions([decision(1, 100, On)]), 0.0);
    m.apply(ServerMessage::Decision(decision(1, 200, Off)), 10.0);
    // A decision this tab holds that the server's history does not (say, a bridge that restarted).
    m.apply(ServerMessage::Decision(decision(1, 250, On)), 20.0);
    m.close();
    // Away: 300 and 400 were decided. The new connection's backfill has them; a live decision (500) races the
    // backfill and arrives first, and the backfill's newest entry is a copy of it.
    m.connect(true, &[1], vec![decision(1, 400, Off)], 30.0);
    m.apply(ServerMessage::Decision(decision(1, 500, On)), 30.0);
    m.apply(
        decisions([100, 200, 300, 400, 500].map(|t| decision(1, t, if t % 200 == 100 { On } else { Off }))),
        30.0,
    );
    m.apply(ServerMessage::Decision(decision(1, 500, On)), 40.0);
    m.apply(ServerMessage::Decision(decision(1, 600, Off)), 40.0);
    assert_eq!(
        strip(&m, 1),
        vec![
            (100, On),
            (200, Off),
            (300, On),
            (400, Off),
            (500, On),
            (600, Off)
        ]
    );
    let log: Vec<_> = m.log.iter().map(|d| d.t_ms).collect();
    assert_eq!(log, vec![600, 500, 400, 300, 200, 100]);
}

/// Readings of one sensor swinging through the band 20 ± 0.5, 100 ms apart from `t0`.
fn wave(sensor: SensorId, t0: TimeMs, n: i64) -> Vec<SensorReading> {
    (0..n)
        .map(|i| SensorReading {
            sensor,
            t_ms: t0 + i * 100,
            temperature: 20.0 + 1.5 * ((i as f64) / 7.0).sin(),
        })
        .collect()
}

/// What the server decides for `readings` from a fresh state under setpoint v1 (`setpoint(_, 20.0, 1)`).
fn server_decides(readings: &[SensorReading]) -> Vec<Decision> {
    let sp = setpoint(readings[0].sensor, 20.0, 1);
    let rs: Vec<_> = readings.iter().map(SensorReading::reading).collect();
    setpoint_control::replay(
        &Config::default(),
        sp.sensor,
        &setpoint_control::SensorState::default(),
        setpoint_control::VersionedSetpoint {
            setpoint: sp.setpoint(),
            version: 1,
        },
        &rs,
        &[],
    )
    .expect("valid setpoint")
}

fn readings(items: &[SensorReading], backfill: bool) -> ServerMessage {
    ServerMessage::Readings(ReadingsBatch {
        items: items.to_vec(),
        missed: 0,
        backfill,
    })
}

#[test]
fn thinned_readings_and_backfilled_decisions_are_not_cross_checked() {
    // 60 s of history at 10 Hz, then 20 s live. The server decided on every reading; the backfill carries
    // every 5th reading (thinned) but every decision.
    let all = wave(1, 1_000, 800);
    let decided = server_decides(&all);
    let (past, live) = all.split_at(600);
    let thinned: Vec<_> = past.iter().step_by(5).copied().collect();
    let past_decisions: Vec<_> = decided
        .iter()
        .filter(|d| d.t_ms <= past[599].t_ms)
        .copied()
        .collect();
    let live_decisions: Vec<_> = decided
        .iter()
        .filter(|d| d.t_ms > past[599].t_ms)
        .copied()
        .collect();
    assert_ne!(
        server_decides(&thinned)
            .iter()
            .map(|d| d.t_ms)
            .collect::<Vec<_>>(),
        past_decisions.iter().map(|d| d.t_ms).collect::<Vec<_>>(),
        "the fixture: re-deciding the thinned series disagrees with the server's decisions"
    );
    assert!(live_decisions.len() >= 2, "the fixture switches while live");

    let mut m = Model::new("t".into());
    let last = *past_decisions.last().expect("decisions in the past");
    m.connect(true, &[1], vec![last], 0.0);
    m.apply(readings(&thinned, true), 0.0);
    m.apply(decisions(past_decisions.clone()), 0.0);
    let mut now = 100.0;
    for chunk in live.chunks(5) {
        m.apply(readings(chunk, false), now);
        for d in live_decisions
            .iter()
            .filter(|d| chunk.iter().any(|r| r.t_ms == d.t_ms))
        {
            m.apply(ServerMessage::Decision(*d), now);
        }
        now += 50.0;
        m.tick(now);
    }
    m.tick(now + 10_000.0);
    assert_eq!(m.crosscheck.divergence(), None);
    let st = m.crosscheck.stats();
    assert_eq!(st.readings, live.len() as u64, "only live readings are judged");
    assert_eq!(st.agreed, live_decisions.len() as u64);
    assert_eq!(
        (st.adopted, st.tolerated),
        (0, 0),
        "hello and the backfill agree: nothing to adopt"
    );
    assert_eq!(
        m.sensors[&1].decisions.len(),
        decided.len(),
        "the strip has every decision"
    );
}

#[test]
fn a_decision_racing_hello_is_not_a_divergence_whichever_side_it_lands_on() {
    // The reading at 1_000 is far below the band: the server decided On. The decision reached the bridge
    // before the reading was flushed, so it is in `hello`'s snapshot (the backfill, and the last command) while
    // the reading arrives live. Also: a `hello` taken before the decision, and a copy of the decision arriving
    // live too, before or after the backfill.
    let cold = |t| SensorReading {
        sensor: 1,
        t_ms: t,
        temperature: 15.0,
    };
    let on = Decision {
        temperature: 15.0,
        ..decision(1, 1_000, Command::On)
    };
    let earlier_off = decision(1, 500, Command::Off);
    let cases = [
        (on, None),
        (on, Some("after")),
        (earlier_off, None),
        (earlier_off, Some("before")),
        (earlier_off, Some("after")),
    ];
    for (last, live_copy) in cases {
        let commands = vec![last];
        let mut m = Model::new("t".into());
        m.connect(true, &[1], commands.clone(), 0.0);
        if live_copy == Some("before") {
            m.apply(ServerMessage::Decision(on), 0.0);
        }
        m.apply(decisions([earlier_off, on]), 0.0);
        m.apply(readings(&[cold(1_000)], false), 10.0);
        if live_copy == Some("after") {
            m.apply(ServerMessage::Decision(on), 10.0);
        }
        m.apply(readings(&[cold(1_100), cold(1_200)], false), 20.0);
        m.tick(10_000.0);
        let case = format!("hello {commands:?}, live copy {live_copy:?}");
        assert_eq!(m.crosscheck.divergence(), None, "{case}");
        assert_eq!(m.crosscheck.stats().readings, 3, "{case}");
        assert_eq!(m.log.len(), 2, "{case}");
    }
}

#[test]
fn history_opens_on_request_loads_and_follows_live_changes() {
    use setpoint_wire::ws::{SetpointChangeEntry, SetpointHistoryMsg};
    let mut m = Model::new("s".into());
    // Read-only clients may ask too.
    m.connect(false, &[1, 2], vec![], 0.0);
    let rev = m.sensors[&1].rev();
    let sent = m.dispatch(Action::ToggleHistory { sensor: 1 });
    assert_eq!(sent, vec![ClientMessage::SetpointHistory { sensor: 1 }]);
    assert!(m.sensors[&1].rev() > rev, "the card shows the list opening");
    let list = |m: &Model| m.sensors[&1].history.clone().expect("open");
    assert_eq!(list(&m).status, history::ListStatus::Loading);

    let change = |version, author: &str, from: Option<f64>, to: f64| SetpointChangeEntry {
        version,
        author: author.into(),
        t_ms: 1_000 * version as TimeMs,
        from: from.map(|d| setpoint_control::Setpoint::new(d, 0.5, 0.5)),
        to: setpoint_control::Setpoint::new(to, 0.5, 0.5),
    };
    m.apply(
        ServerMessage::SetpointHistory(SetpointHistoryMsg {
            sensor: 1,
            changes: vec![change(1, "simulator", None, 20.0)],
        }),
        0.0,
    );
    // Somebody changes it while the list is open: appended with its author and what it replaced.
    let mut by_admin = setpoint(1, 22.5, 2);
    by_admin.author = Some("admin".into());
    by_admin.t_ms = Some(5_000);
    m.apply(ServerMessage::Setpoint(by_admin), 0.0);
    let l = list(&m);
    assert_eq!(l.status, history::ListStatus::Loaded);
    let got: Vec<_> = l
        .changes
        .iter()
        .map(|c| {
            (
                c.version,
                c.author.as_str(),
                c.from.map(|s| s.desired),
                c.to.desired,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(1, "simulator", None, 20.0), (2, "admin", Some(20.0), 22.5)]
    );

    // An answer for a closed list, and a change of a sensor whose list is closed, change nothing.
    m.apply(ServerMessage::Setpoint(setpoint(2, 19.0, 2)), 0.0);
    assert!(m.sensors[&2].history.is_none());

    // A reconnect asks again for open lists only; the answer replaces the list.
    m.close();
    let sent = m.dispatch(Action::Server {
        msg: hello(false, 2),
        now: 0.0,
    });
    assert!(
        matches!(
            sent.as_slice(),
            [
                ClientMessage::View(_),
                ClientMessage::SetpointHistory { sensor: 1 }
            ]
        ),
        "{sent:?}"
    );
    assert_eq!(list(&m).status, history::ListStatus::Loading);
    assert_eq!(list(&m).changes.len(), 2, "the old list stays visible meanwhile");

    // Closing sends nothing; a request the socket refuses says so.
    assert!(m.dispatch(Action::ToggleHistory { sensor: 1 }).is_empty());
    assert!(m.sensors[&1].history.is_none());
    let sent = m.dispatch(Action::ToggleHistory { sensor: 1 });
    for msg in sent {
        m.dispatch(Action::SendFailed {
            msg,
            why: "not connected".into(),
        });
    }
    assert!(matches!(list(&m).status, history::ListStatus::Failed(w) if w.contains("not connected")));
    m.apply(
        ServerMessage::SetpointHistory(SetpointHistoryMsg {
            sensor: 2,
            changes: vec![change(1, "simulator", None, 20.0)],
        }),
        0.0,
    );
    assert!(m.sensors[&2].history.is_none());
}

#[test]
fn an_unconfirmed_write_waits_for_its_outcome_instead_of_failing() {
    let mut m = Model::new("s".into());
    m.connect(true, &[1, 2, 3], vec![], 0.0);
    let write = |m: &mut Model, sensor, desired| {
        m.edit(sensor, SetpointField::Desired, desired);
        m.commit(sensor, 0.0);
        let sent = m.tick(1_000.0);
        let Some(ClientMessage::SetSetpoint(req)) = sent.into_iter().next() else {
            panic!("expected set_setpoint")
        };
        req.request_id
    };
    let unconfirmed = |request_id: String| {
        ServerMessage::Error(ErrorMsg {
            request_id: Some(request_id),
            code: ErrorCode::Unconfirmed,
            message: "not read back in time".into(),
            current: None,
        })
    };
    let status = |m: &Model, s: SensorId| m.sensors[&s].editor.status.clone();

    // Ours takes effect later.
    let id = write(&mut m, 1, 23.0);
    m.apply(unconfirmed(id), 1_100.0);
    assert!(!status(&m, 1).is_error(), "{:?}", status(&m, 1));
    assert!(
        status(&m, 1).text().contains("waiting"),
        "{}",
        status(&m, 1).text()
    );
    m.tick(30_000.0);
    assert!(
        !status(&m, 1).is_error(),
        "no time-out: the outcome is still coming"
    );
    m.apply(ServerMessage::Setpoint(setpoint(1, 23.0, 2)), 31_000.0);
    assert_eq!(status(&m, 1).text(), "saved");
    assert_eq!(m.sensors[&1].editor.draft, None);

    // Another write wins: that is a conflict, with the draft kept.
    let id = write(&mut m, 2, 24.0);
    m.apply(unconfirmed(id), 1_100.0);
    m.apply(ServerMessage::Setpoint(setpoint(2, 18.0, 2)), 1_200.0);
    assert!(
        matches!(status(&m, 2), SaveStatus::Conflict { .. }),
        "{:?}",
        status(&m, 2)
    );
    assert_eq!(m.sensors[&2].editor.draft.map(|d| d.desired), Some(24.0));

    // The outcome arrived before the error.
    let id = write(&mut m, 3, 25.0);
    m.apply(ServerMessage::Setpoint(setpoint(3, 25.0, 2)), 1_050.0);
    m.apply(unconfirmed(id), 1_100.0);
    assert_eq!(status(&m, 3).text(), "saved");
}

mod group;
mod schedules;
