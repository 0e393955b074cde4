//! The WebSocket protocol v2: every message round-trips, the documented JSON shapes decode, and bad frames
//! are typed errors.

use setpoint_control::{Command, Config, Decision, DecisionCause, SensorReading, Setpoint};
use setpoint_wire::api::{SensorFilter, SensorView};
use setpoint_wire::view::{ViewMsg, ViewRequest, ViewSort, MAX_QUERY_LEN, MAX_WATCHED};
use setpoint_wire::ws::*;

fn round_trip(msg: ServerMessage) {
    let json = msg.to_json();
    assert_eq!(ServerMessage::from_json(&json).expect(&json), msg, "{json}");
}

#[test]
fn every_server_message_round_trips() {
    let sp = SetpointMsg::new(1, &Setpoint::new(45.0, 1.0, 1.0), 3, Some(10));
    let d = Decision {
        sensor: 1,
        t_ms: 0,
        temperature: 46.1,
        command: Command::Off,
        setpoint_version: 3,
        cause: DecisionCause::Band,
    };
    round_trip(ServerMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        can_write: true,
        sensor_count: 2,
        config: Config::default(),
        server_time_ms: 5,
    }));
    round_trip(ServerMessage::View(ViewMsg {
        sensors: vec![SensorView {
            sensor: 1,
            reading: None,
            setpoint: Some(sp.clone()),
            heater: Some(d),
            next_step: None,
            source: Some(setpoint_wire::api::RoomSource::devices(
                "zigbee2mqtt:bed_sensor",
                Some("Bedroom"),
            )),
        }],
        fresh: vec![1],
        total: 7,
        page: 0,
        pages: 7,
    }));
    round_trip(ServerMessage::Readings(ReadingsBatch {
        items: vec![SensorReading {
            sensor: 1,
            t_ms: 0,
            temperature: 44.2,
        }],
        missed: 3,
        backfill: true,
    }));
    round_trip(ServerMessage::Decision(d));
    round_trip(ServerMessage::Setpoint(sp.clone()));
    round_trip(ServerMessage::Ack {
        request_id: "r1".into(),
        setpoint: None,
    });
    round_trip(ServerMessage::Ack {
        request_id: "r2".into(),
        setpoint: Some(sp.clone()),
    });
    round_trip(ServerMessage::Error(ErrorMsg {
        request_id: None,
        code: ErrorCode::Conflict,
        message: "x".into(),
        current: Some(sp),
    }));
    round_trip(ServerMessage::Status(StatusMsg {
        clients: 2,
        sensors: 100_000,
        heating: 4_321,
        bus: BusStatus::Embedded,
        readings_total: 9,
        decisions_total: 1,
        server_time_ms: 3,
    }));
}

#[test]
fn server_messages_have_the_documented_shape() {
    let d = Decision {
        sensor: 1,
        t_ms: 0,
        temperature: 46.1,
        command: Command::Off,
        setpoint_version: 0,
        cause: DecisionCause::Band,
    };
    let v: serde_json::Value = serde_json::from_str(&ServerMessage::Decision(d).to_json()).expect("json");
    assert_eq!(v["type"], "decision");
    assert_eq!(v["command"], "off");
    assert_eq!(v["sensor"], 1);
    let v: serde_json::Value = serde_json::from_str(
        &ServerMessage::Ack {
            request_id: "r1".into(),
            setpoint: None,
        }
        .to_json(),
    )
    .expect("json");
    assert_eq!(v, serde_json::json!({"type": "ack", "request_id": "r1"}));
    let e = ServerMessage::Error(ErrorMsg {
        request_id: Some("r1".into()),
        code: ErrorCode::InvalidSetpoint,
        message: "up_delta must be ≥ 0".into(),
        current: None,
    });
    let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"type":"error","request_id":"r1","code":"invalid_setpoint","message":"up_delta must be ≥ 0"})
    );
    // Documented minimal forms decode (extra fields allowed, optional fields defaulted).
    let m = ServerMessage::from_json(
        r#"{"type":"decision","sensor":1,"t_ms":0,"temperature":46.1,"command":"on","extra":1}"#,
    )
    .expect("decodes");
    assert!(matches!(
        m,
        ServerMessage::Decision(Decision {
            command: Command::On,
            ..
        })
    ));
    let m =
        ServerMessage::from_json(r#"{"type":"readings","items":[{"sensor":1,"t_ms":0,"temperature":44.2}]}"#)
            .expect("decodes");
    assert!(matches!(
        m,
        ServerMessage::Readings(ReadingsBatch {
            missed: 0,
            backfill: false,
            ..
        })
    ));
}

