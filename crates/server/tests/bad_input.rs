//! Every bad input we know of, in one table, with the exact response each must get.
//!
//! Three doors face the outside: WebSocket frames from browsers (tried against a real server over a real
//! socket), protobuf records from Kafka (tried through the same `Payload::decode` the Kafka consumer calls),
//! and the values inside them (tried against the control crate's `Controller`, which every transport feeds).
//! After each bad input the test checks that the door still works and that no state changed.
//!
//! Over 400 lines on purpose: the value of this file is that every bad input is in one table.

mod common;

use std::time::Duration;

use common::*;
use prost::Message as _;
use setpoint::bus::{Payload, SensorReading, SetpointChange};
use setpoint_control::{Command, Config, Controller, Reading, ReadingError, Setpoint};
use setpoint_wire::proto::{DecodeError, HeaterControl, SensorData};
use setpoint_wire::ws::{ErrorCode, ServerMessage};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// What is sent, and through which door.
enum Input {
    /// A WebSocket text frame.
    Text(String),
    /// A WebSocket frame as raw parts, for what a text frame cannot carry (invalid UTF-8).
    RawText(Vec<u8>),
    Binary(Vec<u8>),
    /// The same text frame many times, as fast as the socket takes them.
    Burst(String, usize),
    /// Connections opened and dropped in quick succession, `n` at a time, `rounds` times.
    ReconnectStorm {
        at_once: usize,
        rounds: usize,
    },
    /// A Kafka record on `sensor`: optional key and value (`None` = a null value, a tombstone).
    SensorRecord(Option<&'static [u8]>, Option<Vec<u8>>),
    /// A Kafka record on `tempset`.
    SetpointRecord(Option<&'static [u8]>, Option<Vec<u8>>),
    /// A Kafka record on `heatercontrol`, as a bridge reads it.
    CommandRecord(Vec<u8>),
    /// A reading straight into a controller that has sensor 1 under setpoint 20 ± 1, heater on.
    Temperature(f64),
    /// A setpoint straight into a controller.
    ControllerSetpoint(Setpoint),
}

/// The exact response.
#[derive(Debug, PartialEq)]
enum Expect {
    /// An `error` frame with this code; the connection stays open and usable.
    WsError(ErrorCode),
    /// An `ack`: the input is valid after all (documented edge).
    WsAck,
    /// Accepted without reply (e.g. extra fields are ignored); the connection stays usable.
    WsQuiet,
    /// The transport closes the connection with this RFC 6455 code; the server keeps serving others.
    WsClose(u16),
    /// Each bad frame of a burst gets exactly its answer, nothing is lost or reordered, and the connection stays usable.
    WsAllAnswered,
    /// The server keeps serving; every storm connection is unregistered.
    ServerServes,
    /// `Payload::decode` refuses it with this `DecodeError::kind()`; the consumer counts it and skips it.
    Decode(&'static str),
    /// Decodes; the string describes the decoded value.
    Decoded(String),
    /// The controller refuses the reading with this error kind and its state is unchanged.
    ReadingRefused(&'static str),
    /// The controller accepts the reading and decides this.
    ReadingDecides(Option<Command>),
    /// The controller puts the setpoint in force.
    SetpointApplied,
    /// The controller refuses the setpoint (field named in the error) and keeps the one in force.
    SetpointRefused(&'static str),
}

struct Case {
    name: &'static str,
    input: Input,
    expect: Expect,
}

fn case(name: &'static str, input: Input, expect: Expect) -> Case {
    Case { name, input, expect }
}

fn text(s: &str) -> Input {
    Input::Text(s.to_owned())
}

fn sensor_data(sensor: i32, temperature: f64) -> Vec<u8> {
    SensorData {
        sensor_id: sensor,
        temperature,
        event_time_ms: 1,
    }
    .encode_to_vec()
}

fn table() -> Vec<Case> {
    use Expect::*;
    use Input::*;
    let w = |fields: &str| format!(r#"{{"type":"set_setpoint","request_id":"r",{fields}}}"#);
    let mut nested = String::from(r#"{"type":"subscribe","x":"#);
    nested.push_str(&"[".repeat(10_000));
    nested.push_str(&"]".repeat(10_000));
    nested.push('}');
    // Field 99, varint 5: unknown to us, must be skipped.
    let mut unknown_field = sensor_data(3, 21.5);
    unknown_field.extend_from_slice(&[0x98, 0x06, 0x05]);
    // Field 1 as a 10-byte varint of 2^40 + 7: protobuf says an int32 keeps the low 32 bits.
    let mut wide_sensor = vec![0x08];
    let mut v: u64 = (1 << 40) + 7;
    while v >= 0x80 {
        wide_sensor.push((v as u8) | 0x80);
        v >>= 7;
    }
    wide_sensor.push(v as u8);
    vec![
        // --- WebSocket frames ---
        case("not JSON", text("{not json"), WsError(ErrorCode::MalformedFrame)),
        case("empty frame", text(""), WsError(ErrorCode::MalformedFrame)),
        case(
            "JSON but not an object",
            text("[1,2,3]"),
            WsError(ErrorCode::MalformedFrame),
        ),
        case(
            "no type",
            text(r#"{"sensors":null}"#),
            WsError(ErrorCode::UnknownType),
        ),
        case(
            "type is a number",
            text(r#"{"type":7}"#),
            WsError(ErrorCode::UnknownType),
        ),
        case(
            "unknown type",
            text(r#"{"type":"teleport"}"#),
            WsError(ErrorCode::UnknownType),
        ),
        case(
            "NaN temperature literal",
            Text(w(r#""sensor":1,"desired":NaN,"up_delta":1,"down_delta":1"#)),
            WsError(ErrorCode::MalformedFrame),
        ),
        case(
            "Infinity literal",
            Text(w(r#""sensor":1,"desired":Infinity,"up_delta":1,"down_delta":1"#)),
            WsError(ErrorCode::MalformedFrame),
        ),
        case(
            "1e309 (valid JSON, overflows f64)",
            Text(w(r#""sensor":1,"desired":1e309,"up_delta":1,"down_delta":1"#)),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "desired 1e308",
            Text(w(r#""sensor":1,"desired":1e308,"up_delta":1,"down_delta":1"#)),
            WsError(ErrorCode::InvalidSetpoint),
        ),
        case(
            "desired -0",
            Text(w(r#""sensor":1,"desired":-0.0,"up_delta":1,"down_delta":1"#)),
            WsAck,
        ),
        case(
            "sensor id 2^31 (outside i32)",
            Text(w(
                r#""sensor":2147483648,"desired":20,"up_delta":1,"down_delta":1"#,
            )),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "sensor id -2^31-1",
            Text(w(
                r#""sensor":-2147483649,"desired":20,"up_delta":1,"down_delta":1"#,
            )),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "sensor id 1.5",
            Text(w(r#""sensor":1.5,"desired":20,"up_delta":1,"down_delta":1"#)),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "sensor id as a string",
            Text(w(r#""sensor":"1","desired":20,"up_delta":1,"down_delta":1"#)),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "desired as a string",
            Text(w(r#""sensor":1,"desired":"20","up_delta":1,"down_delta":1"#)),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "missing field",
            Text(w(r#""sensor":1,"desired":20,"up_delta":1"#)),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "negative delta",
            Text(w(r#""sensor":1,"desired":20,"up_delta":-1,"down_delta":1"#)),
            WsError(ErrorCode::InvalidSetpoint),
        ),
        case(
            "huge delta",
            Text(w(r#""sensor":1,"desired":20,"up_delta":1e6,"down_delta":1"#)),
            WsError(ErrorCode::InvalidSetpoint),
        ),
        case(
            "setpoint for a sensor never seen (held until it reports)",
            Text(w(r#""sensor":987654,"desired":20,"up_delta":1,"down_delta":1"#)),
            WsAck,
        ),
        case(
            "duplicate key",
            Text(w(
                r#""sensor":1,"sensor":2,"desired":20,"up_delta":1,"down_delta":1"#,
            )),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "duplicate type",
            text(r#"{"type":"subscribe","type":"set_setpoint"}"#),
            WsError(ErrorCode::MalformedFrame),
        ),
        case(
            "extra fields (ignored, so the protocol can grow)",
            text(r#"{"type":"subscribe","sensors":[1],"colour":"red","n":{"deep":[1]}}"#),
            WsQuiet,
        ),
        case(
            "a write with an extra field (refused, as over HTTP: a misspelt field must not write a default)",
            Text(w(
                r#""sensor":1,"desired":20,"up_delta":1,"down_delta":1,"base_verison":1"#,
            )),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "subscribe with the wrong type",
            text(r#"{"type":"subscribe","sensors":"all"}"#),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "request_id of 200 bytes",
            Text(
                w(&format!(
                    r#""request_id":"{}","sensor":1,"desired":20,"up_delta":1,"down_delta":1"#,
                    "i".repeat(200)
                ))
                .replacen(r#""request_id":"r","#, "", 1),
            ),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "10,000-deep nesting (valid JSON, over the recursion limit)",
            Text(nested),
            WsError(ErrorCode::InvalidMessage),
        ),
        case(
            "70 KiB frame (over the 64 KiB limit)",
            Text(format!(
                r#"{{"type":"subscribe","pad":"{}"}}"#,
                "x".repeat(70 * 1024)
            )),
            WsError(ErrorCode::FrameTooLarge),
        ),
        case(
            "binary frame",
            Binary(vec![0, 1, 2]),
            WsError(ErrorCode::BinaryFrame),
        ),
        case(
            "invalid UTF-8 in a text frame",
            RawText(vec![b'{', 0xff, 0xfe, b'}']),
            WsClose(1007),
        ),
        case("10 MB frame", Text("x".repeat(10 * 1024 * 1024)), WsClose(1009)),
        // Each is answered with a view (this server's budgets are not what is tested here); a client
        // sending ten thousand without reading its answers would be dropped as too slow.
        case(
            "1k subscribe messages in a burst",
            Burst(r#"{"type":"subscribe","sensors":[1,2]}"#.into(), 1_000),
            WsQuiet,
        ),
        case(
            "1k malformed frames in a burst",
            Burst("{".into(), 1_000),
            WsAllAnswered,
        ),
        case(
            "reconnect storm: 50 at once × 10 rounds",
            ReconnectStorm {
                at_once: 50,
                rounds: 10,
            },
            ServerServes,
        ),
        // --- Kafka records ---
        case(
            "garbage protobuf",
            SensorRecord(None, Some(vec![0xff, 0xff, 0xff])),
            Decode("SensorData"),
        ),
        case(
            "truncated protobuf",
            SensorRecord(None, Some(sensor_data(3, 21.5)[..4].to_vec())),
            Decode("SensorData"),
        ),
        case(
            "unknown protobuf field (skipped)",
            SensorRecord(Some(b"3"), Some(unknown_field)),
            Decoded("sensor 3 at 21.5".into()),
        ),
        case(
            "sensor id varint beyond i32 (low 32 bits, as protobuf says)",
            SensorRecord(None, Some(wide_sensor)),
            Decoded("sensor 7 at 0".into()),
        ),
        case(
            "key outside i32",
            SensorRecord(Some(b"4294967296"), Some(sensor_data(3, 21.5))),
            Decode("bad_key"),
        ),
        case(
            "key not a number",
            SensorRecord(Some(b"kitchen"), Some(sensor_data(3, 21.5))),
            Decode("bad_key"),
        ),
        case(
            "key and value disagree",
            SensorRecord(Some(b"4"), Some(sensor_data(3, 21.5))),
            Decode("key_mismatch"),
        ),
        case(
            "no key (reference writers may omit it)",
            SensorRecord(None, Some(sensor_data(3, 21.5))),
            Decoded("sensor 3 at 21.5".into()),
        ),
        case(
            "null value (tombstone) on sensor",
            SensorRecord(Some(b"3"), None),
            Decode("tombstone"),
        ),
        case(
            "null value (tombstone) on tempset",
            SetpointRecord(Some(b"3"), None),
            Decode("tombstone"),
        ),
        case(
            "garbage on tempset",
            SetpointRecord(Some(b"3"), Some(vec![0x0a, 0xff])),
            Decode("TemperatureControl"),
        ),
        case(
            "unknown heater command 7",
            CommandRecord(
                HeaterControl {
                    sensor_id: 3,
                    command: 7,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            Decode("unknown_command"),
        ),
        // --- values ---
        case(
            "temperature NaN",
            Temperature(f64::NAN),
            ReadingRefused("NonFiniteTemperature"),
        ),
        case(
            "temperature +Inf",
            Temperature(f64::INFINITY),
            ReadingRefused("NonFiniteTemperature"),
        ),
        case(
            "temperature -Inf",
            Temperature(f64::NEG_INFINITY),
            ReadingRefused("NonFiniteTemperature"),
        ),
        case(
            "temperature -1e308",
            Temperature(-1e308),
            ReadingRefused("BelowAbsoluteZero"),
        ),
        case(
            "temperature -273.16",
            Temperature(-273.16),
            ReadingRefused("BelowAbsoluteZero"),
        ),
        case(
            "temperature 1e308 (finite: far above the band)",
            Temperature(1e308),
            ReadingDecides(Some(Command::Off)),
        ),
        case(
            "temperature -0 (is 0: below the band)",
            Temperature(-0.0),
            ReadingDecides(None),
        ),
        case(
            "setpoint desired NaN",
            ControllerSetpoint(Setpoint::new(f64::NAN, 1.0, 1.0)),
            SetpointRefused("desired"),
        ),
        case(
            "setpoint down_delta -Inf",
            ControllerSetpoint(Setpoint::new(20.0, 1.0, f64::NEG_INFINITY)),
            SetpointRefused("down_delta"),
        ),
        case(
            "setpoint up_delta -1",
            ControllerSetpoint(Setpoint::new(20.0, -1.0, 1.0)),
            SetpointRefused("up_delta"),
        ),
        case(
            "setpoint desired 1e308",
            ControllerSetpoint(Setpoint::new(1e308, 1.0, 1.0)),
            SetpointRefused("desired"),
        ),
    ]
}

/// Runs one WebSocket case on a fresh connection and reports what happened, in `Expect`'s terms.
async fn run_ws(addr: std::net::SocketAddr, input: Input, expect: &Expect) -> Expect {
    let mut c = connect(addr, Some(TOKEN), None).await.expect("connects");
    c.next().await; // hello
    if let Expect::WsClose(_) = expect {
        let message = match input {
            Input::Text(t) => Message::Text(t.into()),
            Input::RawText(bytes) => Message::Frame(Frame::message(bytes, OpCode::Data(Data::Text), true)),
            _ => unreachable!("only single frames close the connection"),
        };
        return Expect::WsClose(c.send_expecting_close(message).await.unwrap_or(0));
    }
    match input {
        Input::Text(t) => c.send(&t).await,
        Input::RawText(bytes) => {
            c.send_message(Message::Frame(Frame::message(
                bytes,
                OpCode::Data(Data::Text),
                true,
            )))
            .await
        }
        Input::Binary(b) => c.send_binary(b).await,
        Input::Burst(t, n) => {
            for _ in 0..n {
                c.send(&t).await;
            }
            if *expect == Expect::WsAllAnswered {
                for i in 0..n {
                    let m = c
                        .until(|m| match m {
                            ServerMessage::Error(e) => Some(e.code),
                            _ => None,
                        })
                        .await;
                    assert_eq!(m, ErrorCode::MalformedFrame, "answer {i}");
                }
                assert_usable(&mut c).await;
                return Expect::WsAllAnswered;
            }
        }
        _ => unreachable!("not a WebSocket input"),
    }
    // The answer to the bad frame, if any, comes before the answer to this probe write.
    c.send(&set_setpoint("probe", 1, 21.0, 1.0, 1.0, None)).await;
    let mut answer = None;
    c.until(|m| match m {
        ServerMessage::Error(e) if e.request_id.as_deref() == Some("probe") => panic!("probe refused: {e:?}"),
        ServerMessage::Ack { request_id, .. } if request_id == "probe" => Some(()),
        ServerMessage::Error(e) if answer.is_none() => {
            answer = Some(Expect::WsError(e.code));
            None
        }
        ServerMessage::Ack { .. } if answer.is_none() => {
            answer = Some(Expect::WsAck);
            None
        }
        _ => None,
    })
    .await;
    answer.unwrap_or(Expect::WsQuiet)
}

/// The connection still answers a valid write.
async fn assert_usable(c: &mut Client) {
    c.send(&set_setpoint("usable", 1, 21.0, 1.0, 1.0, None)).await;
    c.until(|m| match m {
        ServerMessage::Ack { request_id, .. } if request_id == "usable" => Some(()),
        ServerMessage::Error(e) if e.request_id.as_deref() == Some("usable") => panic!("{e:?}"),
        _ => None,
    })
    .await;
}

fn metric(text: &str, name: &str) -> u64 {
    common::metric(text, name).unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn describe_reading(r: &SensorReading) -> String {
    format!("sensor {} at {}", r.sensor, r.temperature)
}

fn reading_error_kind(e: &ReadingError) -> &'static str {
    match e {
        ReadingError::NonFiniteTemperature { .. } => "NonFiniteTemperature",
        ReadingError::BelowAbsoluteZero { .. } => "BelowAbsoluteZero",
        ReadingError::FromTheFuture(_) => "FromTheFuture",
        ReadingError::TooManySensors(_) => "TooManySensors",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_exact_response_and_nothing_breaks() {
    // Every case opens a connection and probes with a write from 127.0.0.1, and budgets are per address:
    // budgets for all of them, so what is checked here is each input's own answer, not the rate limits
    // (hostile.rs).
    let mut options = common::options(2, 50);
    if let Some(bridge) = options.bridge.as_mut() {
        bridge.write_burst = 10_000.0;
        bridge.read_burst = 10_000.0;
    }
    let server = common::start_with(options).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for Case { name, input, expect } in table() {
        let got = match input {
            Input::Text(_) | Input::RawText(_) | Input::Binary(_) | Input::Burst(..) => {
                // Sensor 2's setpoint must survive every WebSocket case untouched (the probe writes sensor 1).
                let before = hub.setpoint(2);
                let got = run_ws(a, input, &expect).await;
                assert_eq!(hub.setpoint(2), before, "{name}: state changed");
                got
            }
            Input::ReconnectStorm { at_once, rounds } => {
                for _ in 0..rounds {
                    let storm = (0..at_once).map(|_| async {
                        let mut c = connect(a, Some(TOKEN), None).await.expect("connects");
                        c.next().await;
                    });
                    futures_util::future::join_all(storm).await;
                }
                let mut c = connect(a, Some(TOKEN), None)
                    .await
                    .expect("connects after the storm");
                c.next().await;
                assert_usable(&mut c).await;
                // Every storm connection is unregistered (only this one remains), within the patience.
                let deadline = tokio::time::Instant::now() + PATIENCE;
                loop {
                    let (_, _, m) = http_get(a, "/metrics").await;
                    if metric(&m, "setpoint_ws_clients") == 1 {
                        break;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "storm connections leaked");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Expect::ServerServes
            }
            Input::SensorRecord(key, value) => match value {
                None => Expect::Decode(DecodeError::Tombstone.kind()),
                Some(v) => match SensorReading::decode(key, &v, 0) {
                    Ok(r) => Expect::Decoded(describe_reading(&r)),
                    Err(e) => Expect::Decode(e.kind()),
                },
            },
            Input::SetpointRecord(key, value) => match value {
                None => Expect::Decode(DecodeError::Tombstone.kind()),
                Some(v) => match SetpointChange::decode(key, &v, 0) {
                    Ok(_) => Expect::Decoded("a setpoint".into()),
                    Err(e) => Expect::Decode(e.kind()),
                },
            },
            Input::CommandRecord(v) => match setpoint_control::Decision::decode(Some(b"3"), &v, 0) {
                Ok(_) => Expect::Decoded("a command".into()),
                Err(e) => Expect::Decode(e.kind()),
            },
            Input::Temperature(t) => {
                let mut c = Controller::new(Config::default());
                c.apply_setpoint(1, Setpoint::new(20.0, 1.0, 1.0), 1)
                    .expect("valid");
                c.on_reading(
                    1,
                    Reading {
                        t_ms: 0,
                        temperature: 10.0,
                    },
                )
                .expect("valid");
                let before = c.sensor(1).cloned();
                match c.on_reading(
                    1,
                    Reading {
                        t_ms: 1,
                        temperature: t,
                    },
                ) {
                    Ok(d) => Expect::ReadingDecides(d.map(|d| d.command)),
                    Err(e) => {
                        assert_eq!(
                            c.sensor(1).cloned(),
                            before,
                            "{name}: a refused reading changed state"
                        );
                        Expect::ReadingRefused(reading_error_kind(&e))
                    }
                }
            }
            Input::ControllerSetpoint(sp) => {
                let mut c = Controller::new(Config::default());
                c.apply_setpoint(1, Setpoint::new(20.0, 1.0, 1.0), 1)
                    .expect("valid");
                match c.apply_setpoint(1, sp, 2) {
                    Ok(()) => Expect::SetpointApplied,
                    Err(e) => {
                        assert_eq!(
                            c.sensor(1).and_then(|s| s.setpoint()).map(|s| s.version),
                            Some(1),
                            "{name}: the setpoint in force changed"
                        );
                        Expect::SetpointRefused(e.field().as_str())
                    }
                }
            }
        };
        let ok = got == expect;
        rows.push(format!(
            "| {name} | {expect:?} | {} |",
            if ok { "pass" } else { "FAIL" }
        ));
        if !ok {
            failures.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    // The process is still healthy and still controlling after all of it.
    assert_eq!(http_get(a, "/healthz").await.0, 200);
    let mut c = connect(a, Some(TOKEN), None).await.expect("connects");
    c.next().await;
    c.subscribe(None).await;
    c.until(|m| matches!(m, ServerMessage::Decision(_)).then_some(()))
        .await;
    println!(
        "| input | expected | result |\n|---|---|---|\n{}",
        rows.join("\n")
    );
    println!("{} inputs tried", rows.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.shutdown().await;
}
