//! No frame the hub sends grows with the building: at any number of rooms, every message a client can be
//! sent — `hello`, a view of the largest page with each room's full history, a firehose flush of every
//! room, a status, a schedule at its bounds — encodes under the protocol's frame limit.

use proptest::prelude::*;
use setpoint_control::{
    Arrival, Command, Config, Decision, DecisionCause, SensorReading, Setpoint, MAX_AUTHOR_BYTES,
};
use setpoint_wire::schedule::{
    Schedule, ScheduleRecord, ScheduleStep, Weekday, MAX_SCHEDULE_SENSORS, MAX_SCHEDULE_STEPS,
};
use setpoint_wire::view::{ViewRequest, ViewSort, MAX_SERVER_FRAME_BYTES, MAX_WATCHED};
use setpoint_wire::ws::{BusStatus, ServerMessage};

use super::state::{HubOptions, HubState, Output};
use crate::bus::SetpointChange;

const NOW: i64 = 1_795_608_000_000;

/// A building of `rooms` rooms: each with a setpoint by an author of the longest name, a reading and a
/// command; the first [`MAX_WATCHED`] with a full 15 minutes of readings at 2 Hz and a flapping heater.
fn building(rooms: i32) -> HubState {
    let config = Config {
        max_sensors: 1_000_000,
        ..Config::default()
    };
    let mut hub = HubState::new(config, HubOptions::default());
    hub.on_tables_read();
    let live = Arrival::at(NOW);
    let author = "a".repeat(MAX_AUTHOR_BYTES);
    let decision = |sensor, t_ms, on: bool| Decision {
        sensor,
        command: if on { Command::On } else { Command::Off },
        t_ms,
        temperature: 19.123_456_789_012_345,
        setpoint_version: u64::MAX >> 11,
        cause: DecisionCause::Band,
    };
    for sensor in 0..rooms {
        let sp = Setpoint::new(20.123_456_789_012_345, 0.5, 0.5);
        let change = SetpointChange::new(sensor, sp, 0, &author, NOW - 1);
        hub.on_setpoint(change, live).expect("valid setpoint");
        let history = if (sensor as usize) < MAX_WATCHED { 1_800 } else { 1 };
        for i in (0..history).rev() {
            let reading = SensorReading {
                sensor,
                t_ms: NOW - i * 500,
                temperature: -12.345_678_901_234_567,
            };
            hub.on_reading(reading, live).expect("valid reading");
        }
        let decisions = if (sensor as usize) < MAX_WATCHED { 400 } else { 1 };
        for i in (0..decisions).rev() {
            hub.on_decision(decision(sensor, NOW - i * 2_000, i % 2 == 0), live)
                .expect("valid decision");
        }
    }
    let step = |i: usize| ScheduleStep {
        days: Weekday::ALL.to_vec(),
        time: format!("{:02}:{:02}:59", i / 60, i % 60),
        desired: 20.123_456_789_012_345,
        up_delta: 0.5,
        down_delta: 0.5,
        mode: None,
        policy: None,
    };
    let record = ScheduleRecord {
        schedule: Schedule {
            name: "n".repeat(setpoint_wire::MAX_NAME_LEN),
            zone: "America/Argentina/ComodRivadavia".into(),
            steps: (0..MAX_SCHEDULE_STEPS).map(step).collect(),
            sensors: (0..rooms.min(MAX_SCHEDULE_SENSORS as i32)).collect(),
        },
        author,
        t_ms: NOW,
        deleted: false,
    };
    hub.on_schedule(record, NOW).expect("a valid schedule");
    hub
}

/// The largest frame among `messages`, with its start for the failure message.
fn largest(messages: impl IntoIterator<Item = String>) -> (usize, String) {
    messages
        .into_iter()
        .map(|json| (json.len(), json.chars().take(80).collect()))
        .max()
        .unwrap_or_default()
}