#[test]
fn client_messages_decode_from_the_documented_json() {
    assert_eq!(
        ClientMessage::from_json(r#"{"type":"subscribe","sensors":[1,2]}"#),
        Ok(ClientMessage::Subscribe {
            sensors: Some(vec![1, 2])
        })
    );
    assert_eq!(
        ClientMessage::from_json(r#"{"type":"subscribe"}"#),
        Ok(ClientMessage::Subscribe { sensors: None })
    );
    assert_eq!(
        ClientMessage::from_json(r#"{"type":"subscribe","sensors":null}"#),
        Ok(ClientMessage::Subscribe { sensors: None })
    );
    assert_eq!(
        ClientMessage::from_json(
            r#"{"type":"view","query":"12","filters":["stale","heater_on"],"sort":"attention","page":3,"page_size":24}"#
        ),
        Ok(ClientMessage::View(ViewRequest {
            query: "12".into(),
            filters: vec![SensorFilter::Stale, SensorFilter::HeaterOn],
            sort: ViewSort::Attention,
            page: 3,
            page_size: 24,
        }))
    );
    assert_eq!(
        ClientMessage::from_json(r#"{"type":"view","page_size":24}"#),
        Ok(ClientMessage::View(ViewRequest::by_id(0, 24)))
    );
    let m = ClientMessage::from_json(
        r#"{"type":"set_setpoint","request_id":"r1","sensor":1,"desired":45.0,"up_delta":1.0,"down_delta":1.0,"base_version":3}"#,
    );
    let Ok(ClientMessage::SetSetpoint(s)) = m else {
        panic!("{m:?}")
    };
    assert_eq!(
        (
            s.request_id.as_str(),
            s.sensor,
            s.setpoint_over(None),
            s.base_version
        ),
        ("r1", 1, Setpoint::new(45.0, 1.0, 1.0), Some(3))
    );
    let json = serde_json::to_string(&ClientMessage::SetSetpoint(s.clone())).expect("json");
    assert_eq!(ClientMessage::from_json(&json), Ok(ClientMessage::SetSetpoint(s)));
}

#[test]
fn bad_client_frames_are_typed_errors() {
    let cases: &[(&str, ErrorCode)] = &[
        ("not json", ErrorCode::MalformedFrame),
        ("", ErrorCode::MalformedFrame),
        ("[1,2]", ErrorCode::MalformedFrame),
        (
            r#"{"type":"set_setpoint","request_id":"r","sensor":1,"desired":NaN,"up_delta":1,"down_delta":1}"#,
            ErrorCode::MalformedFrame,
        ),
        (r#"{"sensor":1}"#, ErrorCode::UnknownType),
        (r#"{"type":"launch_missiles"}"#, ErrorCode::UnknownType),
        (r#"{"type":7}"#, ErrorCode::UnknownType),
        (
            r#"{"type":"set_setpoint","request_id":"r","sensor":"one","desired":1,"up_delta":1,"down_delta":1}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"set_setpoint","request_id":"r","sensor":1,"desired":1,"up_delta":1}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"set_setpoint","request_id":"r","sensor":2147483648,"desired":1,"up_delta":1,"down_delta":1}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"subscribe","sensors":"all"}"#,
            ErrorCode::InvalidMessage,
        ),
        // Every size a view or a subscription carries is bounded: no request costs the bridge more than a
        // page.
        (r#"{"type":"view"}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"view","page_size":0}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"view","page_size":201}"#, ErrorCode::InvalidMessage),
        (
            r#"{"type":"view","page_size":20,"sort":"random"}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"view","page_size":20,"filters":["lukewarm"]}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"view","page_size":20,"page":-1}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"view","page_size":20,"pgae":2}"#,
            ErrorCode::InvalidMessage,
        ),
        // A write refuses what it does not know, as the HTTP API does: a misspelt `base_version` must not
        // make a conditional write unconditional.
        (
            r#"{"type":"set_setpoint","request_id":"r","sensor":1,"desired":1,"up_delta":1,"down_delta":1,"base_verison":3}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"set_setpoints","writes":[{"request_id":"r","sensor":1,"desired":1,"up_delta":1,"down_delta":1,"x":1}]}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"set_setpoint","sensor":1,"desired":1,"up_delta":1,"down_delta":1}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"set_setpoint","request_id":"","sensor":1,"desired":1,"up_delta":1,"down_delta":1}"#,
            ErrorCode::InvalidMessage,
        ),
    ];
    for (frame, code) in cases {
        let err = ClientMessage::from_json(frame).expect_err(frame);
        assert_eq!(err.code(), *code, "{frame}: {err}");
    }
    let long_id = format!(
        r#"{{"type":"set_setpoint","request_id":"{}","sensor":1,"desired":1,"up_delta":1,"down_delta":1}}"#,
        "x".repeat(MAX_REQUEST_ID_LEN + 1)
    );
    assert_eq!(
        ClientMessage::from_json(&long_id).map_err(|e| e.code()),
        Err(ErrorCode::InvalidMessage)
    );
}

#[test]
fn token_syntax_is_the_shared_rule() {
    assert!(is_token_syntax("0123456789abcdef0123456789abcdef"));
    assert!(is_token_syntax("my-secret_token-123"));
    for bad in [
        "",
        "a b",
        "tok,en",
        "tök",
        "a%20b",
        &"x".repeat(MAX_TOKEN_LEN + 1),
    ] {
        assert!(!is_token_syntax(bad), "{bad:?}");
    }
    assert_eq!((SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX), ("setpoint.v3", "token."));
}

#[test]
fn history_messages_have_their_documented_shapes() {
    assert_eq!(
        ClientMessage::from_json(r#"{"type":"setpoint_history","sensor":3}"#),
        Ok(ClientMessage::SetpointHistory { sensor: 3 })
    );
    let entry = SetpointChangeEntry {
        version: 2,
        author: "alice".into(),
        t_ms: 10,
        from: Some(Setpoint::new(20.0, 1.0, 1.0)),
        to: Setpoint::new(21.0, 1.0, 1.0),
    };
    let history = ServerMessage::SetpointHistory(SetpointHistoryMsg {
        sensor: 3,
        changes: vec![entry.clone()],
    });
    round_trip(history.clone());
    assert_eq!(
        serde_json::to_value(&history).expect("json"),
        serde_json::json!({"type": "setpoint_history", "sensor": 3, "changes": [{
            "version": 2, "author": "alice", "t_ms": 10,
            "from": {"desired": 20.0, "up_delta": 1.0, "down_delta": 1.0,
                "mode": "heat", "policy": {"kind": "hysteresis"}},
            "to": {"desired": 21.0, "up_delta": 1.0, "down_delta": 1.0,
                "mode": "heat", "policy": {"kind": "hysteresis"}}}]})
    );
    let d = Decision {
        sensor: 3,
        t_ms: 5,
        temperature: 18.0,
        command: Command::On,
        setpoint_version: 2,
        cause: DecisionCause::Band,
    };
    round_trip(ServerMessage::Decisions(DecisionsBatch {
        items: vec![d],
        backfill: true,
    }));
    // The author travels with a setpoint, and is omitted when unknown (older bridges, other tools).
    let mut sp = SetpointMsg::new(3, &Setpoint::new(21.0, 1.0, 1.0), 2, Some(10));
    assert!(!ServerMessage::Setpoint(sp.clone()).to_json().contains("author"));
    sp.author = Some("alice".into());
    round_trip(ServerMessage::Setpoint(sp));
}

#[test]
fn views_and_subscriptions_are_bounded() {
    let long_query = format!(
        r#"{{"type":"view","page_size":20,"query":"{}"}}"#,
        "1".repeat(MAX_QUERY_LEN + 1)
    );
    let many_rooms = format!(
        r#"{{"type":"subscribe","sensors":{:?}}}"#,
        (0..=MAX_WATCHED as i32).collect::<Vec<_>>()
    );
    let five_filters =
        r#"{"type":"view","page_size":20,"filters":["stale","stale","stale","stale"]}"#.to_owned();
    for frame in [long_query, many_rooms, five_filters] {
        let e = ClientMessage::from_json(&frame).expect_err("refused");
        assert_eq!(e.code(), ErrorCode::InvalidMessage, "{e}");
    }
    let most = format!(
        r#"{{"type":"subscribe","sensors":{:?}}}"#,
        (0..MAX_WATCHED as i32).collect::<Vec<_>>()
    );
    assert!(ClientMessage::from_json(&most).is_ok());
}
