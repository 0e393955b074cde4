//! Contract tests of the HTTP API (`/api/v1`) over real sockets: every endpoint, its auth, its conflicts,
//! each bad input with its status and code, body limits and rate limits. What a script gets must be what
//! the dashboard shows: writes are checked against the hub's state and a WebSocket client's view.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{addr, connect, eventually, options, start, start_with, PATIENCE, TOKEN};
use serde_json::{json, Value};
use setpoint::app::Running;
use setpoint::bus::embedded::EmbeddedBus;
use setpoint_testkit::http::{request, Response};
use setpoint_wire::api::{SensorHistory, WriteOutcome};
use setpoint_wire::ws::{ErrorCode, ServerMessage, SetpointMsg};

const BEARER: &str = "Bearer test-token-0123456789abcdef";

async fn put(a: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    request(a, "PUT", path, headers, Some(body)).await
}

/// A server whose write budgets these tests do not reach: they check answers, not the rate limit (which
/// `writes_are_rate_limited_per_token` and hostile.rs do), and need no pauses for the budget to refill.
async fn start_unlimited(rooms: usize, interval_ms: i64) -> Running<EmbeddedBus> {
    let mut options = options(rooms, interval_ms);
    if let Some(bridge) = options.bridge.as_mut() {
        bridge.write_burst = 10_000.0;
    }
    start_with(options).await
}

async fn get(a: SocketAddr, path: &str) -> Response {
    request(a, "GET", path, &[], None).await
}

fn code(r: &Response) -> ErrorCode {
    serde_json::from_value(r.json()["code"].clone()).unwrap_or_else(|e| panic!("no code ({e}): {}", r.body))
}

