//! Schedules: the `schedules` message reaching the cards, and the editor's saves and deletes as API calls
//! whose answers (the server's `{code, message}`) come back to the form.

use super::*;
use crate::model::schedule_form::FormStatus;
use crate::model::schedules::{api_error_text, ApiCall, Method, ScheduleAction};
use setpoint_wire::schedule::{ListPart, NextStep, Schedule, ScheduleStep, SchedulesMsg, Weekday};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn next(sensor: SensorId, at_ms: TimeMs, desired: f64) -> NextStep {
    NextStep {
        sensor,
        schedule: "office".into(),
        at_ms,
        desired,
        up_delta: 0.5,
        down_delta: 0.5,
        mode: None,
    }
}

fn office(sensors: Vec<SensorId>) -> Schedule {
    Schedule {
        name: "office".into(),
        zone: "Europe/Berlin".into(),
        steps: vec![ScheduleStep {
            days: vec![Weekday::Mon],
            time: "22:00".into(),
            desired: 17.0,
            up_delta: 0.5,
            down_delta: 0.5,
            mode: None,
            policy: None,
        }],
        sensors,
    }
}

fn schedules(list: Vec<Schedule>, next: Vec<NextStep>) -> ServerMessage {
    ServerMessage::Schedules(SchedulesMsg {
        schedules: list,
        next,
        list: ListPart::Whole,
    })
}

fn named(name: &str, sensors: Vec<SensorId>) -> Schedule {
    Schedule {
        name: name.into(),
        ..office(sensors)
    }
}

#[test]
fn a_list_sent_in_parts_is_shown_whole_once_its_last_part_arrives_and_steps_alone_keep_it() {
    let mut m = Model::new("s".into());
    m.connect(false, &[1, 2, 3], vec![], 0.0);
    m.apply(schedules(vec![office(vec![1])], vec![]), 0.0);
    // A new list in two parts: the old one stays shown until the whole new one is there.
    for part in [vec![named("a", vec![1])], vec![named("b", vec![2])]] {
        m.apply(
            ServerMessage::Schedules(SchedulesMsg {
                schedules: part,
                next: vec![],
                list: ListPart::More,
            }),
            0.0,
        );
        assert_eq!(m.schedules.list.len(), 1);
        assert_eq!(m.schedules.list[0].name, "office");
    }
    m.apply(
        ServerMessage::Schedules(SchedulesMsg::steps(vec![next(2, 7_000, 18.0)], ListPart::Last)),
        0.0,
    );
    let names: Vec<&str> = m.schedules.list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(m.schedules.next[&2].at_ms, 7_000);
    // Only the next steps: the list stays.
    m.apply(
        ServerMessage::Schedules(SchedulesMsg::steps(
            vec![next(1, 9_000, 21.0)],
            ListPart::Unchanged,
        )),
        0.0,
    );
    assert_eq!(m.schedules.list.len(), 2);
    assert_eq!(m.schedules.next.get(&2), None);
    assert_eq!(m.schedules.next[&1].at_ms, 9_000);
}

fn act(m: &mut Model, a: ScheduleAction) {
    m.dispatch(Action::Schedule(a));
}

fn status(m: &Model) -> FormStatus {
    m.schedules.form.as_ref().expect("form open").status.clone()
}

#[test]
fn next_steps_reach_their_cards_and_only_changed_cards_redraw() {
    let mut m = Model::new("s".into());
    m.connect(false, &[1, 2, 3], vec![], 0.0);
    m.apply(
        schedules(
            vec![office(vec![1, 2])],
            vec![next(1, 5_000, 17.0), next(2, 5_000, 17.0)],
        ),
        0.0,
    );
    assert_eq!(m.schedules.list.len(), 1);
    assert_eq!(m.schedules.next[&1].at_ms, 5_000);
    let revs = |m: &Model| (1..=3).map(|s| m.sensors[&s].rev()).collect::<Vec<_>>();
    let before = revs(&m);
    // Sensor 1's step fired: its next is another; sensor 2 left the schedule; sensor 3 never had one.
    m.apply(schedules(vec![office(vec![1])], vec![next(1, 9_000, 21.0)]), 0.0);
    let after = revs(&m);
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "{before:?} → {after:?}"
    );
    assert_eq!(after[2], before[2]);
    assert_eq!(m.schedules.next.get(&2), None);
    assert_eq!(m.schedules.next[&1].desired, 21.0);
    // The same message again redraws no card.
    m.apply(schedules(vec![office(vec![1])], vec![next(1, 9_000, 21.0)]), 0.0);
    assert_eq!(revs(&m), after);
}