fn frames(outputs: Vec<Output>) -> Vec<String> {
    outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Send(_, m) | Output::Broadcast(m) | Output::About(_, m) => Some(m.to_json()),
            Output::Readings(items) => Some(
                ServerMessage::Readings(setpoint_wire::ws::ReadingsBatch {
                    items,
                    missed: 0,
                    backfill: false,
                })
                .to_json(),
            ),
            Output::Watch(..) | Output::Publish(_) => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn no_frame_outgrows_the_limit_at_any_number_of_rooms(rooms in 1..120_000i32, attention in any::<bool>()) {
        let mut hub = building(rooms);
        let welcome = hub.register(true, NOW);
        let mut sent: Vec<String> = std::iter::once(welcome.hello).chain(welcome.backfill).map(|m| m.to_json()).collect();
        let hello = sent[0].len();
        let request = ViewRequest {
            query: String::new(),
            filters: Vec::new(),
            sort: if attention { ViewSort::Attention } else { ViewSort::Id },
            page: 0,
            page_size: MAX_WATCHED as u32,
        };
        hub.view(welcome.id, &request, NOW);
        let firehose = hub.register(false, NOW).id;
        hub.subscribe(firehose, None);
        hub.flush();
        hub.tick(NOW + 1, BusStatus::Embedded);
        let outputs = hub.take_outputs();
        let viewed = outputs.iter().any(|o| matches!(o, Output::Send(_, ServerMessage::View(v)) if v.sensors.len() == (rooms as usize).min(MAX_WATCHED)));
        prop_assert!(viewed, "the page was answered whole");
        sent.extend(frames(outputs));
        let (size, start) = largest(sent);
        prop_assert!(size <= MAX_SERVER_FRAME_BYTES, "{} rooms: a frame of {} bytes: {}", rooms, size, start);
        prop_assert!(hello < 1_024, "hello is {} bytes at {} rooms", hello, rooms);
    }
}

/// Schedules at their bounds: twenty of 10,000 rooms and 1,000 steps each are about 3 MB of JSON, so the
/// list comes in parts, every part and every frame under the limit, and a client shows all twenty — a new
/// one from its welcome, a connected one from the change.
#[test]
fn a_list_of_schedules_past_one_frame_comes_in_parts_and_is_shown_whole() {
    let mut hub = building(1);
    let connected = hub.register(true, NOW).id;
    hub.take_outputs();
    let step = |i: usize| ScheduleStep {
        days: Weekday::ALL.to_vec(),
        time: format!("{:02}:{:02}:59", i / 60, i % 60),
        desired: 20.123_456_789_012_345,
        up_delta: 0.5,
        down_delta: 0.5,
        mode: None,
        policy: None,
    };
    let mut names = vec!["n".repeat(setpoint_wire::MAX_NAME_LEN)];
    for i in 0..19 {
        let name = format!("schedule-{i:02}");
        let record = ScheduleRecord {
            schedule: Schedule {
                name: name.clone(),
                zone: "America/Argentina/ComodRivadavia".into(),
                steps: (0..MAX_SCHEDULE_STEPS).map(step).collect(),
                sensors: (1_000_000..1_000_000 + MAX_SCHEDULE_SENSORS as i32).collect(),
            },
            author: "admin".into(),
            t_ms: NOW,
            deleted: false,
        };
        hub.on_schedule(record, NOW).expect("a valid schedule");
        names.push(name);
    }
    names.sort();
    let outputs = hub.take_outputs();
    let to_connected: Vec<ServerMessage> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast(m) => Some(m.clone()),
            Output::Send(c, m) if *c == connected => Some(m.clone()),
            _ => None,
        })
        .collect();
    let welcome = hub.register(true, NOW);
    for (who, msgs) in [("connected", to_connected), ("new", welcome.backfill)] {
        let json: Vec<String> = msgs.iter().map(ServerMessage::to_json).collect();
        let total: usize = json.iter().map(String::len).sum();
        let (size, start) = largest(json);
        assert!(
            size <= MAX_SERVER_FRAME_BYTES,
            "{who}: a frame of {size} bytes: {start}"
        );
        assert!(
            total > MAX_SERVER_FRAME_BYTES,
            "{who}: the list is past one frame ({total} bytes)"
        );
        let shown = super::tests::shown_schedules(&msgs);
        let shown: Vec<&str> = shown.schedules.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(shown, names, "{who}");
    }
}