fn setpoint(r: &Response) -> SetpointMsg {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not a setpoint ({e}): {}", r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_sets_a_setpoint_with_a_bearer_token_and_the_dashboard_shows_it() {
    assert!(BEARER.ends_with(TOKEN));
    let server = start(3, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let mut page = connect(a, None, None).await.expect("connects");
    page.until(|m| matches!(m, ServerMessage::Hello(_)).then_some(()))
        .await;
    page.subscribe(Some(&[2])).await;

    let before = get(a, "/api/v1/sensors/2/setpoint").await;
    assert_eq!(before.status, 200, "{}", before.body);
    let v0 = setpoint(&before).version;
    assert_eq!(before.header("etag"), Some(format!("\"{v0}\"").as_str()));

    let body = r#"{"desired":23.5,"up_delta":0.5,"down_delta":1.5}"#;
    let r = put(
        a,
        "/api/v1/sensors/2/setpoint",
        &[("Authorization", BEARER)],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let written = setpoint(&r);
    assert_eq!(
        (
            written.sensor,
            written.desired,
            written.up_delta,
            written.down_delta
        ),
        (2, 23.5, 0.5, 1.5)
    );
    assert_eq!(written.version, v0 + 1);
    assert_eq!(written.author.as_deref(), Some("admin"));
    assert_eq!(r.header("etag"), Some(format!("\"{}\"", v0 + 1).as_str()));
    // In force when the answer came, and shown to the open page.
    assert_eq!(hub.setpoint(2), Some(written.clone()));
    let shown = page
        .until(|m| match m {
            ServerMessage::Setpoint(s) if s.sensor == 2 && s.version == v0 + 1 => Some(s.clone()),
            _ => None,
        })
        .await;
    assert_eq!(shown, written);

    // If-Match with the version in force: applied. With the old one: 409 and the value in force.
    let tag = format!("\"{}\"", v0 + 1);
    let r = put(
        a,
        "/api/v1/sensors/2/setpoint",
        &[("Authorization", BEARER), ("If-Match", &tag)],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(setpoint(&r).version, v0 + 2);
    let r = put(
        a,
        "/api/v1/sensors/2/setpoint",
        &[("Authorization", BEARER), ("If-Match", &tag)],
        body,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(code(&r), ErrorCode::Conflict);
    let current: SetpointMsg = serde_json::from_value(r.json()["current"].clone()).expect("current");
    assert_eq!(current.version, v0 + 2);
    assert_eq!(Some(current), hub.setpoint(2));
    // `*` and a bare number are accepted forms of If-Match.
    let r = put(
        a,
        "/api/v1/sensors/2/setpoint",
        &[("Authorization", BEARER), ("If-Match", "*")],
        body,
    )
    .await;
    assert_eq!((r.status, setpoint(&r).version), (200, v0 + 3));
    let bare = (v0 + 3).to_string();
    let r = put(
        a,
        "/api/v1/sensors/2/setpoint",
        &[("Authorization", BEARER), ("If-Match", &bare)],
        body,
    )
    .await;
    assert_eq!((r.status, setpoint(&r).version), (200, v0 + 4));

    // The change history names the token.
    let h = get(a, "/api/v1/sensors/2/history").await;
    assert_eq!(h.status, 200, "{}", h.body);
    let history: SensorHistory = serde_json::from_str(&h.body).expect("history");
    let admin: Vec<u64> = history
        .changes
        .iter()
        .filter(|c| c.author == "admin")
        .map(|c| c.version)
        .collect();
    assert_eq!(admin, vec![v0 + 1, v0 + 2, v0 + 3, v0 + 4]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_a_valid_token_or_from_a_foreign_page_are_refused() {
    let server = start(2, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let before = hub.setpoint(1);
    let body = r#"{"desired":22,"up_delta":1,"down_delta":1}"#;
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token-0123456789abcdef")],
        vec![("Authorization", "Basic dGVzdDp0ZXN0")],
        vec![("Authorization", TOKEN)],
    ] {
        let r = put(a, "/api/v1/sensors/1/setpoint", &headers, body).await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
        assert_eq!(code(&r), ErrorCode::Unauthorized);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = put(a, "/api/v1/setpoints", &headers, "[]").await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
    }
    let r = put(
        a,
        "/api/v1/sensors/1/setpoint",
        &[("Authorization", BEARER), ("Origin", "http://evil.example")],
        body,
    )
    .await;
    assert_eq!((r.status, code(&r)), (403, ErrorCode::Forbidden), "{}", r.body);
    assert_eq!(hub.setpoint(1), before, "a refused write changed the setpoint");
    // The server's own page may write.
    let own = format!("http://{a}");
    let r = put(
        a,
        "/api/v1/sensors/1/setpoint",
        &[("Authorization", BEARER), ("Origin", &own)],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_gets_its_status_and_the_websockets_code() {
    let server = start_unlimited(2, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let before = hub.setpoint(1);
    let auth = [("Authorization", BEARER)];
    let huge = format!(
        r#"{{"desired":22,"up_delta":1,"down_delta":1,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let cases: Vec<(&str, String, u16, ErrorCode)> = vec![
        (
            "/api/v1/sensors/1/setpoint",
            "{".into(),
            400,
            ErrorCode::MalformedFrame,
        ),
        (
            "/api/v1/sensors/1/setpoint",
            "".into(),
            400,
            ErrorCode::MalformedFrame,
        ),
        (
            "/api/v1/sensors/1/setpoint",
            r#"{"desired":22,"up_delta":1}"#.into(),
            400,
            ErrorCode::InvalidMessage,
        ),
        (
            "/api/v1/sensors/1/setpoint",
            r#"{"desired":"22","up_delta":1,"down_delta":1}"#.into(),
            400,
            ErrorCode::InvalidMessage,
        ),
        (
            "/api/v1/sensors/1/setpoint",
            r#"{"desired":22,"up_delta":1,"down_delta":1,"colour":2}"#.into(),
            400,
            ErrorCode::InvalidMessage,
        ),
        (
            "/api/v1/sensors/1/setpoint",
            r#"{"desired":1e309,"up_delta":1,"down_delta":1}"#.into(),
            400,
            ErrorCode::MalformedFrame,
        ),
        (
            "/api/v1/sensors/1/setpoint",
            r#"{"desired":500,"up_delta":1,"down_delta":1}"#.into(),
            422,
            ErrorCode::InvalidSetpoint,
        ),
        (
            "/api/v1/sensors/1/setpoint",
            r#"{"desired":22,"up_delta":-1,"down_delta":1}"#.into(),
            422,
            ErrorCode::InvalidSetpoint,
        ),
        (
            "/api/v1/sensors/x/setpoint",
            r#"{"desired":22,"up_delta":1,"down_delta":1}"#.into(),
            400,
            ErrorCode::InvalidMessage,
        ),
        (
            "/api/v1/sensors/1/setpoint",
            huge.clone(),
            413,
            ErrorCode::FrameTooLarge,
        ),
        ("/api/v1/setpoints", huge, 413, ErrorCode::FrameTooLarge),
        (
            "/api/v1/setpoints",
            r#"{"sensor":1}"#.into(),
            400,
            ErrorCode::InvalidMessage,
        ),
        (
            "/api/v1/setpoints",
            format!(
                "[{}]",
                vec![r#"{"sensor":1,"desired":22,"up_delta":1,"down_delta":1}"#; 501].join(",")
            ),
            400,
            ErrorCode::InvalidMessage,
        ),
    ];
    for (path, body, status, expected) in cases {
        let r = put(a, path, &auth, &body).await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(r.status, status, "{path} {shown}: {}", r.body);
        assert_eq!(code(&r), expected, "{path} {shown}");
        assert!(!r.json()["message"].as_str().unwrap_or_default().is_empty());
    }
    let r = put(
        a,
        "/api/v1/sensors/1/setpoint",
        &[("Authorization", BEARER), ("If-Match", "W/\"1\"")],
        r#"{"desired":22,"up_delta":1,"down_delta":1}"#,
    )
    .await;
    assert_eq!(
        (r.status, code(&r)),
        (400, ErrorCode::InvalidMessage),
        "{}",
        r.body
    );
    assert_eq!(hub.setpoint(1), before, "a refused write changed the setpoint");
    for (path, status, expected) in [
        ("/api/v1/sensors/999/history", 404, ErrorCode::NotFound),
        (
            "/api/v1/sensors/1/history?since=yesterday",
            400,
            ErrorCode::InvalidMessage,
        ),
        (
            "/api/v1/sensors/1/history?since=2000&until=1000",
            400,
            ErrorCode::InvalidMessage,
        ),
        ("/api/v1/sensors/1/history?from=1", 400, ErrorCode::InvalidMessage),
    ] {
        let r = get(a, path).await;
        assert_eq!((r.status, code(&r)), (status, expected), "{path}: {}", r.body);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_rate_limited_per_token() {
    // No refill during the test, however slowly a loaded machine sends the requests: exactly the burst.
    let mut slow_refill = options(1, 50);
    if let Some(bridge) = slow_refill.bridge.as_mut() {
        bridge.writes_per_second = 1e-6;
    }
    let server = start_with(slow_refill).await;
    let a = addr(&server);
    // Refused writes (422) still spend the budget, and come back at once: 10 in the burst, then 429.
    let mut statuses = Vec::new();
    for _ in 0..14 {
        let r = put(
            a,
            "/api/v1/sensors/1/setpoint",
            &[("Authorization", BEARER)],
            r#"{"desired":500,"up_delta":1,"down_delta":1}"#,
        )
        .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(code(&r), ErrorCode::RateLimited);
        }
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 422).count(), 10, "{statuses:?}");
    assert!(statuses[10..].iter().all(|&s| s == 429), "{statuses:?}");
    // Reading is never limited.
    assert_eq!(get(a, "/api/v1/sensors").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_write_answers_each_sensor_on_its_own() {
    let server = start(4, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let v = |s| hub.setpoint(s).map_or(0, |sp| sp.version);
    let (v1, v2, v3, v4) = (v(1), v(2), v(3), v(4));
    let body = json!([
        {"sensor": 1, "desired": 19.0, "up_delta": 0.5, "down_delta": 0.5},
        {"sensor": 2, "desired": 19.0, "up_delta": 0.5, "down_delta": 0.5, "base_version": v2},
        {"sensor": 3, "desired": 19.0, "up_delta": 0.5, "down_delta": 0.5, "base_version": v3 + 7},
        {"sensor": 4, "desired": 900.0, "up_delta": 0.5, "down_delta": 0.5},
        {"sensor": 9, "desired": 19.0, "up_delta": 0.5, "down_delta": 0.5},
    ])
    .to_string();
    let r = put(a, "/api/v1/setpoints", &[("Authorization", BEARER)], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let outcomes: Vec<WriteOutcome> = serde_json::from_str(&r.body).expect("outcomes");
    let summary: Vec<(i32, u16, Option<u64>, Option<ErrorCode>)> = outcomes
        .iter()
        .map(|o| {
            (
                o.sensor,
                o.status,
                o.setpoint.as_ref().map(|s| s.version),
                o.error.as_ref().map(|e| e.code),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, 200, Some(v1 + 1), None),
            (2, 200, Some(v2 + 1), None),
            (3, 409, None, Some(ErrorCode::Conflict)),
            (4, 422, None, Some(ErrorCode::InvalidSetpoint)),
            (9, 200, Some(1), None),
        ]
    );
    assert_eq!(
        outcomes[2]
            .error
            .as_ref()
            .and_then(|e| e.current.as_ref())
            .map(|c| c.version),
        Some(v3)
    );
    for s in [1, 2, 9] {
        let sp = hub.setpoint(s).expect("in force");
        assert_eq!(
            (sp.desired, sp.author.as_deref()),
            (19.0, Some("admin")),
            "sensor {s}"
        );
    }
    assert_eq!(hub.setpoint(3).map(|s| s.version), Some(v3));
    assert_eq!(hub.setpoint(4).map(|s| s.version), Some(v4));
    // The read side agrees.
    let all: Vec<Value> = serde_json::from_str(&get(a, "/api/v1/sensors").await.body).expect("sensors");
    let nine = all.iter().find(|s| s["sensor"] == 9).expect("sensor 9 listed");
    assert_eq!(nine["setpoint"]["desired"], 19.0);
    server.shutdown().await;
}

/// A write is one shape on both doors: the same object is accepted by both, and the same object with a
/// misspelt field is refused by both with the same code, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_one_shape_with_one_unknown_field_rule_on_both_doors() {
    let server = start_unlimited(2, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let mut page = connect(a, Some(TOKEN), None).await.expect("connects");
    page.until(|m| matches!(m, ServerMessage::Hello(_)).then_some(()))
        .await;
    let write = json!({"request_id": "w1", "sensor": 1, "desired": 20.5, "up_delta": 0.5, "down_delta": 0.5});
    let misspelt = json!({"request_id": "w2", "sensor": 1, "desired": 30.0, "up_delta": 0.5, "down_delta": 0.5, "base_verison": 1});
    let framed = |w: &Value| {
        let mut frame = w.clone();
        frame["type"] = json!("set_setpoint");
        frame.to_string()
    };

    let before = hub.setpoint(1);
    page.send(&framed(&misspelt)).await;
    let ws_code = page
        .until(|m| match m {
            ServerMessage::Error(e) => Some(e.code),
            _ => None,
        })
        .await;
    let r = put(
        a,
        "/api/v1/setpoints",
        &[("Authorization", BEARER)],
        &json!([misspelt]).to_string(),
    )
    .await;
    assert_eq!((r.status, code(&r)), (400, ws_code), "{}", r.body);
    assert_eq!(ws_code, ErrorCode::InvalidMessage);
    assert_eq!(hub.setpoint(1), before, "a refused write changed the setpoint");

    // The same shape without the mistake: taken by both doors, and over HTTP its request_id is echoed.
    page.send(&framed(&write)).await;
    page.until(|m| matches!(m, ServerMessage::Ack { request_id, .. } if request_id == "w1").then_some(()))
        .await;
    let r = put(
        a,
        "/api/v1/setpoints",
        &[("Authorization", BEARER)],
        &json!([write]).to_string(),
    )
    .await;
    let outcomes: Vec<WriteOutcome> = serde_json::from_str(&r.body).expect("outcomes");
    assert_eq!(
        outcomes
            .iter()
            .map(|o| (o.request_id.as_str(), o.status))
            .collect::<Vec<_>>(),
        vec![("w1", 200)]
    );
    assert_eq!(hub.setpoint(1).map(|s| s.desired), Some(20.5));
    server.shutdown().await;
}

/// The sensor list comes in pages by id: `Link` leads from each to the next with the same limit and
/// filters, `X-Total-Count` counts what matches, and every sensor is listed once. Filters are checked
/// exactly by the hub's property test; here, that the query reaches them and each answer holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sensor_list_pages_by_id_with_a_count_and_a_link_to_the_next_page() {
    let server = start_unlimited(11, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    eventually("every room's first reading", || {
        (1..=11).all(|s| hub.sensor_view(s).is_some_and(|v| v.reading.is_some()))
    })
    .await;

    let mut path = "/api/v1/sensors?limit=4".to_owned();
    let (mut listed, mut pages) = (Vec::new(), 0);
    loop {
        let r = get(a, &path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header("x-total-count"), Some("11"), "{path}");
        let page: Vec<Value> = serde_json::from_str(&r.body).expect("a list");
        assert!(page.len() <= 4);
        listed.extend(page.iter().map(|v| v["sensor"].as_i64().expect("id")));
        pages += 1;
        let Some(link) = r.header("link") else { break };
        let next = link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .map(|(url, _)| url.to_owned())
            .unwrap_or_else(|| panic!("a next link: {link}"));
        assert!(next.contains("limit=4"), "{next}");
        path = next;
    }
    assert_eq!((listed, pages), ((1..=11).collect::<Vec<i64>>(), 3));

    // Without a limit: every sensor up to the page maximum, no link.
    let r = get(a, "/api/v1/sensors").await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&r.body).expect("a list").len(),
        11
    );
    assert_eq!(r.header("link"), None);

    // Filters: each answer holds what it asks for, and its count is its length on one page.
    for filter in ["heater_on", "out_of_band", "stale", "heater_on,out_of_band"] {
        let r = get(a, &format!("/api/v1/sensors?filter={filter}")).await;
        assert_eq!(r.status, 200, "{filter}: {}", r.body);
        let page: Vec<Value> = serde_json::from_str(&r.body).expect("a list");
        assert_eq!(
            r.header("x-total-count"),
            Some(page.len().to_string().as_str()),
            "{filter}"
        );
        for v in &page {
            if filter.contains("heater_on") {
                assert_eq!(v["heater"]["command"], "on", "{filter}: {v}");
            }
            if filter == "stale" {
                panic!("no room of a live simulation is stale: {v}");
            }
        }
    }
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "after=x",
        "filter=hot",
        "page=2",
    ] {
        let r = get(a, &format!("/api/v1/sensors?{bad}")).await;
        assert_eq!(
            (r.status, code(&r)),
            (400, ErrorCode::InvalidMessage),
            "{bad}: {}",
            r.body
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_bounded_by_since_and_until() {
    let server = start(1, 20).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let h = hub.history(1, 0, i64::MAX).expect("sensor 1");
        if h.readings.len() >= 40 && !h.decisions.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no readings and decisions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all: SensorHistory =
        serde_json::from_str(&get(a, "/api/v1/sensors/1/history").await.body).expect("history");
    assert!(all.readings.len() >= 40);
    assert_eq!(all.changes.first().map(|c| c.author.as_str()), Some("simulator"));
    // A window in the middle, in RFC 3339: exactly the readings whose time falls in it.
    let (from, to) = (all.readings[10].t_ms, all.readings[30].t_ms);
    let rfc = |ms: i64| jiff::Timestamp::from_millisecond(ms).expect("time").to_string();
    let path = format!("/api/v1/sensors/1/history?since={}&until={}", rfc(from), rfc(to));
    let r = get(a, &path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let part: SensorHistory = serde_json::from_str(&r.body).expect("history");
    let expected: Vec<i64> = all
        .readings
        .iter()
        .map(|r| r.t_ms)
        .filter(|t| (from..=to).contains(t))
        .collect();
    assert_eq!(part.readings.iter().map(|r| r.t_ms).collect::<Vec<_>>(), expected);
    assert!(part.decisions.iter().all(|d| (from..=to).contains(&d.t_ms)));
    assert_eq!((part.since_ms, part.until_ms), (from, to));
    server.shutdown().await;
}

/// `HH:MM:SS` in UTC, `ahead_ms` from now, and the instant it stands for.
fn utc_time_ahead(ahead_ms: i64) -> (String, i64) {
    let at = (setpoint::clock::now_ms() + ahead_ms) / 1000 * 1000;
    let t = jiff::tz::TimeZone::UTC.to_datetime(jiff::Timestamp::from_millisecond(at).expect("time"));
    (t.strftime("%H:%M:%S").to_string(), at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_saved_over_http_changes_its_sensors_at_its_step_and_a_manual_change_holds() {
    use setpoint_wire::schedule::{NextStep, Schedule};
    let server = start(3, 50).await;
    let a = addr(&server);
    let hub = server.hub.clone().expect("bridge");
    let mut page = connect(a, None, None).await.expect("connects");
    // The page watches room 2: the schedules it is sent carry that room's next step.
    page.subscribe(Some(&[2])).await;
    let (time, at) = utc_time_ahead(3_000);
    let days = r#"["mon","tue","wed","thu","fri","sat","sun"]"#;
    let body = format!(
        r#"{{"zone":"UTC","sensors":[1,2],"steps":[{{"days":{days},"time":"{time}","desired":17.5,"up_delta":0.5,"down_delta":0.5}}]}}"#
    );
    let r = put(a, "/api/v1/schedules/night", &[("Authorization", BEARER)], &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let saved: Schedule = serde_json::from_str(&r.body).expect("schedule");
    assert_eq!(
        (saved.name.as_str(), saved.sensors.clone()),
        ("night", vec![1, 2])
    );
    // Read back at once: the list, the schedule, and each sensor's next step.
    let list: Vec<Schedule> = serde_json::from_str(&get(a, "/api/v1/schedules").await.body).expect("list");
    assert_eq!(list, vec![saved.clone()]);
    assert_eq!(get(a, "/api/v1/schedules/night").await.status, 200);
    let one: Value = get(a, "/api/v1/sensors/1").await.json();
    let next: NextStep = serde_json::from_value(one["next_step"].clone()).expect("next step");
    assert_eq!(
        (next.schedule.as_str(), next.at_ms, next.desired),
        ("night", at, 17.5)
    );
    assert!(get(a, "/api/v1/sensors/3")
        .await
        .json()
        .get("next_step")
        .is_none());
    // The page is told too.
    page.until(|m| match m {
        ServerMessage::Schedules(s) if s.next.iter().any(|n| n.sensor == 2 && n.at_ms == at) => Some(()),
        _ => None,
    })
    .await;
    // At the step, sensors 1 and 2 (not 3) get its setpoint, authored by the schedule, once each.
    let before3 = hub.setpoint(3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while [1, 2]
        .iter()
        .any(|&s| hub.setpoint(s).is_none_or(|sp| sp.desired != 17.5))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the step never took effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let applied_at = setpoint::clock::now_ms();
    assert!(applied_at >= at, "applied before its instant");
    for s in [1, 2] {
        let sp = hub.setpoint(s).expect("in force");
        assert_eq!(sp.author.as_deref(), Some("schedule:night"));
        assert!(sp.t_ms.is_some_and(|t| t >= at), "{sp:?}");
    }
    assert_eq!(hub.setpoint(3), before3);
    // A manual change after the step holds (until tomorrow's step).
    let r = put(
        a,
        "/api/v1/sensors/1/setpoint",
        &[("Authorization", BEARER)],
        r#"{"desired":21,"up_delta":1,"down_delta":1}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        hub.setpoint(1).map(|s| (s.desired, s.author)),
        Some((21.0, Some("admin".to_owned())))
    );
    let h: SensorHistory =
        serde_json::from_str(&get(a, "/api/v1/sensors/2/history").await.body).expect("history");
    let by_schedule = h.changes.iter().filter(|c| c.author == "schedule:night").count();
    assert_eq!(by_schedule, 1, "{:?}", h.changes);
    // Next is tomorrow's step.
    let next: NextStep =
        serde_json::from_value(get(a, "/api/v1/sensors/2").await.json()["next_step"].clone()).expect("next");
    assert_eq!(next.at_ms, at + 86_400_000);
    // Deleted: gone from the list and the sensors.
    let r = request(
        a,
        "DELETE",
        "/api/v1/schedules/night",
        &[("Authorization", BEARER)],
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(get(a, "/api/v1/schedules/night").await.status, 404);
    assert!(get(a, "/api/v1/sensors/2")
        .await
        .json()
        .get("next_step")
        .is_none());
    let r = request(
        a,
        "DELETE",
        "/api/v1/schedules/night",
        &[("Authorization", BEARER)],
        None,
    )
    .await;
    assert_eq!((r.status, code(&r)), (404, ErrorCode::NotFound));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_schedule_is_refused_with_the_rule_it_breaks() {
    let server = start_unlimited(1, 50).await;
    let a = addr(&server);
    let auth = [("Authorization", BEARER)];
    let step = |time: &str, desired: f64| {
        format!(r#"{{"days":["mon"],"time":"{time}","desired":{desired},"up_delta":0.5,"down_delta":0.5}}"#)
    };
    let cases: Vec<(&str, String, u16, ErrorCode, &str)> = vec![
        (
            "/api/v1/schedules/a",
            format!(r#"{{"zone":"Mars/Olympus","steps":[{}]}}"#, step("07:00", 20.0)),
            422,
            ErrorCode::InvalidSchedule,
            "Mars/Olympus",
        ),
        (
            "/api/v1/schedules/a",
            format!(r#"{{"zone":"UTC","steps":[{}]}}"#, step("25:00", 20.0)),
            422,
            ErrorCode::InvalidSchedule,
            "25:00",
        ),
        (
            "/api/v1/schedules/a",
            format!(r#"{{"zone":"UTC","steps":[{}]}}"#, step("07:00", 500.0)),
            422,
            ErrorCode::InvalidSchedule,
            "desired",
        ),
        (
            "/api/v1/schedules/a",
            r#"{"zone":"UTC","steps":[]}"#.to_owned(),
            422,
            ErrorCode::InvalidSchedule,
            "step",
        ),
        (
            "/api/v1/schedules/bad:name",
            format!(r#"{{"zone":"UTC","steps":[{}]}}"#, step("07:00", 20.0)),
            422,
            ErrorCode::InvalidSchedule,
            "name",
        ),
        (
            "/api/v1/schedules/a",
            r#"{"zone":"UTC","steps":[],"colour":1}"#.to_owned(),
            400,
            ErrorCode::InvalidMessage,
            "colour",
        ),
        (
            "/api/v1/schedules/a",
            r#"{"zone":"UTC","steps":[{"days":["mon"],"time":"07:00","desired":20,"up_delta":0.5,"down_delta":0.5,"polcy":{"kind":"tpi","cycle_s":600,"k_int":0.6}}]}"#.to_owned(),
            400,
            ErrorCode::InvalidMessage,
            "polcy",
        ),
        (
            "/api/v1/schedules/a",
            "{".to_owned(),
            400,
            ErrorCode::MalformedFrame,
            "JSON",
        ),
    ];
    for (path, body, status, expected, mentions) in cases {
        let r = put(a, path, &auth, &body).await;
        assert_eq!((r.status, code(&r)), (status, expected), "{body}: {}", r.body);
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains(mentions),
            "{body}: the message {message:?} does not name {mentions:?}"
        );
    }
    let ok = format!(r#"{{"zone":"Europe/Berlin","steps":[{}]}}"#, step("07:00", 20.0));
    let r = put(a, "/api/v1/schedules/a", &[], &ok).await;
    assert_eq!((r.status, code(&r)), (401, ErrorCode::Unauthorized));
    assert_eq!(get(a, "/api/v1/schedules").await.body, "[]");
    server.shutdown().await;
}

/// The next live decision for `sensor` under setpoint `version`, from the page's stream.
async fn decision_under(
    page: &mut setpoint_testkit::ws::Client,
    sensor: i32,
    version: u64,
) -> setpoint_control::Decision {
    page.until(|m| {
        let live = match m {
            ServerMessage::Decision(d) => vec![*d],
            ServerMessage::Decisions(b) if !b.backfill => b.items.clone(),
            _ => Vec::new(),
        };
        live.into_iter()
            .find(|d| d.sensor == sensor && d.setpoint_version == version)
    })
    .await
}

/// A script switches a room to mode off and to TPI over HTTP, and the simulated heater follows: Off and
/// no On after it however far below the target; TPI On for its formula's share of the cycle, then Off;
/// a write of the numbers alone keeps the policy; `GET` shows mode and policy; bad parameters are refused
/// with their field, a misspelt one as a malformed message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_switches_a_room_to_off_and_to_tpi_and_the_heater_follows() {
    use setpoint_control::{Command, Mode, Policy};
    let server = start_unlimited(3, 50).await;
    let a = addr(&server);
    let mut page = connect(a, None, None).await.expect("connects");
    page.until(|m| matches!(m, ServerMessage::Hello(_)).then_some(()))
        .await;
    page.subscribe(Some(&[2])).await;
    let auth = [("authorization", BEARER)];
    let write = |body: Value| async move {
        let r = put(
            a,
            "/api/v1/sensors/2/setpoint",
            &[("authorization", BEARER)],
            &body.to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        setpoint(&r)
    };
    // Far below 35 °C: the heater goes On.
    let hot = write(json!({"desired": 35, "up_delta": 0.5, "down_delta": 0.5})).await;
    assert_eq!((hot.mode, hot.policy), (Mode::Heat, Policy::Hysteresis));
    assert_eq!(
        decision_under(&mut page, 2, hot.version).await.command,
        Command::On
    );
    // Mode off: one Off, then nothing for the next two seconds of readings, though the room is cold.
    let off = write(json!({"desired": 35, "up_delta": 0.5, "down_delta": 0.5, "mode": "off"})).await;
    assert_eq!(off.mode, Mode::Off);
    assert_eq!(
        decision_under(&mut page, 2, off.version).await.command,
        Command::Off
    );
    let mut readings = 0;
    page.until(|m| {
        match m {
            ServerMessage::Readings(b) => readings += b.items.iter().filter(|r| r.sensor == 2).count(),
            ServerMessage::Decision(d) if d.sensor == 2 => panic!("a decision in mode off: {d:?}"),
            ServerMessage::Decisions(b) if !b.backfill && b.items.iter().any(|d| d.sensor == 2) => {
                panic!("a decision in mode off: {b:?}")
            }
            _ => {}
        }
        (readings >= 40).then_some(())
    })
    .await;
    // TPI with 10 s cycles: On at the cycle's start for k_int·(desired − T) of it, then Off.
    let tpi = write(
        json!({"desired": 35, "up_delta": 0.5, "down_delta": 0.5, "mode": "heat",
        "policy": {"kind": "tpi", "cycle_s": 10, "k_int": 0.05}}),
    )
    .await;
    let Policy::Tpi(params) = tpi.policy else {
        panic!("not TPI: {tpi:?}")
    };
    let on = decision_under(&mut page, 2, tpi.version).await;
    assert_eq!(on.command, Command::On, "{on:?}");
    let off = decision_under(&mut page, 2, tpi.version).await;
    assert_eq!(off.command, Command::Off, "{off:?}");
    let on_ms = params.on_ms(35.0, on.temperature, None);
    let lasted = off.t_ms - on.t_ms;
    assert!(
        (on_ms..on_ms + 100).contains(&lasted),
        "On for {lasted} ms; the formula says {on_ms} ms (readings every 50 ms)"
    );
    // The numbers alone keep the policy; GET shows mode and policy.
    let moved = write(json!({"desired": 34, "up_delta": 0.5, "down_delta": 0.5})).await;
    assert_eq!((moved.mode, moved.policy), (Mode::Heat, tpi.policy));
    let shown = get(a, "/api/v1/sensors/2/setpoint").await;
    assert_eq!(shown.json()["policy"]["kind"], "tpi", "{}", shown.body);
    assert_eq!(shown.json()["policy"]["cycle_s"], 10, "{}", shown.body);
    assert_eq!(shown.json()["mode"], "heat", "{}", shown.body);
    // Refused: a cycle too short (its field named), k_ext without an outdoor sensor, a misspelt field.
    for (body, status, want, field) in [
        (
            json!({"kind": "tpi", "cycle_s": 5, "k_int": 0.5}),
            422,
            ErrorCode::InvalidSetpoint,
            "policy.cycle_s",
        ),
        (
            json!({"kind": "tpi", "cycle_s": 600, "k_int": 0.5, "k_ext": 0.1}),
            422,
            ErrorCode::InvalidSetpoint,
            "policy.outdoor_sensor",
        ),
        (
            json!({"kind": "tpi", "cycle_s": 600, "kint": 0.5}),
            400,
            ErrorCode::InvalidMessage,
            "kint",
        ),
    ] {
        let body = json!({"desired": 21, "up_delta": 0.5, "down_delta": 0.5, "policy": body});
        let r = put(a, "/api/v1/sensors/2/setpoint", &auth, &body.to_string()).await;
        assert_eq!((r.status, code(&r)), (status, want), "{}", r.body);
        assert!(
            r.json()["message"].as_str().is_some_and(|m| m.contains(field)),
            "{}",
            r.body
        );
    }
    server.shutdown().await;
}