#[test]
fn saving_a_schedule_is_a_put_and_the_servers_refusal_is_shown() {
    let mut m = Model::new("s".into());
    m.connect(true, &[1, 2, 3], vec![], 0.0);
    m.dispatch(Action::Select { sensor: 3, on: true });
    m.dispatch(Action::Select { sensor: 1, on: true });
    act(&mut m, ScheduleAction::New { zone: "UTC".into() });
    let form = m.schedules.form.clone().expect("open");
    assert_eq!((form.zone.as_str(), form.sensors.as_str()), ("UTC", "1, 3"));

    // Refused in the browser: nothing is sent.
    act(&mut m, ScheduleAction::Save);
    assert!(matches!(status(&m), FormStatus::Invalid(e) if e.starts_with("name")));
    assert!(m.take_api_calls().is_empty());

    act(&mut m, ScheduleAction::Name("night".into()));
    act(&mut m, ScheduleAction::Sensors("2".into()));
    act(&mut m, ScheduleAction::UseSelected);
    act(&mut m, ScheduleAction::AddStep);
    act(
        &mut m,
        ScheduleAction::Day {
            step: 1,
            day: Weekday::Sun,
            on: true,
        },
    );
    act(
        &mut m,
        ScheduleAction::Time {
            step: 1,
            time: "22:00:30".into(),
        },
    );
    act(
        &mut m,
        ScheduleAction::Field {
            step: 1,
            field: SetpointField::Desired,
            value: 16.5,
        },
    );
    act(&mut m, ScheduleAction::AddStep);
    act(&mut m, ScheduleAction::RemoveStep(2));
    act(&mut m, ScheduleAction::Save);
    assert_eq!(status(&m), FormStatus::Saving { call: 0 });
    let calls = m.take_api_calls();
    let [ApiCall {
        id: 0,
        method: Method::Put,
        path,
        body: Some(body),
    }] = calls.as_slice()
    else {
        panic!("one PUT: {calls:?}")
    };
    assert_eq!(path, "/api/v1/schedules/night");
    let body: serde_json::Value = serde_json::from_str(body).expect("json");
    assert_eq!(body["zone"], "UTC");
    assert_eq!(body["sensors"], serde_json::json!([1, 3]), "the selected cards");
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        body["steps"][1]["days"],
        serde_json::json!(["mon", "tue", "wed", "thu", "fri", "sun"])
    );
    assert_eq!(body["steps"][1]["time"], "22:00:30");
    assert_eq!(body["steps"][1]["desired"], 16.5);
    act(&mut m, ScheduleAction::Save);
    assert!(m.take_api_calls().is_empty(), "one save at a time");

    // The server names the problem; the form stays open with it.
    act(
        &mut m,
        ScheduleAction::Answer {
            id: 0,
            result: Ok((
                422,
                r#"{"code":"invalid_schedule","message":"step 2: time \"25:00\" is not HH:MM"}"#.into(),
            )),
        },
    );
    assert_eq!(
        status(&m),
        FormStatus::Failed("step 2: time \"25:00\" is not HH:MM (invalid_schedule)".into())
    );
    act(&mut m, ScheduleAction::Save);
    assert_eq!(m.take_api_calls()[0].id, 1);
    // A late answer to the first call changes nothing; the second one's closes the form.
    act(
        &mut m,
        ScheduleAction::Answer {
            id: 0,
            result: Ok((200, String::new())),
        },
    );
    assert_eq!(status(&m), FormStatus::Saving { call: 1 });
    act(
        &mut m,
        ScheduleAction::Answer {
            id: 1,
            result: Ok((200, "{}".into())),
        },
    );
    assert!(m.schedules.form.is_none());
    assert_eq!(m.schedules.notice.as_deref(), Some("saved schedule night"));
}

#[test]
fn editing_and_deleting_an_existing_schedule() {
    let mut m = Model::new("s".into());
    m.connect(true, &[1, 2], vec![], 0.0);
    m.apply(schedules(vec![office(vec![1, 2])], vec![]), 0.0);
    act(&mut m, ScheduleAction::Edit { name: "nope".into() });
    assert!(m.schedules.form.is_none(), "only a schedule the server has");
    act(
        &mut m,
        ScheduleAction::Edit {
            name: "office".into(),
        },
    );
    act(&mut m, ScheduleAction::Name("renamed".into()));
    let form = m.schedules.form.clone().expect("open");
    assert_eq!(
        (form.name.as_str(), form.sensors.as_str()),
        ("office", "1, 2"),
        "the name is fixed"
    );
    assert_eq!(form.steps[0].day_list(), vec![Weekday::Mon]);

    act(&mut m, ScheduleAction::Delete);
    let calls = m.take_api_calls();
    assert_eq!(
        calls,
        vec![ApiCall {
            id: 0,
            method: Method::Delete,
            path: "/api/v1/schedules/office".into(),
            body: None
        }]
    );
    act(
        &mut m,
        ScheduleAction::Answer {
            id: 0,
            result: Err("the network is down".into()),
        },
    );
    assert_eq!(status(&m).text(), "error: not sent: the network is down");
    act(&mut m, ScheduleAction::Delete);
    assert_eq!(m.take_api_calls().len(), 1);
    act(
        &mut m,
        ScheduleAction::Answer {
            id: 1,
            result: Ok((204, String::new())),
        },
    );
    assert!(m.schedules.form.is_none());
    assert_eq!(m.schedules.notice.as_deref(), Some("deleted schedule office"));
    // A new form has no Delete.
    act(&mut m, ScheduleAction::New { zone: "UTC".into() });
    act(&mut m, ScheduleAction::Delete);
    assert!(m.take_api_calls().is_empty());
    act(&mut m, ScheduleAction::Close);
    assert!(m.schedules.form.is_none());
}

#[test]
fn api_errors_in_words() {
    assert_eq!(
        api_error_text(
            401,
            r#"{"code":"unauthorized","message":"a valid Bearer token is required"}"#
        ),
        "a valid Bearer token is required (unauthorized)"
    );
    assert_eq!(
        api_error_text(404, r#"{"code":"not_found","message":""}"#),
        "not_found (HTTP 404)"
    );
    assert_eq!(
        api_error_text(502, "<html>Bad gateway</html>"),
        "HTTP 502: <html>Bad gateway</html>"
    );
    assert_eq!(api_error_text(500, ""), "HTTP 500");
    // A code this page does not know yet: still shown, as the server wrote it.
    let body = r#"{"code":"brand_new","message":"why"}"#;
    assert_eq!(api_error_text(418, body), format!("HTTP 418: {body}"));
}
