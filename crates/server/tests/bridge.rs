//! The embedded runtime over real sockets: hello, backfill, live data, writes, security, bad frames,
//! slow clients, many clients and graceful shutdown.
//!
//! Over 400 lines on purpose: one scenario per test, each readable top to bottom; the shared client and
//! server start live in `setpoint_testkit` and `common`.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use setpoint_control::Command;
use setpoint_wire::ws::{BusStatus, ErrorCode, ErrorMsg, ServerMessage};

fn hello(m: &ServerMessage) -> &setpoint_wire::ws::Hello {
    match m {
        ServerMessage::Hello(h) => h,
        other => panic!("expected hello first, got {other:?}"),
    }
}

fn error_for<'a>(m: &'a ServerMessage, id: Option<&str>) -> Option<&'a ErrorMsg> {
    match m {
        ServerMessage::Error(e) if e.request_id.as_deref() == id => Some(e),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_backfill_live_readings_and_decisions_arrive() {
    let server = start(4, 50).await;
    let hub = server.hub.clone().expect("bridge");
    eventually("six readings of each room in the history", || {
        (1..=4).all(|s| hub.history(s, 0, i64::MAX).is_some_and(|h| h.readings.len() >= 6))
    })
    .await;
    let mut c = connect(addr(&server), Some(TOKEN), None).await.expect("connects");
    let first = c.next().await;
    let h = hello(&first);
    assert!(h.can_write);
    assert_eq!(h.protocol, 3);
    assert!(h.sensor_count >= 4);
    // The weekly schedules (none here); then nothing of any room until the page says which it watches.
    match c.next().await {
        ServerMessage::Schedules(s) => assert!(s.schedules.is_empty() && s.next.is_empty()),
        other => panic!("expected the schedules, got {other:?}"),
    }
    let view = c.subscribe(Some(&[1, 2, 3, 4])).await;
    assert_eq!(
        view.sensors
            .iter()
            .filter(|v| v.setpoint.is_some())
            .map(|v| v.sensor)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "seeded setpoints"
    );
    assert_eq!(view.fresh, vec![1, 2, 3, 4]);
    // Then their history from before: readings first.
    let backfill = match c.next().await {
        ServerMessage::Readings(b) if b.backfill => b,
        other => panic!("expected backfill, got {other:?}"),
    };
    assert!(
        backfill.items.len() >= 20,
        "{} readings of history",
        backfill.items.len()
    );
    let newest_backfill = backfill.items.iter().map(|i| i.t_ms).max().expect("items");
    // Live readings follow, newer than the backfill: nothing duplicated.
    let live = c
        .until(|m| match m {
            ServerMessage::Readings(b) if !b.backfill => Some(b.clone()),
            _ => None,
        })
        .await;
    assert!(live.items.iter().all(|i| i.t_ms > newest_backfill));
    // Force a decision on sensor 1 by moving its band far above or below the room.
    let room_temp = live
        .items
        .iter()
        .find(|i| i.sensor == 1)
        .map(|i| i.temperature)
        .unwrap_or(20.0);
    let heater_on = view
        .sensors
        .iter()
        .any(|v| v.sensor == 1 && v.heater.is_some_and(|d| d.command == Command::On));
    let (desired, expect) = if heater_on {
        (room_temp - 20.0, Command::Off)
    } else {
        (room_temp + 20.0, Command::On)
    };
    let base = view.setpoint(1).map(|s| s.version);
    c.send(&set_setpoint("r1", 1, desired, 1.0, 1.0, base)).await;
    let decision = c
        .until(|m| match m {
            ServerMessage::Decision(d) if d.sensor == 1 && d.setpoint_version == base.unwrap_or(0) + 1 => {
                Some(*d)
            }
            ServerMessage::Error(e) => panic!("write refused: {e:?}"),
            _ => None,
        })
        .await;
    assert_eq!(decision.command, expect);
    let (status, _, metrics) = http_get(addr(&server), "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("setpoint_reading_to_decision_seconds_count"));
    assert!(!metrics.contains(TOKEN), "the token never appears in metrics");
    let readings: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("setpoint_readings_total "))
        .and_then(|v| v.parse().ok())
        .expect("counter");
    assert!(readings > 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_token_and_are_acked_broadcast_and_applied() {
    let server = start(3, 50).await;
    let mut reader = connect(addr(&server), None, None).await.expect("connects");
    assert!(!hello(&reader.next().await).can_write);
    reader.subscribe(Some(&[2])).await;
    reader.send(&set_setpoint("x", 2, 30.0, 1.0, 1.0, None)).await;
    let e = reader.until(|m| error_for(m, Some("x")).cloned()).await;
    assert_eq!(e.code, ErrorCode::Unauthorized);

    let mut wrong = connect(addr(&server), Some("wrong-token-0123456789"), None)
        .await
        .expect("connects");
    assert!(
        !hello(&wrong.next().await).can_write,
        "a wrong token is read-only"
    );
    wrong.send(&set_setpoint("w", 2, 30.0, 1.0, 1.0, None)).await;
    assert_eq!(
        wrong.until(|m| error_for(m, Some("w")).cloned()).await.code,
        ErrorCode::Unauthorized
    );

    let mut writer = connect(addr(&server), Some(TOKEN), None).await.expect("connects");
    let h = writer.next().await;
    assert!(hello(&h).can_write);
    let version = writer
        .subscribe(Some(&[2]))
        .await
        .setpoint(2)
        .map_or(0, |s| s.version);
    writer
        .send(&set_setpoint("ok", 2, 35.5, 0.5, 0.25, Some(version)))
        .await;
    writer
        .until(|m| matches!(m, ServerMessage::Ack { request_id, .. } if request_id == "ok").then_some(()))
        .await;
    // Every client sees the new setpoint, with the next version.
    let seen = reader
        .until(|m| match m {
            ServerMessage::Setpoint(s) if s.sensor == 2 && s.desired == 35.5 => Some(s.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (seen.version, seen.up_delta, seen.down_delta),
        (version + 1, 0.5, 0.25)
    );
    // The controller decides with it: the room is far below 35.5 - 0.25, so On, under the new version.
    let d = reader
        .until(|m| match m {
            ServerMessage::Decision(d) if d.sensor == 2 && d.setpoint_version == version + 1 => Some(*d),
            _ => None,
        })
        .await;
    assert_eq!(d.command, Command::On);
    assert!(d.temperature < 35.25);
    // A new client's view carries it.
    let mut late = connect(addr(&server), None, None).await.expect("connects");
    let h = late.next().await;
    hello(&h);
    let seen = late.subscribe(Some(&[2])).await;
    assert!(seen
        .setpoint(2)
        .is_some_and(|s| s.desired == 35.5 && s.version == version + 1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_base_version_is_a_conflict_carrying_the_current_value() {
    let server = start(2, 50).await;
    let mut a = connect(addr(&server), Some(TOKEN), None).await.expect("connects");
    let mut b = connect(addr(&server), Some(TOKEN), None).await.expect("connects");
    hello(&a.next().await);
    let v = a.subscribe(Some(&[1])).await.setpoint(1).map_or(0, |s| s.version);
    b.next().await;
    a.send(&set_setpoint("a1", 1, 25.0, 1.0, 1.0, Some(v))).await;
    a.until(|m| matches!(m, ServerMessage::Ack { .. }).then_some(()))
        .await;
    b.send(&set_setpoint("b1", 1, 18.0, 1.0, 1.0, Some(v))).await;
    let e = b.until(|m| error_for(m, Some("b1")).cloned()).await;
    assert_eq!(e.code, ErrorCode::Conflict);
    let current = e.current.expect("conflict carries the value in force");
    assert_eq!((current.desired, current.version), (25.0, v + 1));
    assert_eq!(
        server.hub.as_ref().and_then(|h| h.setpoint(1)).map(|s| s.desired),
        Some(25.0),
        "the loser changed nothing"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_frame_gets_its_error_and_the_connection_survives() {
    let server = start(2, 50).await;
    let mut c = connect(addr(&server), Some(TOKEN), None).await.expect("connects");
    c.next().await;
    let huge = format!(r#"{{"type":"subscribe","pad":"{}"}}"#, "x".repeat(70 * 1024));
    let cases: Vec<(String, ErrorCode)> = vec![
        ("{not json".into(), ErrorCode::MalformedFrame),
        (r#"{"type":"set_setpoint","request_id":"n","sensor":1,"desired":NaN,"up_delta":1,"down_delta":1}"#.into(), ErrorCode::MalformedFrame),
        (r#"{"type":"set_setpoint","request_id":"t","sensor":"one","desired":1,"up_delta":1,"down_delta":1}"#.into(), ErrorCode::InvalidMessage),
        (r#"{"type":"teleport"}"#.into(), ErrorCode::UnknownType),
        (huge, ErrorCode::FrameTooLarge),
    ];
    for (frame, code) in &cases {
        c.send(frame).await;
        let e = c.until(|m| error_for(m, None).cloned()).await;
        assert_eq!(e.code, *code, "{}", &frame[..frame.len().min(80)]);
    }
    c.send(&set_setpoint("neg", 1, 20.0, -1.0, 1.0, None)).await;
    let e = c.until(|m| error_for(m, Some("neg")).cloned()).await;
    assert_eq!(e.code, ErrorCode::InvalidSetpoint);
    assert!(e.message.contains("up_delta"), "{}", e.message);
    c.send_binary(vec![0, 1, 2]).await;
    assert_eq!(
        c.until(|m| error_for(m, None).cloned()).await.code,
        ErrorCode::BinaryFrame
    );
    // Still connected, still able to write.
    c.send(&set_setpoint("fine", 1, 22.0, 1.0, 1.0, None)).await;
    c.until(|m| matches!(m, ServerMessage::Ack { request_id, .. } if request_id == "fine").then_some(()))
        .await;
    let (_, _, metrics) = http_get(addr(&server), "/metrics").await;
    let decode_errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("setpoint_decode_errors_total "))
        .and_then(|v| v.parse().ok())
        .expect("counter");
    assert_eq!(decode_errors, 5);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_upgrades_are_refused_and_same_origin_accepted() {
    let server = start(1, 100).await;
    let a = addr(&server);
    let refused = connect(a, Some(TOKEN), Some("http://evil.example")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| "a connection")),
    }
    let rebinding = connect(
        a,
        Some(TOKEN),
        Some(&format!("http://attacker.example:{}", a.port())),
    )
    .await;
    assert!(
        rebinding.is_err(),
        "an origin on our port but another host is refused"
    );
    let mut ok = connect(a, Some(TOKEN), Some(&format!("http://127.0.0.1:{}", a.port())))
        .await
        .expect("own origin");
    assert!(hello(&ok.next().await).can_write);
    let mut localhost = connect(a, None, Some(&format!("http://localhost:{}", a.port())))
        .await
        .expect("own origin");
    localhost.next().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_neither_delays_others_nor_grows_memory() {
    // 400 rooms every 10 ms: 40k readings/s, enough to fill a stalled client's socket buffers quickly.
    // A send deadline of 3 s drops the stalled client once its socket stopped draining (after its readings
    // were coalesced for a while); pings are far off,
    // so it is the deadline that drops it.
    let mut options = common::options(400, 10);
    if let Some(bridge) = options.bridge.as_mut() {
        bridge.listener.send_timeout = Duration::from_secs(3);
        bridge.listener.ws_ping_interval = Duration::from_secs(600);
    }
    let server = start_with(options).await;
    let a = addr(&server);
    // Never read from, after asking for every room's readings.
    let mut stalled = connect(a, None, None).await.expect("connects");
    stalled.send(r#"{"type":"subscribe","sensors":null}"#).await;
    let mut live = connect(a, None, None).await.expect("connects");
    live.next().await;
    live.subscribe(None).await;
    let started = tokio::time::Instant::now();
    let mut worst_lag_ms = 0i64;
    let mut batches = 0;
    while started.elapsed() < Duration::from_secs(6) {
        if let ServerMessage::Readings(b) = live.next().await {
            if !b.backfill {
                let newest = b.items.iter().map(|i| i.t_ms).max().unwrap_or(0);
                let lag = setpoint::clock::now_ms() - newest;
                if started.elapsed() > Duration::from_secs(1) {
                    worst_lag_ms = worst_lag_ms.max(lag);
                }
                batches += 1;
            }
        }
    }
    println!("live client: {batches} batches, worst lag {worst_lag_ms} ms");
    assert!(batches > 20, "{batches}");
    // A hub that waited on the stalled client would hold the live one back until the 3 s send deadline
    // dropped it; the bound sits well under that, and well over what a loaded debug build takes to deliver.
    assert!(worst_lag_ms < 2_000, "the live client lagged {worst_lag_ms} ms");
    let depths = server.hub.as_ref().expect("hub").queue_depths();
    assert!(
        depths[0] <= setpoint::bridge::outbox::MAX_QUEUED_BATCHES,
        "{depths:?}"
    );
    let (_, _, metrics) = http_get(a, "/metrics").await;
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("setpoint_ws_dropped_readings_total "))
        .and_then(|v| v.parse().ok())
        .expect("counter");
    println!("coalesced away for the stalled client: {dropped}");
    assert!(dropped > 0, "the stalled client's readings were coalesced");
    let series = "setpoint_clients_refused_total{reason=\"ws_send_timeout\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let read = |series: &'static str| async move {
        let (_, _, text) = http_get(a, "/metrics").await;
        metric(&text, series).unwrap_or(0)
    };
    while read(series).await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while read("setpoint_ws_clients").await > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client is still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_are_served_at_once() {
    let server = start(5, 50).await;
    let a = addr(&server);
    let clients = futures_util::future::join_all((0..100).map(|_| async move {
        let mut c = connect(a, None, None).await.expect("connects");
        c.next().await;
        // Each opens the dashboard's first page: its rooms' summaries and history, then live readings.
        let view = c.view(setpoint_wire::view::ViewRequest::by_id(0, 24)).await;
        assert_eq!(view.sensors.len(), 5);
        c.until(|m| matches!(m, ServerMessage::Readings(b) if !b.backfill).then_some(()))
            .await;
        c
    }))
    .await;
    assert_eq!(clients.len(), 100);
    let (_, _, metrics) = http_get(a, "/metrics").await;
    assert!(
        metrics.contains("setpoint_ws_clients 100\n"),
        "{}",
        metrics
            .lines()
            .find(|l| l.starts_with("setpoint_ws_clients "))
            .unwrap_or_default()
    );
    let mut clients = clients;
    let one = &mut clients[0];
    // Status frames report the client count (the first ones may predate the last connections).
    let status = one
        .until(|m| match m {
            ServerMessage::Status(s) if s.clients == 100 => Some(*s),
            _ => None,
        })
        .await;
    assert_eq!(status.bus, BusStatus::Embedded);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_flushes_and_closes_connections() {
    use setpoint::bus::{Bus, SensorReading};
    let server = start(3, 50).await;
    let a = addr(&server);
    let mut c = connect(a, Some(TOKEN), None).await.expect("connects");
    c.next().await;
    c.subscribe(Some(&[99])).await;
    c.send(&set_setpoint("s99", 99, 20.0, 1.0, 1.0, None)).await;
    c.until(|m| matches!(m, ServerMessage::Ack { .. }).then_some(()))
        .await;
    // A reading published just before the stop must still be decided on and its command delivered
    // before the close frame: the controller drains the bus, then the bridge drains and flushes.
    let cold = SensorReading {
        sensor: 99,
        t_ms: setpoint::clock::now_ms(),
        temperature: 0.0,
    };
    server.bus.publish(vec![cold]).await.expect("publish");
    let stop = server.stop_token();
    let waiting = tokio::spawn(server.wait());
    stop.cancel();
    let mut command = None;
    let close = loop {
        let frame = tokio::time::timeout(PATIENCE, futures_util::StreamExt::next(&mut c.ws))
            .await
            .expect("in time");
        match frame {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                if let Ok(ServerMessage::Decision(d)) = ServerMessage::from_json(t.as_str()) {
                    if d.sensor == 99 {
                        command = Some(d.command);
                    }
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(
        command,
        Some(Command::On),
        "the last command was flushed before the close"
    );
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("stops in time")
        .expect("joined");
    assert!(
        tokio::net::TcpStream::connect(a).await.is_err(),
        "the port is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_the_not_built_page() {
    let server = start(1, 100).await;
    let a = addr(&server);
    assert_eq!(http_get(a, "/healthz").await.0, 200);
    assert_eq!(http_get(a, "/readyz").await.0, 200);
    let (status, head, body) = http_get(a, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("cargo xtask dist"), "{body}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("x-content-type-options: nosniff"));
    assert!(head.contains("frame-ancestors 'none'"));
    assert!(head.contains("script-src 'self' 'wasm-unsafe-eval'"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_is_rate_limited_per_token_and_address_not_per_connection() {
    // No refill during the test, however slowly a loaded machine sends the frames: exactly the burst, and a
    // second connection finds the budget still spent.
    let mut slow_refill = options(1, 100);
    if let Some(bridge) = slow_refill.bridge.as_mut() {
        bridge.writes_per_second = 1e-6;
    }
    let server = start_with(slow_refill).await;
    let mut c = connect(addr(&server), Some(TOKEN), None).await.expect("connects");
    c.next().await;
    for i in 0..15 {
        c.send(&set_setpoint(
            &format!("b{i}"),
            1,
            20.0 + f64::from(i) * 0.1,
            1.0,
            1.0,
            None,
        ))
        .await;
    }
    let (mut acked, mut limited) = (0, 0);
    while acked + limited < 15 {
        match c.next().await {
            ServerMessage::Ack { .. } => acked += 1,
            ServerMessage::Error(e) if e.code == ErrorCode::RateLimited => limited += 1,
            ServerMessage::Error(e) => panic!("unexpected {e:?}"),
            _ => {}
        }
    }
    assert_eq!(
        (acked, limited),
        (10, 5),
        "a burst of 10 goes through, the rest is limited"
    );
    // Another connection does not bring a fresh budget: the token's (and the address's) is spent.
    let mut other = connect(addr(&server), Some(TOKEN), None).await.expect("connects");
    other.next().await;
    other.send(&set_setpoint("o1", 1, 21.0, 1.0, 1.0, None)).await;
    let code = other
        .until(|m| match m {
            ServerMessage::Error(e) if e.request_id.as_deref() == Some("o1") => Some(Ok(e.code)),
            ServerMessage::Ack { request_id, .. } if request_id == "o1" => Some(Err(())),
            _ => None,
        })
        .await;
    assert_eq!(
        code,
        Ok(ErrorCode::RateLimited),
        "a new connection multiplied the budget"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_presents_its_token_as_a_bearer_header() {
    let server = start(2, 50).await;
    let connect_with = |authorization: String| {
        let a = addr(&server);
        async move {
            let mut request = setpoint_testkit::ws::request(a, None, None).expect("request");
            request
                .headers_mut()
                .insert("authorization", authorization.parse().expect("header"));
            let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("connects");
            setpoint_testkit::ws::Client { ws }
        }
    };
    let mut wrong = connect_with("Bearer wrong-token-0123456789".to_owned()).await;
    assert!(
        !hello(&wrong.next().await).can_write,
        "a wrong bearer token is read-only"
    );
    let mut script = connect_with(format!("Bearer {TOKEN}")).await;
    let h = script.next().await;
    let h = hello(&h);
    assert!(h.can_write);
    let base = script.subscribe(Some(&[1])).await.setpoint(1).map(|s| s.version);
    script.send(&set_setpoint("s1", 1, 33.0, 1.0, 1.0, base)).await;
    script
        .until(|m| match m {
            ServerMessage::Ack { request_id, .. } if request_id == "s1" => Some(()),
            ServerMessage::Error(e) if e.request_id.as_deref() == Some("s1") => panic!("{e:?}"),
            _ => None,
        })
        .await;
    assert_eq!(
        server
            .hub
            .as_ref()
            .and_then(|h| h.setpoint(1))
            .and_then(|s| s.author),
        Some("admin".to_owned()),
        "the change is recorded under the token's name"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_reads_every_sensor_and_answers_errors_with_websocket_codes() {
    use setpoint_wire::api::{ApiError, SensorView};
    let server = start(3, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let deadline = tokio::time::Instant::now() + setpoint_testkit::ws::PATIENCE;
    while (1..=3).any(|s| hub.sensor_view(s).is_none_or(|v| v.reading.is_none())) {
        assert!(tokio::time::Instant::now() < deadline, "no readings");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, head, body) = http_get(a, "/api/v1/sensors").await;
    assert_eq!(status, 200, "{body}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    let all: Vec<SensorView> = serde_json::from_str(&body).expect("sensors");
    assert_eq!(all.iter().map(|v| v.sensor).collect::<Vec<_>>(), vec![1, 2, 3]);
    for v in &all {
        let sp = v.setpoint.as_ref().expect("seeded");
        assert_eq!(Some(sp), hub.setpoint(v.sensor).as_ref());
        assert_eq!(sp.author.as_deref(), Some("simulator"));
        assert!(v.reading.is_some_and(|r| r.sensor == v.sensor));
    }
    let (status, _, body) = http_get(a, "/api/v1/sensors/2").await;
    assert_eq!(status, 200);
    let one: SensorView = serde_json::from_str(&body).expect("sensor");
    assert_eq!(one.sensor, 2);
    let (status, _, body) = http_get(a, "/api/v1/sensors/2/setpoint").await;
    assert_eq!(status, 200);
    let sp: setpoint_wire::ws::SetpointMsg = serde_json::from_str(&body).expect("setpoint");
    assert_eq!(Some(sp), hub.setpoint(2));
    for (path, status, code) in [
        ("/api/v1/sensors/999", 404, ErrorCode::NotFound),
        ("/api/v1/sensors/999/setpoint", 404, ErrorCode::NotFound),
        ("/api/v1/sensors/abc", 400, ErrorCode::InvalidMessage),
        ("/api/v1/sensors/99999999999", 400, ErrorCode::InvalidMessage),
    ] {
        let (got, _, body) = http_get(a, path).await;
        assert_eq!(got, status, "{path}: {body}");
        let e: ApiError = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(e.code, code, "{path}");
    }
    server.shutdown().await;
}

/// Ten thousand rooms, where protocol 1's `hello` (every room, setpoint and command in one frame) passed the
/// frame limit and the page could never connect: `hello` is a few hundred bytes, the first page of rooms
/// arrives with its summaries and history, a far room is found by id, and live readings of only the
/// watched rooms follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_connects_at_ten_thousand_rooms_and_gets_only_what_it_watches() {
    use setpoint_wire::view::{ViewRequest, MAX_SERVER_FRAME_BYTES};
    let rooms = 10_000;
    // Readings every 5 s: 2,000 readings/s, which a debug build keeps up with on two cores.
    let server = start(rooms, 5_000).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    eventually("every room heard of", || {
        hub.sensor_page(None, 1, &[]).matching >= rooms
    })
    .await;
    let mut page = connect(a, Some(TOKEN), None).await.expect("connects");
    let first = page.ws.next().await.expect("a frame").expect("open");
    let hello_bytes = first.len();
    let h = match ServerMessage::from_json(first.to_text().expect("text")) {
        Ok(ServerMessage::Hello(h)) => h,
        other => panic!("expected hello, got {other:?}"),
    };
    assert_eq!(h.sensor_count, rooms as u64);
    assert!(hello_bytes < 1_024, "hello is {hello_bytes} bytes");
    let view = page.view(ViewRequest::by_id(0, 120)).await;
    assert_eq!(
        (view.sensors.len(), view.total, view.pages),
        (120, rooms as u64, 84)
    );
    assert_eq!(view.sensors.first().map(|v| v.sensor), Some(1));
    // A far room, by id.
    let mut find = ViewRequest::by_id(0, 24);
    find.query = "9876".into();
    let found = page.view(find).await;
    assert_eq!(
        found.sensors.iter().map(|v| v.sensor).collect::<Vec<_>>(),
        vec![9876]
    );
    assert!(found.setpoint(9876).is_some(), "its setpoint comes with it");
    // From now on: only room 9876's readings, none of the other 9,999, and every frame under the limit.
    let mut seen = 0;
    while seen < 2 {
        let frame = tokio::time::timeout(PATIENCE, page.ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("a frame");
        assert!(
            frame.len() <= MAX_SERVER_FRAME_BYTES,
            "a frame of {} bytes",
            frame.len()
        );
        if let Ok(ServerMessage::Readings(b)) = ServerMessage::from_json(frame.to_text().unwrap_or("")) {
            assert!(b.items.iter().all(|r| r.sensor == 9876), "{:?}", b.items.first());
            seen += usize::from(!b.backfill);
        }
    }
    server.shutdown().await;
}

/// A page of protocol 1 or 2 (a tab left open across an upgrade) is not left retrying a handshake that never
/// succeeds: it is told, in a frame it can read, to reload, and closed with the code that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_the_retired_protocol_is_told_to_reload() {
    use setpoint_wire::ws::{CLOSE_RETIRED_PROTOCOL, RETIRED_PROTOCOL_MESSAGE, RETIRED_SUBPROTOCOLS};
    use tokio_tungstenite::tungstenite::Message;
    let server = start(2, 50).await;
    for retired in RETIRED_SUBPROTOCOLS {
        let mut request = setpoint_testkit::ws::request(addr(&server), None, None).expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            format!("{retired}, token.{TOKEN}").parse().expect("header"),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.expect("upgraded");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(*retired),
            "the page's own protocol is selected, so its browser opens the socket"
        );
        let mut old = setpoint_testkit::ws::Client { ws };
        let said = old.next().await;
        assert!(
            matches!(&said, ServerMessage::Error(e) if e.code == ErrorCode::InvalidMessage && e.message == RETIRED_PROTOCOL_MESSAGE),
            "{said:?}"
        );
        let close = tokio::time::timeout(PATIENCE, old.ws.next())
            .await
            .expect("closed in time");
        assert!(
            matches!(&close, Some(Ok(Message::Close(Some(f)))) if u16::from(f.code) == CLOSE_RETIRED_PROTOCOL),
            "{close:?}"
        );
    }
    let (_, _, metrics) = http_get(addr(&server), "/metrics").await;
    assert_eq!(
        common::metric(
            &metrics,
            "setpoint_clients_refused_total{reason=\"retired_protocol\"}"
        ),
        Some(RETIRED_SUBPROTOCOLS.len() as u64)
    );
    server.shutdown().await;
}
